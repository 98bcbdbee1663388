package activities

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shepherd-release/shepherd/internal/virtualclock"
	"github.com/shepherd-release/shepherd/providers"
	"github.com/shepherd-release/shepherd/record"
	"github.com/shepherd-release/shepherd/spec"
)

// scriptedMetrics answers a check with script(round), counting rounds per check.
type scriptedMetrics struct {
	mu     sync.Mutex
	rounds map[string]int
	script func(check string, round int) (float64, error)
}

func (m *scriptedMetrics) Evaluate(_ context.Context, q string, _ spec.TemplateData) (float64, string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rounds[q]++
	v, err := m.script(q, m.rounds[q])
	return v, q, err
}

// GraphURL makes the source a Grapher, like Prometheus.
func (m *scriptedMetrics) GraphURL(q string, from, to time.Time) string {
	return "http://prom/graph?q=" + q + "&from=" + from.Format(time.TimeOnly) + "&to=" + to.Format(time.TimeOnly)
}

type lagRecorder struct {
	noopObserver
	lags []time.Duration
}

func (l *lagRecorder) AnalysisLag(_, _ string, lag time.Duration) { l.lags = append(l.lags, lag) }

type noopObserver struct{}

func (noopObserver) ReleaseStarted(string, string)           {}
func (noopObserver) Measured(string, string, record.Verdict) {}
func (noopObserver) ReleaseEnded(record.Result)              {}

func watchInput(soak, interval time.Duration, failureLimit, inconclusiveLimit int) WatchInput {
	maxErr, maxLat := 0.01, 0.5
	return WatchInput{
		ReleaseID: "r1", Stage: 2, Source: "prom",
		Checks: []spec.Check{{Name: "error-rate", Query: "errors", Max: &maxErr}, {Name: "latency", Query: "latency", Max: &maxLat}},
		Data:   spec.TemplateData{Service: "checkout", Environment: "staging", Version: "v2"},
		Soak:   spec.Duration(soak), Interval: spec.Duration(interval),
		FailureLimit: failureLimit, InconclusiveLimit: inconclusiveLimit,
	}
}

func watcher(script func(check string, round int) (float64, error)) (*Activities, *virtualclock.Clock, *scriptedMetrics) {
	clk := virtualclock.New(time.Date(2026, 11, 30, 1, 0, 0, 0, time.UTC))
	m := &scriptedMetrics{rounds: map[string]int{}, script: script}
	return &Activities{Metrics: providers.Registry[providers.Metrics]{"prom": m}, Clock: clk}, clk, m
}

func healthyScript(check string, _ int) (float64, error) {
	if check == "errors" {
		return 0.001, nil
	}
	return 0.2, nil
}

func TestWatchPassesWhenTheSoakIsDoneAndTheLastRoundPassed(t *testing.T) {
	a, clk, _ := watcher(healthyScript)
	start := clk.Now()
	res, err := a.WatchStage(context.Background(), watchInput(15*time.Minute, 10*time.Second, 1, 3))
	require.NoError(t, err)
	assert.Equal(t, WatchPassed, res.Outcome)
	assert.Equal(t, 15*time.Minute, clk.Now().Sub(start), "the soak ends with a measurement")
	assert.Equal(t, 15*time.Minute, res.Progress.Soaked.D())
	ev := res.Progress.Evidence
	assert.Equal(t, 90, ev.Rounds)
	assert.Equal(t, start, ev.From)
	assert.Equal(t, start.Add(15*time.Minute), ev.To)
	require.Len(t, ev.Checks, 2)
	assert.Equal(t, 90, ev.Checks[0].Passed)
	assert.InDelta(t, 0.001, *ev.Checks[0].Max, 1e-12)
	assert.Contains(t, ev.Checks[0].Graph, "q=errors&from=01:00:00&to=01:15:00", "each check links its query over the stage's window")
	assert.Empty(t, ev.Notable)
	require.Len(t, ev.Decisive, 2)
	assert.Equal(t, "errors", ev.Decisive[0].Query, "the decisive round keeps its queries")
}

