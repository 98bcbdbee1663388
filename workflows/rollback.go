package workflows

import (
	"errors"
	"fmt"

	"go.temporal.io/sdk/workflow"

	"github.com/shepherd-release/shepherd/record"
)

// compensation undoes one forward step.
type compensation struct {
	name     string
	activity string
	input    any
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

// rollback runs the compensations in reverse order on a context that the workflow's cancellation cannot
// reach, so a cancelled release is still rolled back. Traffic goes back to stable first. It returns the
// joined errors of compensations that failed after their retries.
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
	for i := len(r.saga.stack) - 1; i >= 0; i-- {
		c := r.saga.stack[i]
		actx := workflow.WithActivityOptions(dctx, workflow.ActivityOptions{
			StartToCloseTimeout: r.stepTimeout(),
			HeartbeatTimeout:    heartbeatTimeout,
			RetryPolicy:         rollbackRetry,
			Summary:             "Rollback: " + c.name,
		})
		err := workflow.ExecuteActivity(actx, c.activity, c.input).Get(actx, nil)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %s", c.name, describeError(err)))
			r.decide(dctx, record.KindRollback, "", "rollback step %q FAILED after retries: %s", c.name, describeError(err))
			continue
		}
		if c.restoresTraffic {
			r.status.TrafficPercent = 0
			r.status.TrafficRestoredAfter = elapsed(decidedAt, workflow.Now(dctx))
			r.publish(dctx)
		}
		r.decide(dctx, record.KindRollback, "", "rollback step %q done", c.name)
	}
	r.saga.clear()
	r.status.RollbackDuration = elapsed(decidedAt, workflow.Now(dctx))
	return errors.Join(errs...)
}
