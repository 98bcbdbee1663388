//go:build faults

package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/converter"

	"github.com/shepherd-release/shepherd/activities"
	"github.com/shepherd-release/shepherd/fleet"
	"github.com/shepherd-release/shepherd/internal/cli"
	"github.com/shepherd-release/shepherd/internal/devstack"
	"github.com/shepherd-release/shepherd/record"
	"github.com/shepherd-release/shepherd/spec"
	"github.com/shepherd-release/shepherd/workflows"
)

// The fault suite: releases on the local target (a real fleet controller whose journal records every
// fenced write and its outcome) run by two `shepherd worker` processes on PostgreSQL + the Temporal
// server, while the server, the database, Prometheus, a worker or the target fails. Each test states the
// outcome it requires; the journal check (checkJournal) holds every one to the fencing contract: each
// step applied once, a retry reported as a repeat, and a late write refused, never applied.

// outage is how long the server or the database stays down: longer than the workers' heartbeat interval
// (2 s) and long enough for every client to see connections fail.
const outage = 5 * time.Second

// ---------------------------------------------------------------------------------------------------
// The server and the database (sequential: they stop the cluster every other test shares)

// TestFaultTemporalRestartMidSoak: the Temporal server goes down while stage 2 soaks and comes back. The
// durable timer fires after the restart, the release finishes, and no step ran twice: with nothing in
// flight during the outage, every write in the journal is applied exactly once, no repeat.
func TestFaultTemporalRestartMidSoak(t *testing.T) {
	const svc = "fault-server-soak"
	rig := newClusterRig(t, svc)
	rig.start(stage(25, time.Second), stage(50, 15*time.Second), stage(100, time.Second))
	rig.e.waitStatus(svc, "soaking stage 2 at 50%", atStage(record.PhaseProgressing, 2, 50))
	rig.e.temporalDown(outage)

	res := rig.e.waitResult(svc, releaseTimeout)
	if res.Phase != record.PhaseSucceeded {
		t.Fatalf("result: %s", describe(res))
	}
	j := rig.journal()
	rig.checkJournal(j)
	wantOnlyApplied(t, j, "deploy", "traffic 25", "traffic 50", "traffic 100", "promote")
	if st := rig.state(); st.Stable != "v2" || st.Canary != "" {
		t.Errorf("fleet after the release: stable %q canary %q, want stable v2 alone", st.Stable, st.Canary)
	}
}

// TestFaultTemporalRestartMidStep: the server goes down while the 50 % traffic shift is in flight (its
// request held at the target's door), and the request lands while the server is down. After the restart
// the step's completion either reaches the server, or the attempt has timed out and the retry carries the
// same fencing token: the journal shows the shift applied once, possibly followed by a repeat, never a
// second application; the release succeeds.
func TestFaultTemporalRestartMidStep(t *testing.T) {
	const svc = "fault-server-step"
	rig := newClusterRig(t, svc)
	rig.proxy.holdFirst(func(w proxiedWrite) bool { return w.Action == "traffic" && w.percent() == 50 })
	rig.start(stage(25, time.Second), stage(50, time.Second), stage(100, time.Second))
	held := rig.proxy.waitHeld(t)

	rig.e.cluster.StopTemporal()
	if late := rig.proxy.deliver(t); late.Status != http.StatusOK {
		t.Fatalf("the held traffic 50%% (seq %d), delivered with the server down: %d %s", held.Seq, late.Status, late.Answer)
	}
	time.Sleep(outage)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := rig.e.cluster.StartTemporal(ctx); err != nil {
		t.Fatal(err)
	}

	res := rig.e.waitResult(svc, releaseTimeout)
	if res.Phase != record.PhaseSucceeded {
		t.Fatalf("result: %s", describe(res))
	}
	j := rig.journal()
	rig.checkJournal(j)
	wantAppliedOnceMaybeRepeated(t, j, "traffic", held.Seq)
	wantOnlyApplied(t, j, "deploy", "traffic 25", "traffic 100", "promote")
}

