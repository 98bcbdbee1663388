package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/shepherd-release/shepherd/internal/devstack"
	"github.com/shepherd-release/shepherd/internal/testenv"
	"github.com/shepherd-release/shepherd/record"
	"github.com/shepherd-release/shepherd/spec"
	"github.com/shepherd-release/shepherd/starter"
	"github.com/shepherd-release/shepherd/workflows"
)

// Bounds. Every wait in these tests polls against one of them; none sleeps for a fixed time.
const (
	pollEvery      = 100 * time.Millisecond
	workerReady    = 30 * time.Second
	workerStop     = 10 * time.Second
	cliTimeout     = 30 * time.Second
	phaseTimeout   = 30 * time.Second
	releaseTimeout = 90 * time.Second
	// env is the environment every release here runs in (the spec default).
	envName = spec.DefaultEnvironment
)

// ---------------------------------------------------------------------------------------------------
// Worker processes

// workerProc is a `shepherd worker` running as its own OS process.
type workerProc struct {
	cmd *exec.Cmd
	log string
	// addr is the host:port of its HTTP server (/metrics, /healthz, /readyz, the alert webhook).
	addr string
	done chan struct{}
	err  error // set when done is closed
}

var (
	workersMu sync.Mutex
	// workers holds every worker not yet stopped, so TestMain can end them whatever a test did.
	workers = map[*workerProc]bool{}
)

// startWorker starts `shepherd worker --log-format console --state-dir stateDir` on the test's
// namespace, waits until it polls, and stops it when the test ends, printing the tail of its log if the
// test failed.
func (e *tenv) startWorker(stateDir string) *workerProc {
	e.t.Helper()
	return e.startWorkerWith(stateDir, nil, nil)
}

// startWorkerWith is startWorker with the command run under wrap (e.g. ip netns exec NAME, which execs
// it: the process ID stays the worker's) and extra environment variables (later ones win).
func (e *tenv) startWorkerWith(stateDir string, wrap, env []string) *workerProc {
	t := e.t
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "worker-*.log")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := &workerProc{log: f.Name(), done: make(chan struct{})}
	*e.lazy = ""
	cfgFile := filepath.Join(t.TempDir(), "shepherd.json")
	if err := os.WriteFile(cfgFile, e.configJSON(t), 0o600); err != nil {
		t.Fatal(err)
	}
	// Reports go beside the ledger rather than into the home directory; the metrics endpoint gets a free
	// port rather than its fixed default, which parallel workers would fight over.
	port, err := devstack.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	w.addr = "127.0.0.1:" + strconv.Itoa(port)
	args := append(slices.Clone(wrap), e.shepherd, "worker", "--config", cfgFile, "--log-format", "console", "--state-dir", stateDir,
		"--report-dir", filepath.Join(stateDir, "reports"), "--metrics-addr", w.addr)
	w.cmd = exec.Command(args[0], args[1:]...)
	w.cmd.Env = e.childEnv(env...)
	w.cmd.Stdout, w.cmd.Stderr = f, f
	// Its own process group; and killed with the test binary, so no worker outlives a crashed test run.
	w.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := w.cmd.Start(); err != nil {
		t.Fatalf("starting the worker: %v", err)
	}
	workersMu.Lock()
	workers[w] = true
	workersMu.Unlock()
	go func() {
		w.err = w.cmd.Wait()
		close(w.done)
	}()
	t.Cleanup(func() {
		w.stop()
		if t.Failed() {
			t.Logf("--- tail of worker log %s (pid %d) ---\n%s", w.log, w.cmd.Process.Pid, fileTail(w.log, 60))
		}
	})

	deadline := time.Now().Add(workerReady)
	for {
		if b, _ := os.ReadFile(w.log); bytes.Contains(b, []byte("Worker polling")) {
			return w
		}
		select {
		case <-w.done:
			t.Fatalf("worker exited before polling: %v\n%s", w.err, fileTail(w.log, 40))
		case <-time.After(pollEvery):
		}
		if time.Now().After(deadline) {
			t.Fatalf("worker not polling after %s\n%s", workerReady, fileTail(w.log, 40))
		}
	}
}

