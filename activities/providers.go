package activities

import (
	"context"

	"github.com/shepherd-release/shepherd/providers"
	"github.com/shepherd-release/shepherd/spec"
)

// Target is a deploy target: the thing that starts versions and moves traffic. Implementations are plain
// (no Temporal imports); the activities around them add idempotency, heartbeats and error typing.
// Every method must be safe to call again with the same arguments.
type Target interface {
	// Deploy starts data.Version beside the stable version, at 0 % traffic.
	Deploy(ctx context.Context, cfg spec.Target, data spec.TemplateData) error
	// Health reports whether the new version is healthy; nil means healthy.
	Health(ctx context.Context, cfg spec.Target, data spec.TemplateData) error
	// SetTraffic sends data.Percent % of traffic to the new version.
	SetTraffic(ctx context.Context, cfg spec.Target, data spec.TemplateData) error
	// Promote makes the new version the stable one.
	Promote(ctx context.Context, cfg spec.Target, data spec.TemplateData) error
	// Rollback removes the new version; traffic was already set to 0.
	Rollback(ctx context.Context, cfg spec.Target, data spec.TemplateData) error
}

// Metrics is providers.Metrics.
type Metrics = providers.Metrics

// MetricsFactory builds the Metrics for a spec's Prometheus settings; credentials are resolved here,
// inside the worker, never in the workflow.
type MetricsFactory func(cfg spec.Prometheus) (Metrics, error)
