package activities

import (
	"context"
	"fmt"
	"math"

	"go.temporal.io/sdk/activity"

	"github.com/shepherd-release/shepherd/record"
	"github.com/shepherd-release/shepherd/spec"
)

// MeasureInput asks for one measurement of every check.
type MeasureInput struct {
	ReleaseID string `json:"releaseID"`
	Stage     int    `json:"stage"`
	// Source names the metrics source, one of the worker configuration's metrics.
	Source string            `json:"source"`
	Checks []spec.Check      `json:"checks"`
	Data   spec.TemplateData `json:"data"`
}

// MeasureResult holds one judged measurement per check, in check order. Each is judged here, with the
// pure record.Assess, when it is taken: the verdict travels in the activity's result and so is recorded in
// history, and a later change of Assess cannot change what a running release already decided on replay.
type MeasureResult struct {
	Measurements []record.Measurement `json:"measurements"`
}

// Measure evaluates every check once. It never fails for a measurement problem: an unreachable server or
// an empty result becomes that check's Error, which the workflow judges inconclusive.
func (a *Activities) Measure(ctx context.Context, in MeasureInput) (MeasureResult, error) {
	return MeasureResult{Measurements: a.measureRound(ctx, in, func(i int) {
		if activity.IsActivity(ctx) {
			activity.RecordHeartbeat(ctx, i)
		}
	})}, nil
}

// measureRound takes one judged measurement of every check, calling checked after each.
func (a *Activities) measureRound(ctx context.Context, in MeasureInput, checked func(i int)) []record.Measurement {
	out := MeasureResult{Measurements: make([]record.Measurement, len(in.Checks))}
	m, factoryErr := a.Metrics.Lookup(spec.KindMetrics, in.Source)
	for i, c := range in.Checks {
		meas := record.Measurement{Check: c.Name, Stage: in.Stage, Max: c.Max, Min: c.Min, Time: a.clock().Now().UTC()}
		if factoryErr != nil {
			meas.Error = factoryErr.Error()
			meas.Verdict, meas.Reason = record.Assess(meas)
			out.Measurements[i] = meas
			checked(i)
			continue
		}
		v, q, err := m.Evaluate(ctx, c.Query, in.Data)
		meas.Query = q
		if err != nil {
			meas.Error = err.Error()
		} else {
			meas.Value = finite(v)
			if meas.Value == nil {
				meas.Error = fmt.Sprintf("query returned %v", v)
			}
		}
		if b := c.Baseline; b != nil && meas.Error == "" {
			meas.BaselineMaxRelativeIncrease = b.MaxRelativeIncrease
			tmpl, data := b.Query, in.Data
			if tmpl == "" {
				tmpl, data.Version = c.Query, in.Data.PreviousVersion
			}
			bv, _, err := m.Evaluate(ctx, tmpl, data)
			switch {
			case err != nil:
				meas.Error = "baseline: " + err.Error()
			case finite(bv) == nil:
				meas.Error = fmt.Sprintf("baseline query returned %v", bv)
			default:
				meas.Baseline = finite(bv)
			}
		}
		meas.Verdict, meas.Reason = record.Assess(meas)
		out.Measurements[i] = meas
		if a.Observer != nil {
			a.Observer.Measured(in.Data.Service, in.Data.Environment, meas.Verdict)
		}
		checked(i)
	}
	return out.Measurements
}

func finite(v float64) *float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return &v
}
