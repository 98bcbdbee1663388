package observe

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/shepherd-release/shepherd/record"
)

func newEngine(t *testing.T, opts EngineOptions) (*EngineMetrics, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := NewEngineMetrics(reg, opts)
	if err != nil {
		t.Fatal(err)
	}
	return m, reg
}

func compare(t *testing.T, reg *prometheus.Registry, want string, names ...string) {
	t.Helper()
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
}

func TestNewEngineMetricsErrors(t *testing.T) {
	if _, err := NewEngineMetrics(nil, EngineOptions{}); err == nil {
		t.Error("nil registerer accepted")
	}
	reg := prometheus.NewRegistry()
	if _, err := NewEngineMetrics(reg, EngineOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := NewEngineMetrics(reg, EngineOptions{}); err == nil {
		t.Error("registering twice on one registry succeeded; want the duplicate reported")
	}
}

func TestReleaseCountersStartAtZero(t *testing.T) {
	m, reg := newEngine(t, EngineOptions{})
	m.ReleaseStarted("checkout", "production")
	m.ReleaseFinished("checkout", "production", record.PhaseRolledBack)
	m.ReleaseFinished("checkout", "production", "Exploded")
	compare(t, reg, `
# HELP shepherd_releases_started_total Releases started by a Shepherd worker.
# TYPE shepherd_releases_started_total counter
shepherd_releases_started_total{environment="production",service="checkout"} 1
# HELP shepherd_releases_finished_total Releases that reached a terminal phase, by outcome (Succeeded, RolledBack, Failed).
# TYPE shepherd_releases_finished_total counter
shepherd_releases_finished_total{environment="production",outcome="Failed",service="checkout"} 0
shepherd_releases_finished_total{environment="production",outcome="RolledBack",service="checkout"} 1
shepherd_releases_finished_total{environment="production",outcome="Succeeded",service="checkout"} 0
shepherd_releases_finished_total{environment="production",outcome="unknown",service="checkout"} 1
# HELP shepherd_rollbacks_total Rollbacks run, by result: succeeded when every compensation succeeded, else failed.
# TYPE shepherd_rollbacks_total counter
shepherd_rollbacks_total{environment="production",result="failed",service="checkout"} 0
shepherd_rollbacks_total{environment="production",result="succeeded",service="checkout"} 0
# HELP shepherd_analysis_measurements_total SLO check measurements taken during soaks, by verdict (Pass, Fail, Inconclusive).
# TYPE shepherd_analysis_measurements_total counter
shepherd_analysis_measurements_total{environment="production",service="checkout",verdict="Fail"} 0
shepherd_analysis_measurements_total{environment="production",service="checkout",verdict="Inconclusive"} 0
shepherd_analysis_measurements_total{environment="production",service="checkout",verdict="Pass"} 0
`, MetricReleasesStarted, MetricReleasesFinished, MetricRollbacks, MetricAnalysisMeasurements)
}

func TestMeasurementsByVerdict(t *testing.T) {
	m, reg := newEngine(t, EngineOptions{})
	for _, v := range []record.Verdict{record.Pass, record.Pass, record.Fail, record.Inconclusive, "Maybe"} {
		m.ObserveMeasurement("cart", "staging", v)
	}
	compare(t, reg, `
# HELP shepherd_analysis_measurements_total SLO check measurements taken during soaks, by verdict (Pass, Fail, Inconclusive).
# TYPE shepherd_analysis_measurements_total counter
shepherd_analysis_measurements_total{environment="staging",service="cart",verdict="Fail"} 1
shepherd_analysis_measurements_total{environment="staging",service="cart",verdict="Inconclusive"} 1
shepherd_analysis_measurements_total{environment="staging",service="cart",verdict="Pass"} 2
shepherd_analysis_measurements_total{environment="staging",service="cart",verdict="unknown"} 1
`, MetricAnalysisMeasurements)
}

func TestRollbackMetrics(t *testing.T) {
	m, reg := newEngine(t, EngineOptions{})
	m.ObserveRollback(Rollback{Service: "cart", Environment: "production", Duration: 3 * time.Second, TrafficRestoredAfter: 40 * time.Millisecond})
	m.ObserveRollback(Rollback{Service: "cart", Environment: "production", Failed: true, Duration: 90 * time.Second})

	if got := testutil.ToFloat64(m.rollbacks.WithLabelValues("cart", "production", RollbackFailed)); got != 1 {
		t.Errorf("failed rollbacks = %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.rollbacks.WithLabelValues("cart", "production", RollbackSucceeded)); got != 1 {
		t.Errorf("succeeded rollbacks = %v, want 1", got)
	}
	// The traffic-restored histogram only records rollbacks that restored traffic.
	compare(t, reg, `
# HELP shepherd_rollback_traffic_restored_seconds Time from the rollback decision until traffic was back on the stable version.
# TYPE shepherd_rollback_traffic_restored_seconds histogram
shepherd_rollback_traffic_restored_seconds_bucket{environment="production",le="0.05"} 1
shepherd_rollback_traffic_restored_seconds_bucket{environment="production",le="0.1"} 1
shepherd_rollback_traffic_restored_seconds_bucket{environment="production",le="0.25"} 1
shepherd_rollback_traffic_restored_seconds_bucket{environment="production",le="0.5"} 1
shepherd_rollback_traffic_restored_seconds_bucket{environment="production",le="1"} 1
shepherd_rollback_traffic_restored_seconds_bucket{environment="production",le="2.5"} 1
shepherd_rollback_traffic_restored_seconds_bucket{environment="production",le="5"} 1
shepherd_rollback_traffic_restored_seconds_bucket{environment="production",le="10"} 1
shepherd_rollback_traffic_restored_seconds_bucket{environment="production",le="30"} 1
shepherd_rollback_traffic_restored_seconds_bucket{environment="production",le="60"} 1
shepherd_rollback_traffic_restored_seconds_bucket{environment="production",le="120"} 1
shepherd_rollback_traffic_restored_seconds_bucket{environment="production",le="300"} 1
shepherd_rollback_traffic_restored_seconds_bucket{environment="production",le="600"} 1
shepherd_rollback_traffic_restored_seconds_bucket{environment="production",le="+Inf"} 1
shepherd_rollback_traffic_restored_seconds_sum{environment="production"} 0.04
shepherd_rollback_traffic_restored_seconds_count{environment="production"} 1
`, MetricRollbackTrafficRestore)
	if n := testutil.CollectAndCount(m.rollbackDur, MetricRollbackDuration); n != 2 {
		t.Errorf("rollback duration series = %d, want one per result (2)", n)
	}
}

func histogramCount(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) (count uint64, sum float64) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, met := range mf.GetMetric() {
			for _, lp := range met.GetLabel() {
				if labels[lp.GetName()] != lp.GetValue() {
					continue next
				}
			}
			return met.GetHistogram().GetSampleCount(), met.GetHistogram().GetSampleSum()
		}
	}
	return 0, 0
}

