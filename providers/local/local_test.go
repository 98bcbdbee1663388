package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/shepherd-release/shepherd/activities"
	"github.com/shepherd-release/shepherd/fleet"
	"github.com/shepherd-release/shepherd/internal/testenv"
	"github.com/shepherd-release/shepherd/providers"
	"github.com/shepherd-release/shepherd/spec"
)

var demoBinary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "local-target-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	demoBinary = filepath.Join(dir, "demo-service")
	if err := testenv.GoBuild(demoBinary, testenv.Module+"/cmd/demo-service"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// startController runs a real fleet controller and returns the target config pointing at it.
func startController(t *testing.T, profiles map[string]fleet.Profile) string {
	t.Helper()
	ready := make(chan fleet.Endpoints, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- fleet.Run(ctx, fleet.Config{
			Listen: "127.0.0.1:0", ProxyListen: "127.0.0.1:0", ServiceBinary: demoBinary, StateDir: t.TempDir(),
			LoadRPS: -1, Grace: 200 * time.Millisecond, Profiles: profiles, HealthTimeout: 5 * time.Second,
			Logger: slog.New(slog.DiscardHandler), OnReady: func(e fleet.Endpoints) { ready <- e },
		})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("fleet.Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("fleet.Run did not return within 30s")
		}
	})
	select {
	case e := <-ready:
		return e.Admin + "/"
	case err := <-done:
		t.Fatalf("fleet.Run: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("controller not ready within 30s")
	}
	return ""
}

func data(service, version string, percent int) spec.TemplateData {
	return spec.TemplateData{Service: service, Version: version, Percent: percent, Environment: "production"}
}

func TestReleaseAgainstController(t *testing.T) {
	cfg := startController(t, nil)
	ctx := t.Context()
	var tg Target

	if err := tg.at(cfg).Preflight(ctx, data("checkout", "v2", 0)); !errors.Is(err, ErrPermanent) ||
		!strings.Contains(err.Error(), "bootstrap") || !strings.Contains(err.Error(), "/v1/services/checkout") {
		t.Fatalf("preflight before bootstrap: %v", err)
	}
	if err := tg.at(cfg).Deploy(ctx, data("checkout", "v2", 0)); !errors.Is(err, ErrPermanent) || !strings.Contains(err.Error(), "bootstrap") {
		t.Fatalf("deploy before bootstrap: %v", err)
	}
	for range 2 {
		if err := tg.at(cfg).Bootstrap(ctx, "checkout", "v1"); err != nil {
			t.Fatalf("bootstrap: %v", err)
		}
	}
	if err := tg.at(cfg).Preflight(ctx, data("checkout", "v1", 0)); !errors.Is(err, ErrPermanent) {
		t.Errorf("preflight of the stable version: %v", err)
	}
	if err := tg.at(cfg).Preflight(ctx, data("checkout", "v2", 0)); err != nil {
		t.Fatalf("preflight: %v", err)
	}

	// Every step twice: the activity layer may retry any of them.
	steps := []struct {
		name string
		fn   func() error
	}{
		{"deploy", func() error { return tg.at(cfg).Deploy(ctx, data("checkout", "v2", 0)) }},
		{"health", func() error { return tg.at(cfg).Health(ctx, data("checkout", "v2", 0)) }},
		{"traffic 25", func() error { return tg.at(cfg).SetTraffic(ctx, data("checkout", "v2", 25)) }},
		{"traffic 100", func() error { return tg.at(cfg).SetTraffic(ctx, data("checkout", "v2", 100)) }},
		{"promote", func() error { return tg.at(cfg).Promote(ctx, data("checkout", "v2", 100)) }},
	}
	for _, s := range steps {
		for i := range 2 {
			if err := s.fn(); err != nil {
				t.Fatalf("%s (call %d): %v", s.name, i+1, err)
			}
		}
	}
	st, err := tg.at(cfg).State(ctx, "checkout")
	if err != nil || st.Stable != "v2" || st.Canary != "" {
		t.Fatalf("state after promote: %+v %v", st, err)
	}

	// A bad release: deploy v3, shift traffic, roll back (traffic 0 first, as the workflow does).
	if err := tg.at(cfg).Deploy(ctx, data("checkout", "v3", 0)); err != nil {
		t.Fatal(err)
	}
	if err := tg.at(cfg).Preflight(ctx, data("checkout", "v4", 0)); !errors.Is(err, ErrPermanent) ||
		!strings.Contains(err.Error(), "canary v3") {
		t.Errorf("preflight with another canary: %v", err)
	}
	if err := tg.at(cfg).SetTraffic(ctx, data("checkout", "v3", 5)); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := tg.at(cfg).SetTraffic(ctx, data("checkout", "v3", 0)); err != nil {
			t.Fatalf("traffic 0: %v", err)
		}
		if err := tg.at(cfg).Rollback(ctx, data("checkout", "v3", 0)); err != nil {
			t.Fatalf("rollback: %v", err)
		}
	}
	if st, err := tg.at(cfg).State(ctx, "checkout"); err != nil || st.Stable != "v2" || st.Canary != "" {
		t.Fatalf("state after rollback: %+v %v", st, err)
	}

	// Conflicts are permanent and say what the controller said, and where.
	err = tg.at(cfg).Health(ctx, data("checkout", "v3", 0))
	var ce *ControllerError
	if !errors.Is(err, ErrPermanent) || !errors.As(err, &ce) || ce.Status != http.StatusNotFound ||
		!strings.Contains(err.Error(), "not deployed") || !strings.Contains(err.Error(), "/v1/services/checkout/health?version=v3") {
		t.Errorf("health of a rolled-back version: %v", err)
	}
	if err := tg.at(cfg).Rollback(ctx, data("checkout", "v2", 0)); !errors.Is(err, ErrPermanent) || !strings.Contains(err.Error(), "stable") {
		t.Errorf("rollback of the stable version: %v", err)
	}
}

