package observe

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shepherd-release/shepherd/record"
)

// Engine metric names. Dashboards (deploy/grafana), alert rules (deploy/prometheus) and docs/metrics.md
// refer to these strings, so they are wire contract: add new names, never rename.
const (
	MetricReleasesStarted        = "shepherd_releases_started_total"
	MetricReleasesFinished       = "shepherd_releases_finished_total"
	MetricActiveReleases         = "shepherd_active_releases"
	MetricReleasePhaseEntered    = "shepherd_release_phase_entered_timestamp_seconds"
	MetricReleaseTrafficPercent  = "shepherd_release_traffic_percent"
	MetricActiveReleasesUpdated  = "shepherd_active_releases_updated_timestamp_seconds"
	MetricActiveReleasesScanErrs = "shepherd_active_releases_scan_errors_total"
	MetricAnalysisMeasurements   = "shepherd_analysis_measurements_total"
	MetricStageDuration          = "shepherd_stage_duration_seconds"
	MetricRollbacks              = "shepherd_rollbacks_total"
	MetricRollbackDuration       = "shepherd_rollback_duration_seconds"
	MetricRollbackTrafficRestore = "shepherd_rollback_traffic_restored_seconds"
	MetricApprovalWait           = "shepherd_approval_wait_seconds"
	MetricAnalysisLag            = "shepherd_analysis_lag_seconds"
	MetricAlertAborts            = "shepherd_alert_aborts_total"
	MetricAlertRequests          = "shepherd_alert_webhook_requests_total"
)

// MetricNames lists every engine metric name, as exposed (counters with _total, histograms by base name).
var MetricNames = []string{
	MetricReleasesStarted, MetricReleasesFinished, MetricActiveReleases, MetricReleasePhaseEntered,
	MetricReleaseTrafficPercent, MetricActiveReleasesUpdated, MetricActiveReleasesScanErrs,
	MetricAnalysisMeasurements, MetricStageDuration, MetricRollbacks, MetricRollbackDuration,
	MetricRollbackTrafficRestore, MetricApprovalWait, MetricAnalysisLag, MetricAlertAborts, MetricAlertRequests,
}

// Values of the enumerated labels. Any other value is recorded as LabelUnknown, so a typo or a new
// outcome can never grow a label without bound.
const (
	StagePassed     = "passed"
	StageRolledBack = "rolled_back"
	StageAborted    = "aborted"

	ApprovalApproved = "approved"
	ApprovalTimedOut = "timed_out"
	ApprovalAborted  = "aborted"

	RollbackSucceeded = "succeeded"
	RollbackFailed    = "failed"

	// Outcomes of an alert sent to the alert webhook (internal/alerts.Outcomes).
	AlertAborted            = "aborted"
	AlertAlreadyRollingBack = "already_rolling_back"
	AlertNoActiveRelease    = "no_active_release"
	AlertRejected           = "rejected"
	AlertIgnored            = "ignored"
	AlertUnavailable        = "unavailable"

	// LabelUnknown replaces an enumerated label value that is not one of the documented ones.
	LabelUnknown = "unknown"
	// LabelOther replaces service and environment once MaxReleaseKeys distinct pairs were seen.
	LabelOther = "_other"
)

// DefaultMaxReleaseKeys bounds the distinct (service, environment) pairs one process labels metrics with.
const DefaultMaxReleaseKeys = 1000

var (
	outcomes    = []record.Phase{record.PhaseSucceeded, record.PhaseRolledBack, record.PhaseFailed}
	verdicts    = []record.Verdict{record.Pass, record.Fail, record.Inconclusive}
	livePhases  = []record.Phase{record.PhaseValidating, record.PhaseDeploying, record.PhaseAwaitingApproval, record.PhaseProgressing, record.PhasePaused, record.PhasePromoting, record.PhaseRollingBack, record.PhaseRollbackStuck, record.PhaseFrozen}
	stageValues = []string{StagePassed, StageRolledBack, StageAborted}
	apprValues  = []string{ApprovalApproved, ApprovalTimedOut, ApprovalAborted}
	rbValues    = []string{RollbackSucceeded, RollbackFailed}
	// AlertOutcomes are the values of shepherd_alert_aborts_total's outcome label.
	AlertOutcomes = []string{AlertAborted, AlertAlreadyRollingBack, AlertNoActiveRelease, AlertRejected, AlertIgnored, AlertUnavailable}
	// AlertRequestCodes are the values of shepherd_alert_webhook_requests_total's code label.
	AlertRequestCodes = []string{"200", "400", "401", "405", "413", "503"}
)