func TestStageAndApprovalHistograms(t *testing.T) {
	m, reg := newEngine(t, EngineOptions{})
	m.ObserveStage("production", StagePassed, 15*time.Minute)
	m.ObserveStage("production", "rolled back", 2*time.Minute) // record.StagePlan spelling
	m.ObserveStage("production", "exploded", time.Minute)
	m.ObserveApprovalWait("production", ApprovalApproved, time.Hour)
	m.ObserveApprovalWait("production", ApprovalTimedOut, 2*time.Hour)

	for _, c := range []struct {
		name, outcome string
		count         uint64
		sum           float64
	}{
		{MetricStageDuration, StagePassed, 1, 900},
		{MetricStageDuration, StageRolledBack, 1, 120},
		{MetricStageDuration, LabelUnknown, 1, 60},
		{MetricApprovalWait, ApprovalApproved, 1, 3600},
		{MetricApprovalWait, ApprovalTimedOut, 1, 7200},
	} {
		n, sum := histogramCount(t, reg, c.name, map[string]string{"environment": "production", "outcome": c.outcome})
		if n != c.count || sum != c.sum {
			t.Errorf("%s{outcome=%q}: count %d sum %v, want %d %v", c.name, c.outcome, n, sum, c.count, c.sum)
		}
	}
}

