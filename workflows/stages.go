package workflows

import (
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/shepherd-release/shepherd/activities"
	"github.com/shepherd-release/shepherd/record"
	"github.com/shepherd-release/shepherd/spec"
)

// runStage runs stage i: approval gate, traffic shift, soak with analysis.
func (r *release) runStage(ctx workflow.Context, i int) error {
	st := r.spec.Stages[i]
	r.status.Stage = &record.StageStatus{
		Number: i + 1, Of: len(r.spec.Stages), Percent: st.Percent,
		SoakRemaining: st.Soak.D(), ApprovalRequired: st.Approval,
	}
	r.status.Stages[i].StartedAt = workflow.Now(ctx)
	if st.Approval {
		if err := r.awaitApproval(ctx, st); err != nil {
			return err
		}
	}
	if err := r.holdIfPaused(ctx); err != nil {
		return err
	}
	if err := r.holdForFreeze(ctx, fmt.Sprintf("freeze:stage:%d", i+1), fmt.Sprintf("the shift to stage %d (%d%%)", i+1, st.Percent)); err != nil {
		return err
	}
	r.setPhase(ctx, record.PhaseProgressing, "stage %d of %d: shifting %d%% of traffic to %s",
		i+1, len(r.spec.Stages), st.Percent, r.spec.Version)
	if err := r.setTraffic(ctx, st.Percent); err != nil {
		return err
	}
	if r.spec.Flags != nil {
		if err := r.setFlags(ctx, r.flagPercent(i), fmt.Sprintf("stage %d", i+1)); err != nil {
			return err
		}
	}
	r.notify(ctx, eventStageEntered, fmt.Sprintf("stage %d of %d: %d%% of traffic", i+1, len(r.spec.Stages), st.Percent), nil)
	soak := r.soak
	if r.watch && !r.spec.Analysis.Disabled {
		soak = r.soakWatched
	}
	if err := soak(ctx, st); err != nil {
		return err
	}
	r.status.Stages[i].FinishedAt = workflow.Now(ctx)
	r.status.Stages[i].Outcome = "passed"
	r.decide(ctx, record.KindTransition, "", "stage %d of %d (%d%%) passed", i+1, len(r.spec.Stages), st.Percent)
	return nil
}

// setTraffic shifts traffic; before the first shift it registers the compensation that sends all traffic
// back to stable, so a shift aborted half-way is undone too.
func (r *release) setTraffic(ctx workflow.Context, percent int) error {
	if !r.saga.has("traffic to stable") {
		r.saga.push(compensation{name: "traffic to stable", activity: ActivitySetTraffic,
			input: func() any { return r.stepInput("rollback-traffic", 0) }, restoresTraffic: true})
	}
	r.shiftingTo = percent
	err := r.execStep(ctx, ActivitySetTraffic, "traffic", fmt.Sprintf("Traffic: %d%% to %s", percent, r.spec.Version), percent)
	r.shiftingTo = -1
	if err != nil {
		return err
	}
	r.status.TrafficPercent = percent
	r.decide(ctx, record.KindStep, "", "traffic on %s is %d%%", r.spec.Version, percent)
	r.publish(ctx)
	return nil
}

// awaitApproval waits at a stage's gate for an approve, an abort, or the gate's timeout.
func (r *release) awaitApproval(ctx workflow.Context, st spec.Stage) error {
	n := r.status.Stage.Number
	r.openGate(fmt.Sprintf("stage:%d", n), st.ApprovalRoles, st.Approvers)
	defer func() { r.gate, r.status.Gate = nil, "" }()
	r.setPhase(ctx, record.PhaseAwaitingApproval, "stage %d of %d (%d%%) waits for approval", n, len(r.spec.Stages), st.Percent)
	r.notify(ctx, eventApprovalNeeded, fmt.Sprintf("stage %d of %d (%d%%) waits for approval", n, len(r.spec.Stages), st.Percent), nil)
	waitStart := workflow.Now(ctx)
	got := func() bool { return r.gate.done() }
	if st.ApprovalTimeout > 0 {
		ok, err := workflow.AwaitWithOptions(ctx, workflow.AwaitOptions{
			Timeout:      st.ApprovalTimeout.D(),
			TimerOptions: workflow.TimerOptions{Summary: fmt.Sprintf("Approval timeout for stage %d (%s)", n, st.ApprovalTimeout)},
		}, got)
		if err != nil {
			return err
		}
		if !ok {
			if st.OnApprovalTimeout == spec.OnTimeoutProceed {
				r.decide(ctx, record.KindApproval, "shepherd", "no approval for stage %d within %s; proceeding as configured (onApprovalTimeout: proceed)", n, st.ApprovalTimeout)
				r.status.Stage.Approved = true
				r.status.Stage.ApprovedBy = "timeout"
				return nil
			}
			return errApprovalTimedOut{reason: fmt.Sprintf("no approval for stage %d within %s (onApprovalTimeout: abort)", n, st.ApprovalTimeout)}
		}
	} else if err := workflow.Await(ctx, got); err != nil {
		return err
	}
	g := r.gate
	r.status.Stage.Approved = true
	d := r.decide(ctx, record.KindApproval, strings.Join(g.principals(), ", "), "stage %d approved by %s after %s", n, g.who(), human(elapsed(waitStart, workflow.Now(ctx))))
	d.Comment = g.comments()
	return nil
}