func TestWatchReturnsAtTheFailureLimitAtOnce(t *testing.T) {
	a, clk, _ := watcher(func(check string, round int) (float64, error) {
		if check == "errors" && round >= 4 {
			return 0.2, nil
		}
		return healthyScript(check, round)
	})
	start := clk.Now()
	res, err := a.WatchStage(context.Background(), watchInput(15*time.Minute, 10*time.Second, 2, 3))
	require.NoError(t, err)
	assert.Equal(t, WatchFailed, res.Outcome)
	assert.Contains(t, res.Reason, "error-rate failed 2 time(s) in a row (0.2 > max 0.01)")
	assert.Equal(t, 50*time.Second, clk.Now().Sub(start), "rounds 4 and 5 failed: back after the 5th")
	ev := res.Progress.Evidence
	assert.Equal(t, 5, ev.Rounds)
	assert.Equal(t, 2, ev.Checks[0].Failed)
	require.Len(t, ev.Notable, 2)
	assert.Equal(t, record.Fail, ev.Notable[1].Verdict)
	assert.Empty(t, ev.Notable[1].Query, "notable measurements leave their query to the decisive round")
}

// An SLO breach rolls back even when another check has no data at the same time.
func TestWatchFailureWinsOverInconclusive(t *testing.T) {
	a, _, _ := watcher(func(check string, round int) (float64, error) {
		if check == "errors" {
			return 0.5, nil
		}
		return 0, errors.New("no data")
	})
	res, err := a.WatchStage(context.Background(), watchInput(time.Minute, 10*time.Second, 1, 1))
	require.NoError(t, err)
	assert.Equal(t, WatchFailed, res.Outcome)
}

func TestWatchPausesAtTheInconclusiveLimit(t *testing.T) {
	a, _, _ := watcher(func(check string, round int) (float64, error) {
		if round >= 2 && round <= 4 {
			return 0, errors.New("no data")
		}
		return healthyScript(check, round)
	})
	res, err := a.WatchStage(context.Background(), watchInput(15*time.Minute, 10*time.Second, 1, 3))
	require.NoError(t, err)
	assert.Equal(t, WatchInconclusive, res.Outcome)
	assert.Contains(t, res.Reason, "inconclusive 3 time(s) in a row")
	assert.Equal(t, 4, res.Progress.Evidence.Rounds)
}

// A soak that ends on a failing measurement below the limit does not pass: never promote on failing data.
func TestWatchNeverPassesOnAFailingLastMeasurement(t *testing.T) {
	a, _, _ := watcher(func(check string, round int) (float64, error) {
		if check == "errors" && round == 6 {
			return 0.2, nil
		}
		return healthyScript(check, round)
	})
	res, err := a.WatchStage(context.Background(), watchInput(time.Minute, 10*time.Second, 2, 3))
	require.NoError(t, err)
	assert.Equal(t, WatchUnsettled, res.Outcome)
	assert.Contains(t, res.Reason, "soak done without a passing last measurement")
}

// A watch retried on another worker resumes from its last heartbeat: the soak already done, the streaks
// and the evidence are kept, not reset.
func TestWatchResumesFromItsLastHeartbeat(t *testing.T) {
	a, clk, _ := watcher(func(check string, round int) (float64, error) {
		if check == "errors" {
			return 0.2, nil // the new worker's first measurement fails again
		}
		return healthyScript(check, round)
	})
	before := WatchProgress{Soaked: spec.Duration(10 * time.Minute), Streaks: *record.NewStreaks(2, 3),
		Evidence: record.StageEvidence{Stage: 2, Rounds: 60, From: clk.Now().Add(-10 * time.Minute)}}
	before.Streaks.Failures["error-rate"] = 1
	e := env(t, a)
	e.SetHeartbeatDetails(before)
	start := clk.Now()
	v, err := e.ExecuteActivity(a.WatchStage, watchInput(15*time.Minute, 10*time.Second, 2, 3))
	require.NoError(t, err)
	var res WatchResult
	require.NoError(t, v.Get(&res))
	assert.Equal(t, WatchFailed, res.Outcome, "the failure before the crash counts toward the limit")
	assert.Equal(t, 10*time.Second, clk.Now().Sub(start))
	assert.Equal(t, 61, res.Progress.Evidence.Rounds)
	assert.Equal(t, 10*time.Minute+10*time.Second, res.Progress.Soaked.D())
	assert.Equal(t, before.Evidence.From, res.Progress.Evidence.From)
}

