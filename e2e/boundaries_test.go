package e2e

import (
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	historypb "go.temporal.io/api/history/v1"

	"github.com/shepherd-release/shepherd/internal/cli"
	"github.com/shepherd-release/shepherd/internal/testenv"
	"github.com/shepherd-release/shepherd/record"
	"github.com/shepherd-release/shepherd/spec"
)

// Boundaries that Temporal's test environment cannot reproduce (it resolves a cancelled activity at once,
// whatever WaitForCancellation says), on a real server: an abort while a step is in flight, and a worker
// stopped while a step runs.

// slowCommand is a step that signals its start by creating started, then takes 1.5 s before its write
// lands (appending line to log): long enough for an abort to arrive while it runs, shorter than the time a
// cancellation takes to reach a running step (it travels in a heartbeat's answer).
func slowCommand(started, line, log string) string {
	return "touch " + shellQuote(started) + "; sleep 1.5; echo " + shellQuote(line) + " >> " + shellQuote(log)
}

// abortWhenStarted sends an abort as soon as the slow step has started.
func (e *tenv) abortWhenStarted(t *testing.T, svc, started string) {
	t.Helper()
	eventually(t, 30*time.Second, "the slow step to start", func() (bool, string) {
		_, err := os.Stat(started)
		return err == nil, "not started"
	})
	wantExit(t, e.shepherdCLI("abort", svc, "--by", "ci", "--reason", "abort mid-step"), cli.ExitOK)
}

// TestAbortDuringATrafficShiftWaitsForIt: the rollback starts only once the shift in flight has stopped,
// so its late write can't land after traffic went back to stable (25 % on a removed canary).
func TestAbortDuringATrafficShiftWaitsForIt(t *testing.T) {
	const svc = "e2e-abort-shift"
	t.Parallel()
	e, _, log := newReleaseEnv(t, svc)
	started := filepath.Join(t.TempDir(), "started")
	r := execRelease(svc, stage(10, time.Second), stage(25, time.Minute), stage(100, time.Second))
	e.target()["traffic"] = `{{if eq .Percent 25}}` + slowCommand(started, "traffic 25", log) +
		`{{else}}echo "traffic {{.Percent}}" >> ` + shellQuote(log) + `{{end}}`
	wantExit(t, e.shepherdCLI("start", "-f", writeJSON(t, "release.json", r)), cli.ExitOK)
	e.abortWhenStarted(t, svc, started)

	res := e.waitResult(svc, 60*time.Second)
	if res.Phase != record.PhaseRolledBack {
		t.Fatalf("result: %s", describe(res))
	}
	time.Sleep(2 * time.Second) // a write that was not waited for would land by now
	wantLines(t, log, "deploy v2", "health v2", "traffic 10", "traffic 25", "traffic 0", "rollback v2")
}

// TestAbortDuringDeployWaitsForIt: the canary's removal runs after the deploy in flight has stopped, so
// a deploy finishing late does not leave a canary behind a release that says RolledBack.
func TestAbortDuringDeployWaitsForIt(t *testing.T) {
	const svc = "e2e-abort-deploy"
	t.Parallel()
	e, _, log := newReleaseEnv(t, svc)
	started := filepath.Join(t.TempDir(), "started")
	r := execRelease(svc, stage(100, time.Second))
	e.target()["deploy"] = slowCommand(started, "deploy v2", log)
	wantExit(t, e.shepherdCLI("start", "-f", writeJSON(t, "release.json", r)), cli.ExitOK)
	e.abortWhenStarted(t, svc, started)

	res := e.waitResult(svc, 60*time.Second)
	if res.Phase != record.PhaseRolledBack {
		t.Fatalf("result: %s", describe(res))
	}
	time.Sleep(2 * time.Second)
	wantLines(t, log, "deploy v2", "rollback v2")
}

