package record

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func f(v float64) *float64 { return &v }

func TestAssess(t *testing.T) {
	cases := []struct {
		name    string
		m       Measurement
		verdict Verdict
		reason  string
	}{
		{"under max", Measurement{Value: f(0.004), Max: f(0.01)}, Pass, "0.004 <= max 0.01"},
		{"at max", Measurement{Value: f(0.01), Max: f(0.01)}, Pass, "0.01 <= max 0.01"},
		{"over max", Measurement{Value: f(0.052), Max: f(0.01)}, Fail, "0.052 > max 0.01"},
		{"under min", Measurement{Value: f(0.2), Min: f(0.5)}, Fail, "0.2 < min 0.5"},
		{"in band", Measurement{Value: f(0.7), Min: f(0.5), Max: f(1)}, Pass, "0.7 <= max 1, 0.7 >= min 0.5"},
		{"provider error", Measurement{Error: "connection refused", Max: f(1)}, Inconclusive, "no usable value: connection refused"},
		{"no value", Measurement{Max: f(1)}, Inconclusive, "no value"},
		{"within baseline", Measurement{Value: f(0.11), Baseline: f(0.1), BaselineMaxRelativeIncrease: 0.2}, Pass, "within 20% of baseline 0.1"},
		{"worse than baseline", Measurement{Value: f(0.13), Baseline: f(0.1), BaselineMaxRelativeIncrease: 0.2}, Fail, "0.13 > baseline 0.1 + 20% = 0.12"},
		{"baseline missing", Measurement{Value: f(0.13), BaselineMaxRelativeIncrease: 0.2}, Inconclusive, "no baseline value"},
		{"max fails before baseline", Measurement{Value: f(2), Max: f(1), Baseline: f(1.9), BaselineMaxRelativeIncrease: 0.2}, Fail, "2 > max 1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, reason := Assess(tc.m)
			assert.Equal(t, tc.verdict, v)
			assert.Equal(t, tc.reason, reason)
		})
	}
}
