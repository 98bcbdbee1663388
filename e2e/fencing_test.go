package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/converter"

	"github.com/shepherd-release/shepherd/activities"
	"github.com/shepherd-release/shepherd/fleet"
	"github.com/shepherd-release/shepherd/internal/cli"
	"github.com/shepherd-release/shepherd/internal/testenv"
	"github.com/shepherd-release/shepherd/providers/local"
	"github.com/shepherd-release/shepherd/record"
	"github.com/shepherd-release/shepherd/spec"
	"github.com/shepherd-release/shepherd/workflows"
)

// Fencing end to end: a release on the local target, a real fleet controller behind a test proxy that can
// hold one chosen request, and two `shepherd worker` processes with separate state directories. The
// worker running the held step is SIGKILLed; the step's retry must complete on the other worker, and
// when the held request is delivered late it must be an idempotent repeat or be refused as stale —
// never undo a newer step. The controller's journal is the record of what landed.

// TestFencingWorkerKilledMidDeploy: the deploy request lands after its worker died (held, then
// delivered); the retry on the other worker is reported as a repeat, and the release succeeds.
func TestFencingWorkerKilledMidDeploy(t *testing.T) {
	const svc = "e2e-fence-deploy"
	t.Parallel()
	rig := newFenceRig(t, svc)
	rig.proxy.holdFirst(func(w proxiedWrite) bool { return w.Action == "deploy" })
	rig.start(stage(50, time.Second), stage(100, time.Second))

	held := rig.proxy.waitHeld(t)
	victim, survivor := rig.killRunner(workflows.ActivityDeploy)
	late := rig.proxy.deliver(t) // lands now, with its worker dead: the change happens once, here
	if late.Status != http.StatusOK || !strings.Contains(late.Answer, `"outcome": "applied"`) {
		t.Fatalf("the held deploy (seq %d), delivered after its worker died: %d %s; want 200 applied", held.Seq, late.Status, late.Answer)
	}

	res := rig.e.waitResult(svc, releaseTimeout)
	if res.Phase != record.PhaseSucceeded {
		t.Fatalf("result: %s", describe(res))
	}
	j := rig.journal()
	rig.checkJournal(j)
	rig.wantOutcomes(j, "deploy", held.Seq, fleet.OutcomeApplied, fleet.OutcomeRepeat)
	rig.wantRetriedOn(held.Seq, survivor, victim)
	if st := rig.state(); st.Stable != "v2" || st.Canary != "" {
		t.Errorf("fleet after the release: stable %q canary %q, want stable v2 and no canary", st.Stable, st.Canary)
	}
}

// TestFencingWorkerKilledMidTrafficShift: the 25 % traffic shift hangs and its worker is killed; the
// retry on the other worker applies it, the release moves on to 50 %, and then the first attempt's
// request arrives. The controller refuses it as stale: traffic stays at 50 %.
func TestFencingWorkerKilledMidTrafficShift(t *testing.T) {
	const svc = "e2e-fence-traffic"
	t.Parallel()
	rig := newFenceRig(t, svc)
	rig.proxy.holdFirst(func(w proxiedWrite) bool { return w.Action == "traffic" && w.percent() == 25 })
	rig.start(stage(25, time.Second), stage(50, 10*time.Second), stage(100, time.Second))

	held := rig.proxy.waitHeld(t)
	victim, survivor := rig.killRunner(workflows.ActivitySetTraffic)
	rig.e.waitStatus(svc, "soaking stage 2 at 50% after the retried 25% shift", atStage(record.PhaseProgressing, 2, 50))

	late := rig.proxy.deliver(t)
	var refusal fleet.ErrorResponse
	_ = json.Unmarshal([]byte(late.Answer), &refusal)
	if late.Status != http.StatusConflict || refusal.Code != fleet.CodeStaleWrite {
		t.Fatalf("the late traffic 25%% (seq %d), delivered at 50%%: %d %s; want 409 %s", held.Seq, late.Status, late.Answer,
			fleet.CodeStaleWrite)
	}
	if st := rig.state(); st.Weight != 50 {
		t.Fatalf("the stale traffic 25%% write changed the weight to %d%%, want 50%%", st.Weight)
	}

	res := rig.e.waitResult(svc, releaseTimeout)
	if res.Phase != record.PhaseSucceeded {
		t.Fatalf("result: %s", describe(res))
	}
	j := rig.journal()
	rig.checkJournal(j)
	rig.wantOutcomes(j, "traffic", held.Seq, fleet.OutcomeApplied, fleet.OutcomeRefused)
	rig.wantRetriedOn(held.Seq, survivor, victim)
}

