//go:build unix

package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shepherd-release/shepherd/internal/testenv"
)

// demoBinary is the demo-service executable, built once for all tests.
var demoBinary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "fleet-test-")
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

var quiet = slog.New(slog.DiscardHandler)

// harness runs one controller in-process.
type harness struct {
	t      *testing.T
	cfg    Config
	admin  string
	proxy  string
	cancel context.CancelFunc
	done   chan error
	err    error
	exited bool
}

func startFleet(t *testing.T, cfg Config) *harness {
	t.Helper()
	cfg.ServiceBinary = demoBinary
	cfg.Listen, cfg.ProxyListen = "127.0.0.1:0", "127.0.0.1:0"
	if cfg.StateDir == "" {
		cfg.StateDir = t.TempDir()
	}
	if cfg.LoadRPS == 0 {
		cfg.LoadRPS = -1
	}
	if cfg.Grace == 0 {
		cfg.Grace = 300 * time.Millisecond
	}
	cfg.Logger = quiet
	if testing.Verbose() {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	ready := make(chan Endpoints, 1)
	cfg.OnReady = func(e Endpoints) { ready <- e }
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{t: t, cfg: cfg, cancel: cancel, done: make(chan error, 1)}
	go func() { h.done <- Run(ctx, cfg) }()
	select {
	case e := <-ready:
		h.admin, h.proxy = e.Admin, e.Proxy
	case err := <-h.done:
		cancel()
		t.Fatalf("Run returned before ready: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("controller not ready within 30s")
	}
	t.Cleanup(func() { h.stop() })
	return h
}

// stop cancels the controller and waits for Run to return.
func (h *harness) stop() error {
	h.t.Helper()
	if h.exited {
		return h.err
	}
	h.cancel()
	select {
	case h.err = <-h.done:
	case <-time.After(30 * time.Second):
		h.t.Fatal("Run did not return within 30s of cancel")
	}
	h.exited = true
	return h.err
}

// call sends a request to the admin API and returns the status and body.
func (h *harness) call(method, path string, body any) (int, []byte) {
	h.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	default:
		data, _ := json.Marshal(b)
		r = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, h.admin+path, r)
	if err != nil {
		h.t.Fatal(err)
	}
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, data
}

// op calls a POST endpoint that must succeed and returns the service state.
func (h *harness) op(service, what string, body any) ServiceState {
	h.t.Helper()
	code, data := h.call(http.MethodPost, "/v1/services/"+service+"/"+what, body)
	if code != http.StatusOK {
		h.t.Fatalf("%s %s: %d %s", what, service, code, data)
	}
	var st ServiceState
	if err := json.Unmarshal(data, &st); err != nil {
		h.t.Fatalf("%s: %v in %s", what, err, data)
	}
	return st
}

func (h *harness) get(service string) ServiceState {
	h.t.Helper()
	code, data := h.call(http.MethodGet, "/v1/services/"+service, nil)
	if code != http.StatusOK {
		h.t.Fatalf("GET %s: %d %s", service, code, data)
	}
	var st ServiceState
	if err := json.Unmarshal(data, &st); err != nil {
		h.t.Fatal(err)
	}
	return st
}

// split sends n requests through the proxy, 16 at a time, and counts the answering versions (from the
// response body, checked against the proxy's backend header).
func (h *harness) split(path string, n int) map[string]int {
	h.t.Helper()
	client := &http.Client{Timeout: 10 * time.Second}
	answers := make(chan proxyAnswer, n)
	jobs := make(chan struct{}, n)
	for range n {
		jobs <- struct{}{}
	}
	close(jobs)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for range jobs {
				answers <- h.proxyGet(client, path)
			}
		})
	}
	wg.Wait()
	close(answers)
	counts := map[string]int{}
	for a := range answers {
		if a.err != nil {
			h.t.Fatalf("proxy %s: %v", path, a.err)
		}
		counts[a.version]++
	}
	return counts
}

// proxyAnswer is the version that answered one proxied request, or why it failed.
type proxyAnswer struct {
	version string
	err     error
}

