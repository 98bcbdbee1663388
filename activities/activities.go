// Package activities holds Shepherd's Temporal activities: thin methods that call injected providers
// (deploy target, metrics) and add what Temporal needs around them: the fencing token on every target
// step, heartbeats while a provider works, and typed non-retryable errors. Activities keep no state
// between attempts: a retry may run on another worker (docs/targets.md).
package activities

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/shepherd-release/shepherd/approvals"
	"github.com/shepherd-release/shepherd/spec"
)

// Non-retryable error types. Workflows and clients match on these strings.
const (
	// ErrTypeUnknownTarget: the spec names a target type this worker has no provider for.
	ErrTypeUnknownTarget = "UnknownTarget"
	// ErrTypePermanent: the provider said retrying cannot help (bad request, bad template, conflict).
	ErrTypePermanent = "PermanentStepFailure"
	// ErrTypeStaleWrite: the target refused the step because it has applied a newer step of the same
	// release (a late write from a cancelled or partitioned attempt). Never retried.
	ErrTypeStaleWrite = "StaleWrite"
)

// ErrPermanent marks a provider error that retrying cannot fix. Providers wrap it (fmt.Errorf("...: %w",
// ErrPermanent)) or return an error whose chain contains it; the activity then fails non-retryably.
var ErrPermanent = errors.New("permanent failure")

// ErrStaleWrite is what a target returns (wrapped) when it refuses a step whose fencing token
// (TemplateData.ReleaseID + Seq) is older than the newest it has applied for that release.
var ErrStaleWrite = errors.New("stale write refused: a newer step of this release was applied")

// HeartbeatInterval is how often a running step heartbeats; workflows set HeartbeatTimeout above it.
const HeartbeatInterval = 2 * time.Second

// Activities are the release activities. Register the struct's methods with the worker under the names
// in workflows/names.go.
type Activities struct {
	// Targets maps a spec target type ("exec", "local") to its provider.
	Targets map[string]Target
	// Metrics builds the metrics provider for a spec's Prometheus settings.
	Metrics MetricsFactory
	// IsPermanent reports provider errors that must not be retried, beyond those wrapping ErrPermanent.
	IsPermanent func(error) bool
	// ReportDir is where release reports and post-mortem records are archived.
	ReportDir string
	// Observer, when set, receives release events for engine metrics.
	Observer Observer
	// Approvals is the operators' approval policy (trust anchors, where unsigned approvals are accepted).
	// Nil accepts unsigned approvals everywhere, recorded as unverified: the worker always sets it.
	Approvals *approvals.Policy

	observed onceSet
}

// StepInput identifies one side effect on the target.
type StepInput struct {
	// ReleaseID is unique per release (workflow ID / run ID).
	ReleaseID string `json:"releaseID"`
	// Step names the side effect within the release, e.g. "deploy" or "traffic" (as Data.Step; Data.Seq
	// is its fencing sequence number).
	Step   string            `json:"step"`
	Target spec.Target       `json:"target"`
	Data   spec.TemplateData `json:"data"`
}

// StepResult says what the step did.
type StepResult struct {
	// Took is how long the provider ran.
	Took time.Duration `json:"took"`
}

// Deploy starts the new version beside the stable one at 0 % traffic.
func (a *Activities) Deploy(ctx context.Context, in StepInput) (StepResult, error) {
	return a.step(ctx, in, "deploy", Target.Deploy)
}

// HealthCheck checks the new version's health. It has no side effect and is asked afresh on every retry.
func (a *Activities) HealthCheck(ctx context.Context, in StepInput) (StepResult, error) {
	t, err := a.target(in.Target.Type)
	if err != nil {
		return StepResult{}, err
	}
	start := time.Now()
	err = withHeartbeat(ctx, func(ctx context.Context) error { return t.Health(ctx, in.Target, in.Data) })
	return StepResult{Took: time.Since(start)}, a.classify("health check", in, err)
}

// SetTraffic sends Data.Percent % of traffic to the new version.
func (a *Activities) SetTraffic(ctx context.Context, in StepInput) (StepResult, error) {
	return a.step(ctx, in, fmt.Sprintf("traffic to %d%%", in.Data.Percent), Target.SetTraffic)
}