// Histogram buckets, in seconds, chosen for what each histogram measures.
var (
	// StageBuckets span a one-minute stage to a day-long one (default soak is 15 m).
	StageBuckets = []float64{60, 300, 600, 900, 1800, 3600, 7200, 14400, 43200, 86400}
	// RollbackBuckets span Temporal's own floor (~50 ms) to ten minutes; 60 s is the bar for traffic.
	RollbackBuckets = []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}
	// ApprovalBuckets span a minute to three days.
	ApprovalBuckets = []float64{60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400, 259200}
	// AnalysisLagBuckets span 1 ms (a worker keeping its schedule) to a minute (one far behind); the bar
	// is 1 s, so the buckets are dense around it.
	AnalysisLagBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}
	// TemporalLatencyBuckets are for the Temporal SDK's latency histograms. The SDK's OpenTelemetry
	// handler records seconds but OpenTelemetry's default buckets (0, 5, 10, 25, ... 10000) are shaped for
	// milliseconds, which puts every task latency in one bucket; the worker installs a View with these
	// boundaries for instruments named temporal_* (see docs/metrics.md). Long polls reach ~70 s.
	TemporalLatencyBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 90}
)

// EngineOptions tunes NewEngineMetrics.
type EngineOptions struct {
	// MaxReleaseKeys bounds the distinct (service, environment) label pairs; later pairs are recorded as
	// LabelOther. Zero means DefaultMaxReleaseKeys.
	MaxReleaseKeys int
}

// EngineMetrics holds Shepherd's own metrics (the Temporal SDK's are exported separately).
//
// Counters and histograms record events: call them exactly once per event, from an activity or from
// workflow code guarded by !workflow.IsReplaying(ctx), or a replay counts the event again. The live
// gauges (active releases, phase, traffic) are a snapshot set by SetActiveReleases from a scan of
// Temporal visibility, so they are right whichever worker ran the release and survive restarts.
//
// Labels are bounded: service and environment (validated DNS labels, capped by MaxReleaseKeys) and
// enumerated values (phase, outcome, verdict, result). Never versions, release IDs, check names or people.
//
// All methods are safe for concurrent use and do nothing on a nil *EngineMetrics.
type EngineMetrics struct {
	started      *prometheus.CounterVec
	finished     *prometheus.CounterVec
	measurements *prometheus.CounterVec
	rollbacks    *prometheus.CounterVec
	scanErrors   prometheus.Counter
	stage        *prometheus.HistogramVec
	rollbackDur  *prometheus.HistogramVec
	restored     *prometheus.HistogramVec
	approval     *prometheus.HistogramVec
	lag          *prometheus.HistogramVec
	alertAborts  *prometheus.CounterVec
	alertReqs    *prometheus.CounterVec
	live         *liveCollector

	mu      sync.Mutex
	keys    map[releaseKey]bool
	envs    map[string]bool
	maxKeys int
}

type releaseKey struct{ service, environment string }