// TestFencingWorkerKilledMidRollback: the release is aborted mid-soak; the rollback's traffic-to-stable
// hangs and its worker is killed; the retry on the other worker restores traffic, the canary is removed,
// and the first attempt, arriving after that, is refused as stale. The release ends RolledBack.
func TestFencingWorkerKilledMidRollback(t *testing.T) {
	const svc = "e2e-fence-rollback"
	t.Parallel()
	rig := newFenceRig(t, svc)
	rig.proxy.holdFirst(func(w proxiedWrite) bool { return w.Action == "traffic" && w.Step == "rollback-traffic" })
	rig.start(stage(25, 5*time.Minute), stage(100, time.Second))
	rig.e.waitStatus(svc, "soaking stage 1 at 25%", atStage(record.PhaseProgressing, 1, 25))

	wantExit(t, rig.e.temporalCLI("workflow", "signal", "--workflow-id", rig.id, "--name", workflows.Abort,
		"--input", `{"by":"e2e","reason":"fencing test"}`), 0)
	held := rig.proxy.waitHeld(t)
	victim, survivor := rig.killRunner(workflows.ActivitySetTraffic)

	res := rig.e.waitResult(svc, releaseTimeout)
	if res.Phase != record.PhaseRolledBack {
		t.Fatalf("result: %s", describe(res))
	}
	late := rig.proxy.deliver(t)
	if late.Status != http.StatusConflict || !strings.Contains(late.Answer, fleet.CodeStaleWrite) {
		t.Fatalf("the late rollback traffic 0%% (seq %d), delivered after the canary was removed: %d %s; want 409 %s",
			held.Seq, late.Status, late.Answer, fleet.CodeStaleWrite)
	}
	j := rig.journal()
	rig.checkJournal(j)
	rig.wantOutcomes(j, "traffic", held.Seq, fleet.OutcomeApplied, fleet.OutcomeRefused)
	rig.wantRetriedOn(held.Seq, survivor, victim)
	if st := rig.state(); st.Stable != "v1" || st.Canary != "" || st.Weight != 0 {
		t.Errorf("fleet after the rollback: stable %q canary %q weight %d, want stable v1 alone", st.Stable, st.Canary, st.Weight)
	}
}

// ---------------------------------------------------------------------------------------------------
// The rig

// fenceRig is one fencing test's world: its namespace, a fleet controller, the proxy in front of it,
// and two workers.
type fenceRig struct {
	t       *testing.T
	e       *tenv
	svc, id string
	// admin is the controller itself (the test reads state and journal there); the workers' target
	// "fleet" goes through proxy.
	admin   *local.Target
	proxy   *holdingProxy
	workers []*workerProc
}

func newFenceRig(t *testing.T, svc string) *fenceRig {
	t.Helper()
	return newFenceRigOn(t, newEnv(t, svc), svc)
}

