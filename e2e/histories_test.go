package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shepherd-release/shepherd/fleet"
	"github.com/shepherd-release/shepherd/internal/cli"
	"github.com/shepherd-release/shepherd/internal/testenv"
	"github.com/shepherd-release/shepherd/record"
	"github.com/shepherd-release/shepherd/spec"
)

// The releases here take the paths production runs that the other tests do not, and keep their histories
// for workflows/replay_test.go (`make histories`): analysis rounds on a real Prometheus that pass, fail,
// or find no data and pause for a human; a sign-off gate; feature flags; notifications; approval
// timeouts; a rollback step that fails and then succeeds; a rollback stuck on an error no retry can fix,
// released by `shepherd retry`. Soaks are seconds long and analysis measures every second.

// analysisInterval is the analysis interval of every release here: short, so a stage of a few seconds
// takes several measurements.
const analysisInterval = time.Second

// ---------------------------------------------------------------------------------------------------
// Metrics: a real Prometheus scraping series the test sets

// series serves gauges in the Prometheus text format; a test sets, adds and removes them while
// Prometheus scrapes it.
type series struct {
	mu   sync.Mutex
	vals map[string]float64 // by series, e.g. `shepherd_e2e_error_ratio{service="x",version="v2"}`
}

func (s *series) set(name string, v float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.vals[name] = v
}

func (s *series) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, 0, len(s.vals))
	for n := range s.vals {
		names = append(names, n)
	}
	slices.Sort(names)
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	for _, n := range names {
		fmt.Fprintf(w, "%s %g\n", n, s.vals[n])
	}
}

// startMetrics serves the test's series and starts a real Prometheus scraping them every second; it
// returns the series and Prometheus's base URL.
func startMetrics(t *testing.T) (*series, string) {
	t.Helper()
	s := &series{vals: map[string]float64{}}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return s, testenv.StartPrometheus(t, testenv.PrometheusOptions{Targets: []string{u.Host}})
}