// Promote makes the new version stable.
func (a *Activities) Promote(ctx context.Context, in StepInput) (StepResult, error) {
	return a.step(ctx, in, "promote", Target.Promote)
}

// RemoveCanary runs the target's rollback: it removes the new version (traffic is already at 0 %).
func (a *Activities) RemoveCanary(ctx context.Context, in StepInput) (StepResult, error) {
	return a.step(ctx, in, "rollback", Target.Rollback)
}

type targetFunc func(Target, context.Context, spec.Target, spec.TemplateData) error

// step runs one side effect through the target. It keeps no record of its own: targets are idempotent
// per step and refuse stale writes by the fencing token in.Data (ReleaseID + Seq), which holds however
// many workers share the task queue and wherever a retry lands.
func (a *Activities) step(ctx context.Context, in StepInput, what string, fn targetFunc) (StepResult, error) {
	t, err := a.target(in.Target.Type)
	if err != nil {
		return StepResult{}, err
	}
	start := time.Now()
	err = withHeartbeat(ctx, func(ctx context.Context) error { return fn(t, ctx, in.Target, in.Data) })
	took := time.Since(start)
	if err != nil {
		return StepResult{Took: took}, a.classify(what, in, err)
	}
	activity.GetLogger(ctx).Info("Step done", "releaseID", in.ReleaseID, "step", in.Step, "seq", in.Data.Seq, "took", took)
	return StepResult{Took: took}, nil
}

func (a *Activities) target(typ string) (Target, error) {
	t, ok := a.Targets[typ]
	if !ok {
		return nil, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("this worker has no %q target; start the worker with it enabled or fix target.type", typ),
			ErrTypeUnknownTarget, nil)
	}
	return t, nil
}

// classify wraps a provider error with what failed and where, typed non-retryable when retrying cannot help.
func (a *Activities) classify(what string, in StepInput, err error) error {
	if err == nil {
		return nil
	}
	msg := fmt.Sprintf("%s of %s %s in %s failed: %v", what, in.Data.Service, in.Data.Version, in.Data.Environment, err)
	if errors.Is(err, ErrStaleWrite) {
		return temporal.NewNonRetryableApplicationError(msg, ErrTypeStaleWrite, err)
	}
	if errors.Is(err, ErrPermanent) || (a.IsPermanent != nil && a.IsPermanent(err)) {
		return temporal.NewNonRetryableApplicationError(msg, ErrTypePermanent, err)
	}
	return errors.New(msg)
}

// withHeartbeat runs fn while heartbeating every HeartbeatInterval, so Temporal notices a dead worker
// within the heartbeat timeout and a cancelled activity stops fn through its context.
func withHeartbeat(ctx context.Context, fn func(context.Context) error) error {
	if !activity.IsActivity(ctx) {
		return fn(ctx)
	}
	done := make(chan struct{})
	defer close(done)
	go func() {
		tick := time.NewTicker(HeartbeatInterval)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				activity.RecordHeartbeat(ctx)
			}
		}
	}()
	return fn(ctx)
}

// Preflighter is implemented by targets that can check, before anything changes, that a release can run:
// templates render, directories exist, the controller answers.
type Preflighter interface {
	Preflight(ctx context.Context, cfg spec.Target, data spec.TemplateData) error
}

// Preflight checks the target without changing anything. Targets without a preflight pass.
func (a *Activities) Preflight(ctx context.Context, in StepInput) (StepResult, error) {
	t, err := a.target(in.Target.Type)
	if err != nil {
		return StepResult{}, err
	}
	start := time.Now()
	if p, ok := t.(Preflighter); ok {
		err = withHeartbeat(ctx, func(ctx context.Context) error { return p.Preflight(ctx, in.Target, in.Data) })
		if err != nil {
			return StepResult{Took: time.Since(start)}, a.classify("preflight", in, err)
		}
	}
	if a.Observer != nil {
		a.once(in.ReleaseID+"/observed-start", func() { a.Observer.ReleaseStarted(in.Data.Service, in.Data.Environment) })
	}
	return StepResult{Took: time.Since(start)}, nil
}
