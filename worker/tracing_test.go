package worker

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/testsuite"
	sdkworker "go.temporal.io/sdk/worker"

	"github.com/shepherd-release/shepherd/activities"
	"github.com/shepherd-release/shepherd/record"
	"github.com/shepherd-release/shepherd/spec"
	"github.com/shepherd-release/shepherd/workflows"
)

func TestTracingCoversWorkflowAndActivities(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	i, shutdown, err := TracingInterceptor(tp)
	require.NoError(t, err)
	defer func() { _ = shutdown(context.Background()) }()

	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestWorkflowEnvironment()
	env.SetWorkerOptions(sdkworker.Options{Interceptors: []interceptor.WorkerInterceptor{i}})
	workflows.RegisterWorkflows(env)
	workflows.RegisterActivities(env, &activities.Activities{Targets: Targets()})
	s := spec.Release{Service: "traced", Version: "v2",
		Target: spec.Target{Type: "exec", Exec: &spec.ExecTarget{Deploy: "true", Traffic: "true", Promote: "true", Rollback: "true"}},
		Stages: []spec.Stage{{Percent: 100, Soak: spec.Duration(time.Minute)}}, Analysis: spec.Analysis{Disabled: true}}
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: spec.WorkflowID("traced", "production")})
	env.ExecuteWorkflow(workflows.ReleaseWorkflow, s)
	require.NoError(t, env.GetWorkflowError())
	var res record.Result
	require.NoError(t, env.GetWorkflowResult(&res))
	require.Equal(t, record.PhaseSucceeded, res.Phase)

	names := map[string]bool{}
	for _, sp := range rec.Ended() {
		names[sp.Name()] = true
	}
	for _, want := range []string{"RunWorkflow:Release", "RunActivity:Deploy", "RunActivity:SetTraffic", "RunActivity:Promote"} {
		assert.True(t, names[want], "span %s missing; got %v", want, names)
	}
}

func TestTracingModes(t *testing.T) {
	ctx := context.Background()
	i, _, err := NewTracing(ctx, TracingOff)
	require.NoError(t, err)
	assert.Nil(t, i, "tracing is off by default")
	i, shutdown, err := NewTracing(ctx, TracingStdout)
	require.NoError(t, err)
	assert.NotNil(t, i)
	require.NoError(t, shutdown(ctx))
	_, _, err = NewTracing(ctx, "jaeger")
	assert.ErrorContains(t, err, `unknown tracing mode "jaeger"`)
}
