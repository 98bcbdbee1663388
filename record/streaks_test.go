package record

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestStreakLimits(t *testing.T) {
	round := func(verdicts ...Verdict) []Measurement {
		names := []string{"error-rate", "p99-latency"}
		ms := make([]Measurement, len(verdicts))
		for i, v := range verdicts {
			ms[i] = Measurement{Check: names[i], Verdict: v, Reason: "r"}
		}
		return ms
	}
	P, F, I := Pass, Fail, Inconclusive
	cases := []struct {
		name              string
		failureLimit      int
		inconclusiveLimit int
		rounds            [][]Measurement
		want              []Verdict
	}{
		{"all pass", 1, 3, [][]Measurement{round(P, P), round(P, P)}, []Verdict{P, P}},
		{"one failure rolls back at limit 1", 1, 3, [][]Measurement{round(P, P), round(F, P)}, []Verdict{P, F}},
		{"failures must be consecutive", 2, 3, [][]Measurement{round(F, P), round(P, P), round(F, P), round(F, P)}, []Verdict{"", P, "", F}},
		{"inconclusive pauses at its limit", 1, 2, [][]Measurement{round(I, P), round(I, P)}, []Verdict{"", I}},
		{"a pass resets inconclusive", 1, 2, [][]Measurement{round(I, P), round(P, P), round(I, P)}, []Verdict{"", P, ""}},
		{"failure wins over inconclusive", 1, 1, [][]Measurement{round(I, F)}, []Verdict{F}},
		{"counts are per check", 2, 3, [][]Measurement{round(F, P), round(P, F)}, []Verdict{"", ""}},
		{"inconclusive breaks a failure streak", 2, 3, [][]Measurement{round(F, P), round(I, P), round(F, P)}, []Verdict{"", "", ""}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := NewStreaks(tc.failureLimit, tc.inconclusiveLimit)
			for i, r := range tc.rounds {
				got, _ := s.Observe(r)
				assert.Equal(t, tc.want[i], got, "round %d", i+1)
			}
		})
	}
}

func TestResetForgetsStreaks(t *testing.T) {
	s := NewStreaks(2, 2)
	fail := []Measurement{{Check: "error-rate", Verdict: Fail}}
	v, _ := s.Observe(fail)
	assert.Equal(t, Verdict(""), v)
	s.Reset()
	v, _ = s.Observe(fail)
	assert.Equal(t, Verdict(""), v, "a resumed stage starts counting afresh")
	v, reason := s.Observe(fail)
	assert.Equal(t, Fail, v)
	assert.Contains(t, reason, "error-rate failed 2 time(s) in a row")
}

func TestAnUnjudgedMeasurementNeverPasses(t *testing.T) {
	s := NewStreaks(1, 1)
	v, _ := s.Observe([]Measurement{{Check: "error-rate"}})
	if v != Inconclusive {
		t.Fatalf("a measurement without a verdict gave %q, want Inconclusive", v)
	}
}
