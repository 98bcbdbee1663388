package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/shepherd-release/shepherd/activities"
)

// Retry policies. Forward steps retry a few times and then roll the release back; health checks poll;
// rollback steps retry much longer, because giving up on a rollback leaves production half-changed.
var (
	// permanentStepErrors are the activity error types a retry cannot fix.
	permanentStepErrors = []string{activities.ErrTypePermanent, activities.ErrTypeUnknownTarget}

	forwardRetry = &temporal.RetryPolicy{
		InitialInterval:        time.Second,
		BackoffCoefficient:     2,
		MaximumInterval:        30 * time.Second,
		MaximumAttempts:        3,
		NonRetryableErrorTypes: permanentStepErrors,
	}
	healthRetry = &temporal.RetryPolicy{
		InitialInterval:        time.Second,
		BackoffCoefficient:     1.5,
		MaximumInterval:        10 * time.Second,
		MaximumAttempts:        12,
		NonRetryableErrorTypes: permanentStepErrors,
	}
	rollbackRetry = &temporal.RetryPolicy{
		InitialInterval:        time.Second,
		BackoffCoefficient:     2,
		MaximumInterval:        20 * time.Second,
		MaximumAttempts:        10,
		NonRetryableErrorTypes: []string{activities.ErrTypeUnknownTarget},
	}
)

// heartbeatTimeout lets Temporal notice a dead worker quickly; activities heartbeat every 5 s.
const heartbeatTimeout = 20 * time.Second

// stepTimeout bounds one attempt of a target step: the exec command timeout plus slack, or 5 minutes.
func (r *release) stepTimeout() time.Duration {
	if e := r.spec.Target.Exec; e != nil && e.Timeout > 0 {
		return e.Timeout.D() + 30*time.Second
	}
	return 5 * time.Minute
}

// stepInput builds the input of a target step; step is unique within the release (the idempotency key).
func (r *release) stepInput(step string, percent int) activities.StepInput {
	return activities.StepInput{
		ReleaseID: r.status.ReleaseID,
		Step:      step,
		Target:    r.spec.Target,
		Data:      r.data(percent),
	}
}

// execStep runs one forward target step and waits for it.
func (r *release) execStep(ctx workflow.Context, activity, step, summary string, percent int) error {
	retry := forwardRetry
	if activity == ActivityHealth {
		retry = healthRetry
	}
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: r.stepTimeout(),
		HeartbeatTimeout:    heartbeatTimeout,
		RetryPolicy:         retry,
		Summary:             summary,
	})
	var res activities.StepResult
	return workflow.ExecuteActivity(ctx, activity, r.stepInput(step, percent)).Get(ctx, &res)
}