// The lag histogram is per environment, counts an early round as 0, and resolves the 1 s bar.
func TestAnalysisLagHistogram(t *testing.T) {
	m, reg := newEngine(t, EngineOptions{})
	for _, lag := range []time.Duration{-time.Second, 3 * time.Millisecond, 400 * time.Millisecond, 2 * time.Second} {
		m.ObserveAnalysisLag("production", lag)
	}
	n, sum := histogramCount(t, reg, MetricAnalysisLag, map[string]string{"environment": "production"})
	if n != 4 || sum < 2.402 || sum > 2.404 {
		t.Errorf("count %d sum %v, want 4 and 2.403", n, sum)
	}
	if !slices.Contains(AnalysisLagBuckets, 1) || AnalysisLagBuckets[0] != 0.001 || AnalysisLagBuckets[len(AnalysisLagBuckets)-1] != 60 {
		t.Errorf("buckets %v should span 1 ms to 60 s and include the 1 s bar", AnalysisLagBuckets)
	}
}

func TestLabelsStayBounded(t *testing.T) {
	m, reg := newEngine(t, EngineOptions{MaxReleaseKeys: 2})
	m.ReleaseStarted("a", "production")
	m.ReleaseStarted("b", "production")
	m.ReleaseStarted("c", "production")
	m.ReleaseStarted("d", "staging")
	m.ReleaseStarted("a", "production")
	m.ReleaseStarted("", "bad\xffutf8") // must not panic
	compare(t, reg, `
# HELP shepherd_releases_started_total Releases started by a Shepherd worker.
# TYPE shepherd_releases_started_total counter
shepherd_releases_started_total{environment="production",service="a"} 2
shepherd_releases_started_total{environment="production",service="b"} 1
shepherd_releases_started_total{environment="_other",service="_other"} 3
`, MetricReleasesStarted)

	m2, reg2 := newEngine(t, EngineOptions{})
	m2.ReleaseStarted("", "bad\xffutf8")
	compare(t, reg2, `
# HELP shepherd_releases_started_total Releases started by a Shepherd worker.
# TYPE shepherd_releases_started_total counter
shepherd_releases_started_total{environment="bad?utf8",service="unknown"} 1
`, MetricReleasesStarted)
}

func TestNilEngineIsNoop(t *testing.T) {
	var m *EngineMetrics
	m.ReleaseStarted("a", "b")
	m.ReleaseFinished("a", "b", record.PhaseSucceeded)
	m.ObserveMeasurement("a", "b", record.Pass)
	m.ObserveStage("b", StagePassed, time.Second)
	m.ObserveApprovalWait("b", ApprovalApproved, time.Second)
	m.ObserveAnalysisLag("b", time.Second)
	m.ObserveRollback(Rollback{})
	m.SetActiveReleases(time.Now(), []ActiveRelease{{Service: "a"}})
	if err := m.RunScanner(context.Background(), time.Second, nil); err == nil {
		t.Error("RunScanner on nil metrics returned nil; want an error")
	}
}

