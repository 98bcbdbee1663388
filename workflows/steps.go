package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/shepherd-release/shepherd/activities"
)

// Retry policies. Forward steps retry a few times and then roll the release back; health checks poll;
// rollback steps never stop retrying on their own (RollbackStuckAfter bounds the time before a person
// is called, see rollback.go). Exported so plans and runbooks render the facts from the code.
var (
	// permanentStepErrors are the activity error types a retry cannot fix.
	permanentStepErrors = []string{activities.ErrTypePermanent, activities.ErrTypeUnknownTarget, activities.ErrTypeStaleWrite}

	// ForwardRetry is the retry policy of deploy, traffic, promote and flag steps.
	ForwardRetry = &temporal.RetryPolicy{
		InitialInterval:        time.Second,
		BackoffCoefficient:     2,
		MaximumInterval:        30 * time.Second,
		MaximumAttempts:        3,
		NonRetryableErrorTypes: permanentStepErrors,
	}
	// HealthRetry is the retry policy of the health check after deploy.
	HealthRetry = &temporal.RetryPolicy{
		InitialInterval:        time.Second,
		BackoffCoefficient:     1.5,
		MaximumInterval:        10 * time.Second,
		MaximumAttempts:        12,
		NonRetryableErrorTypes: permanentStepErrors,
	}
	// RollbackRetry is the retry policy of rollback steps: capped backoff and no attempt limit. Errors
	// that a retry cannot fix go to RollbackStuck at once instead.
	RollbackRetry = &temporal.RetryPolicy{
		InitialInterval:        time.Second,
		BackoffCoefficient:     2,
		MaximumInterval:        30 * time.Second,
		MaximumAttempts:        0,
		NonRetryableErrorTypes: permanentStepErrors,
	}
)

// heartbeatTimeout lets Temporal notice a dead worker within 10 s. Activities heartbeat every 2 s; the SDK
// sends at most one heartbeat per 0.8 × this timeout, and a cancellation reaches a running step only in a
// heartbeat's answer, so an abort waits at most ~8 s for an in-flight step to stop.
const heartbeatTimeout = 10 * time.Second

// stepTimeout bounds one attempt of a target step: the exec command timeout plus slack, or 5 minutes.
func (r *release) stepTimeout() time.Duration {
	if e := r.spec.Target.Exec; e != nil && e.Timeout > 0 {
		return e.Timeout.D() + 30*time.Second
	}
	return 5 * time.Minute
}

// stepInput builds the input of a target step and gives it the next fencing sequence number. Build it
// when the step is about to run (never ahead of time): a rollback step must carry a number larger than
// every forward step's, so a late forward write is refused by the target.
func (r *release) stepInput(step string, percent int) activities.StepInput {
	r.seq++
	d := r.data(percent)
	d.Step, d.Seq = step, r.seq
	return activities.StepInput{
		ReleaseID: r.status.ReleaseID,
		Step:      step,
		Target:    r.spec.Target,
		Data:      d,
	}
}

// execStep runs one forward target step and waits for it. When ctx is cancelled (abort) while the step
// runs, it returns only once the step has acknowledged the cancellation, so the compensation that
// follows never races the step it undoes.
func (r *release) execStep(ctx workflow.Context, activity, step, summary string, percent int) error {
	retry := ForwardRetry
	if activity == ActivityHealth {
		retry = HealthRetry
	}
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: r.stepTimeout(),
		HeartbeatTimeout:    heartbeatTimeout,
		RetryPolicy:         retry,
		WaitForCancellation: r.safe,
		Summary:             summary,
	})
	var res activities.StepResult
	return workflow.ExecuteActivity(ctx, activity, r.stepInput(step, percent)).Get(ctx, &res)
}
