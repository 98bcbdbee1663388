package workflows

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"go.temporal.io/sdk/log"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/shepherd-release/shepherd/activities"
	"github.com/shepherd-release/shepherd/internal/virtualclock"
	"github.com/shepherd-release/shepherd/providers"
	"github.com/shepherd-release/shepherd/providers/notify"
	"github.com/shepherd-release/shepherd/record"
	"github.com/shepherd-release/shepherd/spec"
)

// fakeTarget records every side effect in order and can be told to fail a step or to run a hook in it.
type fakeTarget struct {
	mu    sync.Mutex
	calls []string
	// seqs are the fencing sequence numbers of the calls, in the same order.
	seqs []int64
	// failures maps a call name ("deploy", "rollback", "traffic 25") to the error it returns.
	failures map[string]error
	// hooks maps a call name to code run in the call before it is recorded (it may block, send signals,
	// or return an error); the call is recorded when the hook returns, as a write that landed.
	hooks map[string]func(ctx context.Context) error
}

func (f *fakeTarget) do(ctx context.Context, name string, d spec.TemplateData) error {
	f.mu.Lock()
	hook := f.hooks[name]
	f.mu.Unlock()
	var hookErr error
	if hook != nil {
		hookErr = hook(ctx)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, name)
	f.seqs = append(f.seqs, d.Seq)
	if hookErr != nil {
		return hookErr
	}
	return f.failures[name]
}

func (f *fakeTarget) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

// fail sets (err != nil) or clears the failure of a call, safely while the workflow runs.
func (f *fakeTarget) fail(name string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil {
		delete(f.failures, name)
		return
	}
	f.failures[name] = err
}

func (f *fakeTarget) hook(name string, fn func(ctx context.Context) error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hooks[name] = fn
}

func (f *fakeTarget) Deploy(ctx context.Context, d spec.TemplateData) error {
	return f.do(ctx, "deploy "+d.Version, d)
}
func (f *fakeTarget) Health(ctx context.Context, d spec.TemplateData) error {
	return f.do(ctx, "health", d)
}
func (f *fakeTarget) SetTraffic(ctx context.Context, d spec.TemplateData) error {
	return f.do(ctx, fmt.Sprintf("traffic %d", d.Percent), d)
}
func (f *fakeTarget) Promote(ctx context.Context, d spec.TemplateData) error {
	return f.do(ctx, "promote", d)
}
func (f *fakeTarget) Rollback(ctx context.Context, d spec.TemplateData) error {
	return f.do(ctx, "rollback", d)
}

// fakeMetrics answers every query from a script: value(check, percent, round) per evaluation.
type fakeMetrics struct {
	mu     sync.Mutex
	rounds map[string]int
	value  func(check string, percent, round int) (float64, error)
}

func (m *fakeMetrics) Evaluate(_ context.Context, q string, d spec.TemplateData) (float64, string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.rounds == nil {
		m.rounds = map[string]int{}
	}
	check := checkOf(q)
	m.rounds[check]++
	v, err := m.value(check, d.Percent, m.rounds[check])
	return v, q, err
}

// checkOf maps the default queries back to their check names.
func checkOf(q string) string {
	switch q {
	case spec.DefaultErrorRateQuery:
		return "error-rate"
	case spec.DefaultLatencyQuery:
		return "p99-latency"
	}
	return q
}

// healthy is a metrics script under every threshold.
func healthy(check string, _, _ int) (float64, error) {
	if check == "error-rate" {
		return 0.001, nil
	}
	return 0.120, nil
}

// harness runs the Release workflow in Temporal's time-skipping test environment with the real
// activities over a fake target and fake metrics.
type harness struct {
	t         *testing.T
	env       *testsuite.TestWorkflowEnvironment
	target    *fakeTarget
	metrics   *fakeMetrics
	start     time.Time
	spec      spec.Release
	updates   int
	reportDir string
	// acts are the activities the workflow runs, over named providers; tests add providers to them and
	// may set their Approvals policy before run.
	acts *activities.Activities
	// raw, when set, is the workflow input as sent (JSON), instead of spec encoded.
	raw json.RawMessage
	// workflowID overrides the release's own workflow ID.
	workflowID string
	// watches counts the WatchStage activities started; watchEnds, when set, runs as the nth watch
	// delivers its result (in the instant the workflow receives it).
	watches   int
	watchEnds func(n int, res activities.WatchResult)
	// clock is the activities' clock: each watch runs on it in no time (watchInWorkflowTime).
	clock *virtualclock.Clock
}

// watchInWorkflowTime runs the real WatchStage in the workflow's time. The test environment moves its
// clock only while no activity runs, so a watch that waited on the wall clock would take its whole soak
// and let nothing else happen meanwhile. Instead each watch runs at once on a virtual clock starting at
// the workflow's now, and its result is delivered after the time it took, during which the workflow
// clock moves on (timers fire, h.at callbacks run, and a pause or an abort cancels the watch).
// Consequences for tests: the metrics script of a whole watch is consumed when the watch starts, and a
// signal a script sends arrives when the watch starts.
func (h *harness) watchInWorkflowTime() {
	var mu sync.Mutex
	var next activities.WatchInput
	var res activities.WatchResult
	var resErr error
	h.env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, args converter.EncodedValues) {
		if info.ActivityType.Name != ActivityWatchStage {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		next = activities.WatchInput{}
		if err := args.Get(&next); err != nil {
			h.t.Errorf("decoding the WatchStage input: %v", err)
		}
		h.watches++
	})
	h.env.OnActivity(ActivityWatchStage, mock.Anything, mock.Anything).AfterFn(func() time.Duration {
		mu.Lock()
		defer mu.Unlock()
		h.clock.Set(h.env.Now())
		before := h.clock.Waited()
		res, resErr = h.acts.WatchStage(context.Background(), next)
		return h.clock.Waited() - before
	}).Return(func(context.Context, activities.WatchInput) (activities.WatchResult, error) {
		mu.Lock()
		defer mu.Unlock()
		if h.watchEnds != nil {
			h.watchEnds(h.watches, res)
		}
		return res, resErr
	})
}