// newReleaseEnv is how most tests begin: a namespace of their own with a worker polling it (started
// before the test's first command, so the test can still adjust the worker configuration: e.target()),
// whose target "e2e" appends every step to a side-effect log; the release's workflow ID (terminated at
// cleanup if still running) and the path of that log.
func newReleaseEnv(t *testing.T, service string) (e *tenv, workflowID, logPath string) {
	t.Helper()
	e = newEnv(t, service)
	workflowID = spec.WorkflowID(service, envName)
	logPath = filepath.Join(t.TempDir(), "release.log")
	e.provide("targets", e2eTarget, execTarget(logPath))
	*e.lazy = t.TempDir()
	e.terminateOnCleanup(t, workflowID)
	return e, workflowID, logPath
}

// ensureWorker starts the worker newReleaseEnv left for later, if it has not started yet.
func (e *tenv) ensureWorker() {
	if dir := *e.lazy; dir != "" {
		e.startWorker(dir)
	}
}

// workerConfig is a worker configuration (docs/operations.md): section → name → settings with "type".
type workerConfig map[string]map[string]map[string]any

func (e *tenv) configJSON(t *testing.T) []byte {
	doc := map[string]any{"approvals": e.approvals}
	for section, providers := range e.cfg {
		doc[section] = providers
	}
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// provide declares a provider of the test's workers (before they start) and returns its settings.
func (e *tenv) provide(section, name string, settings map[string]any) map[string]any {
	if e.cfg[section] == nil {
		e.cfg[section] = map[string]map[string]any{}
	}
	e.cfg[section][name] = settings
	return settings
}

// target is the settings of the test's exec target "e2e", to adjust its commands before the worker starts.
func (e *tenv) target() map[string]any { return e.cfg["targets"][e2eTarget] }

// pid is the worker's process ID; the SDK's worker identity is "<pid>@<host>@".
func (w *workerProc) pid() int { return w.cmd.Process.Pid }

// kill ends the worker with SIGKILL, as a crash would, and waits until it is gone.
func (w *workerProc) kill(t *testing.T) {
	t.Helper()
	_ = syscall.Kill(w.pid(), syscall.SIGKILL)
	select {
	case <-w.done:
	case <-time.After(workerStop):
		t.Fatalf("worker %d still running %s after SIGKILL", w.pid(), workerStop)
	}
	w.forget()
}

// stop ends the worker gracefully (SIGTERM), or with SIGKILL if it does not stop in time.
func (w *workerProc) stop() {
	select {
	case <-w.done:
		w.forget()
		return
	default:
	}
	_ = syscall.Kill(w.pid(), syscall.SIGTERM)
	select {
	case <-w.done:
	case <-time.After(workerStop):
		_ = syscall.Kill(w.pid(), syscall.SIGKILL)
		<-w.done
	}
	w.forget()
}

func (w *workerProc) forget() {
	workersMu.Lock()
	delete(workers, w)
	workersMu.Unlock()
}

func stopAllWorkers() {
	workersMu.Lock()
	all := make([]*workerProc, 0, len(workers))
	for w := range workers {
		all = append(all, w)
	}
	workersMu.Unlock()
	for _, w := range all {
		w.stop()
	}
}

// ---------------------------------------------------------------------------------------------------
// Command lines

// cliResult is what a command printed and how it exited.
type cliResult struct {
	args           []string
	stdout, stderr string
	code           int
}

func (r cliResult) String() string {
	return fmt.Sprintf("%s\nexit code %d\nstdout:\n%s\nstderr:\n%s", strings.Join(r.args, " "), r.code, r.stdout, r.stderr)
}

// run runs a command with the test's environment and a time limit.
func (e *tenv) run(bin string, args ...string) cliResult {
	t := e.t
	t.Helper()
	e.ensureWorker()
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = e.childEnv("SHEPHERD_USER=e2e")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := cliResult{args: append([]string{filepath.Base(bin)}, args...), stdout: stdout.String(), stderr: stderr.String()}
	var exitErr *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("timed out after %s: %s", cliTimeout, res)
	case errors.As(err, &exitErr):
		res.code = exitErr.ExitCode()
	case err != nil:
		t.Fatalf("running %s: %v", res.args, err)
	}
	return res
}

// shepherdCLI runs the shepherd CLI (TEMPORAL_ADDRESS and TEMPORAL_NAMESPACE point it at the test's
// namespace).
func (e *tenv) shepherdCLI(args ...string) cliResult {
	e.t.Helper()
	return e.run(e.shepherd, args...)
}