// NewEngineMetrics defines the engine metrics and registers them on reg.
func NewEngineMetrics(reg prometheus.Registerer, opts EngineOptions) (*EngineMetrics, error) {
	if reg == nil {
		return nil, errors.New("observe: NewEngineMetrics needs a registerer")
	}
	if opts.MaxReleaseKeys <= 0 {
		opts.MaxReleaseKeys = DefaultMaxReleaseKeys
	}
	m := &EngineMetrics{
		started: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricReleasesStarted,
			Help: "Releases started by a Shepherd worker.",
		}, []string{"service", "environment"}),
		finished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricReleasesFinished,
			Help: "Releases that reached a terminal phase, by outcome (Succeeded, RolledBack, Failed).",
		}, []string{"service", "environment", "outcome"}),
		measurements: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricAnalysisMeasurements,
			Help: "SLO check measurements taken during soaks, by verdict (Pass, Fail, Inconclusive).",
		}, []string{"service", "environment", "verdict"}),
		rollbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricRollbacks,
			Help: "Rollbacks run, by result: succeeded when every compensation succeeded, else failed.",
		}, []string{"service", "environment", "result"}),
		scanErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: MetricActiveReleasesScanErrs,
			Help: "Failed scans of Temporal visibility for active releases; the live gauges keep the last good scan.",
		}),
		stage: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    MetricStageDuration,
			Help:    "Time from a stage's start (approval gate included) to its end, by outcome.",
			Buckets: StageBuckets,
		}, []string{"environment", "outcome"}),
		rollbackDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    MetricRollbackDuration,
			Help:    "Time from the rollback decision to the last compensation, by result.",
			Buckets: RollbackBuckets,
		}, []string{"environment", "result"}),
		restored: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    MetricRollbackTrafficRestore,
			Help:    "Time from the rollback decision until traffic was back on the stable version.",
			Buckets: RollbackBuckets,
		}, []string{"environment"}),
		approval: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    MetricApprovalWait,
			Help:    "Time an approval gate waited, by outcome (approved, timed_out, aborted).",
			Buckets: ApprovalBuckets,
		}, []string{"environment", "outcome"}),
		lag: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    MetricAnalysisLag,
			Help:    "How late each analysis round started compared with its schedule (one per round of a stage's watch).",
			Buckets: AnalysisLagBuckets,
		}, []string{"environment"}),
		alertAborts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricAlertAborts,
			Help: "Alerts received on the alert webhook, by environment and outcome (aborted, already_rolling_back, no_active_release, rejected, ignored, unavailable).",
		}, []string{"environment", "outcome"}),
		alertReqs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricAlertRequests,
			Help: "Requests to the alert webhook, by HTTP status code (401: wrong or missing token; 503: Temporal unreachable, Alertmanager retries).",
		}, []string{"code"}),
		live:    newLiveCollector(),
		keys:    map[releaseKey]bool{},
		envs:    map[string]bool{},
		maxKeys: opts.MaxReleaseKeys,
	}
	for _, c := range []prometheus.Collector{
		m.started, m.finished, m.measurements, m.rollbacks, m.scanErrors,
		m.stage, m.rollbackDur, m.restored, m.approval, m.lag, m.alertAborts, m.alertReqs, m.live,
	} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("observe: registering engine metrics: %w", err)
		}
	}
	return m, nil
}

// label bounds one (service, environment) pair: past the cap, new pairs become LabelOther.
func (m *EngineMetrics) label(service, environment string) (string, string) {
	service, environment = clean(service), clean(environment)
	k := releaseKey{service, environment}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.keys[k] {
		return service, environment
	}
	if len(m.keys) >= m.maxKeys {
		return LabelOther, LabelOther
	}
	m.keys[k] = true
	m.envs[environment] = true
	return service, environment
}

// envLabel bounds an environment label the same way, for metrics labelled by environment alone.
func (m *EngineMetrics) envLabel(environment string) string {
	environment = clean(environment)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.envs[environment] {
		return environment
	}
	if len(m.envs) >= m.maxKeys {
		return LabelOther
	}
	m.envs[environment] = true
	return environment
}

// clean makes any string a valid, non-empty label value (client_golang panics on invalid UTF-8).
func clean(s string) string {
	s = strings.ToValidUTF8(strings.TrimSpace(s), "?")
	if s == "" {
		return LabelUnknown
	}
	return s
}

// oneOf returns v (lower-cased, spaces as '_') when it is allowed, else LabelUnknown.
func oneOf(v string, allowed []string) string {
	v = strings.ReplaceAll(strings.ToLower(strings.TrimSpace(v)), " ", "_")
	for _, a := range allowed {
		if v == a {
			return v
		}
	}
	return LabelUnknown
}

func phaseLabel(p record.Phase, allowed []record.Phase) string {
	for _, a := range allowed {
		if p == a {
			return string(p)
		}
	}
	return LabelUnknown
}

// ObserveAlert counts one alert received on the alert webhook by what became of it; an environment of
// "" (an alert without one) is recorded as unknown.
func (m *EngineMetrics) ObserveAlert(environment, outcome string) {
	if m == nil {
		return
	}
	m.alertAborts.WithLabelValues(m.envLabel(environment), oneOf(outcome, AlertOutcomes)).Inc()
}

// ObserveAlertRequest counts one request to the alert webhook by its status code.
func (m *EngineMetrics) ObserveAlertRequest(code int) {
	if m == nil {
		return
	}
	m.alertReqs.WithLabelValues(oneOf(fmt.Sprint(code), AlertRequestCodes)).Inc()
}

