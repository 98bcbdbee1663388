package record

import "time"

// MaxNotable bounds how many failed or inconclusive measurements a stage's evidence keeps in full; the
// rest are counted in NotableDropped.
const MaxNotable = 10

// StageEvidence is what a stage's analysis saw, complete in counts and bounded in size whatever the soak
// length: per-check statistics over every measurement, the failed and inconclusive measurements up to
// MaxNotable, and the measurements that decided the stage's course.
type StageEvidence struct {
	Stage int `json:"stage"`
	// From is when the watch began (or the first measurement); To is the latest measurement.
	From time.Time `json:"from,omitzero"`
	To   time.Time `json:"to,omitzero"`
	// Rounds is how many times every check was measured.
	Rounds int             `json:"rounds"`
	Checks []CheckEvidence `json:"checks,omitempty"`
	// Notable holds failed and inconclusive measurements in the order taken, without their queries
	// (Decisive and the spec have them), up to MaxNotable; NotableDropped counts the rest.
	Notable        []Measurement `json:"notable,omitempty"`
	NotableDropped int           `json:"notableDropped,omitempty"`
	// Decisive is the latest round: the measurements the stage's course was decided on, with queries.
	Decisive []Measurement `json:"decisive,omitempty"`
}

// CheckEvidence summarises every measurement of one check in a stage.
type CheckEvidence struct {
	Check        string `json:"check"`
	Measurements int    `json:"measurements"`
	Passed       int    `json:"passed,omitempty"`
	Failed       int    `json:"failed,omitempty"`
	Inconclusive int    `json:"inconclusive,omitempty"`
	// Min, Max and Last are over the measurements that gave a number (nil when none did).
	Min  *float64 `json:"min,omitempty"`
	Max  *float64 `json:"max,omitempty"`
	Last *float64 `json:"last,omitempty"`
	// Graph links the check's query over the stage's time window in the metrics source's own UI, when
	// the source can make such a link.
	Graph string `json:"graph,omitempty"`
}

// Add folds one round of judged measurements (one per check, in check order) into the evidence.
func (e *StageEvidence) Add(ms []Measurement) {
	e.Rounds++
	for _, m := range ms {
		if e.From.IsZero() {
			e.From = m.Time
		}
		if m.Time.After(e.To) {
			e.To = m.Time
		}
		c := e.check(m.Check)
		c.Measurements++
		switch m.Verdict {
		case Pass:
			c.Passed++
		case Fail:
			c.Failed++
		default:
			c.Inconclusive++
		}
		if m.Value != nil {
			v := *m.Value
			if c.Min == nil || v < *c.Min {
				c.Min = &v
			}
			if c.Max == nil || v > *c.Max {
				c.Max = &v
			}
			c.Last = &v
		}
		if m.Verdict != Pass {
			if len(e.Notable) < MaxNotable {
				n := m
				n.Query = ""
				e.Notable = append(e.Notable, n)
			} else {
				e.NotableDropped++
			}
		}
	}
	e.Decisive = append([]Measurement(nil), ms...)
}

func (e *StageEvidence) check(name string) *CheckEvidence {
	for i := range e.Checks {
		if e.Checks[i].Check == name {
			return &e.Checks[i]
		}
	}
	e.Checks = append(e.Checks, CheckEvidence{Check: name})
	return &e.Checks[len(e.Checks)-1]
}
