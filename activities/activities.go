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
	"github.com/shepherd-release/shepherd/providers"
	"github.com/shepherd-release/shepherd/providers/notify"
	"github.com/shepherd-release/shepherd/spec"
)

// Non-retryable error types. Workflows and clients match on these strings.
const (
	// ErrTypeUnknownTarget: a step names a target this worker's configuration does not declare (the
	// preflight catches it first, as InvalidSpec; a step sees it only when the configuration changed
	// under a running release).
	ErrTypeUnknownTarget = "UnknownTarget"
	// ErrTypeInvalidSpec: the spec names providers this worker's configuration does not declare; the
	// release is rejected before anything changes. Same string as workflows.ErrTypeInvalidSpec.
	ErrTypeInvalidSpec = "InvalidSpec"
	// ErrTypePermanent: the provider said retrying cannot help (bad request, bad template, conflict).
	ErrTypePermanent = "PermanentStepFailure"
	// ErrTypeStaleWrite: the target refused the step because it has applied a newer step of the same
	// release (a late write from a cancelled or partitioned attempt). Never retried.
	ErrTypeStaleWrite = "StaleWrite"
)

// ErrPermanent is providers.ErrPermanent, kept here for callers of this package.
var ErrPermanent = providers.ErrPermanent

// ErrStaleWrite is providers.ErrStaleWrite, kept here for callers of this package.
var ErrStaleWrite = providers.ErrStaleWrite

// HeartbeatInterval is how often a running step heartbeats; workflows set HeartbeatTimeout above it.
const HeartbeatInterval = 2 * time.Second

// Activities are the release activities. Register the struct's methods with the worker under the names
// in workflows/names.go.
type Activities struct {
	// Targets are the deploy targets by the names the worker configuration gives them.
	Targets providers.Registry[providers.Target]
	// Metrics are the metrics sources by name.
	Metrics providers.Registry[providers.Metrics]
	// Prechecks are the configured pre-release checks (HTTP, exec) by name.
	Prechecks providers.Registry[providers.Checker]
	// Flags are the flag providers by name.
	Flags providers.Registry[providers.Flags]
	// Notifications are the notification channels by name.
	Notifications providers.Registry[*notify.Channel]
	// Repositories are the git repositories by name.
	Repositories providers.Registry[providers.Tagger]
	// IsPermanent reports provider errors that must not be retried, beyond those wrapping ErrPermanent.
	IsPermanent func(error) bool
	// ReportDir is where release reports and post-mortem records are archived.
	ReportDir string
	// Observer, when set, receives release events for engine metrics.
	Observer Observer
	// Approvals is the operators' approval policy (trust anchors, where unsigned approvals are accepted).
	// Nil accepts unsigned approvals everywhere, recorded as unverified: the worker always sets it.
	Approvals *approvals.Policy
	// Clock is the time source of WatchStage; nil means the wall clock.
	Clock Clock

	observed onceSet
}

// StepInput identifies one side effect on the target.
type StepInput struct {
	// ReleaseID is unique per release (workflow ID / run ID).
	ReleaseID string `json:"releaseID"`
	// Step names the side effect within the release, e.g. "deploy" or "traffic" (as Data.Step; Data.Seq
	// is its fencing sequence number).
	Step string `json:"step"`
	// Target names the target, one of the worker configuration's targets.
	Target string            `json:"target"`
	Data   spec.TemplateData `json:"data"`
}

// StepResult says what the step did.
type StepResult struct {
	// Took is how long the provider ran.
	Took time.Duration `json:"took"`
}

// Deploy starts the new version beside the stable one at 0 % traffic.
func (a *Activities) Deploy(ctx context.Context, in StepInput) (StepResult, error) {
	return a.step(ctx, in, "deploy", providers.Target.Deploy)
}

// HealthCheck checks the new version's health. It has no side effect and is asked afresh on every retry.
func (a *Activities) HealthCheck(ctx context.Context, in StepInput) (StepResult, error) {
	t, err := a.target(in.Target)
	if err != nil {
		return StepResult{}, err
	}
	start := time.Now()
	err = withHeartbeat(ctx, func(ctx context.Context) error { return t.Health(ctx, in.Data) })
	return StepResult{Took: time.Since(start)}, a.classify("health check", in, err)
}

// SetTraffic sends Data.Percent % of traffic to the new version.
func (a *Activities) SetTraffic(ctx context.Context, in StepInput) (StepResult, error) {
	return a.step(ctx, in, fmt.Sprintf("traffic to %d%%", in.Data.Percent), providers.Target.SetTraffic)
}

// Promote makes the new version stable.
func (a *Activities) Promote(ctx context.Context, in StepInput) (StepResult, error) {
	return a.step(ctx, in, "promote", providers.Target.Promote)
}