// TestFaultPostgresRestartMidRelease: PostgreSQL goes down (fast shutdown) while the 50 % shift is in
// flight and comes back; the server reconnects and the release ends right, each step applied once (the
// shift possibly repeated under its own token).
func TestFaultPostgresRestartMidRelease(t *testing.T) {
	const svc = "fault-postgres"
	rig := newClusterRig(t, svc)
	rig.proxy.holdFirst(func(w proxiedWrite) bool { return w.Action == "traffic" && w.percent() == 50 })
	rig.start(stage(25, time.Second), stage(50, 5*time.Second), stage(100, time.Second))
	held := rig.proxy.waitHeld(t)

	rig.e.cluster.StopPostgres()
	if late := rig.proxy.deliver(t); late.Status != http.StatusOK {
		t.Fatalf("the held traffic 50%% (seq %d), delivered with the database down: %d %s", held.Seq, late.Status, late.Answer)
	}
	time.Sleep(outage)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := rig.e.cluster.StartPostgres(ctx); err != nil {
		t.Fatal(err)
	}

	res := rig.e.waitResult(svc, 3*releaseTimeout)
	if res.Phase != record.PhaseSucceeded {
		t.Fatalf("result: %s", describe(res))
	}
	j := rig.journal()
	rig.checkJournal(j)
	wantAppliedOnceMaybeRepeated(t, j, "traffic", held.Seq)
	wantOnlyApplied(t, j, "deploy", "traffic 25", "traffic 100", "promote")
}

// ---------------------------------------------------------------------------------------------------
// Prometheus, workers and the target (parallel)