// A heartbeat of another stage (a stale detail) is not resumed from.
func TestWatchIgnoresAnotherStagesHeartbeat(t *testing.T) {
	a, clk, _ := watcher(healthyScript)
	e := env(t, a)
	e.SetHeartbeatDetails(WatchProgress{Soaked: spec.Duration(14 * time.Minute), Evidence: record.StageEvidence{Stage: 1}})
	start := clk.Now()
	_, err := e.ExecuteActivity(a.WatchStage, watchInput(15*time.Minute, 10*time.Second, 2, 3))
	require.NoError(t, err)
	assert.Equal(t, 15*time.Minute, clk.Now().Sub(start))
}

// Rounds that start late are reported to the observer (analysis lag), and do not come in a burst.
func TestWatchReportsHowLateEachRoundStarts(t *testing.T) {
	a, clk, _ := watcher(healthyScript)
	clk.Late(1500 * time.Millisecond)
	obs := &lagRecorder{}
	a.Observer = obs
	res, err := a.WatchStage(context.Background(), watchInput(time.Minute, 10*time.Second, 1, 3))
	require.NoError(t, err)
	assert.Equal(t, WatchPassed, res.Outcome)
	require.NotEmpty(t, obs.lags)
	for _, l := range obs.lags {
		assert.Equal(t, 1500*time.Millisecond, l)
	}
}

func TestWatchStopsWhenCancelled(t *testing.T) {
	a, _, m := watcher(healthyScript)
	ctx, cancel := context.WithCancel(context.Background())
	m.script = func(check string, round int) (float64, error) {
		if round == 3 {
			cancel()
		}
		return healthyScript(check, round)
	}
	_, err := a.WatchStage(ctx, watchInput(15*time.Minute, 10*time.Second, 1, 3))
	require.ErrorIs(t, err, context.Canceled)
	assert.LessOrEqual(t, m.rounds["errors"], 3)
}

func TestStageEvidenceIsBounded(t *testing.T) {
	var ev record.StageEvidence
	v := 1.0
	for i := 0; i < 1000; i++ {
		ev.Add([]record.Measurement{{Check: "c", Value: &v, Verdict: record.Fail, Query: "q"}})
	}
	assert.Len(t, ev.Notable, record.MaxNotable)
	assert.Equal(t, 1000-record.MaxNotable, ev.NotableDropped)
	assert.Equal(t, 1000, ev.Checks[0].Failed)
}

func TestWatchProgressLine(t *testing.T) {
	now := time.Date(2026, 11, 30, 1, 0, 0, 0, time.UTC)
	last, most := 0.002, 0.004
	p := WatchProgress{Soaked: spec.Duration(7 * time.Minute), NextAt: now.Add(6 * time.Second),
		Evidence: record.StageEvidence{Stage: 2, Rounds: 42, Checks: []record.CheckEvidence{
			{Check: "error-rate", Measurements: 42, Passed: 41, Inconclusive: 1, Last: &last, Max: &most, Min: &last}}}}
	assert.Equal(t, "watching stage 2: 42 round(s), 7m0s soaked; error-rate 41/42 passed (last 0.002, max 0.004); next round in 6s", p.Line(now))
}

// A metrics source the worker lacks makes every measurement inconclusive, never a pass.
func TestWatchWithAnUnknownSourceIsInconclusive(t *testing.T) {
	a, _, _ := watcher(healthyScript)
	in := watchInput(time.Minute, 10*time.Second, 1, 2)
	in.Source = "no-such-source"
	res, err := a.WatchStage(context.Background(), in)
	require.NoError(t, err)
	assert.Equal(t, WatchInconclusive, res.Outcome)
	assert.Contains(t, res.Reason, "inconclusive 2 time(s) in a row")
}
