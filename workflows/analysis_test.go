package workflows

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/shepherd-release/shepherd/record"
	"github.com/shepherd-release/shepherd/spec"
)

func TestAnalysisStateLimits(t *testing.T) {
	round := func(verdicts ...record.Verdict) []record.Measurement {
		names := []string{"error-rate", "p99-latency"}
		ms := make([]record.Measurement, len(verdicts))
		for i, v := range verdicts {
			ms[i] = record.Measurement{Check: names[i], Verdict: v, Reason: "r"}
		}
		return ms
	}
	P, F, I := record.Pass, record.Fail, record.Inconclusive
	cases := []struct {
		name              string
		failureLimit      int
		inconclusiveLimit int
		rounds            [][]record.Measurement
		want              []record.Verdict
	}{
		{"all pass", 1, 3, [][]record.Measurement{round(P, P), round(P, P)}, []record.Verdict{P, P}},
		{"one failure rolls back at limit 1", 1, 3, [][]record.Measurement{round(P, P), round(F, P)}, []record.Verdict{P, F}},
		{"failures must be consecutive", 2, 3, [][]record.Measurement{round(F, P), round(P, P), round(F, P), round(F, P)}, []record.Verdict{"", P, "", F}},
		{"inconclusive pauses at its limit", 1, 2, [][]record.Measurement{round(I, P), round(I, P)}, []record.Verdict{"", I}},
		{"a pass resets inconclusive", 1, 2, [][]record.Measurement{round(I, P), round(P, P), round(I, P)}, []record.Verdict{"", P, ""}},
		{"failure wins over inconclusive", 1, 1, [][]record.Measurement{round(I, F)}, []record.Verdict{F}},
		{"counts are per check", 2, 3, [][]record.Measurement{round(F, P), round(P, F)}, []record.Verdict{"", ""}},
		{"inconclusive breaks a failure streak", 2, 3, [][]record.Measurement{round(F, P), round(I, P), round(F, P)}, []record.Verdict{"", "", ""}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newAnalysisState(spec.Analysis{FailureLimit: tc.failureLimit, InconclusiveLimit: tc.inconclusiveLimit})
			for i, r := range tc.rounds {
				got, _ := s.observe(r)
				assert.Equal(t, tc.want[i], got, "round %d", i+1)
			}
		})
	}
}

func TestAnalysisStateResetForgetsStreaks(t *testing.T) {
	s := newAnalysisState(spec.Analysis{FailureLimit: 2, InconclusiveLimit: 2})
	fail := []record.Measurement{{Check: "error-rate", Verdict: record.Fail}}
	v, _ := s.observe(fail)
	assert.Equal(t, record.Verdict(""), v)
	s.reset()
	v, _ = s.observe(fail)
	assert.Equal(t, record.Verdict(""), v, "a resumed stage starts counting afresh")
	v, reason := s.observe(fail)
	assert.Equal(t, record.Fail, v)
	assert.Contains(t, reason, "error-rate failed 2 time(s) in a row")
}