// TestFaultPrometheusDown: Prometheus stops while stage 1 soaks with analysis on, and stays down for
// longer than the inconclusive limit (3 rounds of 1 s). The release pauses and holds at 50 %: nothing is
// promoted, neither while Prometheus is down nor after it is back, until a person resumes; then it
// measures afresh and completes.
func TestFaultPrometheusDown(t *testing.T) {
	const svc = "fault-prometheus"
	t.Parallel()
	e := sharedCluster(t).env(t, svc)
	bin, err := devstack.FindPrometheus()
	if err != nil {
		t.Fatal(err)
	}
	promDir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	prom, err := devstack.StartPrometheus(ctx, devstack.PrometheusOptions{Binary: bin, DataDir: promDir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { prom.Stop() })
	// The workers' metrics source "prom", declared before the rig starts them; Prometheus comes back on
	// the same port, so the address holds throughout.
	e.provide("metrics", "prom", map[string]any{"type": "prometheus", "address": prom.URL})
	rig := newFenceRigOn(t, e, svc)
	limit := 0.01
	rel := spec.Release{Service: svc, Version: "v2", PreviousVersion: "v1", Target: "fleet",
		Stages: []spec.Stage{stage(50, 8*time.Second), stage(100, 2*time.Second)},
		Analysis: spec.Analysis{Interval: spec.Duration(time.Second), InconclusiveLimit: 3, Source: "prom",
			Checks: []spec.Check{{Name: "error-rate", Query: "vector(0.001)", Max: &limit}}}}
	wantExit(t, rig.e.shepherdCLI("start", "-f", writeJSON(t, "release.json", rel)), cli.ExitOK)
	rig.e.waitStatus(svc, "soaking stage 1 at 50%", atStage(record.PhaseProgressing, 1, 50))

	prom.Stop()
	down := time.Now()
	st := rig.e.waitStatus(svc, "paused on inconclusive analysis", func(st record.Status) bool { return st.Phase == record.PhasePaused })
	why := decisionWith(st, "pausing for a human")
	t.Logf("paused %s after Prometheus stopped: %s", time.Since(down).Round(100*time.Millisecond), why)
	if !strings.Contains(why, "inconclusive") {
		t.Errorf("no decision says the release paused on inconclusive analysis; last decision: %+v", st.Decisions[len(st.Decisions)-1])
	}
	// Down for longer than the stage's soak: a release that went on regardless would have promoted by now.
	time.Sleep(10 * time.Second)
	holds := func(when string) {
		t.Helper()
		st, err := rig.e.status(svc)
		if err != nil {
			t.Fatal(err)
		}
		if st.Phase != record.PhasePaused || st.TrafficPercent != 50 {
			t.Fatalf("%s: %s; want Paused at 50%%", when, describe(st))
		}
		if fs := rig.state(); fs.Stable != "v1" || fs.Weight != 50 {
			t.Fatalf("%s: fleet stable %q weight %d; want v1 stable, canary at 50%%", when, fs.Stable, fs.Weight)
		}
	}
	holds("Prometheus down 10 s past the pause")

	port, _ := strconv.Atoi(strings.TrimPrefix(prom.URL, "http://127.0.0.1:"))
	prom, err = devstack.StartPrometheus(ctx, devstack.PrometheusOptions{Binary: bin, DataDir: promDir, Port: port})
	if err != nil {
		t.Fatalf("restarting Prometheus on port %d: %v", port, err)
	}
	waitPromQuery(t, prom.URL)
	time.Sleep(3 * time.Second) // three analysis intervals with Prometheus answering: the pause must hold
	holds("Prometheus back, nobody resumed")

	wantExit(t, rig.e.shepherdCLI("resume", svc, "--by", "oncall", "--reason", "Prometheus is back"), cli.ExitOK)
	res := rig.e.waitResult(svc, releaseTimeout)
	if res.Phase != record.PhaseSucceeded {
		t.Fatalf("result after resume: %s", describe(res))
	}
	rig.checkJournal(rig.journal())
	if fs := rig.state(); fs.Stable != "v2" {
		t.Errorf("fleet after the release: stable %q, want v2", fs.Stable)
	}
}

// TestFaultWorkerFrozenMidStep: the worker running the 25 % shift is frozen (SIGSTOP) with its request
// in flight, for longer than the heartbeat timeout. The step is retried on the other worker — not before
// the heartbeat timeout — and the release moves on to 50 %. The frozen worker is then resumed (SIGCONT)
// and its request lands: the controller refuses it as stale, traffic stays at 50 %, the resumed worker
// goes on living, and the release succeeds.
func TestFaultWorkerFrozenMidStep(t *testing.T) {
	const svc = "fault-freeze"
	t.Parallel()
	rig := newClusterRig(t, svc)
	rig.proxy.holdFirst(func(w proxiedWrite) bool { return w.Action == "traffic" && w.percent() == 25 })
	rig.start(stage(25, time.Second), stage(50, 15*time.Second), stage(100, time.Second))

	held := rig.proxy.waitHeld(t)
	frozen, other := rig.runner(workflows.ActivitySetTraffic)
	frozen.freeze(t)
	beat := rig.lastHeartbeat(workflows.ActivitySetTraffic)
	t.Logf("froze worker %d while it ran traffic 25%% (seq %d); its last heartbeat %s ago", frozen.pid(), held.Seq,
		time.Since(beat).Round(100*time.Millisecond))
	rig.e.waitStatus(svc, "soaking stage 2 at 50% after the retried 25% shift", atStage(record.PhaseProgressing, 2, 50))
	rig.wantHeartbeatTimeoutPassed(beat)

	frozen.thaw(t)
	late := rig.proxy.deliver(t)
	var refusal fleet.ErrorResponse
	_ = json.Unmarshal([]byte(late.Answer), &refusal)
	if late.Status != http.StatusConflict || refusal.Code != fleet.CodeStaleWrite {
		t.Fatalf("the frozen worker's traffic 25%% (seq %d), landing after it resumed: %d %s; want 409 %s", held.Seq,
			late.Status, late.Answer, fleet.CodeStaleWrite)
	}
	if st := rig.state(); st.Weight != 50 {
		t.Fatalf("the late traffic 25%% write changed the weight to %d%%, want 50%%", st.Weight)
	}
	res := rig.e.waitResult(svc, releaseTimeout)
	if res.Phase != record.PhaseSucceeded {
		t.Fatalf("result: %s", describe(res))
	}
	if !frozen.alive() {
		t.Errorf("the resumed worker exited: %v", frozen.err)
	}
	j := rig.journal()
	rig.checkJournal(j)
	rig.wantOutcomes(j, "traffic", held.Seq, fleet.OutcomeApplied, fleet.OutcomeRefused)
	rig.wantRetriedOn(held.Seq, other, frozen)
}

// TestFaultWorkerKilled: a worker is SIGKILLed at each point of a release — deploy, traffic shift,
// promote, a rollback step (its request held and landing after the worker died), and the approval wait.
// The other worker carries the release to its end; the journal shows each write applied once, a retry as
// a repeat, and a late write that would undo a newer step refused.
func TestFaultWorkerKilled(t *testing.T) {
	t.Parallel()
	steps := []struct {
		name, activity string
		hold           func(proxiedWrite) bool
		stages         []spec.Stage
		abort          bool
		want           record.Phase
		// outcomes of the held write's seq in the journal, in order.
		outcomes []fleet.Outcome
		// deliverAfter delivers the held write once the release has ended (else at once after the kill).
		deliverAfter bool
	}{
		{name: "deploy", activity: workflows.ActivityDeploy, hold: func(w proxiedWrite) bool { return w.Action == "deploy" },
			stages: []spec.Stage{stage(100, time.Second)}, want: record.PhaseSucceeded,
			outcomes: []fleet.Outcome{fleet.OutcomeApplied, fleet.OutcomeRepeat}},
		{name: "traffic", activity: workflows.ActivitySetTraffic, hold: func(w proxiedWrite) bool { return w.Action == "traffic" && w.percent() == 25 },
			stages: []spec.Stage{stage(25, time.Second), stage(100, time.Second)}, want: record.PhaseSucceeded,
			outcomes: []fleet.Outcome{fleet.OutcomeApplied, fleet.OutcomeRefused}, deliverAfter: true},
		{name: "promote", activity: workflows.ActivityPromote, hold: func(w proxiedWrite) bool { return w.Action == "promote" },
			stages: []spec.Stage{stage(100, time.Second)}, want: record.PhaseSucceeded,
			outcomes: []fleet.Outcome{fleet.OutcomeApplied, fleet.OutcomeRepeat}},
		{name: "rollback", activity: workflows.ActivityRollback, hold: func(w proxiedWrite) bool { return w.Action == "rollback" },
			stages: []spec.Stage{stage(25, 5*time.Minute), stage(100, time.Second)}, abort: true, want: record.PhaseRolledBack,
			outcomes: []fleet.Outcome{fleet.OutcomeApplied, fleet.OutcomeRepeat}},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			svc := "fault-kill-" + s.name
			rig := newClusterRig(t, svc)
			rig.proxy.holdFirst(s.hold)
			rig.start(s.stages...)
			if s.abort {
				rig.e.waitStatus(svc, "soaking stage 1", atStage(record.PhaseProgressing, 1, 25))
				wantExit(t, rig.e.shepherdCLI("abort", svc, "--by", "oncall", "--reason", "fault test"), cli.ExitOK)
			}
			held := rig.proxy.waitHeld(t)
			victim, survivor := rig.killRunner(s.activity)
			if !s.deliverAfter {
				rig.proxy.deliver(t)
			}
			res := rig.e.waitResult(svc, releaseTimeout)
			if res.Phase != s.want {
				t.Fatalf("result: %s; want %s", describe(res), s.want)
			}
			if s.deliverAfter {
				rig.proxy.deliver(t)
			}
			j := rig.journal()
			rig.checkJournal(j)
			rig.wantOutcomes(j, held.Action, held.Seq, s.outcomes...)
			rig.wantRetriedOn(held.Seq, survivor, victim)
			st := rig.state()
			if stable := map[record.Phase]string{record.PhaseSucceeded: "v2", record.PhaseRolledBack: "v1"}[s.want]; st.Stable != stable || st.Canary != "" {
				t.Errorf("fleet after the release: stable %q canary %q; want stable %s alone", st.Stable, st.Canary, stable)
			}
		})
	}
	t.Run("approval", func(t *testing.T) {
		t.Parallel()
		const svc = "fault-kill-approval"
		rig := newClusterRig(t, svc)
		rig.start(stage(25, time.Second), gated(100, time.Second))
		rig.e.waitStatus(svc, "the approval gate of stage 2", func(st record.Status) bool { return st.Phase == record.PhaseAwaitingApproval })
		victim, survivor := rig.lastWorkflowWorker()
		victim.kill(t)
		t.Logf("killed worker %d, which ran the release's last workflow task; worker %d remains", victim.pid(), survivor.pid())
		wantExit(t, rig.e.shepherdCLI("approve", svc, "--stage", "2", "--by", "oncall"), cli.ExitOK)
		res := rig.e.waitResult(svc, releaseTimeout)
		if res.Phase != record.PhaseSucceeded {
			t.Fatalf("result: %s", describe(res))
		}
		j := rig.journal()
		rig.checkJournal(j)
		wantOnlyApplied(t, j, "deploy", "traffic 25", "traffic 100", "promote")
		if w, _ := rig.lastWorkflowWorker(); w != survivor {
			t.Errorf("the release's last workflow task ran on worker %d, want the survivor %d", w.pid(), survivor.pid())
		}
	})
}

