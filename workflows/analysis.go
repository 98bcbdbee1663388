package workflows

import (
	"fmt"
	"strings"
	"time"

	"github.com/shepherd-release/shepherd/record"
	"github.com/shepherd-release/shepherd/spec"
)

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