// newFenceRigOn builds the rig in the test environment e (whose namespace is svc).
func newFenceRigOn(t *testing.T, e *tenv, svc string) *fenceRig {
	t.Helper()
	r := &fenceRig{t: t, e: e, svc: svc, id: spec.WorkflowID(svc, envName)}
	r.admin = &local.Target{Controller: runFleetController(t, demoServiceBinary(t, e.dir))}
	r.proxy = newHoldingProxy(t, r.admin.Controller)
	e.provide("targets", "fleet", map[string]any{"type": "local", "controller": r.proxy.url})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := r.admin.Bootstrap(ctx, svc, "v1"); err != nil {
		t.Fatalf("bootstrapping %s v1 on the fleet: %v", svc, err)
	}
	r.workers = []*workerProc{e.startWorker(t.TempDir()), e.startWorker(t.TempDir())}
	e.terminateOnCleanup(t, r.id)
	return r
}

// start starts the release of v2 with the stages, analysis off.
func (r *fenceRig) start(stages ...spec.Stage) {
	r.t.Helper()
	rel := spec.Release{Service: r.svc, Version: "v2", PreviousVersion: "v1", Target: "fleet", Stages: stages,
		Analysis: spec.Analysis{Disabled: true}}
	wantExit(r.t, r.e.shepherdCLI("start", "-f", writeJSON(r.t, "release.json", rel)), cli.ExitOK)
}

// killRunner SIGKILLs the worker running the pending activity of activityType (from its last worker
// identity, "<pid>@<host>@") and returns it and the other worker.
func (r *fenceRig) killRunner(activityType string) (victim, survivor *workerProc) {
	r.t.Helper()
	victim, survivor = r.runner(activityType)
	victim.kill(r.t)
	r.t.Logf("killed worker %d while it ran %s; worker %d remains", victim.pid(), activityType, survivor.pid())
	return victim, survivor
}

// runner finds the worker running the pending activity of activityType and returns it and the other.
func (r *fenceRig) runner(activityType string) (victim, survivor *workerProc) {
	t := r.t
	t.Helper()
	var pid int
	eventually(t, phaseTimeout, "a worker running "+activityType, func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		d, err := r.e.client.DescribeWorkflow(ctx, r.id, "")
		if err != nil {
			return false, err.Error()
		}
		var saw []string
		for _, pa := range d.RawResponse.GetPendingActivities() {
			saw = append(saw, pa.GetActivityType().GetName()+" by "+pa.GetLastWorkerIdentity())
			if pa.GetActivityType().GetName() == activityType && pa.GetLastWorkerIdentity() != "" {
				pid, _ = strconv.Atoi(strings.SplitN(pa.GetLastWorkerIdentity(), "@", 2)[0])
			}
		}
		return pid != 0, fmt.Sprintf("pending activities %q", saw)
	})
	for _, w := range r.workers {
		if w.pid() == pid {
			victim = w
		} else {
			survivor = w
		}
	}
	if victim == nil {
		t.Fatalf("%s runs on pid %d, which is neither worker (%d, %d)", activityType, pid, r.workers[0].pid(), r.workers[1].pid())
	}
	return victim, survivor
}

// wantRetriedOn checks in the history that the activity with fencing seq ran a second attempt, on the
// survivor, and completed: the retry after the crash.
func (r *fenceRig) wantRetriedOn(seq int64, survivor, victim *workerProc) {
	t := r.t
	t.Helper()
	h := r.e.history(t, r.id, "")
	var scheduled int64
	for _, e := range h.Events {
		a := e.GetActivityTaskScheduledEventAttributes()
		if a == nil {
			continue
		}
		var in activities.StepInput
		if err := converter.GetDefaultDataConverter().FromPayloads(a.GetInput(), &in); err == nil && in.Data.Seq == seq {
			scheduled = e.GetEventId()
		}
	}
	if scheduled == 0 {
		t.Fatalf("no activity with seq %d in the history:\n%s", seq, eventList(h))
	}
	var pid int
	var attempt int32
	completed := false
	for _, e := range h.Events {
		if a := e.GetActivityTaskStartedEventAttributes(); a != nil && a.GetScheduledEventId() == scheduled {
			pid, _ = strconv.Atoi(strings.SplitN(a.GetIdentity(), "@", 2)[0])
			attempt = a.GetAttempt()
		}
		if a := e.GetActivityTaskCompletedEventAttributes(); a != nil && a.GetScheduledEventId() == scheduled {
			completed = true
		}
	}
	if !completed || pid != survivor.pid() || attempt < 2 {
		t.Errorf("the activity with seq %d: completed %v, last attempt %d on worker %d; want completed by a retry "+
			"(attempt ≥ 2) on the survivor %d after worker %d was killed", seq, completed, attempt, pid, survivor.pid(), victim.pid())
	}
}