// TestFaultTargetFlapping: the 50 % shift meets a flapping target: its first attempt lands but the answer
// is lost (502), the second finds the target unavailable (503), the third gets through. The release
// succeeds; the journal shows the shift applied once and the third attempt reported as a repeat.
func TestFaultTargetFlapping(t *testing.T) {
	const svc = "fault-flapping"
	t.Parallel()
	rig := newClusterRig(t, svc)
	g := newGate(t, rig)
	g.setRule(func(w proxiedWrite, n int) gateAction {
		if w.Action != "traffic" || w.percent() != 50 {
			return forward
		}
		return map[int]gateAction{1: failAfter, 2: failBefore}[n] // then forward
	})
	rig.start(stage(25, time.Second), stage(50, time.Second), stage(100, time.Second))
	res := rig.e.waitResult(svc, releaseTimeout)
	if res.Phase != record.PhaseSucceeded {
		t.Fatalf("result: %s\ngate:\n  %s", describe(res), g.seen())
	}
	j := rig.journal()
	rig.checkJournal(j)
	seq := seqOf(t, j, "traffic", 50)
	rig.wantOutcomes(j, "traffic", seq, fleet.OutcomeApplied, fleet.OutcomeRepeat)
	if n := attemptsOf(rig, seq); n != 3 {
		t.Errorf("the 50%% shift completed on attempt %d, want 3\ngate:\n  %s", n, g.seen())
	}
}