// ReleaseStarted counts a started release. It also creates the release's outcome, verdict and rollback
// series at zero, so that an alert on increase() sees the first failure instead of a new series.
func (m *EngineMetrics) ReleaseStarted(service, environment string) {
	if m == nil {
		return
	}
	s, e := m.label(service, environment)
	m.started.WithLabelValues(s, e).Inc()
	for _, o := range outcomes {
		m.finished.WithLabelValues(s, e, string(o))
	}
	for _, v := range verdicts {
		m.measurements.WithLabelValues(s, e, string(v))
	}
	for _, r := range rbValues {
		m.rollbacks.WithLabelValues(s, e, r)
	}
}

// ReleaseFinished counts a release that ended in outcome (Succeeded, RolledBack or Failed).
func (m *EngineMetrics) ReleaseFinished(service, environment string, outcome record.Phase) {
	if m == nil {
		return
	}
	s, e := m.label(service, environment)
	m.finished.WithLabelValues(s, e, phaseLabel(outcome, outcomes)).Inc()
}

// ObserveMeasurement counts one SLO check measurement by its verdict.
func (m *EngineMetrics) ObserveMeasurement(service, environment string, verdict record.Verdict) {
	if m == nil {
		return
	}
	s, e := m.label(service, environment)
	v := LabelUnknown
	for _, known := range verdicts {
		if verdict == known {
			v = string(verdict)
		}
	}
	m.measurements.WithLabelValues(s, e, v).Inc()
}

// ObserveStage records how long a finished stage took; outcome is StagePassed, StageRolledBack or
// StageAborted (record.StagePlan's "rolled back" is accepted too).
func (m *EngineMetrics) ObserveStage(environment, outcome string, d time.Duration) {
	if m == nil {
		return
	}
	e := m.envLabel(environment)
	m.stage.WithLabelValues(e, oneOf(outcome, stageValues)).Observe(d.Seconds())
}

// ObserveApprovalWait records how long an approval gate waited; outcome is ApprovalApproved,
// ApprovalTimedOut or ApprovalAborted.
func (m *EngineMetrics) ObserveApprovalWait(environment, outcome string, d time.Duration) {
	if m == nil {
		return
	}
	e := m.envLabel(environment)
	m.approval.WithLabelValues(e, oneOf(outcome, apprValues)).Observe(d.Seconds())
}

// ObserveAnalysisLag records how late one analysis round started compared with its schedule (a
// negative lag, a round early, counts as 0). Labelled by environment only: one series per service would
// multiply the buckets by every service released.
func (m *EngineMetrics) ObserveAnalysisLag(environment string, lag time.Duration) {
	if m == nil {
		return
	}
	m.lag.WithLabelValues(m.envLabel(environment)).Observe(max(lag, 0).Seconds())
}

// Rollback describes one finished rollback, for ObserveRollback.
type Rollback struct {
	Service     string
	Environment string
	// Failed is true when any compensation failed: the canary may still be deployed or receive traffic.
	Failed bool
	// Duration is from the rollback decision to the last compensation (record.Status.RollbackDuration).
	Duration time.Duration
	// TrafficRestoredAfter is from the decision until traffic was back on stable; zero if it never was.
	TrafficRestoredAfter time.Duration
}

// ObserveRollback counts a rollback by result and records its durations.
func (m *EngineMetrics) ObserveRollback(r Rollback) {
	if m == nil {
		return
	}
	s, e := m.label(r.Service, r.Environment)
	result := RollbackSucceeded
	if r.Failed {
		result = RollbackFailed
	}
	m.rollbacks.WithLabelValues(s, e, result).Inc()
	m.rollbackDur.WithLabelValues(e, result).Observe(r.Duration.Seconds())
	if r.TrafficRestoredAfter > 0 {
		m.restored.WithLabelValues(e).Observe(r.TrafficRestoredAfter.Seconds())
	}
}

// ActiveRelease is one running release as a visibility scan sees it (the Release* search attributes).
type ActiveRelease struct {
	Service        string
	Environment    string
	Phase          record.Phase
	TrafficPercent int
	// PhaseSince is when the release entered Phase, if the scan knows it. When zero, the time this
	// process first saw the release in Phase is used, which restarts at a worker restart.
	PhaseSince time.Time
}

