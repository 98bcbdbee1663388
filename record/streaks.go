package record

import (
	"fmt"
	"strings"
)

// Streaks counts consecutive failed and inconclusive measurements per check within a stage: the
// analysis' only memory. Pure and JSON-serialisable, so it can travel wherever the analysis runs.
type Streaks struct {
	FailureLimit      int            `json:"failureLimit"`
	InconclusiveLimit int            `json:"inconclusiveLimit"`
	Failures          map[string]int `json:"failures,omitempty"`
	Inconclusive      map[string]int `json:"inconclusive,omitempty"`
}

// NewStreaks starts counting with the given limits.
func NewStreaks(failureLimit, inconclusiveLimit int) *Streaks {
	s := &Streaks{FailureLimit: failureLimit, InconclusiveLimit: inconclusiveLimit}
	s.Reset()
	return s
}

// Reset forgets the counts: at a new stage, and after a human resumed.
func (s *Streaks) Reset() {
	s.Failures = map[string]int{}
	s.Inconclusive = map[string]int{}
}

// Observe records one round of judged measurements and returns the overall verdict:
// Fail when any check failed FailureLimit times in a row (rollback); Inconclusive when any check was
// inconclusive InconclusiveLimit times in a row (pause for a human); Pass when every check passed;
// "" when something is off but below its limit (keep soaking; the stage cannot pass on this round).
// Failure wins over inconclusive: an SLO breach must roll back even when another check has no data.
func (s *Streaks) Observe(ms []Measurement) (Verdict, string) {
	// Counts that travelled as JSON lose their empty maps (omitempty): keep whichever came back.
	if s.Failures == nil {
		s.Failures = map[string]int{}
	}
	if s.Inconclusive == nil {
		s.Inconclusive = map[string]int{}
	}
	var failed, undecided []string
	allPass := true
	for _, m := range ms {
		switch m.Verdict {
		case Fail:
			s.Failures[m.Check]++
			s.Inconclusive[m.Check] = 0
			allPass = false
			if s.Failures[m.Check] >= s.FailureLimit {
				failed = append(failed, fmt.Sprintf("%s failed %d time(s) in a row (%s)", m.Check, s.Failures[m.Check], m.Reason))
			}
		case Inconclusive, "": // a measurement nobody judged is no evidence: never count it as a pass
			s.Inconclusive[m.Check]++
			s.Failures[m.Check] = 0
			allPass = false
			if s.Inconclusive[m.Check] >= s.InconclusiveLimit {
				undecided = append(undecided, fmt.Sprintf("%s inconclusive %d time(s) in a row (%s)", m.Check, s.Inconclusive[m.Check], m.Reason))
			}
		default:
			s.Failures[m.Check] = 0
			s.Inconclusive[m.Check] = 0
		}
	}
	switch {
	case len(failed) > 0:
		return Fail, "analysis failed: " + strings.Join(failed, "; ")
	case len(undecided) > 0:
		return Inconclusive, "analysis inconclusive: " + strings.Join(undecided, "; ")
	case allPass:
		return Pass, "all checks passed"
	default:
		return "", "below limits"
	}
}