// TestFaultTargetDownForGood: the target goes away while stage 1 soaks at 25 % (every command fails as a
// refused connection would, a retryable error). The shift to 100 % fails its three attempts, the rollback
// starts, and its first step (traffic back to stable) keeps failing: after RollbackStuckAfter the release
// parks in RollbackStuck, open, with nothing after the failing step run (the canary is not removed while
// it has traffic). When the target is back, retry finishes the rollback. (The exec target, so that its
// 30 s step timeout keeps the wait at RollbackStuckAfter; a local-target step may take 5 minutes, which
// doubles it.)
func TestFaultTargetDownForGood(t *testing.T) {
	const svc = "fault-target-down"
	t.Parallel()
	e := sharedCluster(t).env(t, svc)
	id := spec.WorkflowID(svc, envName)
	dir := t.TempDir()
	log, down := filepath.Join(dir, "release.log"), filepath.Join(dir, "down")
	// The workers' exec target "e2e", every command of which fails while the file down exists; declared
	// before the workers start.
	e.provide("targets", e2eTarget, execTarget(log))
	gone := "if [ -f " + shellQuote(down) + " ]; then echo 'connect: connection refused' >&2; exit 1; fi; "
	x := e.target()
	for _, step := range []string{"deploy", "health", "traffic", "promote", "rollback"} {
		x[step] = gone + x[step].(string)
	}
	e.startWorker(t.TempDir())
	e.startWorker(t.TempDir())
	e.terminateOnCleanup(t, id)
	r := execRelease(svc, stage(25, 10*time.Second), stage(100, time.Second))
	wantExit(t, e.shepherdCLI("start", "-f", writeJSON(t, "release.json", r)), cli.ExitOK)
	e.waitStatus(svc, "soaking stage 1 at 25%", atStage(record.PhaseProgressing, 1, 25))
	if err := os.WriteFile(down, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	e.waitStatus(svc, "rolling back", func(st record.Status) bool { return st.Phase == record.PhaseRollingBack })
	rollingBack := time.Now()

	var st record.Status
	eventually(t, workflows.RollbackStuckAfter+2*time.Minute, "RollbackStuck", func() (bool, string) {
		var err error
		if st, err = e.status(svc); err != nil {
			return false, err.Error()
		}
		return st.Phase == record.PhaseRollbackStuck, describe(st)
	})
	why := decisionWith(st, "failed")
	t.Logf("RollbackStuck %s after the rollback began: %s", time.Since(rollingBack).Round(time.Second), why)
	// Temporal schedules no retry that would start past the step's schedule-to-close limit, so the last
	// attempt can come up to one retry interval (30 s at most) before RollbackStuckAfter.
	if took, least := time.Since(rollingBack), workflows.RollbackStuckAfter-workflows.RollbackRetry.MaximumInterval-5*time.Second; took < least {
		t.Errorf("stuck after %s, before %s: a retryable failure must be retried for RollbackStuckAfter (%s)", took, least, workflows.RollbackStuckAfter)
	}
	if !strings.Contains(why, `rollback step "traffic to stable" failed`) {
		t.Errorf("no decision names the failing rollback step; last decision: %+v", st.Decisions[len(st.Decisions)-1])
	}
	if d := workflowStatus(t, e, id); d != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		t.Fatalf("a stuck release must stay open; workflow status %s", d)
	}
	wantLines(t, log, "deploy v2", "health v2", "traffic 25") // nothing after the failing step ran

	if err := os.Remove(down); err != nil {
		t.Fatal(err)
	}
	wantExit(t, e.shepherdCLI("retry", svc, "--by", "oncall", "--comment", "target back"), cli.ExitOK)
	res := e.waitResult(svc, releaseTimeout)
	if res.Phase != record.PhaseRolledBack {
		t.Fatalf("result after retry: %s", describe(res))
	}
	wantLines(t, log, "deploy v2", "health v2", "traffic 25", "traffic 0", "rollback v2")
}