// soak holds the stage for its soak time on durable timers, measuring every analysis interval (the
// Measure rounds of releases started before changeWatchAnalysis; with analysis disabled, one timer). It returns
// nil when the stage passed; errAnalysisFailed, or the context's error on abort or cancellation, otherwise.
// A pause freezes the soak clock; a stage never passes unless its last measurement passed.
func (r *release) soak(ctx workflow.Context, st spec.Stage) error {
	stage := r.status.Stage
	remaining := st.Soak.D()
	interval := r.spec.Analysis.Interval.D()
	lastPassed := r.spec.Analysis.Disabled
	r.checks.Reset()
	stage.SoakStartedAt = workflow.Now(ctx)
	// A pause accepted at any instant, even during the last measurement, holds the stage: it never
	// passes while paused.
	for remaining > 0 || !lastPassed || (r.safe && r.paused) {
		if r.paused {
			if err := r.holdWhilePaused(ctx); err != nil {
				return err
			}
			if remaining <= 0 {
				remaining = min(interval, st.Soak.D()) // measure afresh before the stage may pass
			}
			continue
		}
		if remaining <= 0 {
			r.autoPause(ctx, "soak of stage %d ended without a passing measurement of every check; never promoting on missing or failing data", stage.Number)
			continue
		}
		wait := remaining
		if !r.spec.Analysis.Disabled {
			wait = min(interval, remaining)
		}
		stage.SoakRemaining = remaining
		stage.SoakEndsAt = workflow.Now(ctx).Add(remaining)
		r.publishDetails(ctx)
		start := workflow.Now(ctx)
		interrupted, err := workflow.AwaitWithOptions(ctx, workflow.AwaitOptions{
			Timeout:      wait,
			TimerOptions: workflow.TimerOptions{Summary: r.soakTimerSummary(st, remaining, wait)},
		}, func() bool { return r.paused })
		if err != nil {
			return err
		}
		remaining -= elapsed(start, workflow.Now(ctx))
		stage.SoakRemaining = max(remaining, 0)
		if interrupted || r.spec.Analysis.Disabled {
			continue
		}
		verdict, reason, err := r.analyse(ctx)
		if err != nil {
			return err
		}
		switch verdict {
		case record.Fail:
			return errAnalysisFailed{reason: reason}
		case record.Inconclusive:
			r.autoPause(ctx, "%s", reason)
			lastPassed = false
		case record.Pass:
			lastPassed = true
		default: // below a limit: keep soaking, but this measurement did not pass
			lastPassed = false
		}
	}
	stage.SoakEndsAt = time.Time{}
	stage.SoakRemaining = 0
	return nil
}

func (r *release) soakTimerSummary(st spec.Stage, remaining, wait time.Duration) string {
	if r.spec.Analysis.Disabled {
		return fmt.Sprintf("Soak %d%% for %s", st.Percent, human(remaining))
	}
	return fmt.Sprintf("Soak %d%%: next analysis in %s (%s left)", st.Percent, human(wait), human(remaining))
}

// holdIfPaused holds the release while it is paused: the gate before every point where the release moves
// on (a traffic shift, a stage passing, promotion).
func (r *release) holdIfPaused(ctx workflow.Context) error {
	if !r.safe || !r.paused {
		return nil
	}
	return r.holdWhilePaused(ctx)
}

// holdWhilePaused parks the release in Paused until resumed (or aborted, which cancels ctx).
func (r *release) holdWhilePaused(ctx workflow.Context) error {
	r.status.Stage.SoakEndsAt = time.Time{}
	if r.status.Phase != record.PhasePaused {
		r.setPhase(ctx, record.PhasePaused, "paused: %s", r.pauseCause)
	}
	if err := workflow.Await(ctx, func() bool { return !r.paused }); err != nil {
		return err
	}
	r.checks.Reset()
	r.setPhase(ctx, record.PhaseProgressing, "resumed stage %d with %s of soak left", r.status.Stage.Number, human(r.status.Stage.SoakRemaining))
	return nil
}

