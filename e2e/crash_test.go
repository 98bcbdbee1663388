package e2e

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/converter"

	"github.com/shepherd-release/shepherd/activities"
	"github.com/shepherd-release/shepherd/internal/cli"
	"github.com/shepherd-release/shepherd/internal/testenv"
	"github.com/shepherd-release/shepherd/record"
	"github.com/shepherd-release/shepherd/spec"
	"github.com/shepherd-release/shepherd/workflows"
)

// TestWorkerKilledMidSoak: SIGKILL the worker while stage 2 of 4 soaks; a new worker (same state
// directory) finishes the release from where it was, and every side effect happened exactly once.
func TestWorkerKilledMidSoak(t *testing.T) {
	const svc = "e2e-crash-soak"
	t.Parallel()
	e := newEnv(t, svc)
	id := spec.WorkflowID(svc, envName)
	log := filepath.Join(t.TempDir(), "release.log")
	state := t.TempDir()
	e.provide("targets", e2eTarget, execTarget(log))
	first := e.startWorker(state)
	e.terminateOnCleanup(t, id)

	f := writeJSON(t, "release.json", execRelease(svc,
		stage(25, 3*time.Second), stage(50, 3*time.Second), stage(75, 3*time.Second), stage(100, 3*time.Second)))
	wantExit(t, e.shepherdCLI("start", "-f", f), cli.ExitOK)
	e.waitStatus(svc, "soaking stage 2 at 50%", atStage(record.PhaseProgressing, 2, 50))

	first.kill(t)
	wantLines(t, log, "deploy v2", "health v2", "traffic 25", "traffic 50")

	second := e.startWorker(state)
	res := e.waitResult(svc, releaseTimeout)
	if res.Phase != record.PhaseSucceeded {
		t.Fatalf("result: %s", describe(res))
	}
	wantLines(t, log, "deploy v2", "health v2", "traffic 25", "traffic 50", "traffic 75", "traffic 100", "promote v2")

	h := e.keepHistory("crash-mid-soak", id)
	// The second worker took the release over: it ran the steps after the crash.
	if got := activityWorkers(h, "SetTraffic"); len(got) != 4 || got[0] != first.pid() || got[1] != first.pid() || got[2] != second.pid() || got[3] != second.pid() {
		t.Errorf("SetTraffic attempts ran on workers %v; want stages 1-2 on %d, 3-4 on %d", got, first.pid(), second.pid())
	}
}

// TestWorkerKilledMidActivity: SIGKILL the worker while a traffic command runs. The command dies with
// it (the exec target's Pdeathsig), Temporal retries the activity on the new worker once the heartbeat
// timeout passes, and the traffic line is written exactly once; steps that had completed are not redone.
func TestWorkerKilledMidActivity(t *testing.T) {
	const svc = "e2e-crash-activity"
	t.Parallel()
	e := newEnv(t, svc)
	id := spec.WorkflowID(svc, envName)
	dir := t.TempDir()
	log := filepath.Join(dir, "release.log")
	attempts := filepath.Join(dir, "attempts.log")
	state := t.TempDir()
	// Every traffic command first notes its attempt; the one for 50% then takes 3 s before it writes.
	e.provide("targets", e2eTarget, execTarget(log))["traffic"] = `echo "attempt {{.Percent}}" >> ` + shellQuote(attempts) + `; ` +
		`{{if eq .Percent 50}}sleep 3; {{end}}echo "traffic {{.Percent}}" >> ` + shellQuote(log)
	first := e.startWorker(state)
	e.terminateOnCleanup(t, id)

	r := execRelease(svc, stage(25, time.Second), stage(50, time.Second), stage(100, time.Second))
	wantExit(t, e.shepherdCLI("start", "-f", writeJSON(t, "release.json", r)), cli.ExitOK)

	eventually(t, phaseTimeout, "the 50% traffic command to start", func() (bool, string) {
		got := lines(t, attempts)
		return strings.Contains(strings.Join(got, "\n"), "attempt 50"), strings.Join(got, ", ")
	})
	first.kill(t)
	killedAt := time.Now()
	wantLines(t, log, "deploy v2", "health v2", "traffic 25")

	second := e.startWorker(state)
	res := e.waitResult(svc, releaseTimeout)
	if res.Phase != record.PhaseSucceeded {
		t.Fatalf("result: %s", describe(res))
	}
	t.Logf("release finished %s after the crash", time.Since(killedAt).Round(time.Second))
	wantLines(t, log, "deploy v2", "health v2", "traffic 25", "traffic 50", "traffic 100", "promote v2")
	// The interrupted command ran again in full; the others once.
	wantLines(t, attempts, "attempt 25", "attempt 50", "attempt 50", "attempt 100")

	h := e.keepHistory("crash-mid-activity", id)
	if got := activityWorkers(h, "SetTraffic"); len(got) != 3 || got[0] != first.pid() || got[1] != second.pid() || got[2] != second.pid() {
		t.Errorf("SetTraffic completed on workers %v; want 25%% on %d, 50%% and 100%% on %d", got, first.pid(), second.pid())
	}
	if n := countEvents(h, enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED, "SetTraffic"); n != 3 {
		t.Errorf("%d SetTraffic activities scheduled, want 3 (the retry is an attempt of the same activity)", n)
	}
}