// TestWorkerStopLetsARunningStepFinish: SIGTERM while a deploy runs stops the worker's polling, but the
// deploy is not killed: it finishes on that worker (first attempt) before the worker exits, and the
// release goes on with another worker.
func TestWorkerStopLetsARunningStepFinish(t *testing.T) {
	const svc = "e2e-graceful-stop"
	t.Parallel()
	e := newEnv(t, svc)
	id := spec.WorkflowID(svc, envName)
	log := filepath.Join(t.TempDir(), "release.log")
	e.terminateOnCleanup(t, id)
	started := filepath.Join(t.TempDir(), "started")
	e.provide("targets", e2eTarget, execTarget(log))["deploy"] =
		"touch " + shellQuote(started) + "; sleep 3; echo 'deploy {{.Version}}' >> " + shellQuote(log)
	first := e.startWorker(t.TempDir())
	r := execRelease(svc, stage(100, time.Second))
	wantExit(t, e.shepherdCLI("start", "-f", writeJSON(t, "release.json", r)), cli.ExitOK)
	eventually(t, 30*time.Second, "the deploy to start", func() (bool, string) {
		_, err := os.Stat(started)
		return err == nil, "not started"
	})
	if err := first.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-first.done:
	case <-time.After(30 * time.Second):
		t.Fatal("the worker did not stop within 30 s of SIGTERM")
	}
	first.forget()
	// The deploy finished on the stopping worker before it exited.
	wantLines(t, log, "deploy v2")

	e.startWorker(t.TempDir())
	res := e.waitResult(svc, 60*time.Second)
	if res.Phase != record.PhaseSucceeded {
		t.Fatalf("result: %s", describe(res))
	}
	wantLines(t, log, "deploy v2", "health v2", "traffic 100", "promote v2")
	h := e.history(t, id, "")
	if pids := activityWorkers(h, "Deploy"); len(pids) != 1 || pids[0] != first.pid() {
		t.Errorf("Deploy completed on workers %v, want once on the stopping worker %d", pids, first.pid())
	}
	if n := lastAttempt(h, "Deploy"); n != 1 {
		t.Errorf("Deploy completed on attempt %d, want 1 (not killed and retried)", n)
	}
}

// lastAttempt is the attempt number of the first activityType activity's completed attempt.
func lastAttempt(h *historypb.History, activityType string) int32 {
	var scheduled int64
	for _, e := range h.Events {
		if a := e.GetActivityTaskScheduledEventAttributes(); a != nil && a.GetActivityType().GetName() == activityType {
			scheduled = e.GetEventId()
			break
		}
	}
	for _, e := range h.Events {
		if a := e.GetActivityTaskStartedEventAttributes(); a != nil && a.GetScheduledEventId() == scheduled {
			return a.GetAttempt()
		}
	}
	return 0
}

