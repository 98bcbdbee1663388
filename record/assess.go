package record

import (
	"fmt"
	"strconv"
	"strings"
)

// Assess judges one measurement against its thresholds. It is pure: the workflow's decisions replay
// exactly. Missing data is never a pass.
func Assess(m Measurement) (Verdict, string) {
	if m.Error != "" {
		return Inconclusive, "no usable value: " + m.Error
	}
	if m.Value == nil {
		return Inconclusive, "no value"
	}
	v := *m.Value
	if m.Max != nil && v > *m.Max {
		return Fail, fmt.Sprintf("%s > max %s", Num(v), Num(*m.Max))
	}
	if m.Min != nil && v < *m.Min {
		return Fail, fmt.Sprintf("%s < min %s", Num(v), Num(*m.Min))
	}
	if m.BaselineMaxRelativeIncrease > 0 {
		if m.Baseline == nil {
			return Inconclusive, "no baseline value"
		}
		limit := *m.Baseline * (1 + m.BaselineMaxRelativeIncrease)
		if v > limit {
			return Fail, fmt.Sprintf("%s > baseline %s + %s%% = %s", Num(v), Num(*m.Baseline),
				Num(m.BaselineMaxRelativeIncrease*100), Num(limit))
		}
	}
	return Pass, passReason(m)
}

func passReason(m Measurement) string {
	var parts []string
	if m.Max != nil {
		parts = append(parts, fmt.Sprintf("%s <= max %s", Num(*m.Value), Num(*m.Max)))
	}
	if m.Min != nil {
		parts = append(parts, fmt.Sprintf("%s >= min %s", Num(*m.Value), Num(*m.Min)))
	}
	if m.Baseline != nil {
		parts = append(parts, fmt.Sprintf("within %s%% of baseline %s", Num(m.BaselineMaxRelativeIncrease*100), Num(*m.Baseline)))
	}
	return strings.Join(parts, ", ")
}

// Num formats a measured value for people: four significant digits.
func Num(v float64) string { return strconv.FormatFloat(v, 'g', 4, 64) }
