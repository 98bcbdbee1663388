// Package providers holds what every provider shares: the interfaces the activities call (deploy targets,
// metrics, and the lifecycle providers), the error sentinels that classify their failures, the
// self-description paperwork renders plans and runbooks from, and the credential reference type.
//
// It is a leaf: it imports no Temporal and nothing of Shepherd's above spec and record, so a provider is
// plain Go. Each provider lives in its own subpackage (providers/exec, providers/prometheus, ...) and is
// built from its own typed configuration, which a platform operator writes in the worker configuration
// file; a release spec only names it. The worker is the one place that builds them (worker/providers.go).
package providers

import (
	"context"
	"errors"
	"time"

	"github.com/shepherd-release/shepherd/spec"
)

// ErrPermanent marks a provider error that retrying cannot fix (bad request, bad template, conflict).
// Providers wrap it (fmt.Errorf("...: %w", providers.ErrPermanent)); the activity then fails non-retryably.
var ErrPermanent = errors.New("permanent failure")

// ErrStaleWrite is what a target returns (wrapped) when it refuses a step whose fencing token
// (TemplateData.ReleaseID + Seq) is older than the newest it has applied for that release.
var ErrStaleWrite = errors.New("stale write refused: a newer step of this release was applied")

// Target is a deploy target: the thing that starts versions and moves traffic. It is built from its
// configuration once, at worker start; each call gets only the release's template data. Every method must
// be safe to call again with the same arguments.
type Target interface {
	// Deploy starts data.Version beside the stable version, at 0 % traffic.
	Deploy(ctx context.Context, data spec.TemplateData) error
	// Health reports whether the new version is healthy; nil means healthy.
	Health(ctx context.Context, data spec.TemplateData) error
	// SetTraffic sends data.Percent % of traffic to the new version.
	SetTraffic(ctx context.Context, data spec.TemplateData) error
	// Promote makes the new version the stable one.
	Promote(ctx context.Context, data spec.TemplateData) error
	// Rollback removes the new version; traffic was already set to 0.
	Rollback(ctx context.Context, data spec.TemplateData) error
}

// Preflighter is implemented by targets that can check, before anything changes, that a release can run:
// templates render, directories exist, the controller answers.
type Preflighter interface {
	Preflight(ctx context.Context, data spec.TemplateData) error
}

// Metrics evaluates one check query to a single number. Any error (unreachable server, empty result, NaN,
// several series) makes the measurement inconclusive, never a pass.
type Metrics interface {
	// Evaluate renders queryTemplate over data (escaped as the provider's query language needs), runs it
	// and returns the value and the query that ran.
	Evaluate(ctx context.Context, queryTemplate string, data spec.TemplateData) (value float64, query string, err error)
}

// Grapher is implemented by a metrics source with a UI of its own: GraphURL links a query that ran (as
// Evaluate returned it) graphed over [from, to], for a report's evidence. It returns "" when it cannot.
type Grapher interface {
	GraphURL(query string, from, to time.Time) string
}

// Checker is a pre-release check an operator configured (an HTTP endpoint, a command): it reports what it
// observed, and an error when the expectation is not met or the check could not run.
type Checker interface {
	Check(ctx context.Context, data spec.TemplateData) (observed string, err error)
}

// Flags sets feature flags to a rollout percent (0 off, 100 fully on). Setting is absolute, so calling it
// again with the same arguments changes nothing.
type Flags interface {
	Set(ctx context.Context, names []string, percent int, data spec.TemplateData) error
}

// Tagger marks a promoted release in version control. name is the tag name template ("" for the
// provider's default); created is false when the tag already existed at the same commit.
type Tagger interface {
	Tag(ctx context.Context, name string, data spec.TemplateData, notes string) (created bool, err error)
}

// SecretChecker is implemented by providers that use credentials: CheckSecrets reads each of them once,
// so a worker fails at start-up, naming the missing variable or file, rather than at a release's first
// use. Providers read credentials again on every use, so rotation needs no restart.
type SecretChecker interface {
	CheckSecrets() error
}

// ManualStep is the TemplateData.Step of steps a person runs by hand (Description.Manual). A target that
// fences by sequence number must accept them: providers render their sequence number as the current time
// in seconds, newer than any step Shepherd ran, so Shepherd's late writes are refused and these are not.
const ManualStep = "manual-rollback"

// Describer is implemented by every provider: what it is, in the words a plan or a runbook needs.
type Describer interface {
	Describe() Description
}

// Description is a provider's account of itself, rendered by paperwork into release plans and runbooks so
// documents follow the configuration and the code rather than prose kept beside them.
type Description struct {
	// Type is the provider type, e.g. "exec", "local", "prometheus", "web".
	Type string `json:"type"`
	// Summary says in one line what the provider does, e.g. "runs shell commands on the worker".
	Summary string `json:"summary"`
	// Steps says what each target step does, keyed by step ("deploy", "health", "traffic", "promote",
	// "rollback"); empty for other providers.
	Steps map[string]string `json:"steps,omitempty"`
	// Prerequisites are what must hold before a release can use the provider.
	Prerequisites []string `json:"prerequisites,omitempty"`
	// ManualRollback says in words what a person does when the automatic rollback cannot (targets).
	ManualRollback []string `json:"manualRollback,omitempty"`
	// Manual returns the shell lines that undo a release by hand, as Shepherd's rollback would: for a
	// target, "traffic" (percent 0, traffic to stable) then "rollback" (remove the new version), chosen by
	// step; for a flag provider, the named flags off (step "off"). Nil when the provider has none. Runbooks
	// render them for one release.
	Manual func(step string, data spec.TemplateData, names []string) []string `json:"-"`
	// Events are the event kinds a notification channel sends; empty means every kind.
	Events []string `json:"events,omitempty"`
	// StepTimeout bounds one call (one attempt of a target step, one query); 0 when the provider has none
	// of its own.
	StepTimeout time.Duration `json:"stepTimeout,omitempty"`
}

// Describe returns p's description, or one naming only its type when p does not describe itself.
func Describe(p any, typ string) Description {
	if d, ok := p.(Describer); ok {
		out := d.Describe()
		if out.Type == "" {
			out.Type = typ
		}
		return out
	}
	return Description{Type: typ}
}