// TestHistoryStaysWithinItsEstimate: spec.HistoryEstimate, which the validator bounds so that no accepted
// release nears Temporal's history limits, is an upper bound of what a real release records. The release
// uses every building block the estimate counts: a pre-release check, analysis rounds against a real
// Prometheus, an approval gate, flags, two notification channels, a git tag.
func TestHistoryStaysWithinItsEstimate(t *testing.T) {
	const svc = "e2e-history-size"
	t.Parallel()
	e, id, _ := newReleaseEnv(t, svc)
	prom := testenv.StartPrometheus(t, testenv.PrometheusOptions{ScrapeInterval: time.Second})
	hook := &webhook{keys: map[string]bool{}}
	srv := httptest.NewServer(hook)
	defer srv.Close()
	repo := t.TempDir()
	for _, args := range [][]string{{"init", "-q"}, {"-c", "user.name=ci", "-c", "user.email=ci@example.invalid", "commit", "-q", "--allow-empty", "-m", "rc"}} {
		if out, err := exec.Command("git", append([]string{"-C", repo}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}

	s := execRelease(svc, gated(50, 6*time.Second), stage(100, 6*time.Second))
	limit := 0.01
	e.provide("metrics", "prom", map[string]any{"type": "prometheus", "address": prom})
	e.provide("prechecks", "ready", map[string]any{"type": "exec", "command": "echo ok", "expect": "ok"})
	e.provide("flags", "flagd", map[string]any{"type": "flagd-file", "path": filepath.Join(t.TempDir(), "flags.json")})
	e.provide("notifications", "first", map[string]any{"type": "webhook", "url": srv.URL})
	e.provide("notifications", "second", map[string]any{"type": "webhook", "url": srv.URL + "/second"})
	e.provide("repositories", "repo", map[string]any{"type": "git", "repo": repo})
	s.Analysis = spec.Analysis{Interval: spec.Duration(time.Second), Source: "prom",
		Checks: []spec.Check{{Name: "error-rate", Query: "vector(0.001)", Max: &limit}, {Name: "latency", Query: "vector(0.002)", Max: &limit}}}
	s.Prechecks = []spec.Precheck{{Name: "ready", Check: "ready"}}
	s.Flags = &spec.Flags{Names: []string{"new-checkout"}, Provider: "flagd"}
	s.Notifications = []string{"first", "second"}
	s.Tag = &spec.Tag{Repo: "repo"}
	wantExit(t, e.shepherdCLI("start", "-f", writeJSON(t, "release.json", s)), cli.ExitOK)
	e.waitStatus(svc, "the approval gate", func(st record.Status) bool { return st.Phase == record.PhaseAwaitingApproval })
	wantExit(t, e.shepherdCLI("approve", svc, "--stage", "1"), cli.ExitOK)
	res := e.waitResult(svc, 90*time.Second)
	if res.Phase != record.PhaseSucceeded {
		t.Fatalf("result: %s", describe(res))
	}

	d := s.WithDefaults()
	events := len(e.history(t, id, "").Events)
	est := d.HistoryEstimate()
	t.Logf("history: %d events; estimate %d", events, est)
	if events > est {
		t.Errorf("the history has %d events, more than the estimate %d: the validator's bound is not safe", events, est)
	}
	if events < est*6/10 {
		t.Errorf("the history has %d events, far below the estimate %d: the estimate is too loose to be useful", events, est)
	}
}

// TestDefaultReleaseHistoryIsSmallAtAnySoakLength: the default plan (five stages, two checks against a
// real Prometheus, default limits) records the same number of history events whether its stages soak 2 s
// or 8 s at a 1 s interval (2 or 8 measurements per stage): each stage is one watch activity, so a 15-minute
// or a 24-hour soak records the same count too. The count is at most 300.
func TestDefaultReleaseHistoryIsSmallAtAnySoakLength(t *testing.T) {
	t.Parallel()
	prom := testenv.StartPrometheus(t, testenv.PrometheusOptions{ScrapeInterval: time.Second})
	limit := 0.01
	events := map[time.Duration]int{}
	for _, soak := range []time.Duration{2 * time.Second, 8 * time.Second} {
		svc := fmt.Sprintf("e2e-history-soak-%ds", int(soak.Seconds()))
		e, id, _ := newReleaseEnv(t, svc)
		e.provide("metrics", "prom", map[string]any{"type": "prometheus", "address": prom})
		s := execRelease(svc)
		s.Stages = nil // the default five stages, with their soak shortened
		for _, p := range []int{1, 5, 25, 50, 100} {
			s.Stages = append(s.Stages, stage(p, soak))
		}
		s.Analysis = spec.Analysis{Interval: spec.Duration(time.Second), Source: "prom",
			Checks: []spec.Check{{Name: "error-rate", Query: "vector(0.001)", Max: &limit}, {Name: "latency", Query: "vector(0.002)", Max: &limit}}}
		wantExit(t, e.shepherdCLI("start", "-f", writeJSON(t, "release.json", s)), cli.ExitOK)
		res := e.waitResult(svc, 2*time.Minute)
		if res.Phase != record.PhaseSucceeded {
			t.Fatalf("soak %s: %s", soak, describe(res))
		}
		measured := 0
		for _, d := range res.Decisions {
			if d.Evidence != nil {
				measured += d.Evidence.Rounds
			}
		}
		events[soak] = len(e.history(t, id, "").Events)
		t.Logf("soak %s per stage: %d measurements of every check, %d history events", soak, measured, events[soak])
		if want := 5 * int(soak/time.Second); measured < want || measured > want+5 {
			t.Errorf("soak %s: %d rounds measured, want one per interval: %d (up to 5 more for late rounds)", soak, measured, want)
		}
	}
	if events[2*time.Second] != events[8*time.Second] {
		t.Errorf("history grew with the soak: %d events at 2 s, %d at 8 s", events[2*time.Second], events[8*time.Second])
	}
	if n := events[8*time.Second]; n > 300 {
		t.Errorf("the default release recorded %d history events, more than 300", n)
	}
}

// TestRollbackStuckRetryAndAcknowledgeWithTemporalCLI: a rollback step that fails for good (the exec
// command's exit code 79, a refusal a retry cannot fix) parks the release in RollbackStuck at once,
// open; abort is refused there; the Temporal CLI's `retry` update runs the step again once its cause is
// gone, and a second release is ended with the `acknowledge` signal, recorded with who and why.
func TestRollbackStuckRetryAndAcknowledgeWithTemporalCLI(t *testing.T) {
	const svc = "e2e-stuck"
	t.Parallel()
	e, id, log := newReleaseEnv(t, svc)
	block := filepath.Join(t.TempDir(), "block")
	if err := os.WriteFile(block, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	r := execRelease(svc, stage(10, 5*time.Minute), stage(100, time.Second))
	e.target()["rollback"] = "if [ -f " + shellQuote(block) + " ]; then echo 'cluster refuses' >&2; exit 79; fi; echo 'rollback {{.Version}}' >> " + shellQuote(log)
	start := func() {
		t.Helper()
		wantExit(t, e.shepherdCLI("start", "-f", writeJSON(t, "release.json", r)), cli.ExitOK)
		e.waitStatus(svc, "soaking stage 1", atStage(record.PhaseProgressing, 1, 10))
		wantExit(t, e.temporalCLI("workflow", "signal", "--workflow-id", id, "--name", "abort", "--input", `{"by":"ci","reason":"test"}`), 0)
		e.waitStatus(svc, "RollbackStuck", func(st record.Status) bool { return st.Phase == record.PhaseRollbackStuck })
	}

	start()
	res := e.temporalCLI("workflow", "update", "execute", "--name", "abort", "-w", id, "-i", `{"by":"ci"}`)
	if res.code == 0 || !strings.Contains(res.String(), "already rolling back, and stuck") {
		t.Errorf("abort while stuck: want a refusal, got %s", res)
	}
	if err := os.Remove(block); err != nil {
		t.Fatal(err)
	}
	wantExit(t, e.temporalCLI("workflow", "update", "execute", "--name", "retry", "-w", id, "-i", `{"by":"alice","comment":"cluster back"}`), 0)
	if got := e.waitResult(svc, 60*time.Second); got.Phase != record.PhaseRolledBack {
		t.Fatalf("after retry: %s", describe(got))
	}
	wantLines(t, log, "deploy v2", "health v2", "traffic 10", "traffic 0", "rollback v2")

	if err := os.WriteFile(block, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	r.Version, r.PreviousVersion = "v3", "v1"
	start()
	wantExit(t, e.temporalCLI("workflow", "signal", "--workflow-id", id, "--name", "acknowledge",
		"--input", `{"by":"alice","reason":"canary deleted by hand"}`), 0)
	got := e.waitResult(svc, 60*time.Second)
	if got.Phase != record.PhaseFailed || !strings.Contains(got.Reason, "acknowledged by alice: canary deleted by hand") {
		t.Fatalf("after acknowledge: %s", describe(got))
	}
}

// TestStartWarnsWhenNoWorkerPolls: a release started while no worker polls Shepherd's task queue says so
// at once (it would otherwise sit waiting, and its status queries fail); with a worker there is no warning.
func TestStartWarnsWhenNoWorkerPolls(t *testing.T) {
	const svc = "e2e-no-worker"
	t.Parallel()
	e := newEnv(t, svc)
	e.terminateOnCleanup(t, spec.WorkflowID(svc, envName))
	e.provide("targets", e2eTarget, execTarget(filepath.Join(t.TempDir(), "release.log")))
	f := writeJSON(t, "release.json", execRelease(svc, stage(100, time.Second)))
	r := e.shepherdCLI("start", "-f", f)
	wantExit(t, r, cli.ExitOK)
	if !strings.Contains(r.stderr, `no worker polls task queue "shepherd"`) {
		t.Errorf("no warning without a worker: %s", r)
	}
	e.startWorker(t.TempDir())
	if res := e.waitResult(svc, 60*time.Second); res.Phase != record.PhaseSucceeded {
		t.Fatalf("once a worker runs: %s", describe(res))
	}
	r = e.shepherdCLI("start", "-f", f)
	wantExit(t, r, cli.ExitOK)
	if strings.Contains(r.stderr, "no worker polls") {
		t.Errorf("a warning although a worker polls: %s", r)
	}
}
