package worker

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.temporal.io/sdk/client"
	temporalotel "go.temporal.io/sdk/contrib/opentelemetry"

	"github.com/shepherd-release/shepherd/activities"
	"github.com/shepherd-release/shepherd/internal/observe"
	"github.com/shepherd-release/shepherd/record"
)

// Telemetry is everything a worker exports on /metrics: engine metrics, the Temporal SDK's own metrics
// (through OpenTelemetry onto the same registry) and the Go runtime's.
type Telemetry struct {
	Registry *prometheus.Registry
	Engine   *observe.EngineMetrics
	// SDK is the client's metrics handler (client.Options.MetricsHandler).
	SDK client.MetricsHandler
}

// NewTelemetry builds the registry and handlers; see docs/metrics.md for the names.
func NewTelemetry() (*Telemetry, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	engine, err := observe.NewEngineMetrics(reg, observe.EngineOptions{})
	if err != nil {
		return nil, fmt.Errorf("engine metrics: %w", err)
	}
	exporter, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutScopeInfo())
	if err != nil {
		return nil, fmt.Errorf("SDK metrics exporter: %w", err)
	}
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter), sdkmetric.WithView(
		sdkmetric.NewView(
			sdkmetric.Instrument{Name: "temporal_*", Kind: sdkmetric.InstrumentKindHistogram},
			sdkmetric.Stream{Aggregation: sdkmetric.AggregationExplicitBucketHistogram{Boundaries: observe.TemporalLatencyBuckets}})))
	sdk := temporalotel.NewMetricsHandler(temporalotel.MetricsHandlerOptions{
		Meter: provider.Meter("temporal-sdk-go"), UseMonotonicCounters: true})
	return &Telemetry{Registry: reg, Engine: engine, SDK: sdk}, nil
}

// Observer adapts the engine metrics to the activities' release events.
func (t *Telemetry) Observer() activities.Observer { return engineObserver{t.Engine} }

type engineObserver struct{ m *observe.EngineMetrics }

func (o engineObserver) ReleaseStarted(service, environment string) {
	o.m.ReleaseStarted(service, environment)
}

func (o engineObserver) Measured(service, environment string, v record.Verdict) {
	o.m.ObserveMeasurement(service, environment, v)
}

// AnalysisLag records how late a measurement round started.
func (o engineObserver) AnalysisLag(service, environment string, lag time.Duration) {
	_ = service // the histogram is per environment: per service it would multiply its buckets
	o.m.ObserveAnalysisLag(environment, lag)
}

// ReleaseEnded records the outcome, each stage's duration, each approval's wait and the rollback.
func (o engineObserver) ReleaseEnded(res record.Result) {
	o.m.ReleaseFinished(res.Service, res.Environment, res.Phase)
	for _, st := range res.Stages {
		if st.StartedAt.IsZero() || st.FinishedAt.IsZero() {
			continue
		}
		outcome := observe.StagePassed
		if st.Outcome == "rolled back" {
			outcome = observe.StageRolledBack
		}
		o.m.ObserveStage(res.Environment, outcome, st.FinishedAt.Sub(st.StartedAt))
	}
	for _, w := range approvalWaits(res) {
		o.m.ObserveApprovalWait(res.Environment, w.outcome, w.wait)
	}
	if res.RollbackDuration > 0 || res.Phase == record.PhaseRolledBack {
		o.m.ObserveRollback(observe.Rollback{
			Service: res.Service, Environment: res.Environment, Failed: res.Phase == record.PhaseFailed,
			Duration: res.RollbackDuration, TrafficRestoredAfter: res.TrafficRestoredAfter,
		})
	}
}

type approvalWait struct {
	outcome string
	wait    time.Duration
}

// approvalWaits pairs each gate's start (the transition into AwaitingApproval) with how it ended.
func approvalWaits(res record.Result) []approvalWait {
	var out []approvalWait
	var since time.Time
	for _, d := range res.Decisions {
		switch {
		case d.Kind == record.KindTransition && d.Phase == record.PhaseAwaitingApproval:
			since = d.Time
		case since.IsZero():
		case d.Kind == record.KindApproval:
			outcome := observe.ApprovalApproved
			if d.By == "shepherd" {
				outcome = observe.ApprovalTimedOut
			}
			out = append(out, approvalWait{outcome, d.Time.Sub(since)})
			since = time.Time{}
		case d.Kind == record.KindTransition && (d.Phase == record.PhaseRollingBack || d.Phase.Terminal()):
			out = append(out, approvalWait{observe.ApprovalAborted, d.Time.Sub(since)})
			since = time.Time{}
		}
	}
	return out
}