func TestActiveReleasesSnapshot(t *testing.T) {
	m, reg := newEngine(t, EngineOptions{})
	live := []string{MetricActiveReleases, MetricReleasePhaseEntered, MetricReleaseTrafficPercent, MetricActiveReleasesUpdated}
	if n, _ := testutil.GatherAndCount(reg, live...); n != 0 {
		t.Fatalf("%d live series before the first scan; want none (no data, not a confident zero)", n)
	}

	t0 := time.Unix(1_700_000_000, 0)
	approvalSince := time.Unix(1_699_990_000, 0)
	m.SetActiveReleases(t0, []ActiveRelease{
		{Service: "cart", Environment: "production", Phase: record.PhaseProgressing, TrafficPercent: 25},
		{Service: "search", Environment: "production", Phase: record.PhaseAwaitingApproval, TrafficPercent: 5, PhaseSince: approvalSince},
		{Service: "done", Environment: "production", Phase: record.PhaseSucceeded, TrafficPercent: 100},
	})
	compare(t, reg, `
# HELP shepherd_active_releases Running releases by environment and phase, from the last visibility scan.
# TYPE shepherd_active_releases gauge
shepherd_active_releases{environment="production",phase="AwaitingApproval"} 1
shepherd_active_releases{environment="production",phase="Deploying"} 0
shepherd_active_releases{environment="production",phase="Frozen"} 0
shepherd_active_releases{environment="production",phase="Paused"} 0
shepherd_active_releases{environment="production",phase="Progressing"} 1
shepherd_active_releases{environment="production",phase="Promoting"} 0
shepherd_active_releases{environment="production",phase="RollbackStuck"} 0
shepherd_active_releases{environment="production",phase="RollingBack"} 0
shepherd_active_releases{environment="production",phase="Validating"} 0
# HELP shepherd_release_phase_entered_timestamp_seconds Unix time the running release entered its current phase (one series per running release).
# TYPE shepherd_release_phase_entered_timestamp_seconds gauge
shepherd_release_phase_entered_timestamp_seconds{environment="production",phase="AwaitingApproval",service="search"} 1.69999e+09
shepherd_release_phase_entered_timestamp_seconds{environment="production",phase="Progressing",service="cart"} 1.7e+09
# HELP shepherd_release_traffic_percent Percent of traffic on the new version of each running release.
# TYPE shepherd_release_traffic_percent gauge
shepherd_release_traffic_percent{environment="production",service="cart"} 25
shepherd_release_traffic_percent{environment="production",service="search"} 5
# HELP shepherd_active_releases_updated_timestamp_seconds Unix time of the last successful visibility scan feeding the live release gauges.
# TYPE shepherd_active_releases_updated_timestamp_seconds gauge
shepherd_active_releases_updated_timestamp_seconds 1.7e+09
`, live...)

	// Same phase later: the entry time is kept. New phase: it restarts. Gone: its series go.
	t1 := t0.Add(time.Minute)
	m.SetActiveReleases(t1, []ActiveRelease{
		{Service: "cart", Environment: "production", Phase: record.PhaseProgressing, TrafficPercent: 50},
		{Service: "search", Environment: "production", Phase: record.PhasePaused, TrafficPercent: 5},
	})
	compare(t, reg, `
# HELP shepherd_release_phase_entered_timestamp_seconds Unix time the running release entered its current phase (one series per running release).
# TYPE shepherd_release_phase_entered_timestamp_seconds gauge
shepherd_release_phase_entered_timestamp_seconds{environment="production",phase="Paused",service="search"} 1.70000006e+09
shepherd_release_phase_entered_timestamp_seconds{environment="production",phase="Progressing",service="cart"} 1.7e+09
`, MetricReleasePhaseEntered)
	m.SetActiveReleases(t1.Add(time.Minute), nil)
	if n, _ := testutil.GatherAndCount(reg, MetricReleasePhaseEntered, MetricReleaseTrafficPercent); n != 0 {
		t.Errorf("%d per-release series left after the releases ended", n)
	}
	if n, _ := testutil.GatherAndCount(reg, MetricActiveReleases); n != len(livePhases) {
		t.Errorf("active releases series = %d, want a zero for each of the %d live phases", n, len(livePhases))
	}
}

func TestActiveReleasesOverflowMerges(t *testing.T) {
	m, reg := newEngine(t, EngineOptions{MaxReleaseKeys: 1})
	m.SetActiveReleases(time.Unix(100, 0), []ActiveRelease{
		{Service: "a", Environment: "production", Phase: record.PhaseProgressing, TrafficPercent: 5},
		{Service: "b", Environment: "production", Phase: record.PhasePaused, TrafficPercent: 50, PhaseSince: time.Unix(10, 0)},
		{Service: "c", Environment: "production", Phase: record.PhasePaused, TrafficPercent: 1, PhaseSince: time.Unix(20, 0)},
	})
	// Gathering fails on duplicate series, so merging is what keeps /metrics working past the cap.
	compare(t, reg, `
# HELP shepherd_release_traffic_percent Percent of traffic on the new version of each running release.
# TYPE shepherd_release_traffic_percent gauge
shepherd_release_traffic_percent{environment="_other",service="_other"} 50
shepherd_release_traffic_percent{environment="production",service="a"} 5
`, MetricReleaseTrafficPercent)
}