func (r *fenceRig) journal() fleet.Journal {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	j, err := r.admin.Journal(ctx, r.svc)
	if err != nil {
		r.t.Fatalf("reading the controller's journal: %v", err)
	}
	return j
}

func (r *fenceRig) state() fleet.ServiceState {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := r.admin.State(ctx, r.svc)
	if err != nil {
		r.t.Fatalf("reading the fleet's state: %v", err)
	}
	return st
}

// checkJournal holds the release's fenced writes to the fencing contract: every seq was applied exactly
// once (others with it are repeats, refusals or failures), nothing older than the newest applied seq was
// applied or repeated after it, and only stale writes were refused. It also requires that fencing was
// on: every write of the release carried a seq.
func (r *fenceRig) checkJournal(j fleet.Journal) {
	t := r.t
	t.Helper()
	applied := map[int64]int{}
	var newest int64
	release := ""
	var lines []string
	for _, e := range j.Entries {
		line := fmt.Sprintf("%s %s seq %d (%s): %s", e.Action, e.Version, e.Seq, e.Step, e.Outcome)
		if e.Percent != nil {
			line = fmt.Sprintf("%s %s %d%% seq %d (%s): %s", e.Action, e.Version, *e.Percent, e.Seq, e.Step, e.Outcome)
		}
		lines = append(lines, line)
	}
	report := "\njournal:\n  " + strings.Join(lines, "\n  ") + "\nproxy:\n  " + strings.Join(r.proxy.seen(), "\n  ")
	for _, e := range j.Entries {
		if e.Action == "bootstrap" {
			continue
		}
		if !e.Fenced() {
			t.Fatalf("%s %s reached the controller without a fencing token (seq %d): the workflow does not set Seq%s",
				e.Action, e.Version, e.Seq, report)
		}
		if release == "" {
			release = e.ReleaseID
		} else if e.ReleaseID != release {
			t.Errorf("writes from two releases (%s, %s) in a one-release test%s", release, e.ReleaseID, report)
		}
		switch e.Outcome {
		case fleet.OutcomeApplied:
			applied[e.Seq]++
			if e.Seq < newest {
				t.Errorf("stale write applied: %s seq %d after seq %d%s", e.Action, e.Seq, newest, report)
			}
			newest = max(newest, e.Seq)
		case fleet.OutcomeRepeat:
			if e.Seq != newest {
				t.Errorf("repeat of seq %d after seq %d was applied%s", e.Seq, newest, report)
			}
		case fleet.OutcomeRefused:
			if e.Seq >= newest {
				t.Errorf("refused %s seq %d, which is not older than the newest applied seq %d%s", e.Action, e.Seq, newest, report)
			}
		case fleet.OutcomeFailed:
			t.Errorf("%s seq %d failed at the controller: %s%s", e.Action, e.Seq, e.Detail, report)
		}
	}
	for seq, n := range applied {
		if n != 1 {
			t.Errorf("seq %d was applied %d times, want once%s", seq, n, report)
		}
	}
	if len(applied) == 0 {
		t.Errorf("no fenced write was applied%s", report)
	}
	if !t.Failed() {
		t.Logf("journal of %s:\n  %s", r.svc, strings.Join(lines, "\n  "))
	}
}