// waitForData polls Prometheus until query returns a sample: a release started before the first scrape
// would measure nothing, which is another path (inconclusive).
func waitForData(t *testing.T, promURL, query string) {
	t.Helper()
	hc := &http.Client{Timeout: 5 * time.Second}
	eventually(t, phaseTimeout, "Prometheus to have "+query, func() (bool, string) {
		resp, err := hc.Get(promURL + "/api/v1/query?query=" + url.QueryEscape(query))
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		var out struct {
			Data struct {
				Result []json.RawMessage `json:"result"`
			} `json:"data"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			return false, err.Error()
		}
		return len(out.Data.Result) > 0, fmt.Sprintf("%d samples", len(out.Data.Result))
	})
}

// errorRatio is the series of a service version's error ratio, and errorRatioCheck the check on it.
func errorRatio(service, version string) string {
	return fmt.Sprintf(`shepherd_e2e_error_ratio{service=%q,version=%q}`, service, version)
}

func errorRatioCheck(max float64) spec.Check {
	return spec.Check{Name: "error-ratio", Query: `shepherd_e2e_error_ratio{service="{{.Service}}",version="{{.Version}}"}`, Max: &max}
}

// analysis measures the checks every analysisInterval on the Prometheus at promURL, which it declares as
// the metrics source "prom" of the test's workers.
func (e *tenv) analysis(promURL string, checks ...spec.Check) spec.Analysis {
	e.provide("metrics", "prom", map[string]any{"type": "prometheus", "address": promURL})
	return spec.Analysis{Interval: spec.Duration(analysisInterval), Source: "prom", Checks: checks}
}

// webhookChannel declares the notification channel "hooks" posting to url and returns its name.
func (e *tenv) webhookChannel(url string) string {
	e.provide("notifications", "hooks", map[string]any{"type": "webhook", "url": url})
	return "hooks"
}

// rounds counts the analysis rounds in which every check had the verdict, from each stage's evidence
// (the least count over the checks: a lower bound when checks differed in different rounds).
func rounds(st record.Status, v record.Verdict) int {
	n := 0
	for _, d := range st.Decisions {
		if d.Kind != record.KindAnalysis || d.Evidence == nil || len(d.Evidence.Checks) == 0 {
			continue
		}
		least := d.Evidence.Rounds
		for _, c := range d.Evidence.Checks {
			switch v {
			case record.Pass:
				least = min(least, c.Passed)
			case record.Fail:
				least = min(least, c.Failed)
			default:
				least = min(least, c.Inconclusive)
			}
		}
		n += least
	}
	return n
}

// ---------------------------------------------------------------------------------------------------
// Releases

// TestAnalysisPassesWithSignoffFlagsNotifications: a release behind a QA sign-off (approve without the
// role is refused, with it accepted), with a feature flag in a flagd file and webhook notifications,
// soaks two stages while analysis measures a real series on a real Prometheus every second, and is
// promoted once every round passed.
func TestAnalysisPassesWithSignoffFlagsNotifications(t *testing.T) {
	const svc = "e2e-analysis-pass"
	t.Parallel()
	e, id, log := newReleaseEnv(t, svc)
	metrics, prom := startMetrics(t)
	metrics.set(errorRatio(svc, "v2"), 0.001)
	waitForData(t, prom, errorRatio(svc, "v2"))
	hook := &webhook{keys: map[string]bool{}}
	hooks := httptest.NewServer(hook)
	defer hooks.Close()

	flagFile := filepath.Join(t.TempDir(), "flags.json")
	s := execRelease(svc, stage(50, 3*time.Second), stage(100, 3*time.Second))
	s.Analysis = e.analysis(prom, errorRatioCheck(0.05))
	e.provide("prechecks", "build-green", map[string]any{"type": "exec", "command": "echo green", "expect": "green"})
	e.provide("flags", "flagd", map[string]any{"type": "flagd-file", "path": flagFile})
	s.Prechecks = []spec.Precheck{
		{Name: "build-green", Check: "build-green"},
		{Name: "qa", Signoff: &spec.Signoff{Role: "qa"}},
	}
	s.Flags = &spec.Flags{Names: []string{"new-checkout"}, Provider: "flagd"}
	s.Notifications = []string{e.webhookChannel(hooks.URL)}
	wantExit(t, e.shepherdCLI("start", "-f", writeJSON(t, "release.json", s)), cli.ExitOK)

	e.waitStatus(svc, "the sign-off gate", func(st record.Status) bool { return st.Phase == record.PhaseAwaitingApproval })
	wantLines(t, log) // nothing deployed before the sign-off
	r := e.shepherdCLI("approve", svc, "--by", "dev")
	wantExit(t, r, cli.ExitRejected)
	if want := `waits for sign-off by role "qa"`; !strings.Contains(r.stderr, want) {
		t.Errorf("approve without the role: want %q in\n%s", want, r)
	}
	wantExit(t, e.shepherdCLI("approve", svc, "--by", "qa-lead", "--role", "qa", "--comment", "regression suite green"), cli.ExitOK)

	res := e.waitResult(svc, releaseTimeout)
	if res.Phase != record.PhaseSucceeded {
		t.Fatalf("result: %s", describe(res))
	}
	wantLines(t, log, "deploy v2", "health v2", "traffic 50", "traffic 100", "promote v2")
	if !hasDecision(res, record.KindApproval, "qa-lead", `sign-off "qa" given by qa-lead (unverified) as qa`) {
		t.Errorf("no sign-off decision by qa-lead: %s", demoDecisions(res))
	}
	// Three 1 s rounds in each 3 s stage, at least; every one passed.
	if n := rounds(res, record.Pass); n < 4 {
		t.Errorf("%d passing rounds, want several per stage:\n%s", n, demoDecisions(res))
	}
	// A scrape that times out on a busy machine makes a round inconclusive, which is not this test's
	// concern; a failed round would be.
	if n := rounds(res, record.Fail); n != 0 {
		t.Errorf("%d failed rounds, want none:\n%s", n, demoDecisions(res))
	}
	if v, _ := flagState(t, flagFile, "new-checkout"); v != "on" {
		t.Errorf("after promotion the flag's default variant is %q, want on", v)
	}
	eventually(t, phaseTimeout, "the notifications", func() (bool, string) {
		ok := hook.count("started") == 1 && hook.count("approvalNeeded") == 1 && hook.count("stageEntered") == 2 &&
			hook.count("succeeded") == 1
		hook.mu.Lock()
		defer hook.mu.Unlock()
		return ok, fmt.Sprint(hook.events)
	})
	e.keepHistory("analysis-pass", id)
}

// TestAnalysisInconclusivePausesThenResumes: the check's series does not exist yet, so every round is
// inconclusive; at the limit the release pauses for a human with traffic held. Once the series exists,
// `shepherd resume` continues the soak, the check passes and the release is promoted.
func TestAnalysisInconclusivePausesThenResumes(t *testing.T) {
	const svc = "e2e-analysis-inconclusive"
	t.Parallel()
	e, id, log := newReleaseEnv(t, svc)
	metrics, prom := startMetrics(t)

	s := execRelease(svc, stage(50, 3*time.Second), stage(100, 2*time.Second))
	s.Analysis = e.analysis(prom, errorRatioCheck(0.05))
	s.Analysis.InconclusiveLimit = 2
	wantExit(t, e.shepherdCLI("start", "-f", writeJSON(t, "release.json", s)), cli.ExitOK)

	paused := e.waitStatus(svc, "the pause on inconclusive analysis", func(st record.Status) bool { return st.Phase == record.PhasePaused })
	if paused.Stage == nil || paused.Stage.Number != 1 || paused.TrafficPercent != 50 {
		t.Fatalf("paused at %s, want stage 1 at 50%%", describe(paused))
	}
	if !hasDecision(paused, record.KindAnalysis, "shepherd", "pausing for a human: analysis inconclusive: error-ratio inconclusive 2 time(s) in a row") {
		t.Errorf("no pause decision naming the inconclusive check:\n%s", demoDecisions(paused))
	}
	// A paused release stays paused: wait a few analysis intervals and look again.
	time.Sleep(3 * analysisInterval)
	if st, err := e.status(svc); err != nil || st.Phase != record.PhasePaused {
		t.Fatalf("the pause did not hold: %s (%v)", describe(st), err)
	}
	wantLines(t, log, "deploy v2", "health v2", "traffic 50")

	metrics.set(errorRatio(svc, "v2"), 0.001)
	waitForData(t, prom, errorRatio(svc, "v2"))
	r := e.shepherdCLI("resume", svc, "--by", "oncall", "--comment", "the exporter is deployed now")
	wantExit(t, r, cli.ExitOK)

	res := e.waitResult(svc, releaseTimeout)
	if res.Phase != record.PhaseSucceeded {
		t.Fatalf("result: %s", describe(res))
	}
	if !hasDecision(res, record.KindControl, "oncall", "resume by oncall") {
		t.Errorf("no resume decision by oncall:\n%s", demoDecisions(res))
	}
	if rounds(res, record.Pass) == 0 {
		t.Errorf("no passing round after the resume:\n%s", demoDecisions(res))
	}
	wantLines(t, log, "deploy v2", "health v2", "traffic 50", "traffic 100", "promote v2")
	e.keepHistory("analysis-inconclusive-resume", id)
}

// TestAnalysisFailureRollsBackThroughAFailingStep: the canary's error ratio breaks its check at the
// first round, so the release rolls back; the rollback's "remove canary" command fails on its first
// attempt (the service's API is briefly unavailable) and succeeds on the retry, and the release ends
// RolledBack.
func TestAnalysisFailureRollsBackThroughAFailingStep(t *testing.T) {
	const svc = "e2e-analysis-failure"
	t.Parallel()
	e, id, log := newReleaseEnv(t, svc)
	metrics, prom := startMetrics(t)
	metrics.set(errorRatio(svc, "v2"), 0.3)
	waitForData(t, prom, errorRatio(svc, "v2"))
	hook := &webhook{keys: map[string]bool{}}
	hooks := httptest.NewServer(hook)
	defer hooks.Close()

	counter := filepath.Join(t.TempDir(), "rollback-attempts")
	s := execRelease(svc, stage(25, 5*time.Second), stage(100, 5*time.Second))
	s.Analysis = e.analysis(prom, errorRatioCheck(0.05))
	s.Notifications = []string{e.webhookChannel(hooks.URL)}
	// Counts its attempts in a file; the first one fails as an unavailable API would.
	e.target()["rollback"] = `n=$(( $(cat ` + shellQuote(counter) + ` 2>/dev/null || echo 0) + 1 )); echo $n > ` + shellQuote(counter) + `; ` +
		`if [ $n -eq 1 ]; then echo "canary API unavailable" >&2; exit 1; fi; echo "rollback {{.Version}}" >> ` + shellQuote(log)
	wantExit(t, e.shepherdCLI("start", "-f", writeJSON(t, "release.json", s)), cli.ExitOK)

	res := e.waitResult(svc, releaseTimeout)
	if res.Phase != record.PhaseRolledBack || !strings.Contains(res.Reason, "analysis failed: error-ratio failed 1 time(s) in a row (0.3 > max 0.05)") {
		t.Fatalf("result: %s", describe(res))
	}
	wantLines(t, log, "deploy v2", "health v2", "traffic 25", "traffic 0", "rollback v2")
	wantLines(t, counter, "2")
	if !hasDecision(res, record.KindRollback, "", `rollback step "remove canary" done`) {
		t.Errorf("no decision that the canary was removed:\n%s", demoDecisions(res))
	}
	eventually(t, phaseTimeout, "the analysisFailed and rolledBack notifications", func() (bool, string) {
		return hook.count("analysisFailed") == 1 && hook.count("rolledBack") == 1,
			fmt.Sprintf("analysisFailed %d, rolledBack %d", hook.count("analysisFailed"), hook.count("rolledBack"))
	})
	h := e.keepHistory("analysis-failure", id)
	// The failed attempt is in the history as the retried activity's attempt count and last failure.
	var retried bool
	for _, ev := range h.Events {
		if a := ev.GetActivityTaskStartedEventAttributes(); a != nil && a.GetAttempt() == 2 &&
			strings.Contains(a.GetLastFailure().GetMessage(), "canary API unavailable") {
			retried = true
		}
	}
	if !retried {
		t.Errorf("no activity started for its second attempt after the rollback command failed:\n%s", eventList(h))
	}
}

// TestApprovalTimeouts: stage 1's gate times out with onApprovalTimeout proceed, so the release goes on;
// stage 2's times out with abort, so it rolls back. Nobody approves anything.
func TestApprovalTimeouts(t *testing.T) {
	const svc = "e2e-approval-timeout"
	t.Parallel()
	e, id, log := newReleaseEnv(t, svc)

	first, second := gated(50, time.Second), gated(100, time.Second)
	first.ApprovalTimeout, first.OnApprovalTimeout = spec.Duration(time.Second), spec.OnTimeoutProceed
	second.ApprovalTimeout, second.OnApprovalTimeout = spec.Duration(2*time.Second), spec.OnTimeoutAbort
	wantExit(t, e.shepherdCLI("start", "-f", writeJSON(t, "release.json", execRelease(svc, first, second))), cli.ExitOK)

	res := e.waitResult(svc, releaseTimeout)
	if res.Phase != record.PhaseRolledBack || res.Reason != "no approval for stage 2 within 2s (onApprovalTimeout: abort)" {
		t.Fatalf("result: %s", describe(res))
	}
	if !hasDecision(res, record.KindApproval, "shepherd", "no approval for stage 1 within 1s; proceeding as configured") {
		t.Errorf("no decision that stage 1 proceeded on its timeout:\n%s", demoDecisions(res))
	}
	wantLines(t, log, "deploy v2", "health v2", "traffic 50", "traffic 0", "rollback v2")
	e.keepHistory("approval-timeout", id)
}

// TestRollbackStuckThenRetried: the local target's controller refuses to remove the canary with a 409,
// an answer a retry would only repeat, so the rollback parks in RollbackStuck at once (traffic already
// back on stable), alerts, and waits. Once the cause is fixed, `shepherd retry` runs the step again and
// the release ends RolledBack.
func TestRollbackStuckThenRetried(t *testing.T) {
	const svc = "e2e-rollback-stuck"
	t.Parallel()
	e, id, _ := newReleaseEnv(t, svc)
	ctl := &fakeController{service: svc, stable: "v1", refuseRollback: true}
	ctlSrv := httptest.NewServer(ctl)
	defer ctlSrv.Close()
	hook := &webhook{keys: map[string]bool{}}
	hooks := httptest.NewServer(hook)
	defer hooks.Close()

	e.provide("targets", "fleet", map[string]any{"type": "local", "controller": ctlSrv.URL})
	s := spec.Release{
		Service: svc, Version: "v2", PreviousVersion: "v1",
		Target:        "fleet",
		Stages:        []spec.Stage{stage(50, 5*time.Minute), stage(100, time.Second)},
		Analysis:      spec.Analysis{Disabled: true},
		Notifications: []string{e.webhookChannel(hooks.URL)},
	}
	wantExit(t, e.shepherdCLI("start", "-f", writeJSON(t, "release.json", s)), cli.ExitOK)
	e.waitStatus(svc, "soaking stage 1 at 50%", atStage(record.PhaseProgressing, 1, 50))
	wantExit(t, e.shepherdCLI("abort", svc, "--by", "ci", "--reason", "wrong build"), cli.ExitOK)

	stuck := e.waitStatus(svc, "RollbackStuck", func(st record.Status) bool { return st.Phase == record.PhaseRollbackStuck })
	if stuck.TrafficPercent != 0 || !strings.Contains(stuck.Decisions[len(stuck.Decisions)-1].Message, "canary is pinned by an incident") {
		t.Errorf("stuck at %s; want traffic 0 and the controller's refusal in the log:\n%s", describe(stuck), demoDecisions(stuck))
	}
	if got := ctl.calls(); !slices.Equal(got, []string{"deploy", "traffic 50", "traffic 0", "rollback"}) {
		t.Errorf("controller calls %q: want one refused rollback, not retried", got)
	}
	eventually(t, phaseTimeout, "the rollbackStuck notification", func() (bool, string) {
		return hook.count("rollbackStuck") == 1, fmt.Sprintf("rollbackStuck %d", hook.count("rollbackStuck"))
	})
	// A stuck release stays open (no new release of the service can start) until a person acts.
	if st, err := e.status(svc); err != nil || st.Phase != record.PhaseRollbackStuck {
		t.Fatalf("RollbackStuck did not hold: %s (%v)", describe(st), err)
	}

	ctl.setRefuseRollback(false)
	r := e.shepherdCLI("retry", svc, "--by", "oncall", "--comment", "incident closed, canary unpinned")
	wantExit(t, r, cli.ExitOK)
	res := e.waitResult(svc, releaseTimeout)
	if res.Phase != record.PhaseRolledBack || res.Reason != "aborted by ci: wrong build" {
		t.Fatalf("result: %s", describe(res))
	}
	if !hasDecision(res, record.KindControl, "oncall", "retry by oncall") || !hasDecision(res, record.KindRollback, "", `rollback step "remove canary" done`) {
		t.Errorf("no retry by oncall followed by the canary's removal:\n%s", demoDecisions(res))
	}
	if got := ctl.calls(); !slices.Equal(got, []string{"deploy", "traffic 50", "traffic 0", "rollback", "rollback"}) {
		t.Errorf("controller calls %q: want the rollback run again once", got)
	}
	e.keepHistory("rollback-stuck-retry", id)
}

// fakeController answers the fleet controller's admin API (package fleet) for one service, in memory,
// so the local target's real provider runs against it. It can refuse to remove the canary with a 409,
// as a controller does when the request conflicts with the service's state.
type fakeController struct {
	service string

	mu             sync.Mutex
	stable, canary string
	weight         int
	refuseRollback bool
	log            []string // the changes asked for, in order
}

func (c *fakeController) setRefuseRollback(v bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.refuseRollback = v
}

func (c *fakeController) calls() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.log)
}

func (c *fakeController) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	reply := func(status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(v)
	}
	prefix := "/v1/services/" + c.service
	action, ok := strings.CutPrefix(r.URL.Path, prefix)
	if !ok {
		reply(http.StatusNotFound, fleet.ErrorResponse{Error: "unknown service"})
		return
	}
	action = strings.TrimPrefix(action, "/")
	var body struct {
		Version string `json:"version"`
		Percent int    `json:"percent"`
	}
	if r.Method == http.MethodPost {
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			reply(http.StatusBadRequest, fleet.ErrorResponse{Error: err.Error()})
			return
		}
	}
	switch {
	case r.Method == http.MethodGet && action == "":
	case r.Method == http.MethodGet && action == "health":
		v := r.URL.Query().Get("version")
		reply(http.StatusOK, fleet.HealthState{Service: c.service, Version: v, Healthy: v == c.canary})
		return
	case r.Method == http.MethodPost && action == "deploy":
		c.canary, c.weight = body.Version, 0
		c.log = append(c.log, "deploy")
	case r.Method == http.MethodPost && action == "traffic":
		c.weight = body.Percent
		c.log = append(c.log, fmt.Sprintf("traffic %d", body.Percent))
	case r.Method == http.MethodPost && action == "promote":
		c.stable, c.canary, c.weight = body.Version, "", 0
		c.log = append(c.log, "promote")
	case r.Method == http.MethodPost && action == "rollback":
		c.log = append(c.log, "rollback")
		if c.refuseRollback {
			reply(http.StatusConflict, fleet.ErrorResponse{Error: "canary is pinned by an incident; unpin it first"})
			return
		}
		c.canary, c.weight = "", 0
	default:
		reply(http.StatusNotFound, fleet.ErrorResponse{Error: r.Method + " " + r.URL.Path + ": no such endpoint"})
		return
	}
	reply(http.StatusOK, fleet.ServiceState{Service: c.service, Stable: c.stable, Canary: c.canary, Weight: c.weight})
}
