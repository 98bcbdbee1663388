package workflows

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/shepherd-release/shepherd/record"
)

// RollbackStuckAfter is how long one rollback step may keep failing (retrying with capped backoff)
// before the release enters RollbackStuck and calls for a person. A step that fails with an error a
// retry cannot fix gets there at once.
const RollbackStuckAfter = 5 * time.Minute

// legacyRollbackRetry is the rollback policy of releases started before changeSafeBoundaries: they gave
// up after ten attempts, and keep doing so on replay.
var legacyRollbackRetry = &temporal.RetryPolicy{
	InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 20 * time.Second, MaximumAttempts: 10,
	NonRetryableErrorTypes: []string{"UnknownTarget"},
}

// compensation undoes one forward step. Its input is built when it runs, so it gets a fresh fencing
// sequence number (larger than every forward step's).
type compensation struct {
	name     string
	activity string
	input    func() any
	// restoresTraffic marks the step that puts all traffic back on stable.
	restoresTraffic bool
}

// saga is the stack of compensations registered by forward steps.
type saga struct{ stack []compensation }

func (s *saga) push(c compensation) { s.stack = append(s.stack, c) }

func (s *saga) has(name string) bool {
	for _, c := range s.stack {
		if c.name == name {
			return true
		}
	}
	return false
}

// clear drops every compensation: after promotion there is nothing to undo.
func (s *saga) clear() { s.stack = nil }

// errRollbackAcknowledged ends a stuck rollback that a person finished (or took over) by hand.
type errRollbackAcknowledged struct {
	by, reason string
	// failure is the step and error the rollback was stuck on.
	failure string
}

func (e errRollbackAcknowledged) Error() string { return e.failure + "; " + e.describe() }

func (e errRollbackAcknowledged) describe() string {
	return fmt.Sprintf("acknowledged by %s: %s", e.by, e.reason)
}

// rollback runs the compensations in reverse order on a context that the workflow's cancellation cannot
// reach, so a cancelled release is still rolled back. Traffic goes back to stable first, and a step runs
// only after every step before it succeeded: the canary is never removed while it may still take traffic.
// A step that keeps failing parks the release in RollbackStuck until a person sends retry (run it again)
// or acknowledge (they finished by hand; the release ends Failed).
func (r *release) rollback(ctx workflow.Context, reason string) error {
	decidedAt := workflow.Now(ctx)
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	r.paused = false
	if r.status.Stage != nil {
		i := r.status.Stage.Number - 1
		r.status.Stages[i].FinishedAt = decidedAt
		r.status.Stages[i].Outcome = "rolled back"
	}
	r.setPhase(dctx, record.PhaseRollingBack, "rolling back: %s", reason)
	var errs []error
	for len(r.saga.stack) > 0 {
		c := r.saga.stack[len(r.saga.stack)-1]
		err := r.compensate(dctx, c)
		if err == nil || !r.safe {
			r.saga.stack = r.saga.stack[:len(r.saga.stack)-1]
		}
		if err != nil {
			r.decide(dctx, record.KindRollback, "", "rollback step %q FAILED: %s", c.name, describeError(err))
			if !r.safe {
				errs = append(errs, fmt.Errorf("%s: %s", c.name, describeError(err)))
				continue
			}
			if err := r.awaitRollbackHelp(dctx, c, err); err != nil {
				r.status.RollbackDuration = elapsed(decidedAt, workflow.Now(dctx))
				return err
			}
			continue
		}
		if c.restoresTraffic {
			r.status.TrafficPercent = 0
			r.status.TrafficRestoredAfter = elapsed(decidedAt, workflow.Now(dctx))
			r.publish(dctx)
		}
		r.decide(dctx, record.KindRollback, "", "rollback step %q done", c.name)
	}
	r.status.RollbackDuration = elapsed(decidedAt, workflow.Now(dctx))
	return errors.Join(errs...)
}

// compensate runs one rollback step with its retries: unbounded attempts within rollbackStuckAfter.
func (r *release) compensate(ctx workflow.Context, c compensation) error {
	opts := workflow.ActivityOptions{
		StartToCloseTimeout: r.stepTimeout(),
		HeartbeatTimeout:    heartbeatTimeout,
		RetryPolicy:         legacyRollbackRetry,
		Summary:             "Rollback: " + c.name,
	}
	if r.safe {
		opts.RetryPolicy = RollbackRetry
		opts.ScheduleToCloseTimeout = r.rollbackStuckAfter()
	}
	actx := workflow.WithActivityOptions(ctx, opts)
	return workflow.ExecuteActivity(actx, c.activity, c.input()).Get(actx, nil)
}

// rollbackStuckAfter is RollbackStuckAfter, or longer when one attempt of a step may take longer.
func (r *release) rollbackStuckAfter() time.Duration {
	return max(RollbackStuckAfter, 2*r.stepTimeout())
}

// awaitRollbackHelp parks the release in RollbackStuck, alerts, and waits for retry (nil: run the step
// again) or acknowledge (errRollbackAcknowledged). Cancelling the workflow does not end the wait: the
// service is half rolled back, and the open workflow is what keeps a new release of it from starting.
func (r *release) awaitRollbackHelp(ctx workflow.Context, c compensation, cause error) error {
	failure := fmt.Sprintf("rollback step %q failed: %s", c.name, describeError(cause))
	r.stuckReq, r.stuckCtl = nil, ""
	r.setPhase(ctx, record.PhaseRollbackStuck, "%s; nothing after it runs until a person acts: fix the cause and "+
		"send retry, or finish the rollback by hand and send acknowledge with a reason (docs/runbooks.md)", failure)
	r.notify(ctx, eventRollbackStuck, failure, nil)
	_ = workflow.Await(ctx, func() bool { return r.stuckReq != nil })
	req, ctl := *r.stuckReq, r.stuckCtl
	r.stuckReq, r.stuckCtl = nil, ""
	if ctl == Acknowledge {
		return errRollbackAcknowledged{by: req.By, reason: req.Reason, failure: failure}
	}
	r.setPhase(ctx, record.PhaseRollingBack, "retrying rollback step %q, as %s asked", c.name, req.By)
	return nil
}