// ---------------------------------------------------------------------------------------------------
// Checks

// wantOnlyApplied requires each listed write ("deploy", "traffic 25", "promote", …) to be in the journal
// exactly once, applied, with no repeat or refusal of it.
func wantOnlyApplied(t *testing.T, j fleet.Journal, writes ...string) {
	t.Helper()
	got := map[string][]fleet.Outcome{}
	for _, e := range j.Entries {
		key := e.Action
		if e.Percent != nil {
			key += " " + strconv.Itoa(*e.Percent)
		}
		got[key] = append(got[key], e.Outcome)
	}
	for _, w := range writes {
		if o := got[w]; len(o) != 1 || o[0] != fleet.OutcomeApplied {
			t.Errorf("journal: %s has outcomes %v, want applied once", w, o)
		}
	}
}

// wantAppliedOnceMaybeRepeated requires the write with seq to be applied once, followed by at most one
// idempotent repeat (a retry whose first attempt had landed).
func wantAppliedOnceMaybeRepeated(t *testing.T, j fleet.Journal, action string, seq int64) {
	t.Helper()
	var got []fleet.Outcome
	for _, e := range j.Entries {
		if e.Action == action && e.Seq == seq {
			got = append(got, e.Outcome)
		}
	}
	ok := len(got) >= 1 && got[0] == fleet.OutcomeApplied
	for _, o := range got[min(1, len(got)):] {
		ok = ok && o == fleet.OutcomeRepeat
	}
	if !ok || len(got) > 2 {
		t.Errorf("journal: %s seq %d has outcomes %v, want applied, then at most one repeat", action, seq, got)
	}
	t.Logf("%s seq %d: %v", action, seq, got)
}