func (h *harness) proxyGet(client *http.Client, path string) (a proxyAnswer) {
	resp, err := client.Get(h.proxy + path)
	if err != nil {
		a.err = err
		return a
	}
	defer resp.Body.Close()
	var body struct {
		Version string `json:"version"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != http.StatusOK {
		a.err = fmt.Errorf("answer %d: %v", resp.StatusCode, err)
		return a
	}
	if got := resp.Header.Get(HeaderBackend); got != body.Version {
		a.err = fmt.Errorf("%s = %q but body names %q", HeaderBackend, got, body.Version)
		return a
	}
	a.version = body.Version
	return a
}

func instanceOf(t *testing.T, st ServiceState, version string) InstanceState {
	t.Helper()
	for _, i := range st.Instances {
		if i.Version == version {
			return i
		}
	}
	t.Fatalf("no instance %s in %+v", version, st)
	return InstanceState{}
}

func pids(st ServiceState) []int {
	var out []int
	for _, i := range st.Instances {
		out = append(out, i.PID)
	}
	return out
}

// eventually polls cond every 20ms for at most d.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true within %s", what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func requireGone(t *testing.T, pids ...int) {
	t.Helper()
	for _, pid := range pids {
		eventually(t, 2*time.Second, fmt.Sprintf("pid %d gone", pid), func() bool { return !pidAlive(pid) })
	}
}

// killOnCleanup makes sure a failing test leaves no demo service behind.
func killOnCleanup(t *testing.T, pids ...int) {
	t.Cleanup(func() {
		for _, pid := range pids {
			data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			if err == nil && pidAlive(pid) && strings.Contains(string(data), demoBinary) {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
}

func TestReleaseLifecycle(t *testing.T) {
	h := startFleet(t, Config{})
	v := func(version string) VersionRequest { return VersionRequest{Version: version} }

	st := h.op("checkout", "bootstrap", v("v1"))
	if st.Stable != "v1" || len(st.Instances) != 1 || !st.Instances[0].Alive {
		t.Fatalf("after bootstrap: %+v", st)
	}
	v1 := st.Instances[0].PID
	killOnCleanup(t, v1)
	if again := h.op("checkout", "bootstrap", v("v1")); instanceOf(t, again, "v1").PID != v1 {
		t.Errorf("repeated bootstrap restarted v1: %+v", again)
	}

	st = h.op("checkout", "deploy", v("v2"))
	if st.Canary != "v2" || st.Weight != 0 {
		t.Fatalf("after deploy: %+v", st)
	}
	v2 := instanceOf(t, st, "v2").PID
	killOnCleanup(t, v2)
	if again := h.op("checkout", "deploy", v("v2")); instanceOf(t, again, "v2").PID != v2 || again.Weight != 0 {
		t.Errorf("repeated deploy changed the canary: %+v", again)
	}
	if got := h.split("/checkout/", 20); got["v1"] != 20 {
		t.Errorf("at 0%% the canary got traffic: %v", got)
	}

	code, data := h.call(http.MethodGet, "/v1/services/checkout/health?version=v2", nil)
	if code != http.StatusOK || !strings.Contains(string(data), `"healthy": true`) {
		t.Errorf("health v2: %d %s", code, data)
	}

	for range 2 { // the second call is a repeat
		if st = h.op("checkout", "traffic", TrafficRequest{Version: "v2", Percent: 25}); st.Weight != 25 {
			t.Fatalf("after traffic: %+v", st)
		}
	}
	got := h.split("/checkout/", 400)
	if got["v2"] < 80 || got["v2"] > 120 || got["v1"]+got["v2"] != 400 {
		t.Errorf("at 25%% the split was %v, want about 100 of 400 on v2", got)
	}

	h.op("checkout", "traffic", TrafficRequest{Version: "v2", Percent: 100})
	for range 2 {
		st = h.op("checkout", "promote", v("v2"))
		if st.Stable != "v2" || st.Canary != "" || st.Weight != 0 {
			t.Fatalf("after promote: %+v", st)
		}
	}
	if old := instanceOf(t, st, "v1"); old.Role != RoleRetiring || old.RetireAt.IsZero() {
		t.Errorf("old stable after promote: %+v", old)
	}
	if got := h.split("/checkout/", 20); got["v2"] != 20 {
		t.Errorf("after promote traffic went to %v", got)
	}
	// 100 % to the promoted version is what a retried traffic step asks for: a no-op.
	h.op("checkout", "traffic", TrafficRequest{Version: "v2", Percent: 100})

	eventually(t, 5*time.Second, "v1 retired after the grace period", func() bool {
		return len(h.get("checkout").Instances) == 1
	})
	requireGone(t, v1)

	sd, err := os.ReadFile(filepath.Join(h.cfg.StateDir, "file_sd.json"))
	if err != nil {
		t.Fatal(err)
	}
	var groups []sdGroup
	if err := json.Unmarshal(sd, &groups); err != nil {
		t.Fatalf("file_sd: %v in %s", err, sd)
	}
	if len(groups) != 1 || groups[0].Labels["version"] != "v2" || groups[0].Labels["service"] != "checkout" ||
		groups[0].Targets[0] != instanceOf(t, h.get("checkout"), "v2").Address {
		t.Errorf("file_sd after retirement: %s", sd)
	}

	if err := h.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	requireGone(t, v2)
}

func TestRollbackPath(t *testing.T) {
	h := startFleet(t, Config{Profiles: map[string]Profile{"v2": {ErrorRate: 1}}})
	h.op("cart", "bootstrap", VersionRequest{Version: "v1"})
	st := h.op("cart", "deploy", VersionRequest{Version: "v2"})
	killOnCleanup(t, pids(st)...)
	v2 := instanceOf(t, st, "v2").PID
	h.op("cart", "traffic", TrafficRequest{Version: "v2", Percent: 50})

	// The bad canary answers 500 through the proxy.
	resp, err := http.Get(h.proxy + "/cart/")
	if err == nil {
		resp.Body.Close()
	}
	resp2, err := http.Get(h.proxy + "/cart/")
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if resp.StatusCode == resp2.StatusCode {
		t.Errorf("at 50%% two requests got %d and %d, want one 500 from the bad canary", resp.StatusCode, resp2.StatusCode)
	}

	// The workflow's compensation: traffic 0, then rollback; both repeated as a retry would.
	for range 2 {
		h.op("cart", "traffic", TrafficRequest{Version: "v2", Percent: 0})
		st = h.op("cart", "rollback", VersionRequest{Version: "v2"})
		if st.Canary != "" || st.Weight != 0 || len(st.Instances) != 1 || st.Stable != "v1" {
			t.Fatalf("after rollback: %+v", st)
		}
	}
	requireGone(t, v2)
	if got := h.split("/cart/", 20); got["v1"] != 20 {
		t.Errorf("after rollback traffic went to %v", got)
	}
	// Rolling back a service the fleet never had is a no-op too.
	h.op("nothing", "rollback", VersionRequest{Version: "v9"})
}

func TestAPIErrors(t *testing.T) {
	h := startFleet(t, Config{})
	st := h.op("shop", "bootstrap", VersionRequest{Version: "v1"})
	killOnCleanup(t, pids(st)...)
	st = h.op("shop", "deploy", VersionRequest{Version: "v2"})
	killOnCleanup(t, pids(st)...)

	for _, tc := range []struct {
		name, method, path string
		body               any
		status             int
		says               string
	}{
		{"deploy unknown service", "POST", "/v1/services/ghost/deploy", `{"version":"v1"}`, 404, "bootstrap"},
		{"empty body", "POST", "/v1/services/shop/deploy", "", 400, "empty body"},
		{"bad JSON", "POST", "/v1/services/shop/deploy", `{"version":`, 400, "invalid JSON"},
		{"unknown field", "POST", "/v1/services/shop/deploy", `{"version":"v2","percent":3}`, 400, "unknown field"},
		{"missing version", "POST", "/v1/services/shop/promote", `{}`, 400, "version is required"},
		{"bad version", "POST", "/v1/services/shop/deploy", `{"version":"../x"}`, 400, "invalid version"},
		{"bad service", "POST", "/v1/services/Shop_1/deploy", `{"version":"v2"}`, 400, "invalid service name"},
		{"second canary", "POST", "/v1/services/shop/deploy", `{"version":"v3"}`, 409, "roll it back"},
		{"deploy stable", "POST", "/v1/services/shop/deploy", `{"version":"v1"}`, 409, "already the stable"},
		{"bootstrap other", "POST", "/v1/services/shop/bootstrap", `{"version":"v3"}`, 409, "already runs stable"},
		{"promote non-canary", "POST", "/v1/services/shop/promote", `{"version":"v3"}`, 409, "not the canary"},
		{"rollback stable", "POST", "/v1/services/shop/rollback", `{"version":"v1"}`, 409, "only removes a canary"},
		{"percent missing", "POST", "/v1/services/shop/traffic", `{"version":"v2"}`, 400, "percent is required"},
		{"percent range", "POST", "/v1/services/shop/traffic", `{"version":"v2","percent":101}`, 400, "0..100"},
		{"traffic undeployed", "POST", "/v1/services/shop/traffic", `{"version":"v3","percent":5}`, 409, "deploy it"},
		{"traffic stable", "POST", "/v1/services/shop/traffic", `{"version":"v1","percent":5}`, 409, "apply to the canary"},
		{"health undeployed", "GET", "/v1/services/shop/health?version=v3", nil, 404, "not deployed"},
		{"state unknown", "GET", "/v1/services/ghost", nil, 404, "bootstrap"},
		{"wrong method", "GET", "/v1/services/shop/deploy", nil, 405, "use POST"},
		{"unknown endpoint", "GET", "/v2/things", nil, 404, "/v1/services"},
	} {
		code, data := h.call(tc.method, tc.path, tc.body)
		var e ErrorResponse
		if err := json.Unmarshal(data, &e); err != nil || e.Error == "" {
			t.Errorf("%s: body %s is not a JSON error: %v", tc.name, data, err)
			continue
		}
		if code != tc.status || !strings.Contains(e.Error, tc.says) {
			t.Errorf("%s: %d %q, want %d mentioning %q", tc.name, code, e.Error, tc.status, tc.says)
		}
	}
	// No error changed the state.
	if st := h.get("shop"); st.Stable != "v1" || st.Canary != "v2" || st.Weight != 0 || len(st.Instances) != 2 {
		t.Errorf("state after errors: %+v", st)
	}
}

func TestHealthAndRedeployOfDeadCanary(t *testing.T) {
	h := startFleet(t, Config{})
	h.op("pay", "bootstrap", VersionRequest{Version: "v1"})
	st := h.op("pay", "deploy", VersionRequest{Version: "v2"})
	killOnCleanup(t, pids(st)...)
	v2 := instanceOf(t, st, "v2").PID
	if err := syscall.Kill(v2, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "health reports the dead canary", func() bool {
		code, data := h.call(http.MethodGet, "/v1/services/pay/health?version=v2", nil)
		return code == http.StatusServiceUnavailable && strings.Contains(string(data), "not running")
	})
	// Deploy is idempotent: calling it again brings the missing canary back.
	st = h.op("pay", "deploy", VersionRequest{Version: "v2"})
	killOnCleanup(t, pids(st)...)
	if p := instanceOf(t, st, "v2"); p.PID == v2 || !p.Alive {
		t.Errorf("redeploy did not restart the canary: %+v", p)
	}
	code, data := h.call(http.MethodGet, "/v1/services/pay/health", nil) // default: the canary
	if code != http.StatusOK || !strings.Contains(string(data), `"version": "v2"`) {
		t.Errorf("health after redeploy: %d %s", code, data)
	}
}

func TestRestartAdoptsAndRestartsInstances(t *testing.T) {
	dir := t.TempDir()
	h1 := startFleet(t, Config{StateDir: dir, KeepProcesses: true})
	h1.op("web", "bootstrap", VersionRequest{Version: "v1"})
	h1.op("web", "deploy", VersionRequest{Version: "v2"})
	before := h1.op("web", "traffic", TrafficRequest{Version: "v2", Percent: 30})
	killOnCleanup(t, pids(before)...)
	if err := h1.stop(); err != nil {
		t.Fatal(err)
	}
	for _, pid := range pids(before) {
		if !pidAlive(pid) {
			t.Fatalf("pid %d stopped although KeepProcesses is set", pid)
		}
	}

	// v2 dies while no controller runs; the next controller adopts v1 and restarts v2.
	v1, v2 := instanceOf(t, before, "v1").PID, instanceOf(t, before, "v2").PID
	if err := syscall.Kill(v2, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	requireGone(t, v2)
	h2 := startFleet(t, Config{StateDir: dir})
	after := h2.get("web")
	killOnCleanup(t, pids(after)...)
	if after.Stable != "v1" || after.Canary != "v2" || after.Weight != 30 {
		t.Errorf("state after restart: %+v", after)
	}
	if got := instanceOf(t, after, "v1"); got.PID != v1 || !got.Alive {
		t.Errorf("v1 not adopted: %+v (was pid %d)", got, v1)
	}
	if got := instanceOf(t, after, "v2"); got.PID == v2 || !got.Alive {
		t.Errorf("v2 not restarted: %+v (was pid %d)", got, v2)
	}
	got := h2.split("/web/", 100)
	if got["v2"] < 20 || got["v2"] > 40 {
		t.Errorf("weight 30 after restart gave %v", got)
	}
	if err := h2.stop(); err != nil {
		t.Fatal(err)
	}
	requireGone(t, pids(after)...)

	// Nothing runs now; a third controller starts both again from the state file.
	h3 := startFleet(t, Config{StateDir: dir})
	again := h3.get("web")
	killOnCleanup(t, pids(again)...)
	for _, i := range again.Instances {
		if !i.Alive || i.PID == v1 || i.PID == instanceOf(t, after, i.Version).PID {
			t.Errorf("instance not restarted: %+v", i)
		}
	}
	if err := h3.stop(); err != nil {
		t.Fatal(err)
	}
	requireGone(t, pids(again)...)
}

func TestLoadGeneratorProducesMetrics(t *testing.T) {
	h := startFleet(t, Config{LoadRPS: 50})
	st := h.op("api", "bootstrap", VersionRequest{Version: "v1"})
	killOnCleanup(t, pids(st)...)
	metricsURL := "http://" + instanceOf(t, st, "v1").Address + "/metrics"
	want := `http_requests_total{code="200",service="api",version="v1"} `
	eventually(t, 10*time.Second, "load reaches the instance", func() bool {
		resp, err := http.Get(metricsURL)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		for line := range strings.SplitSeq(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, want); ok && v != "0" {
				return true
			}
		}
		return false
	})
}

func TestProxyRoutesByService(t *testing.T) {
	h := startFleet(t, Config{})
	a := h.op("alpha", "bootstrap", VersionRequest{Version: "a1"})
	killOnCleanup(t, pids(a)...)
	// With one service, any path goes to it.
	if got := h.split("/", 3); got["a1"] != 3 {
		t.Errorf("single service: %v", got)
	}
	b := h.op("beta", "bootstrap", VersionRequest{Version: "b1"})
	killOnCleanup(t, pids(b)...)
	if got := h.split("/beta/", 3); got["b1"] != 3 {
		t.Errorf("/beta/: %v", got)
	}
	if got := h.split("/alpha", 3); got["a1"] != 3 {
		t.Errorf("/alpha: %v", got)
	}
	resp, err := http.Get(h.proxy + "/gamma/")
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(string(data), "alpha, beta") {
		t.Errorf("unknown service: %d %s", resp.StatusCode, data)
	}
	code, list := h.call(http.MethodGet, "/v1/services", nil)
	if code != http.StatusOK || !strings.Contains(string(list), `"alpha"`) || !strings.Contains(string(list), `"beta"`) {
		t.Errorf("list: %d %s", code, list)
	}
}

func TestSecondControllerOnSameAddressFails(t *testing.T) {
	h := startFleet(t, Config{})
	addr := strings.TrimPrefix(h.admin, "http://")
	err := Run(t.Context(), Config{ServiceBinary: demoBinary, Listen: addr, ProxyListen: "127.0.0.1:0",
		StateDir: t.TempDir(), Logger: quiet})
	if err == nil || !strings.Contains(err.Error(), "another fleet controller") {
		t.Errorf("second controller: %v", err)
	}
}

func TestConfigErrors(t *testing.T) {
	for name, cfg := range map[string]Config{
		"no binary":      {},
		"missing binary": {ServiceBinary: filepath.Join(t.TempDir(), "nope")},
		"directory":      {ServiceBinary: t.TempDir()},
		"bad profile":    {ServiceBinary: demoBinary, Profiles: map[string]Profile{"v2": {ErrorRate: 2}}},
	} {
		if err := Run(t.Context(), cfg); err == nil {
			t.Errorf("%s: Run accepted %+v", name, cfg)
		}
	}
	cfg := Config{Profiles: map[string]Profile{"v2": {ErrorRate: 0.5}, "web/v2": {ErrorRate: 0.9}}}
	if p := cfg.profile("web", "v2"); p.ErrorRate != 0.9 {
		t.Errorf("service/version profile: %+v", p)
	}
	if p := cfg.profile("api", "v2"); p.ErrorRate != 0.5 {
		t.Errorf("version profile: %+v", p)
	}
	if p := cfg.profile("api", "v3"); p != DefaultProfile {
		t.Errorf("default profile: %+v", p)
	}
}

func TestCorruptStateFileIsReported(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "state.json"), []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := Run(t.Context(), Config{ServiceBinary: demoBinary, Listen: "127.0.0.1:0", ProxyListen: "127.0.0.1:0",
		StateDir: dir, Logger: quiet})
	if err == nil || !strings.Contains(err.Error(), "delete it") {
		t.Errorf("corrupt state: %v", err)
	}
}

func TestSplitterIsExact(t *testing.T) {
	for _, w := range []int{0, 1, 5, 25, 50, 99, 100} {
		var s splitter
		n := 0
		for range 1000 {
			if s.next(w) {
				n++
			}
		}
		if n != w*10 {
			t.Errorf("weight %d: %d of 1000 to the canary, want %d", w, n, w*10)
		}
	}
}
