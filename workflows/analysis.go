package workflows

import (
	"fmt"
	"strings"
	"time"

	"github.com/shepherd-release/shepherd/record"
	"github.com/shepherd-release/shepherd/spec"
)

// analysisState counts consecutive failed and inconclusive measurements per check within a stage.
type analysisState struct {
	failureLimit, inconclusiveLimit int
	failures, inconclusive          map[string]int
}

func newAnalysisState(a spec.Analysis) *analysisState {
	s := &analysisState{failureLimit: a.FailureLimit, inconclusiveLimit: a.InconclusiveLimit}
	s.reset()
	return s
}

// reset forgets the counts: at a new stage, and after a human resumed.
func (s *analysisState) reset() {
	s.failures = map[string]int{}
	s.inconclusive = map[string]int{}
}

// observe records one round of judged measurements and returns the overall verdict:
// Fail when any check failed failureLimit times in a row (rollback); Inconclusive when any check was
// inconclusive inconclusiveLimit times in a row (pause for a human); Pass when every check passed;
// "" when something is off but below its limit (keep soaking; the stage cannot pass on this round).
// Failure wins over inconclusive: an SLO breach must roll back even when another check has no data.
func (s *analysisState) observe(ms []record.Measurement) (record.Verdict, string) {
	var failed, undecided []string
	allPass := true
	for _, m := range ms {
		switch m.Verdict {
		case record.Fail:
			s.failures[m.Check]++
			s.inconclusive[m.Check] = 0
			allPass = false
			if s.failures[m.Check] >= s.failureLimit {
				failed = append(failed, fmt.Sprintf("%s failed %d time(s) in a row (%s)", m.Check, s.failures[m.Check], m.Reason))
			}
		case record.Inconclusive:
			s.inconclusive[m.Check]++
			s.failures[m.Check] = 0
			allPass = false
			if s.inconclusive[m.Check] >= s.inconclusiveLimit {
				undecided = append(undecided, fmt.Sprintf("%s inconclusive %d time(s) in a row (%s)", m.Check, s.inconclusive[m.Check], m.Reason))
			}
		default:
			s.failures[m.Check] = 0
			s.inconclusive[m.Check] = 0
		}
	}
	switch {
	case len(failed) > 0:
		return record.Fail, "analysis failed: " + strings.Join(failed, "; ")
	case len(undecided) > 0:
		return record.Inconclusive, "analysis inconclusive: " + strings.Join(undecided, "; ")
	case allPass:
		return record.Pass, "all checks passed"
	default:
		return "", "below limits"
	}
}

// summarize is the decision-log line for one round of analysis.
// A limit reached is told by its reason; otherwise each check's verdict ("Watching" while something is
// off but below its limit).
func summarize(overall record.Verdict, reason string, ms []record.Measurement) string {
	switch overall {
	case record.Fail, record.Inconclusive:
		return reason
	case "":
		overall = "Watching"
	}
	parts := make([]string, len(ms))
	for i, m := range ms {
		parts[i] = fmt.Sprintf("%s %s (%s)", m.Check, m.Verdict, m.Reason)
	}
	return string(overall) + ": " + strings.Join(parts, "; ")
}

// unavailable stands for a round whose measuring activity itself failed.
func unavailable(checks []spec.Check, stage int, now time.Time, why string) []record.Measurement {
	out := make([]record.Measurement, len(checks))
	for i, c := range checks {
		out[i] = record.Measurement{Check: c.Name, Stage: stage, Time: now, Max: c.Max, Min: c.Min,
			Error: "measuring failed: " + why, Verdict: record.Inconclusive, Reason: "no usable value: measuring failed: " + why}
	}
	return out
}