func TestRunScanner(t *testing.T) {
	m, reg := newEngine(t, EngineOptions{})
	var calls atomic.Int32
	ctx, cancel := context.WithCancel(context.Background())
	list := func(context.Context) ([]ActiveRelease, error) {
		switch calls.Add(1) {
		case 1:
			return nil, errors.New("visibility unavailable")
		case 2:
			return []ActiveRelease{{Service: "cart", Environment: "production", Phase: record.PhasePaused, TrafficPercent: 5}}, nil
		default:
			cancel()
			return nil, context.Canceled
		}
	}
	done := make(chan error, 1)
	go func() { done <- m.RunScanner(ctx, 5*time.Millisecond, list) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("RunScanner: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("RunScanner did not stop when its context was cancelled")
	}
	if got := testutil.ToFloat64(m.scanErrors); got != 1 {
		t.Errorf("scan errors = %v, want 1 (a cancelled scan is not an error)", got)
	}
	compare(t, reg, `
# HELP shepherd_release_traffic_percent Percent of traffic on the new version of each running release.
# TYPE shepherd_release_traffic_percent gauge
shepherd_release_traffic_percent{environment="production",service="cart"} 5
`, MetricReleaseTrafficPercent)
	if err := m.RunScanner(context.Background(), 0, list); err == nil {
		t.Error("RunScanner with a zero interval returned nil; want an error")
	}
}

// Every metric is registered under the documented name, and passes client_golang's lint (naming,
// units, _total on counters).
func TestMetricNamesAndLint(t *testing.T) {
	m, reg := newEngine(t, EngineOptions{})
	m.ReleaseStarted("cart", "production")
	m.ObserveStage("production", StagePassed, time.Minute)
	m.ObserveApprovalWait("production", ApprovalApproved, time.Minute)
	m.ObserveAnalysisLag("production", 20*time.Millisecond)
	m.ObserveRollback(Rollback{Service: "cart", Environment: "production", Duration: time.Second, TrafficRestoredAfter: time.Second})
	m.SetActiveReleases(time.Now(), []ActiveRelease{{Service: "cart", Environment: "production", Phase: record.PhaseProgressing}})
	m.scanErrors.Add(0)
	m.ObserveAlert("production", AlertAborted)
	m.ObserveAlertRequest(200)

	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, mf := range mfs {
		got = append(got, mf.GetName())
	}
	want := slices.Clone(MetricNames)
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("registered metrics\n%v\nwant MetricNames\n%v", got, want)
	}
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

// The alert counters take only their documented values: anything else is "unknown".
func TestAlertCountersAreBounded(t *testing.T) {
	m, reg := newEngine(t, EngineOptions{})
	m.ObserveAlert("production", AlertAborted)
	m.ObserveAlert("", AlertIgnored)
	m.ObserveAlert("production", "exploded")
	m.ObserveAlertRequest(401)
	m.ObserveAlertRequest(418)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP shepherd_alert_webhook_requests_total Requests to the alert webhook, by HTTP status code (401: wrong or missing token; 503: Temporal unreachable, Alertmanager retries).
# TYPE shepherd_alert_webhook_requests_total counter
shepherd_alert_webhook_requests_total{code="401"} 1
shepherd_alert_webhook_requests_total{code="unknown"} 1
`), MetricAlertRequests); err != nil {
		t.Error(err)
	}
	for _, c := range []struct {
		env, outcome string
		want         float64
	}{{"production", AlertAborted, 1}, {LabelUnknown, AlertIgnored, 1}, {"production", LabelUnknown, 1}} {
		if got := testutil.ToFloat64(m.alertAborts.WithLabelValues(c.env, c.outcome)); got != c.want {
			t.Errorf("%s %s = %v, want %v", c.env, c.outcome, got, c.want)
		}
	}
}