func TestHealthOfFailingCanary(t *testing.T) {
	cfg := startController(t, nil)
	ctx := t.Context()
	var tg Target
	if err := tg.at(cfg).Bootstrap(ctx, "pay", "v1"); err != nil {
		t.Fatal(err)
	}
	if err := tg.at(cfg).Deploy(ctx, data("pay", "v2", 0)); err != nil {
		t.Fatal(err)
	}
	st, err := tg.at(cfg).State(ctx, "pay")
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range st.Instances {
		if i.Version == "v2" {
			p, err := os.FindProcess(i.PID)
			if err != nil {
				t.Fatal(err)
			}
			_ = p.Kill()
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		err = tg.at(cfg).Health(ctx, data("pay", "v2", 0))
		if err != nil && errors.Is(err, ErrPermanent) {
			t.Fatalf("health of a dying canary is permanent: %v", err)
		}
		// Until the process is reaped the controller may only see its port fail; then it says why.
		if err != nil && strings.Contains(err.Error(), "not running") || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err == nil || errors.Is(err, ErrPermanent) || !strings.Contains(err.Error(), "503") ||
		!strings.Contains(err.Error(), "not running") {
		t.Errorf("health of a dead canary: %v (want a retryable 503 saying why)", err)
	}
}

// fakeController answers every request with status and body.
func fakeController(t *testing.T, status int, body string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(status)
		fmt.Fprint(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestErrorClassification(t *testing.T) {
	ctx := t.Context()
	var tg Target
	for _, tc := range []struct {
		status    int
		body      string
		permanent bool
		says      string
	}{
		{400, `{"error": "bad version"}`, true, "bad version"},
		{409, `{"error": "already has canary v2"}`, true, "already has canary v2"},
		{404, `<html>not here</html>`, true, "<html>not here</html>"},
		{429, `{"error": "slow down"}`, false, "slow down"},
		{500, `{"error": "record fleet state: disk full"}`, false, "disk full"},
		{503, `{"healthy": false, "error": "did not answer /healthz"}`, false, "did not answer /healthz"},
	} {
		cfg := fakeController(t, tc.status, tc.body)
		err := tg.at(cfg).Deploy(ctx, data("checkout", "v2", 0))
		if err == nil {
			t.Errorf("%d: no error", tc.status)
			continue
		}
		if got := errors.Is(err, ErrPermanent); got != tc.permanent {
			t.Errorf("%d: permanent = %v, want %v (%v)", tc.status, got, tc.permanent, err)
		}
		for _, want := range []string{tc.says, cfg + "/v1/services/checkout/deploy", "deploy checkout v2"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%d: %q lacks %q", tc.status, err, want)
			}
		}
	}

	// 200 without "healthy": true is not healthy.
	cfg := fakeController(t, 200, `{"service": "checkout", "version": "v2", "healthy": false}`)
	if err := tg.at(cfg).Health(ctx, data("checkout", "v2", 0)); err == nil {
		t.Error("health accepted healthy=false")
	}
	cfg = fakeController(t, 200, `{"service": "checkout", "version": "v2", "healthy": true}`)
	if err := tg.at(cfg).Health(ctx, data("checkout", "v2", 0)); err != nil {
		t.Errorf("healthy answer: %v", err)
	}
}

func TestTransportErrorsAreRetryable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there any more
	cfg := url
	err := (&Target{}).at(cfg).Promote(t.Context(), data("checkout", "v2", 0))
	if err == nil || errors.Is(err, ErrPermanent) || !strings.Contains(err.Error(), url+"/v1/services/checkout/promote") ||
		!strings.Contains(err.Error(), "is the fleet controller running") {
		t.Errorf("connection refused: %v", err)
	}

	hang := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(hang)
	cfg = slow.URL
	start := time.Now()
	err = (&Target{Timeout: 100 * time.Millisecond}).at(cfg).SetTraffic(t.Context(), data("checkout", "v2", 5))
	if err == nil || errors.Is(err, ErrPermanent) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("hanging controller: %v", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("timeout of 100ms took %v", took)
	}
}

func TestDefaultController(t *testing.T) {
	if "http://"+fleet.DefaultListen != DefaultController {
		t.Errorf("fleet.DefaultListen %s does not match DefaultController %s", fleet.DefaultListen, DefaultController)
	}
	if got := (&Target{}).controller(); got != DefaultController {
		t.Errorf("default controller %q", got)
	}
	if _, err := New(Config{Controller: "localhost:9300"}); !errors.Is(err, ErrPermanent) {
		t.Errorf("a controller that is not a URL: %v", err)
	}
	if err := (&Target{}).Deploy(t.Context(), data("", "v2", 0)); !errors.Is(err, ErrPermanent) {
		t.Errorf("empty service: %v", err)
	}
}

// The controller's error text reaches history and the report: bounded, and without the worker's secrets.
func TestControllerErrorIsBoundedAndRedacted(t *testing.T) {
	t.Setenv("TEMPORAL_API_KEY", "tmprl-worker-api-key-0123456789")
	cfg := fakeController(t, 500, `{"error": "tmprl-worker-api-key-0123456789 `+strings.Repeat("x", 100000)+`"}`)
	err := (&Target{}).at(cfg).Deploy(t.Context(), data("checkout", "v2", 0))
	var ce *ControllerError
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v", err)
	}
	if strings.Contains(err.Error(), "0123456789") || len(ce.Message) > 310 {
		t.Errorf("message of %d bytes, secret shown: %v", len(ce.Message), strings.Contains(err.Error(), "0123456789"))
	}
}

// fenced is template data of one release step with its fencing token.
func fenced(service, version string, percent int, step string, seq int64) spec.TemplateData {
	d := data(service, version, percent)
	d.ReleaseID, d.Step, d.Seq = "release:"+service+":production/run-1", step, seq
	return d
}

// recorder is a fake controller that records every request body and answers with answer(path).
type recorder struct {
	mu     sync.Mutex
	bodies map[string]map[string]any // by path
}

func fakeRecorder(t *testing.T, answer func(path string) (int, string)) (string, *recorder) {
	t.Helper()
	rec := &recorder{bodies: map[string]map[string]any{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		_ = json.NewDecoder(r.Body).Decode(&body)
		rec.mu.Lock()
		rec.bodies[r.URL.Path] = body
		rec.mu.Unlock()
		status, text := answer(r.URL.Path)
		w.WriteHeader(status)
		fmt.Fprint(w, text)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, rec
}

func TestStepsCarryTheFencingToken(t *testing.T) {
	cfg, rec := fakeRecorder(t, func(string) (int, string) { return 200, `{"service": "checkout", "outcome": "applied"}` })
	ctx := t.Context()
	tg := &Target{Log: func(string, ...any) { t.Error("a step that was applied was logged as a repeat") }}
	steps := []struct {
		path string
		seq  int64
		step string
		fn   func(spec.TemplateData) error
	}{
		{"deploy", 1, "deploy", func(d spec.TemplateData) error { return tg.at(cfg).Deploy(ctx, d) }},
		{"traffic", 3, "traffic", func(d spec.TemplateData) error { return tg.at(cfg).SetTraffic(ctx, d) }},
		{"promote", 7, "promote", func(d spec.TemplateData) error { return tg.at(cfg).Promote(ctx, d) }},
		{"rollback", 9, "remove-canary", func(d spec.TemplateData) error { return tg.at(cfg).Rollback(ctx, d) }},
	}
	for _, s := range steps {
		d := fenced("checkout", "v2", 25, s.step, s.seq)
		if err := s.fn(d); err != nil {
			t.Fatalf("%s: %v", s.path, err)
		}
		rec.mu.Lock()
		body := rec.bodies["/v1/services/checkout/"+s.path]
		rec.mu.Unlock()
		if body["releaseID"] != d.ReleaseID || body["seq"] != float64(s.seq) || body["step"] != s.step || body["version"] != "v2" {
			t.Errorf("%s sent %v, want version v2, releaseID %s, seq %d, step %s", s.path, body, d.ReleaseID, s.seq, s.step)
		}
	}
	if body := rec.bodies["/v1/services/checkout/traffic"]; body["percent"] != float64(25) {
		t.Errorf("traffic sent %v", body)
	}
	// Bootstrap is no release step: it goes out without a token.
	if err := tg.at(cfg).Bootstrap(ctx, "checkout", "v1"); err != nil {
		t.Fatal(err)
	}
	if body := rec.bodies["/v1/services/checkout/bootstrap"]; body["seq"] != nil || body["releaseID"] != nil {
		t.Errorf("bootstrap sent a fencing token: %v", body)
	}
}

func TestStaleWriteIsNonRetryableStaleWrite(t *testing.T) {
	const refusal = `{"error": "traffic checkout v2: stale write refused: traffic v2 25% (step \"traffic\", seq 3) ...", "code": "StaleWrite"}`
	cfg, _ := fakeRecorder(t, func(string) (int, string) { return http.StatusConflict, refusal })
	d := fenced("checkout", "v2", 25, "traffic", 3)
	err := (&Target{}).at(cfg).SetTraffic(t.Context(), d)
	var ce *ControllerError
	if !errors.Is(err, providers.ErrStaleWrite) || !errors.Is(err, ErrPermanent) || !errors.As(err, &ce) || !ce.Stale() ||
		!strings.Contains(err.Error(), "stale write refused") || !strings.Contains(err.Error(), "seq 3") {
		t.Fatalf("stale refusal: %v, want an error wrapping providers.ErrStaleWrite and ErrPermanent that says why", err)
	}
	// Through the activity layer it is the non-retryable StaleWrite error the workflow sees.
	a := &activities.Activities{Targets: providers.Registry[providers.Target]{"fleet": (&Target{}).at(cfg)}}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	_, err = env.ExecuteActivity(a.SetTraffic, activities.StepInput{ReleaseID: d.ReleaseID, Step: "traffic:1:25", Target: "fleet", Data: d})
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != activities.ErrTypeStaleWrite || !appErr.NonRetryable() {
		t.Fatalf("activity error %v, want a non-retryable %s application error", err, activities.ErrTypeStaleWrite)
	}

	// Another conflict is permanent but not stale.
	cfg, _ = fakeRecorder(t, func(string) (int, string) { return http.StatusConflict, `{"error": "already has canary v3"}` })
	if err := (&Target{}).at(cfg).SetTraffic(t.Context(), d); errors.Is(err, providers.ErrStaleWrite) || !errors.Is(err, ErrPermanent) {
		t.Errorf("plain conflict: %v", err)
	}
}

// pairs formats logger key-value pairs as "k=v k=v ".
func pairs(kv []any) string {
	var b strings.Builder
	for i := 0; i+1 < len(kv); i += 2 {
		fmt.Fprintf(&b, "%v=%v ", kv[i], kv[i+1])
	}
	return b.String()
}

func TestRepeatIsLogged(t *testing.T) {
	cfg, _ := fakeRecorder(t, func(string) (int, string) {
		return 200, `{"service": "checkout", "outcome": "repeat", "repeat": true}`
	})
	var logged []string
	tg := &Target{Log: func(msg string, kv ...any) { logged = append(logged, msg+" "+pairs(kv)) }}
	if err := tg.at(cfg).Deploy(t.Context(), fenced("checkout", "v2", 0, "deploy", 1)); err != nil {
		t.Fatal(err)
	}
	if len(logged) != 1 || !strings.Contains(logged[0], "idempotent repeat") || !strings.Contains(logged[0], "seq=1 ") {
		t.Errorf("logged %q, want one line about an idempotent repeat of seq 1", logged)
	}
}

// TestFencingAgainstController: the race fencing exists for, on the real controller. Traffic 25 % goes
// out as seq 3 and is delayed; the release rolls back (seq 4: traffic 0); the late seq 3 arrives. The
// target returns ErrStaleWrite and the canary keeps 0 %. Retries of steps are logged repeats.
func TestFencingAgainstController(t *testing.T) {
	cfg := startController(t, nil)
	ctx := t.Context()
	var repeats []string
	tg := &Target{Log: func(msg string, kv ...any) { repeats = append(repeats, pairs(kv)) }}
	if err := tg.at(cfg).Bootstrap(ctx, "cart", "v1"); err != nil {
		t.Fatal(err)
	}
	for range 2 { // the second is the retry after a crash: a repeat
		if err := tg.at(cfg).Deploy(ctx, fenced("cart", "v2", 0, "deploy", 1)); err != nil {
			t.Fatal(err)
		}
	}
	if len(repeats) != 1 {
		t.Errorf("repeats logged after deploying twice with seq 1: %q, want one", repeats)
	}
	if err := tg.at(cfg).SetTraffic(ctx, fenced("cart", "v2", 5, "traffic", 2)); err != nil {
		t.Fatal(err)
	}
	if err := tg.at(cfg).SetTraffic(ctx, fenced("cart", "v2", 0, "rollback-traffic", 4)); err != nil {
		t.Fatal(err)
	}
	err := tg.at(cfg).SetTraffic(ctx, fenced("cart", "v2", 25, "traffic", 3))
	if !errors.Is(err, providers.ErrStaleWrite) || !strings.Contains(err.Error(), `"rollback-traffic"`) {
		t.Fatalf("late traffic 25%% (seq 3) after traffic 0%% (seq 4): %v, want ErrStaleWrite naming the newer step", err)
	}
	st, err := tg.at(cfg).State(ctx, "cart")
	if err != nil || st.Weight != 0 {
		t.Fatalf("after the stale write: %+v %v, want weight 0", st, err)
	}
	if err := tg.at(cfg).Rollback(ctx, fenced("cart", "v2", 0, "remove-canary", 5)); err != nil {
		t.Fatal(err)
	}
	j, err := tg.at(cfg).Journal(ctx, "cart")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range j.Entries {
		got = append(got, fmt.Sprintf("%s %d %s", e.Action, e.Seq, e.Outcome))
	}
	want := "bootstrap 0 applied, deploy 1 applied, deploy 1 repeat, traffic 2 applied, traffic 4 applied, traffic 3 refused, rollback 5 applied"
	if strings.Join(got, ", ") != want {
		t.Errorf("journal: %s\nwant:    %s", strings.Join(got, ", "), want)
	}
}

// at returns a copy of t that drives the controller at url.
func (t *Target) at(url string) *Target {
	c := *t
	c.Controller = url
	return &c
}