// wantOutcomes checks the outcomes of every journal entry of action with seq, in order.
func (r *fenceRig) wantOutcomes(j fleet.Journal, action string, seq int64, want ...fleet.Outcome) {
	r.t.Helper()
	var got []fleet.Outcome
	for _, e := range j.Entries {
		if e.Action == action && e.Seq == seq {
			got = append(got, e.Outcome)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		r.t.Errorf("journal outcomes of %s seq %d: %v, want %v", action, seq, got, want)
	}
}

// ---------------------------------------------------------------------------------------------------
// The fleet and the proxy

var (
	demoServiceOnce sync.Once
	demoService     string
	demoServiceErr  error
)

// demoServiceBinary builds cmd/demo-service once per run, into dir (a stack's directory).
func demoServiceBinary(t *testing.T, dir string) string {
	t.Helper()
	demoServiceOnce.Do(func() {
		demoService = filepath.Join(dir, "demo-service")
		demoServiceErr = testenv.GoBuild(demoService, testenv.Module+"/cmd/demo-service")
	})
	if demoServiceErr != nil {
		t.Fatal(demoServiceErr)
	}
	return demoService
}

// runFleetController runs a fleet controller in the test process and returns its admin API's base URL.
func runFleetController(t *testing.T, serviceBinary string) string {
	t.Helper()
	ready := make(chan fleet.Endpoints, 1)
	done := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		done <- fleet.Run(ctx, fleet.Config{
			Listen: "127.0.0.1:0", ProxyListen: "127.0.0.1:0", ServiceBinary: serviceBinary, StateDir: t.TempDir(),
			LoadRPS: -1, Grace: time.Second, Logger: slog.New(slog.DiscardHandler),
			OnReady: func(e fleet.Endpoints) { ready <- e },
		})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("fleet controller: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("fleet controller did not stop within 30s")
		}
	})
	select {
	case e := <-ready:
		return e.Admin
	case err := <-done:
		t.Fatalf("fleet controller: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("fleet controller not ready within 30s")
	}
	return ""
}

// proxiedWrite is one request through the proxy and the controller's answer.
type proxiedWrite struct {
	Method, Path string
	// Action is the last path element of a POST (deploy, traffic, promote, rollback).
	Action  string
	Percent *int
	fleet.Fence
	Status int
	Answer string
	Late   bool
}

func (w proxiedWrite) percent() int {
	if w.Percent == nil {
		return -1
	}
	return *w.Percent
}

func (w proxiedWrite) String() string {
	s := w.Method + " " + w.Path
	if w.Method == http.MethodPost {
		s += fmt.Sprintf(" seq %d (%s)", w.Seq, w.Step)
		if w.Percent != nil {
			s += fmt.Sprintf(" %d%%", *w.Percent)
		}
	}
	if w.Late {
		s += " [held]"
	}
	if w.Status != 0 {
		s += fmt.Sprintf(" → %d", w.Status)
	}
	return s
}

// holdingProxy forwards every request to the controller, except the first write that its hold rule
// matches: that one it keeps until the test calls deliver, and then sends it whether or not its sender is
// still alive — as a stalled connection or a queueing proxy would.
type holdingProxy struct {
	url    string
	client *http.Client

	mu sync.Mutex
	// upstream is where requests go: the controller, or a fault-injecting hop in front of it (setUpstream).
	upstream string
	hold     func(proxiedWrite) bool
	log      []proxiedWrite
	held     chan proxiedWrite
	release  chan bool // true: deliver; false: drop (test cleanup)
	late     chan proxiedWrite
}

func newHoldingProxy(t *testing.T, upstream string) *holdingProxy {
	p := &holdingProxy{upstream: strings.TrimRight(upstream, "/"), client: &http.Client{Timeout: 90 * time.Second},
		held: make(chan proxiedWrite, 1), release: make(chan bool, 1), late: make(chan proxiedWrite, 1)}
	srv := httptest.NewServer(p)
	p.url = srv.URL
	t.Cleanup(srv.Close)
	t.Cleanup(func() { // runs before srv.Close: a request still held must not block it
		select {
		case p.release <- false:
		default:
		}
	})
	return p
}

