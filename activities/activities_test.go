package activities

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/shepherd-release/shepherd/record"
	"github.com/shepherd-release/shepherd/spec"
)

type countingTarget struct {
	mu    sync.Mutex
	calls map[string]int
	err   error
	// seqs are the fencing sequence numbers the target received, in order.
	seqs []int64
}

func (c *countingTarget) do(name string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls[name]++
	return c.err
}
func (c *countingTarget) Deploy(_ context.Context, _ spec.Target, d spec.TemplateData) error {
	c.mu.Lock()
	c.seqs = append(c.seqs, d.Seq)
	c.mu.Unlock()
	return c.do("deploy")
}
func (c *countingTarget) Health(context.Context, spec.Target, spec.TemplateData) error {
	return c.do("health")
}
func (c *countingTarget) SetTraffic(context.Context, spec.Target, spec.TemplateData) error {
	return c.do("traffic")
}
func (c *countingTarget) Promote(context.Context, spec.Target, spec.TemplateData) error {
	return c.do("promote")
}
func (c *countingTarget) Rollback(context.Context, spec.Target, spec.TemplateData) error {
	return c.do("rollback")
}

func env(t *testing.T, a *Activities) *testsuite.TestActivityEnvironment {
	var s testsuite.WorkflowTestSuite
	e := s.NewTestActivityEnvironment()
	e.RegisterActivity(a)
	return e
}

// Activities keep no state between attempts: every attempt reaches the target with the step's fencing
// token, and the target (not a local ledger, which another worker would not share) decides.
func TestStepPassesTheFencingTokenOnEveryAttempt(t *testing.T) {
	target := &countingTarget{calls: map[string]int{}}
	a := &Activities{Targets: map[string]Target{"exec": target}}
	e := env(t, a)
	in := StepInput{ReleaseID: "release:a:prod/run1", Step: "deploy", Target: spec.Target{Type: "exec"},
		Data: spec.TemplateData{ReleaseID: "release:a:prod/run1", Step: "deploy", Seq: 3}}
	for i := 0; i < 2; i++ {
		_, err := e.ExecuteActivity(a.Deploy, in)
		require.NoError(t, err)
	}
	assert.Equal(t, []int64{3, 3}, target.seqs, "a retried step carries the same fencing token")
	for i := 0; i < 2; i++ {
		_, err := e.ExecuteActivity(a.HealthCheck, in)
		require.NoError(t, err)
	}
	assert.Equal(t, 2, target.calls["health"], "health checks are asked afresh every time")
}

func TestStepErrorsAreTyped(t *testing.T) {
	target := &countingTarget{calls: map[string]int{}}
	a := &Activities{Targets: map[string]Target{"exec": target}}
	e := env(t, a)
	in := StepInput{ReleaseID: "r", Step: "traffic", Target: spec.Target{Type: "exec"},
		Data: spec.TemplateData{Service: "checkout", Version: "v2", Environment: "prod", Percent: 5}}

	target.err = errors.New("connection reset")
	_, err := e.ExecuteActivity(a.SetTraffic, in)
	var appErr *temporal.ApplicationError
	require.ErrorAs(t, err, &appErr)
	assert.False(t, appErr.NonRetryable())
	assert.Contains(t, appErr.Error(), "traffic to 5% of checkout v2 in prod failed: connection reset")

	target.err = errors.Join(errors.New("weight 5 rejected"), ErrPermanent)
	_, err = e.ExecuteActivity(a.SetTraffic, in)
	require.ErrorAs(t, err, &appErr)
	assert.True(t, appErr.NonRetryable())
	assert.Equal(t, ErrTypePermanent, appErr.Type())

	target.err = fmt.Errorf("traffic 5 with seq 2: %w", ErrStaleWrite)
	_, err = e.ExecuteActivity(a.SetTraffic, in)
	require.ErrorAs(t, err, &appErr)
	assert.True(t, appErr.NonRetryable(), "a stale write is refused for good")
	assert.Equal(t, ErrTypeStaleWrite, appErr.Type())

	in.Target.Type = "kubernetes"
	_, err = e.ExecuteActivity(a.SetTraffic, in)
	require.ErrorAs(t, err, &appErr)
	assert.Equal(t, ErrTypeUnknownTarget, appErr.Type())
	assert.True(t, appErr.NonRetryable())
}

type scripted map[string]struct {
	v   float64
	err error
}

func (s scripted) Evaluate(_ context.Context, q string, d spec.TemplateData) (float64, string, error) {
	r := s[q+"@"+d.Version]
	return r.v, q + "@" + d.Version, r.err
}

func TestMeasureTurnsEveryProblemIntoAnErrorNotAFailure(t *testing.T) {
	m := scripted{
		"ok@v2": {v: 0.2}, "down@v2": {err: errors.New("connection refused")}, "nan@v2": {v: math.NaN()},
		"lat@v2": {v: 0.3}, "lat@v1": {v: 0.25},
	}
	a := &Activities{Metrics: func(spec.Prometheus) (Metrics, error) { return m, nil }}
	e := env(t, a)
	one := 1.0
	in := MeasureInput{Stage: 2, Data: spec.TemplateData{Version: "v2", PreviousVersion: "v1"}, Checks: []spec.Check{
		{Name: "ok", Query: "ok", Max: &one},
		{Name: "down", Query: "down", Max: &one},
		{Name: "nan", Query: "nan", Max: &one},
		{Name: "lat", Query: "lat", Baseline: &spec.Baseline{MaxRelativeIncrease: 0.1}},
	}}
	v, err := e.ExecuteActivity(a.Measure, in)
	require.NoError(t, err)
	var res MeasureResult
	require.NoError(t, v.Get(&res))
	ms := res.Measurements
	require.Len(t, ms, 4)
	assert.InDelta(t, 0.2, *ms[0].Value, 1e-9)
	assert.Empty(t, ms[0].Error)
	assert.Equal(t, "connection refused", ms[1].Error)
	assert.Nil(t, ms[1].Value)
	assert.Equal(t, "query returned NaN", ms[2].Error)
	assert.InDelta(t, 0.25, *ms[3].Baseline, 1e-9, "baseline is the same query for the previous version")
	assert.Equal(t, 0.1, ms[3].BaselineMaxRelativeIncrease)
	// Judged when taken, so the verdict is recorded in history with the measurement; problems are
	// inconclusive, never a failure.
	want := []record.Verdict{record.Pass, record.Inconclusive, record.Inconclusive, record.Fail}
	for i, m := range ms {
		assert.Equal(t, want[i], m.Verdict, m.Check)
		assert.NotEmpty(t, m.Reason, m.Check)
		assert.Equal(t, 2, m.Stage)
	}
}

func TestMeasureWithoutProviderIsInconclusive(t *testing.T) {
	a := &Activities{Metrics: func(spec.Prometheus) (Metrics, error) { return nil, errors.New("BEARER_TOKEN is not set") }}
	e := env(t, a)
	v, err := e.ExecuteActivity(a.Measure, MeasureInput{Checks: []spec.Check{{Name: "x", Query: "up"}}})
	require.NoError(t, err)
	var res MeasureResult
	require.NoError(t, v.Get(&res))
	assert.Equal(t, "BEARER_TOKEN is not set", res.Measurements[0].Error)
}
