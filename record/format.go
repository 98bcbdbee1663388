package record

import (
	"strconv"
	"strings"
)

// Exact formats a number with every significant digit, for reports and messages that quote evidence.
func Exact(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// ValueText is the measured value, or "no value" and why.
func (m Measurement) ValueText() string {
	if m.Value == nil {
		if m.Error != "" {
			return "no value (" + m.Error + ")"
		}
		return "no value"
	}
	return Exact(*m.Value)
}

// ThresholdText lists the limits the value was held to: "max 0.01, baseline 0.004 +20%".
func (m Measurement) ThresholdText() string {
	var parts []string
	if m.Min != nil {
		parts = append(parts, "min "+Exact(*m.Min))
	}
	if m.Max != nil {
		parts = append(parts, "max "+Exact(*m.Max))
	}
	if m.Baseline != nil {
		parts = append(parts, "baseline "+Exact(*m.Baseline)+" +"+Exact(m.BaselineMaxRelativeIncrease*100)+"%")
	}
	return strings.Join(parts, ", ")
}

// Summary says check, value, threshold and verdict in one line: "error-rate = 0.052 (max 0.01): Fail".
func (m Measurement) Summary() string {
	s := m.Check + " = " + m.ValueText()
	if t := m.ThresholdText(); t != "" {
		s += " (" + t + ")"
	}
	if m.Verdict != "" {
		s += ": " + string(m.Verdict)
	}
	return s
}
