package workflows

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/shepherd-release/shepherd/activities"
	"github.com/shepherd-release/shepherd/record"
	"github.com/shepherd-release/shepherd/spec"
)

// changeWatchAnalysis replaces the timer + Measure rounds of a soak with one long-running WatchStage
// activity per soak stretch, which measures every interval and returns only when the stage's course
// changes: a stage costs a handful of history events whatever its soak time and interval.
const changeWatchAnalysis = "watch-analysis"

// soakWatched holds the stage for its soak time while a WatchStage activity measures every check every
// interval. It returns nil when the stage passed; errAnalysisFailed, or the context's error on abort or
// cancellation, otherwise. A pause stops the watch and the soak clock at once; after a resume the stage
// is watched afresh (limits counted anew) for the soak time left, and never passes without a passing
// last measurement.
func (r *release) soakWatched(ctx workflow.Context, st spec.Stage) error {
	stage := r.status.Stage
	remaining := st.Soak.D()
	interval := r.spec.Analysis.Interval.D()
	stage.SoakStartedAt = workflow.Now(ctx)
	for {
		if r.paused {
			if err := r.holdWhilePaused(ctx); err != nil {
				return err
			}
			if remaining <= 0 {
				remaining = min(interval, st.Soak.D()) // measure afresh before the stage may pass
			}
			continue
		}
		stage.SoakRemaining = remaining
		stage.SoakEndsAt = workflow.Now(ctx).Add(remaining)
		r.publishDetails(ctx)
		start := workflow.Now(ctx)
		res, err := r.watchStage(ctx, remaining)
		remaining = max(remaining-elapsed(start, workflow.Now(ctx)), 0)
		stage.SoakRemaining = remaining
		if ctx.Err() != nil {
			return ctx.Err() // aborted or cancelled: whatever the watch saw, the release rolls back
		}
		if err != nil {
			if r.paused {
				continue // the pause stopped the watch
			}
			r.autoPause(ctx, "watching stage %d failed: %s; resume to watch it again", stage.Number, describeError(err))
			continue
		}
		r.recordWatch(ctx, res)
		switch res.Outcome {
		case activities.WatchFailed:
			return errAnalysisFailed{reason: res.Reason}
		case activities.WatchInconclusive:
			r.autoPause(ctx, "%s", res.Reason)
		case activities.WatchUnsettled:
			remaining = 0
			r.autoPause(ctx, "soak of stage %d ended without a passing measurement of every check; never promoting on missing or failing data", stage.Number)
		case activities.WatchPassed:
			if r.paused { // paused in the same instant: hold, and measure afresh after the resume
				remaining = 0
				continue
			}
			stage.SoakEndsAt = time.Time{}
			stage.SoakRemaining = 0
			return nil
		default:
			r.autoPause(ctx, "watching stage %d ended with an unknown outcome %q", stage.Number, res.Outcome)
		}
	}
}

// watchStage runs one WatchStage activity for the soak time left. A pause cancels it; so does an abort
// (ctx). The release does not wait for a cancelled watch to acknowledge: it only reads metrics.
func (r *release) watchStage(ctx workflow.Context, remaining time.Duration) (activities.WatchResult, error) {
	a := r.spec.Analysis
	perQuery := 10 * time.Second
	if r.metricsTimeout > 0 {
		perQuery = r.metricsTimeout
	}
	round := time.Duration(2*len(a.Checks)) * 3 * perQuery // two queries per check, each with its retries
	wctx, cancel := workflow.WithCancel(ctx)
	defer cancel()
	actx := workflow.WithActivityOptions(wctx, workflow.ActivityOptions{
		StartToCloseTimeout: remaining + a.Interval.D() + round + time.Minute,
		HeartbeatTimeout:    activities.WatchHeartbeatTimeout,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 10 * time.Second,
			MaximumAttempts: 10,
		},
		Summary: fmt.Sprintf("Watch stage %d at %d%%: %d checks every %s for %s", r.status.Stage.Number,
			r.status.TrafficPercent, len(a.Checks), human(a.Interval.D()), human(remaining)),
	})
	in := activities.WatchInput{
		ReleaseID: r.status.ReleaseID, Stage: r.status.Stage.Number, Source: a.Source, Checks: a.Checks,
		Data: r.data(r.status.TrafficPercent), Interval: a.Interval, Soak: spec.Duration(remaining),
		FailureLimit: a.FailureLimit, InconclusiveLimit: a.InconclusiveLimit,
	}
	fut := workflow.ExecuteActivity(actx, ActivityWatchStage, in)
	// A pause stops the watch at once.
	workflow.Go(wctx, func(gctx workflow.Context) {
		if workflow.Await(gctx, func() bool { return r.paused }) == nil {
			cancel()
		}
	})
	var res activities.WatchResult
	err := fut.Get(ctx, &res)
	var canceled *temporal.CanceledError
	if errors.As(err, &canceled) && !r.paused && ctx.Err() == nil {
		err = fmt.Errorf("the watch was cancelled: %w", err)
	}
	return res, err
}

// recordWatch logs how a watch ended, with the stage's evidence, and shows its latest measurements.
func (r *release) recordWatch(ctx workflow.Context, res activities.WatchResult) {
	ev := res.Progress.Evidence
	r.status.Latest = append([]record.Measurement(nil), ev.Decisive...)
	// Only the latest maxEvidenceRounds analysis entries keep their evidence, and only the latest keeps
	// the queries (Status.Latest and the spec have them): a release paused and resumed many times keeps
	// a bounded status.
	kept := 0
	for i := len(r.status.Decisions) - 1; i >= 0; i-- {
		if d := &r.status.Decisions[i]; d.Kind == record.KindAnalysis && (d.Evidence != nil || d.Measurements != nil) {
			if kept++; kept >= maxEvidenceRounds {
				d.Evidence, d.Measurements = nil, nil
				continue
			}
			for j := range d.Measurements {
				d.Measurements[j].Query = ""
			}
		}
	}
	d := r.decide(ctx, record.KindAnalysis, "shepherd", "%s", cut(watchSummary(res), maxAnalysisMessage))
	d.Measurements = ev.Decisive // the decisive round, with its queries
	ev.Decisive = nil
	d.Evidence = &ev
	r.publishDetails(ctx)
}

// watchSummary is the decision-log line for a watch that ended: its outcome, then each check's record
// over the watch (values to 4 significant digits; the evidence has them exact).
func watchSummary(res activities.WatchResult) string {
	ev := res.Progress.Evidence
	var b strings.Builder
	if res.Outcome == activities.WatchPassed {
		fmt.Fprintf(&b, "stage %d passed its analysis", ev.Stage)
	} else {
		b.WriteString(res.Reason)
	}
	rounds := "rounds"
	if ev.Rounds == 1 {
		rounds = "round"
	}
	fmt.Fprintf(&b, "; %d %s over %s", ev.Rounds, rounds, human(elapsed(ev.From, ev.To)))
	for i, c := range ev.Checks {
		sep := ", "
		if i == 0 {
			sep = ": "
		}
		fmt.Fprintf(&b, "%s%s %d/%d passed", sep, c.Check, c.Passed, c.Measurements)
		switch {
		case c.Min == nil:
		case *c.Min == *c.Max:
			fmt.Fprintf(&b, " (%.4g)", *c.Last)
		default:
			fmt.Fprintf(&b, " (%.4g to %.4g, last %.4g)", *c.Min, *c.Max, *c.Last)
		}
	}
	return b.String()
}