// temporalCLI runs the Temporal CLI with the arguments of docs/temporal-cli.md, plus --address and
// --namespace for the test's server and namespace.
func (e *tenv) temporalCLI(args ...string) cliResult {
	e.t.Helper()
	return e.run(e.temporal, append(args, "--address", e.addr, "--namespace", e.ns)...)
}

// wantExit fails the test unless the command exited with code.
func wantExit(t *testing.T, r cliResult, code int) {
	t.Helper()
	if r.code != code {
		t.Fatalf("want exit code %d, got %s", code, r)
	}
}

// ---------------------------------------------------------------------------------------------------
// Specs and the side-effect log

// e2eTarget is the name of the test's exec target in its worker configuration.
const e2eTarget = "e2e"

// execTarget is an exec target whose every command appends one line to logPath.
func execTarget(logPath string) map[string]any {
	q := shellQuote(logPath)
	return map[string]any{
		"type":     "exec",
		"deploy":   `echo "deploy {{.Version}}" >> ` + q,
		"health":   `echo "health {{.Version}}" >> ` + q,
		"traffic":  `echo "traffic {{.Percent}}" >> ` + q,
		"promote":  `echo "promote {{.Version}}" >> ` + q,
		"rollback": `echo "rollback {{.Version}}" >> ` + q,
		"timeout":  "30s",
	}
}

// execRelease is a release of service on the worker's target "e2e" (execTarget: every command appends
// one line to the side-effect log), with analysis off (there is nothing to measure).
func execRelease(service string, stages ...spec.Stage) spec.Release {
	return spec.Release{
		Service:         service,
		Version:         "v2",
		PreviousVersion: "v1",
		Target:          e2eTarget,
		Stages:          stages,
		Analysis:        spec.Analysis{Disabled: true},
	}
}

// stage is a stage without an approval gate.
func stage(percent int, soak time.Duration) spec.Stage {
	return spec.Stage{Percent: percent, Soak: spec.Duration(soak)}
}

// gated is a stage behind an approval gate.
func gated(percent int, soak time.Duration) spec.Stage {
	return spec.Stage{Percent: percent, Soak: spec.Duration(soak), Approval: true}
}

// writeJSON writes v as JSON into the test's temporary directory and returns the path. The shepherd CLI
// reads it as YAML-or-JSON; the Temporal CLI reads it with --input-file.
func writeJSON(t *testing.T, name string, v any) string {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// lines reads a side-effect log; a log that does not exist yet has no lines.
func lines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	s := strings.TrimRight(string(b), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// wantLines fails the test unless the log holds exactly want, in order.
func wantLines(t *testing.T, path string, want ...string) {
	t.Helper()
	if got := lines(t, path); !slices.Equal(got, want) {
		t.Fatalf("side-effect log %s:\n got  %q\n want %q", filepath.Base(path), got, want)
	}
}

// ---------------------------------------------------------------------------------------------------
// Waiting

// eventually polls cond until it holds or timeout passes; cond's string says what it last saw.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, saw := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s still waiting for %s; last saw: %s", timeout, what, saw)
		}
		time.Sleep(pollEvery)
	}
}

// status queries a release's status through the starter (the `status` query).
func (e *tenv) status(service string) (record.Status, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return starter.Status(ctx, e.client, service, envName, "")
}

// waitStatus polls the status query until cond holds.
func (e *tenv) waitStatus(service, what string, cond func(record.Status) bool) record.Status {
	t := e.t
	t.Helper()
	var last record.Status
	eventually(t, phaseTimeout, what, func() (bool, string) {
		st, err := e.status(service)
		if err != nil {
			return false, err.Error()
		}
		last = st
		return cond(st), describe(st)
	})
	return last
}

// atStage holds while the release is in phase at stage n with traffic at percent (for Progressing, the
// traffic shift has completed and the soak runs).
func atStage(phase record.Phase, n, percent int) func(record.Status) bool {
	return func(st record.Status) bool {
		if st.Phase != phase || st.Stage == nil || st.Stage.Number != n {
			return false
		}
		return phase != record.PhaseProgressing || st.TrafficPercent == percent
	}
}

func describe(st record.Status) string {
	s := fmt.Sprintf("phase %s, traffic %d%%", st.Phase, st.TrafficPercent)
	if st.Stage != nil {
		s += fmt.Sprintf(", stage %d/%d", st.Stage.Number, st.Stage.Of)
	}
	if st.Reason != "" {
		s += ", reason: " + st.Reason
	}
	return s
}