// RemoveCanary runs the target's rollback: it removes the new version (traffic is already at 0 %).
func (a *Activities) RemoveCanary(ctx context.Context, in StepInput) (StepResult, error) {
	return a.step(ctx, in, "rollback", providers.Target.Rollback)
}

type targetFunc func(providers.Target, context.Context, spec.TemplateData) error

// step runs one side effect through the target. It keeps no record of its own: targets are idempotent
// per step and refuse stale writes by the fencing token in.Data (ReleaseID + Seq), which holds however
// many workers share the task queue and wherever a retry lands.
func (a *Activities) step(ctx context.Context, in StepInput, what string, fn targetFunc) (StepResult, error) {
	t, err := a.target(in.Target)
	if err != nil {
		return StepResult{}, err
	}
	start := time.Now()
	err = withHeartbeat(ctx, func(ctx context.Context) error { return fn(t, ctx, in.Data) })
	took := time.Since(start)
	if err != nil {
		return StepResult{Took: took}, a.classify(what, in, err)
	}
	activity.GetLogger(ctx).Info("Step done", "releaseID", in.ReleaseID, "step", in.Step, "seq", in.Data.Seq, "took", took)
	return StepResult{Took: took}, nil
}

func (a *Activities) target(name string) (providers.Target, error) {
	t, err := a.Targets.Lookup(spec.KindTarget, name)
	if err != nil {
		return nil, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeUnknownTarget, nil)
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

// PreflightInput asks whether this worker can run a release: the target step input, and every provider
// the spec names. Its JSON is a superset of StepInput's, which older releases sent.
type PreflightInput struct {
	StepInput
	// Uses are the providers the spec names (spec.Release.Uses).
	Uses []spec.Use `json:"uses,omitempty"`
}

// PreflightResult carries what the workflow needs to know about the providers it was given, since
// workflow code cannot read the worker configuration. Its JSON is a superset of StepResult's.
type PreflightResult struct {
	// Took is how long the preflight ran.
	Took time.Duration `json:"took"`
	// StepTimeout is the target's bound on one step attempt (0: the target has none of its own).
	StepTimeout time.Duration `json:"stepTimeout,omitempty"`
	// MetricsTimeout is the metrics source's bound on one query (0: none of its own).
	MetricsTimeout time.Duration `json:"metricsTimeout,omitempty"`
}

// Preflight checks, without changing anything, that this worker has every provider the spec names and
// that the target can run the release. A name the worker lacks rejects the release as InvalidSpec, with
// every such name and what the worker has instead.
func (a *Activities) Preflight(ctx context.Context, in PreflightInput) (PreflightResult, error) {
	start := time.Now()
	if err := a.CheckUses(in.Uses); err != nil {
		return PreflightResult{}, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeInvalidSpec, nil)
	}
	t, err := a.target(in.Target)
	if err != nil {
		return PreflightResult{}, err
	}
	var res PreflightResult
	res.StepTimeout = providers.Describe(t, "").StepTimeout
	for _, u := range in.Uses {
		if u.Path == "analysis.source" {
			res.MetricsTimeout = providers.Describe(a.Metrics[u.Name], "").StepTimeout
		}
	}
	if p, ok := t.(providers.Preflighter); ok {
		err = withHeartbeat(ctx, func(ctx context.Context) error { return p.Preflight(ctx, in.Data) })
		if err != nil {
			res.Took = time.Since(start)
			return res, a.classify("preflight", in.StepInput, err)
		}
	}
	if a.Observer != nil {
		a.once(in.ReleaseID+"/observed-start", func() { a.Observer.ReleaseStarted(in.Data.Service, in.Data.Environment) })
	}
	res.Took = time.Since(start)
	return res, nil
}

// CheckUses returns a *spec.ValidationError naming every provider in uses this worker does not have (with
// the ones it has), or nil. The CLI runs it against a configuration file too (shepherd validate --config).
func (a *Activities) CheckUses(uses []spec.Use) error {
	var problems []spec.FieldError
	for _, u := range uses {
		var err error
		switch u.Kind {
		case spec.KindTarget:
			_, err = a.Targets.Lookup(u.Kind, u.Name)
		case spec.KindMetrics:
			_, err = a.Metrics.Lookup(u.Kind, u.Name)
		case spec.KindPrecheck:
			_, err = a.Prechecks.Lookup(u.Kind, u.Name)
		case spec.KindFlags:
			_, err = a.Flags.Lookup(u.Kind, u.Name)
		case spec.KindNotification:
			_, err = a.Notifications.Lookup(u.Kind, u.Name)
		case spec.KindRepository:
			_, err = a.Repositories.Lookup(u.Kind, u.Name)
		default:
			err = fmt.Errorf("unknown kind of provider %q", u.Kind)
		}
		if err != nil {
			problems = append(problems, spec.FieldError{Path: u.Path, Message: err.Error()})
		}
	}
	if len(problems) == 0 {
		return nil
	}
	return &spec.ValidationError{Problems: problems}
}