// seqOf is the fencing seq of the write of action to percent.
func seqOf(t *testing.T, j fleet.Journal, action string, percent int) int64 {
	t.Helper()
	for _, e := range j.Entries {
		if e.Action == action && e.Percent != nil && *e.Percent == percent {
			return e.Seq
		}
	}
	t.Fatalf("no %s %d%% in the journal", action, percent)
	return 0
}

// attemptsOf is the attempt on which the activity with fencing seq completed.
func attemptsOf(r *fenceRig, seq int64) int32 {
	h := r.e.history(r.t, r.id, "")
	var scheduled int64
	for _, e := range h.Events {
		var in activities.StepInput
		if a := e.GetActivityTaskScheduledEventAttributes(); a != nil &&
			converter.GetDefaultDataConverter().FromPayloads(a.GetInput(), &in) == nil && in.Data.Seq == seq {
			scheduled = e.GetEventId()
		}
	}
	var attempt int32
	for _, e := range h.Events {
		if a := e.GetActivityTaskStartedEventAttributes(); a != nil && a.GetScheduledEventId() == scheduled {
			attempt = a.GetAttempt()
		}
	}
	return attempt
}

// lastWorkflowWorker returns the worker that ran the release's last workflow task, and the other one.
func (r *fenceRig) lastWorkflowWorker() (last, other *workerProc) {
	t := r.t
	t.Helper()
	h := r.e.history(t, r.id, "")
	pid := 0
	for _, e := range h.Events {
		if a := e.GetWorkflowTaskCompletedEventAttributes(); a != nil {
			pid, _ = strconv.Atoi(strings.SplitN(a.GetIdentity(), "@", 2)[0])
		}
	}
	for _, w := range r.workers {
		if w.pid() == pid {
			last = w
		} else {
			other = w
		}
	}
	if last == nil {
		t.Fatalf("the last workflow task ran on pid %d, neither worker", pid)
	}
	return last, other
}

// lastHeartbeat is when the server last heard a heartbeat of the pending activity of activityType (the
// start of its attempt if none yet).
func (r *fenceRig) lastHeartbeat(activityType string) time.Time {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d, err := r.e.client.DescribeWorkflow(ctx, r.id, "")
	if err != nil {
		r.t.Fatal(err)
	}
	for _, pa := range d.RawResponse.GetPendingActivities() {
		if pa.GetActivityType().GetName() == activityType {
			if hb := pa.GetLastHeartbeatTime(); hb != nil {
				return hb.AsTime()
			}
			return pa.GetLastStartedTime().AsTime()
		}
	}
	r.t.Fatalf("no pending %s activity", activityType)
	return time.Time{}
}

// wantHeartbeatTimeoutPassed requires that the heartbeat timeout (10 s) had passed since beat, the last
// heartbeat of a cut-off worker's step: another worker may retry the step only then.
func (r *fenceRig) wantHeartbeatTimeoutPassed(beat time.Time) {
	r.t.Helper()
	if since := time.Since(beat); since < 10*time.Second {
		r.t.Errorf("the release moved on %s after the step's last heartbeat, before the 10 s heartbeat timeout could retry it", since)
	}
}

// decisionWith is the message of the release's last decision that contains substr, or "".
func decisionWith(st record.Status, substr string) string {
	for i := len(st.Decisions) - 1; i >= 0; i-- {
		if strings.Contains(st.Decisions[i].Message, substr) {
			return st.Decisions[i].Message
		}
	}
	return ""
}

// workflowStatus is the workflow's execution status.
func workflowStatus(t *testing.T, e *tenv, id string) enumspb.WorkflowExecutionStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d, err := e.client.DescribeWorkflow(ctx, id, "")
	if err != nil {
		t.Fatal(err)
	}
	return d.RawResponse.GetWorkflowExecutionInfo().GetStatus()
}

// waitPromQuery waits until Prometheus answers a query.
func waitPromQuery(t *testing.T, base string) {
	t.Helper()
	eventually(t, time.Minute, "Prometheus to answer queries", func() (bool, string) {
		resp, err := http.Get(base + "/api/v1/query?query=" + url.QueryEscape("vector(1)"))
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})
}