// autoPause pauses the release on Shepherd's own initiative (inconclusive data).
func (r *release) autoPause(ctx workflow.Context, format string, args ...any) {
	r.paused = true
	r.pauseCause = fmt.Sprintf(format, args...)
	r.decide(ctx, record.KindAnalysis, "shepherd", "pausing for a human: %s", r.pauseCause)
}

// analyse takes one measurement of every check and judges it. It returns "" as the verdict while
// failures or inconclusive results are still below their limits.
func (r *release) analyse(ctx workflow.Context) (record.Verdict, string, error) {
	a := r.spec.Analysis
	perQuery := 10 * time.Second
	if r.metricsTimeout > 0 {
		perQuery = r.metricsTimeout
	}
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		// Two queries per check at most (canary and baseline), each with its own timeout and retries.
		StartToCloseTimeout: time.Duration(2*len(a.Checks))*3*perQuery + 10*time.Second,
		HeartbeatTimeout:    3*perQuery + 10*time.Second,
		// A failed measurement is an inconclusive one; the next interval measures again.
		RetryPolicy: &temporal.RetryPolicy{MaximumAttempts: 1},
		Summary:     fmt.Sprintf("Measure %d checks at %d%%", len(a.Checks), r.status.TrafficPercent),
	})
	in := activities.MeasureInput{
		ReleaseID: r.status.ReleaseID, Stage: r.status.Stage.Number,
		Source: a.Source, Checks: a.Checks, Data: r.data(r.status.TrafficPercent),
	}
	var res activities.MeasureResult
	if err := workflow.ExecuteActivity(actx, ActivityMeasure, in).Get(actx, &res); err != nil {
		if ctx.Err() != nil {
			return "", "", ctx.Err()
		}
		res.Measurements = unavailable(a.Checks, r.status.Stage.Number, workflow.Now(ctx), describeError(err))
	}
	for i := range res.Measurements {
		if m := &res.Measurements[i]; m.Verdict == "" { // judged by the workflow before verdicts were recorded
			m.Verdict, m.Reason = record.Assess(*m)
		}
	}
	r.status.Latest = res.Measurements
	overall, reason := r.checks.Observe(res.Measurements)
	r.recordAnalysis(ctx, overall, reason, res.Measurements)
	r.publishDetails(ctx)
	return overall, reason, nil
}

// maxEvidenceRounds is how many of the latest analysis entries keep their measurements in the decision
// log; older entries keep their one-line summary (and Status.Latest always has the newest values).
const maxEvidenceRounds = 20

// maxAnalysisMessage bounds one analysis entry's summary line, in bytes.
const maxAnalysisMessage = 512

// recordAnalysis logs one analysis round. A round with the same outcome as the entry before it (same
// overall verdict, same verdict per check, same stage) is folded into that entry, so a long soak costs
// one entry per change of course instead of one per round; the status stays small for any release.
func (r *release) recordAnalysis(ctx workflow.Context, overall record.Verdict, reason string, ms []record.Measurement) {
	msg := cut(summarize(overall, reason, ms), maxAnalysisMessage)
	if n := len(r.status.Decisions); n > 0 {
		last := &r.status.Decisions[n-1]
		if last.Kind == record.KindAnalysis && last.Stage == r.status.Stage.Number && last.Phase == r.status.Phase &&
			sameOutcome(last.Measurements, ms) && overall != record.Fail && overall != record.Inconclusive {
			if last.Rounds < 2 {
				last.Since, last.Rounds = last.Time, 1
			}
			last.Rounds++
			last.Time, last.Message, last.Measurements = workflow.Now(ctx), msg, ms
			return
		}
	}
	// Older entries keep their evidence without the queries (Status.Latest and the spec have them), and
	// only the latest maxEvidenceRounds entries keep evidence at all.
	kept := 0
	for i := len(r.status.Decisions) - 1; i >= 0; i-- {
		if d := &r.status.Decisions[i]; d.Kind == record.KindAnalysis && d.Measurements != nil {
			if kept++; kept >= maxEvidenceRounds {
				d.Measurements = nil
				continue
			}
			for j := range d.Measurements {
				d.Measurements[j].Query = ""
			}
		}
	}
	d := r.decide(ctx, record.KindAnalysis, "shepherd", "%s", msg)
	d.Measurements = ms
}

// sameOutcome reports whether two rounds gave every check the same verdict.
func sameOutcome(a, b []record.Measurement) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Check != b[i].Check || a[i].Verdict != b[i].Verdict {
			return false
		}
	}
	return true
}