func newHarness(t *testing.T, s spec.Release) *harness {
	var suite testsuite.WorkflowTestSuite
	suite.SetLogger(log.NewStructuredLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: testLogLevel()}))))
	h := &harness{t: t, env: suite.NewTestWorkflowEnvironment(), spec: s,
		target: &fakeTarget{failures: map[string]error{}, hooks: map[string]func(context.Context) error{}}, metrics: &fakeMetrics{value: healthy},
		reportDir: t.TempDir()}
	RegisterWorkflows(h.env)
	h.acts = &activities.Activities{
		Targets:       providers.Registry[providers.Target]{"checkout-prod": h.target},
		Metrics:       providers.Registry[providers.Metrics]{"prometheus": h.metrics},
		Prechecks:     providers.Registry[providers.Checker]{},
		Flags:         providers.Registry[providers.Flags]{},
		Notifications: providers.Registry[*notify.Channel]{},
		Repositories:  providers.Registry[providers.Tagger]{},
		ReportDir:     h.reportDir,
	}
	h.clock = virtualclock.New(h.env.Now())
	h.acts.Clock = h.clock
	RegisterActivities(h.env, h.acts)
	h.watchInWorkflowTime()
	h.env.SetTestTimeout(30 * time.Second)
	h.start = h.env.Now()
	return h
}

// baseSpec is what a user writes at the least: service, version and target.
func baseSpec() spec.Release {
	return spec.Release{
		Service: "checkout", Version: "v2", PreviousVersion: "v1",
		Target: "checkout-prod",
	}
}

// at runs fn after d of workflow time.
func (h *harness) at(d time.Duration, fn func()) { h.env.RegisterDelayedCallback(fn, d) }

func (h *harness) signal(name string, req ControlRequest) { h.env.SignalWorkflow(name, req) }

// outcome is an update's answer; the test environment delivers it after the callback returns, so tests
// read it once the workflow has run.
type outcome struct {
	done bool
	resp ControlResponse
	err  error
}

// update sends an update; its outcome is filled in as the workflow handles it.
func (h *harness) update(name string, req ControlRequest) *outcome {
	o := &outcome{}
	h.updates++
	h.env.UpdateWorkflow(name, fmt.Sprintf("%s-%d", name, h.updates), &testsuite.TestUpdateCallback{
		OnReject: func(err error) { o.err, o.done = err, true },
		OnAccept: func() {},
		OnComplete: func(v any, err error) {
			o.done = true
			o.err = err
			if r, ok := v.(ControlResponse); ok {
				o.resp = r
			}
		},
	}, req)
	return o
}

// accepted asserts the update was accepted and returns its answer.
func (o *outcome) accepted(t *testing.T) ControlResponse {
	t.Helper()
	require.True(t, o.done, "update never answered")
	require.NoError(t, o.err)
	return o.resp
}

// rejected asserts the update was rejected with a message containing msg.
func (o *outcome) rejected(t *testing.T, msg string) {
	t.Helper()
	require.True(t, o.done, "update never answered")
	require.ErrorContains(t, o.err, msg)
}

func (h *harness) status() record.Status {
	v, err := h.env.QueryWorkflow(StatusQuery)
	require.NoError(h.t, err)
	var s record.Status
	require.NoError(h.t, v.Get(&s))
	return s
}

// run executes the workflow to its end and returns the result and error.
func (h *harness) run() (record.Result, error) {
	id := h.workflowID
	if id == "" {
		d := h.spec.WithDefaults()
		id = spec.WorkflowID(d.Service, d.Environment)
	}
	h.env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: id})
	if h.raw != nil {
		h.env.ExecuteWorkflow(ReleaseWorkflow, h.raw)
	} else {
		h.env.ExecuteWorkflow(ReleaseWorkflow, h.spec)
	}
	require.True(h.t, h.env.IsWorkflowCompleted())
	var res record.Result
	err := h.env.GetWorkflowError()
	if err == nil {
		require.NoError(h.t, h.env.GetWorkflowResult(&res))
		require.NotEqual(h.t, record.PhaseRolledBack, res.Phase, "a rolled-back release must close as a failed workflow")
		return res, nil
	}
	// A rolled-back release closes as a failed workflow carrying its record; every other failure is the
	// test's to inspect.
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) && appErr.Type() == ErrTypeRolledBack {
		require.True(h.t, appErr.NonRetryable(), "a rolled-back release must not be retried")
		require.NoError(h.t, appErr.Details(&res))
		require.Equal(h.t, record.PhaseRolledBack, res.Phase)
		return res, nil
	}
	return res, err
}

func (h *harness) elapsed() time.Duration { return h.env.Now().Sub(h.start) }

// decisionsOf returns the messages of decisions of a kind.
func decisionsOf(res record.Status, kind record.DecisionKind) []string {
	var out []string
	for _, d := range res.Decisions {
		if d.Kind == kind {
			out = append(out, d.Message)
		}
	}
	return out
}

var fullRelease = []string{"deploy v2", "health", "traffic 1", "traffic 5", "traffic 25", "traffic 50", "traffic 100", "promote"}

// testLogLevel is Warn unless SHEPHERD_TEST_LOG=debug asks for the workflow's own logs.
func testLogLevel() slog.Level {
	if os.Getenv("SHEPHERD_TEST_LOG") == "debug" {
		return slog.LevelDebug
	}
	return slog.LevelWarn
}