// setUpstream sends every request from now on to upstream (a base URL) instead.
func (p *holdingProxy) setUpstream(upstream string) {
	p.mu.Lock()
	p.upstream = strings.TrimRight(upstream, "/")
	p.mu.Unlock()
}

// upstreamURL is where the proxy sends requests now.
func (p *holdingProxy) upstreamURL() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.upstream
}

// holdFirst makes the proxy hold the first write that match accepts.
func (p *holdingProxy) holdFirst(match func(proxiedWrite) bool) {
	p.mu.Lock()
	p.hold = match
	p.mu.Unlock()
}

// waitHeld waits until the proxy holds a write and returns it.
func (p *holdingProxy) waitHeld(t *testing.T) proxiedWrite {
	t.Helper()
	select {
	case w := <-p.held:
		t.Logf("proxy holds %s", w)
		return w
	case <-time.After(releaseTimeout):
		t.Fatalf("no request matched the hold rule within %s; the proxy saw:\n  %s", releaseTimeout, strings.Join(p.seen(), "\n  "))
	}
	return proxiedWrite{}
}

// deliver sends the held write to the controller now and returns the controller's answer.
func (p *holdingProxy) deliver(t *testing.T) proxiedWrite {
	t.Helper()
	p.release <- true
	select {
	case w := <-p.late:
		var a struct {
			Outcome fleet.Outcome `json:"outcome"`
			Error   string        `json:"error"`
		}
		_ = json.Unmarshal([]byte(w.Answer), &a)
		t.Logf("delivered late: %s: %s%s", w, a.Outcome, a.Error)
		return w
	case <-time.After(time.Minute):
		t.Fatal("the held write got no answer from the controller within a minute")
	}
	return proxiedWrite{}
}

func (p *holdingProxy) seen() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, w := range p.log {
		out = append(out, w.String())
	}
	return out
}

// readWrite is what a request to the fleet controller asks: for a POST, the action (the path's last
// element), the traffic percent and the fencing token.
func readWrite(r *http.Request, body []byte) proxiedWrite {
	w := proxiedWrite{Method: r.Method, Path: r.URL.Path}
	if r.Method == http.MethodPost {
		w.Action = r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]
		var b struct {
			Percent *int `json:"percent"`
			fleet.Fence
		}
		_ = json.Unmarshal(body, &b)
		w.Percent, w.Fence = b.Percent, b.Fence
	}
	return w
}

func (p *holdingProxy) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	w := readWrite(r, body)
	p.mu.Lock()
	if p.hold != nil && r.Method == http.MethodPost && p.hold(w) {
		p.hold, w.Late = nil, true
	}
	p.mu.Unlock()

	ctx := r.Context()
	if w.Late {
		p.held <- w
		if !<-p.release {
			return
		}
		ctx = context.Background() // its sender may be dead by now; it is delivered all the same
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, p.upstreamURL()+r.URL.RequestURI(), bytes.NewReader(body))
	if err == nil {
		req.Header.Set("Content-Type", r.Header.Get("Content-Type"))
		var resp *http.Response
		if resp, err = p.client.Do(req); err == nil {
			data, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			w.Status, w.Answer = resp.StatusCode, string(data)
		}
	}
	if err != nil {
		w.Status, w.Answer = http.StatusBadGateway, fmt.Sprintf(`{"error": %q}`, "test proxy: "+err.Error())
	}
	p.mu.Lock()
	p.log = append(p.log, w)
	p.mu.Unlock()
	if w.Late {
		p.late <- w
	}
	rw.Header().Set("Content-Type", "application/json")
	rw.WriteHeader(w.Status)
	_, _ = rw.Write([]byte(w.Answer))
}