// SetActiveReleases replaces the live gauges with a snapshot of the running releases, taken at now.
// Releases in a terminal phase are ignored. Each worker may run the same scan: dashboards aggregate
// the live gauges with max/min across instances, never sum.
func (m *EngineMetrics) SetActiveReleases(now time.Time, releases []ActiveRelease) {
	if m == nil {
		return
	}
	next := make(map[releaseKey]liveRelease, len(releases))
	for _, r := range releases {
		if r.Phase.Terminal() {
			continue
		}
		s, e := m.label(r.Service, r.Environment)
		next[releaseKey{s, e}] = mergeLive(next[releaseKey{s, e}], liveRelease{
			phase:   phaseLabel(r.Phase, livePhases),
			traffic: r.TrafficPercent,
			since:   r.PhaseSince,
		})
	}
	m.live.replace(now, next)
}

// RunScanner calls list now and then every interval until ctx is done, feeding SetActiveReleases.
// A failed scan is counted and leaves the previous snapshot in place; its age shows in
// shepherd_active_releases_updated_timestamp_seconds. It returns nil when ctx is done.
func (m *EngineMetrics) RunScanner(ctx context.Context, interval time.Duration, list func(context.Context) ([]ActiveRelease, error)) error {
	if m == nil || list == nil {
		return errors.New("observe: RunScanner needs engine metrics and a list function")
	}
	if interval <= 0 {
		return errors.New("observe: RunScanner needs a positive interval")
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if rs, err := list(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			m.scanErrors.Inc()
		} else {
			m.SetActiveReleases(time.Now(), rs)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// liveRelease is one release's live state, keyed by its bounded labels.
type liveRelease struct {
	phase   string
	traffic int
	since   time.Time
}

// mergeLive combines two releases that share labels (only after the LabelOther cap).
func mergeLive(a, b liveRelease) liveRelease {
	if a.phase == "" {
		return b
	}
	if b.traffic > a.traffic {
		a.traffic = b.traffic
	}
	if !b.since.IsZero() && (a.since.IsZero() || b.since.Before(a.since)) {
		a.since = b.since
	}
	return a
}

// liveCollector exports the last snapshot as one consistent set: a scrape never sees half an update.
type liveCollector struct {
	active, entered, traffic, updated *prometheus.Desc

	mu       sync.Mutex
	releases map[releaseKey]liveRelease
	envs     map[string]bool
	at       time.Time
}

func newLiveCollector() *liveCollector {
	return &liveCollector{
		active: prometheus.NewDesc(MetricActiveReleases,
			"Running releases by environment and phase, from the last visibility scan.",
			[]string{"environment", "phase"}, nil),
		entered: prometheus.NewDesc(MetricReleasePhaseEntered,
			"Unix time the running release entered its current phase (one series per running release).",
			[]string{"service", "environment", "phase"}, nil),
		traffic: prometheus.NewDesc(MetricReleaseTrafficPercent,
			"Percent of traffic on the new version of each running release.",
			[]string{"service", "environment"}, nil),
		updated: prometheus.NewDesc(MetricActiveReleasesUpdated,
			"Unix time of the last successful visibility scan feeding the live release gauges.",
			nil, nil),
		releases: map[releaseKey]liveRelease{},
		envs:     map[string]bool{},
	}
}

func (c *liveCollector) replace(now time.Time, next map[releaseKey]liveRelease) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, r := range next {
		if r.since.IsZero() {
			r.since = now
			if prev, ok := c.releases[k]; ok && prev.phase == r.phase {
				r.since = prev.since
			}
			next[k] = r
		}
		c.envs[k.environment] = true
	}
	c.releases = next
	c.at = now
}

// Describe implements prometheus.Collector.
func (c *liveCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.active
	ch <- c.entered
	ch <- c.traffic
	ch <- c.updated
}

// Collect implements prometheus.Collector.
func (c *liveCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.at.IsZero() {
		return // no scan yet: no data is better than a confident zero
	}
	counts := map[[2]string]float64{}
	for env := range c.envs {
		for _, p := range livePhases {
			counts[[2]string{env, string(p)}] = 0
		}
	}
	for k, r := range c.releases {
		counts[[2]string{k.environment, r.phase}]++
		ch <- prometheus.MustNewConstMetric(c.entered, prometheus.GaugeValue,
			float64(r.since.UnixNano())/1e9, k.service, k.environment, r.phase)
		ch <- prometheus.MustNewConstMetric(c.traffic, prometheus.GaugeValue,
			float64(r.traffic), k.service, k.environment)
	}
	for k, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.active, prometheus.GaugeValue, n, k[0], k[1])
	}
	ch <- prometheus.MustNewConstMetric(c.updated, prometheus.GaugeValue, float64(c.at.UnixNano())/1e9)
}
