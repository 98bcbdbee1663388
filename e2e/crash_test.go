package e2e

import (
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"

	"github.com/shepherd-release/shepherd/internal/cli"
	"github.com/shepherd-release/shepherd/record"
	"github.com/shepherd-release/shepherd/spec"
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