// activityWorkers lists, for each completed activity of the type in order, the process ID of the
// worker that ran its last attempt (from the started event's identity, "<pid>@<host>@").
func activityWorkers(h *historypb.History, activityType string) []int {
	byScheduled := map[int64]bool{}
	started := map[int64]int{}
	var pids []int
	for _, e := range h.Events {
		switch e.GetEventType() {
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
			if e.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName() == activityType {
				byScheduled[e.GetEventId()] = true
			}
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED:
			a := e.GetActivityTaskStartedEventAttributes()
			pid, _ := strconv.Atoi(strings.SplitN(a.GetIdentity(), "@", 2)[0])
			started[a.GetScheduledEventId()] = pid
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
			if s := e.GetActivityTaskCompletedEventAttributes().GetScheduledEventId(); byScheduled[s] {
				pids = append(pids, started[s])
			}
		}
	}
	return pids
}

// countEvents counts events of a type; for activity-scheduled events, only those of activityType.
func countEvents(h *historypb.History, typ enumspb.EventType, activityType string) int {
	n := 0
	for _, e := range h.Events {
		if e.GetEventType() != typ {
			continue
		}
		if a := e.GetActivityTaskScheduledEventAttributes(); a != nil && a.GetActivityType().GetName() != activityType {
			continue
		}
		n++
	}
	return n
}

// TestWorkerKilledMidWatchResumes: SIGKILL the worker while a stage's WatchStage activity has measured
// a few rounds. Once the heartbeat timeout has passed, a new worker retries the watch from its last
// heartbeat: the stage's evidence goes on from where it was (same window start, rounds counted on), the
// soak already done is not soaked again, and the release promotes.
func TestWorkerKilledMidWatchResumes(t *testing.T) {
	const svc = "e2e-crash-watch"
	t.Parallel()
	e := newEnv(t, svc)
	id := spec.WorkflowID(svc, envName)
	log := filepath.Join(t.TempDir(), "release.log")
	state := t.TempDir()
	prom := testenv.StartPrometheus(t, testenv.PrometheusOptions{ScrapeInterval: time.Second})
	e.provide("targets", e2eTarget, execTarget(log))
	e.provide("metrics", "prom", map[string]any{"type": "prometheus", "address": prom})
	first := e.startWorker(state)
	e.terminateOnCleanup(t, id)

	limit := 0.01
	s := execRelease(svc, stage(100, 20*time.Second))
	s.Analysis = spec.Analysis{Interval: spec.Duration(time.Second), Source: "prom",
		Checks: []spec.Check{{Name: "error-rate", Query: "vector(0.001)", Max: &limit}}}
	wantExit(t, e.shepherdCLI("start", "-f", writeJSON(t, "release.json", s)), cli.ExitOK)
	var before activities.WatchProgress
	deadline := time.Now().Add(time.Minute)
	for before.Evidence.Rounds < 5 {
		if time.Now().After(deadline) {
			t.Fatalf("the watch reported no 5 rounds in its heartbeats within a minute (last: %+v)", before)
		}
		time.Sleep(500 * time.Millisecond)
		before = watchProgress(t, e, id)
	}
	// shepherd status shows the watch's live evidence, read from its heartbeat (no history event).
	if out := e.shepherdCLI("status", svc, "--env", envName); out.code != cli.ExitOK || !strings.Contains(out.stdout, "Live:     watching stage 1: ") ||
		!strings.Contains(out.stdout, "error-rate ") {
		t.Errorf("status shows no live watch line:\n%s", out)
	}
	first.kill(t)
	killed := time.Now()

	e.startWorker(state)
	res := e.waitResult(svc, 2*time.Minute)
	if res.Phase != record.PhaseSucceeded {
		t.Fatalf("result: %s", describe(res))
	}
	e.keepHistory("crash-mid-watch", id)
	var ev *record.StageEvidence
	for _, d := range res.Decisions {
		if d.Evidence != nil {
			ev = d.Evidence
		}
	}
	if ev == nil {
		t.Fatal("no stage evidence in the decision log")
	}
	t.Logf("heartbeat before the kill: %d rounds, %s soaked; after: %d rounds, %s after the kill", before.Evidence.Rounds,
		before.Soaked, ev.Rounds, time.Since(killed).Round(time.Second))
	if !ev.From.Equal(before.Evidence.From) {
		t.Errorf("the evidence window starts at %s after the crash, %s before: the watch started afresh", ev.From, before.Evidence.From)
	}
	if ev.Rounds <= before.Evidence.Rounds || ev.Rounds > 25 {
		t.Errorf("%d rounds in the end, %d before the crash: want the rounds counted on to about 20 (soak 20 s at 1 s)", ev.Rounds, before.Evidence.Rounds)
	}
}

// watchProgress reads the running WatchStage's heartbeat details, as the web UI's Pending Activities does.
func watchProgress(t *testing.T, e *tenv, workflowID string) activities.WatchProgress {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d, err := e.client.DescribeWorkflow(ctx, workflowID, "")
	if err != nil {
		t.Fatalf("describing %s: %v", workflowID, err)
	}
	var p activities.WatchProgress
	for _, a := range d.RawResponse.GetPendingActivities() {
		if a.GetActivityType().GetName() == workflows.ActivityWatchStage && a.GetHeartbeatDetails() != nil {
			if err := converter.GetDefaultDataConverter().FromPayloads(a.GetHeartbeatDetails(), &p); err != nil {
				t.Fatalf("decoding the watch's heartbeat: %v", err)
			}
		}
	}
	return p
}