// waitResult waits for the release's latest run to end and returns its result.
func (e *tenv) waitResult(service string, timeout time.Duration) record.Result {
	t := e.t
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	res, err := starter.Wait(ctx, e.client, service, envName, "")
	if err != nil {
		t.Fatalf("waiting for the release of %s: %v", service, err)
	}
	return res
}

// terminateOnCleanup makes sure no release outlives its test, even a failed one (it would be picked up
// by the worker of a later run of the test in the same namespace).
func (e *tenv) terminateOnCleanup(t *testing.T, workflowIDs ...string) {
	t.Helper()
	t.Cleanup(func() {
		for _, id := range workflowIDs {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err := e.client.TerminateWorkflow(ctx, id, "", "end-to-end test cleanup")
			cancel()
			var nf *serviceerror.NotFound
			if err != nil && !errors.As(err, &nf) && !strings.Contains(err.Error(), "already completed") {
				t.Logf("terminating %s: %v", id, err)
			}
		}
	})
}

// ---------------------------------------------------------------------------------------------------
// Histories

// history fetches a run's full event history.
func (e *tenv) history(t *testing.T, workflowID, runID string) *historypb.History {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	it := e.client.GetWorkflowHistory(ctx, workflowID, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	h := &historypb.History{}
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			t.Fatalf("reading the history of %s: %v", workflowID, err)
		}
		h.Events = append(h.Events, e)
	}
	return h
}

// keepHistory fetches the ended release's history as a person would, with `temporal workflow show
// --output json`, checks that it replays against the workflow code as it is now, and with -record writes
// it unchanged to testdata/histories/<name>.json for workflows/replay_test.go.
func (e *tenv) keepHistory(name, workflowID string) *historypb.History {
	t := e.t
	t.Helper()
	r := e.temporalCLI("workflow", "show", "--workflow-id", workflowID, "--output", "json")
	wantExit(t, r, 0)
	h, err := client.HistoryFromJSON(strings.NewReader(r.stdout), client.HistoryJSONOptions{})
	if err != nil {
		t.Fatalf("temporal workflow show --output json: %v", err)
	}
	if n := len(h.Events); n == 0 || !isClosing(h.Events[n-1].GetEventType()) {
		t.Fatalf("history of %s does not end the workflow (%d events)", workflowID, n)
	}
	// The workflow checks its own ID, so replay must run under the original one (the replayer's default
	// is "ReplayId", which the workflow would refuse as the wrong ID).
	rp := sdkworker.NewWorkflowReplayer()
	workflows.RegisterWorkflows(rp)
	exec := workflow.Execution{ID: workflowID, RunID: h.Events[0].GetWorkflowExecutionStartedEventAttributes().GetOriginalExecutionRunId()}
	if err := rp.ReplayWorkflowHistoryWithOptions(quietLogger(), h, sdkworker.ReplayWorkflowHistoryOptions{OriginalExecution: exec}); err != nil {
		t.Fatalf("history of %s does not replay: %v\n%s", workflowID, err, eventList(h))
	}
	if !*recordHistories {
		return h
	}
	root, err := testenv.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "testdata", "histories")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name+".json")
	if err := os.WriteFile(p, []byte(r.stdout), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("recorded %s (%d events)", p, len(h.Events))
	return h
}

func isClosing(t enumspb.EventType) bool {
	switch t {
	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED,
		enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED,
		enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
		return true
	}
	return false
}

// eventList is a compact listing of a history, one event a line, for failure messages.
func eventList(h *historypb.History) string {
	var b strings.Builder
	for _, e := range h.Events {
		fmt.Fprintf(&b, "%4d %s", e.GetEventId(), strings.TrimPrefix(e.GetEventType().String(), "EVENT_TYPE_"))
		if a := e.GetActivityTaskScheduledEventAttributes(); a != nil {
			fmt.Fprintf(&b, " %s id=%s", a.GetActivityType().GetName(), a.GetActivityId())
		}
		if a := e.GetMarkerRecordedEventAttributes(); a != nil {
			fmt.Fprintf(&b, " %s", a.GetMarkerName())
		}
		if a := e.GetTimerStartedEventAttributes(); a != nil {
			fmt.Fprintf(&b, " id=%s", a.GetTimerId())
		}
		b.WriteByte('\n')
	}
	return b.String()
}
