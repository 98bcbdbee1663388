package observe

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func get(t *testing.T, h http.Handler, method, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	return rec.Code, rec.Body.String()
}

func testRegistry(t *testing.T) *prometheus.Registry {
	t.Helper()
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "observe_test_events_total", Help: "Test events."})
	reg.MustRegister(c)
	c.Add(3)
	return reg
}

func TestHandlerEndpoints(t *testing.T) {
	s := &Server{Gatherer: testRegistry(t)}
	h := s.Handler()

	tests := []struct {
		method, path string
		code         int
		body         string
	}{
		{"GET", "/healthz", 200, "ok\n"},
		{"HEAD", "/healthz", 200, ""},
		{"GET", "/readyz", 200, "ready\n"},
		{"POST", "/healthz", 405, ""},
		{"GET", "/nope", 404, ""},
		{"GET", "/", 200, "shepherd worker: /metrics /healthz /readyz\n"},
	}
	for _, tt := range tests {
		code, body := get(t, h, tt.method, tt.path)
		if code != tt.code {
			t.Errorf("%s %s: code %d, want %d (body %q)", tt.method, tt.path, code, tt.code, body)
		}
		if tt.body != "" && body != tt.body {
			t.Errorf("%s %s: body %q, want %q", tt.method, tt.path, body, tt.body)
		}
	}
}

func TestMetricsEndpointServesGatherer(t *testing.T) {
	srv := httptest.NewServer((&Server{Gatherer: testRegistry(t)}).Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("code %d: %s", resp.StatusCode, body)
	}
	if !strings.Contains(string(body), "observe_test_events_total 3") {
		t.Errorf("metrics body lacks the registered counter:\n%s", body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type %q, want the text exposition format", ct)
	}
}

// A collector that fails must not hide the others.
type failingCollector struct{ desc *prometheus.Desc }

func (f failingCollector) Describe(ch chan<- *prometheus.Desc) { ch <- f.desc }
func (f failingCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.NewInvalidMetric(f.desc, errors.New("backend down"))
}

func TestMetricsEndpointSurvivesFailingCollector(t *testing.T) {
	reg := testRegistry(t)
	reg.MustRegister(failingCollector{prometheus.NewDesc("observe_test_broken", "Broken.", nil, nil)})
	code, body := get(t, (&Server{Gatherer: reg}).Handler(), "GET", "/metrics")
	if code != 200 || !strings.Contains(body, "observe_test_events_total 3") {
		t.Fatalf("code %d, body:\n%s", code, body)
	}
}

func TestReadyz(t *testing.T) {
	notConnected := errors.New("temporal: dial localhost:7233: connection refused")
	tests := []struct {
		name    string
		ready   func(context.Context) error
		timeout time.Duration
		code    int
		body    string
	}{
		{"nil check", nil, 0, 200, "ready"},
		{"passing", func(context.Context) error { return nil }, 0, 200, "ready"},
		{"failing", func(context.Context) error { return notConnected }, 0, 503, "not ready: " + notConnected.Error()},
		{"hanging", func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }, 20 * time.Millisecond, 503, "not ready: context deadline exceeded"},
		{"ignores deadline", func(ctx context.Context) error { <-ctx.Done(); return nil }, 20 * time.Millisecond, 503, "did not answer within 20ms"},
		{"all ready joins reasons", AllReady(
			func(context.Context) error { return errors.New("no temporal") },
			func(context.Context) error { return nil },
			func(context.Context) error { return errors.New("task queue not polled") },
		), 0, 503, "not ready: no temporal\ntask queue not polled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Server{Gatherer: testRegistry(t), Ready: tt.ready, ReadyTimeout: tt.timeout}
			start := time.Now()
			code, body := get(t, s.Handler(), "GET", "/readyz")
			if code != tt.code || !strings.Contains(body, tt.body) {
				t.Errorf("got %d %q, want %d containing %q", code, body, tt.code, tt.body)
			}
			if time.Since(start) > 2*time.Second {
				t.Errorf("readyz took %s; the timeout did not apply", time.Since(start))
			}
		})
	}
}

func TestReadyzWhileDraining(t *testing.T) {
	s := &Server{Gatherer: testRegistry(t)}
	s.draining.Store(true)
	if code, body := get(t, s.Handler(), "GET", "/readyz"); code != 503 || !strings.Contains(body, "shutting down") {
		t.Fatalf("got %d %q, want 503 shutting down", code, body)
	}
	if code, _ := get(t, s.Handler(), "GET", "/healthz"); code != 200 {
		t.Fatalf("healthz %d while draining; liveness must stay up", code)
	}
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func TestServeAndGracefulShutdown(t *testing.T) {
	inFlight := make(chan struct{})
	s := &Server{
		Gatherer: testRegistry(t),
		// The first readiness call is slow, to prove shutdown waits for it.
		Ready: func(ctx context.Context) error {
			select {
			case <-inFlight:
			default:
				close(inFlight)
				time.Sleep(200 * time.Millisecond)
			}
			return nil
		},
	}
	ln := listen(t)
	url := "http://" + ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()

	slow := make(chan int, 1)
	go func() {
		resp, err := http.Get(url + "/readyz")
		if err != nil {
			slow <- -1
			return
		}
		resp.Body.Close()
		slow <- resp.StatusCode
	}()
	<-inFlight
	cancel()

	if code := <-slow; code != 200 {
		t.Errorf("in-flight request got %d during shutdown, want 200", code)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after its context was cancelled")
	}
	if _, err := http.Get(url + "/healthz"); err == nil {
		t.Error("server still answers after shutdown")
	}
}

func TestShutdownTimeout(t *testing.T) {
	started := make(chan struct{})
	s := &Server{
		Gatherer:        testRegistry(t),
		ShutdownTimeout: 50 * time.Millisecond,
		ReadyTimeout:    10 * time.Second,
		Ready: func(ctx context.Context) error {
			close(started)
			<-ctx.Done()
			return ctx.Err()
		},
	}
	ln := listen(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	go func() {
		if resp, err := http.Get("http://" + ln.Addr().String() + "/readyz"); err == nil {
			resp.Body.Close()
		}
	}()
	<-started
	cancel()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "graceful shutdown") {
			t.Fatalf("Serve = %v, want a graceful shutdown error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not give up after ShutdownTimeout")
	}
}

func TestRunErrors(t *testing.T) {
	if err := (&Server{}).Run(context.Background()); err == nil || !strings.Contains(err.Error(), "Gatherer") {
		t.Errorf("Run without a Gatherer = %v, want an error naming it", err)
	}
	ln := listen(t)
	defer ln.Close()
	s := &Server{Addr: ln.Addr().String(), Gatherer: testRegistry(t)}
	if err := s.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "listen") {
		t.Errorf("Run on a busy address = %v, want a listen error", err)
	}
}

func TestRunServesOnAddr(t *testing.T) {
	ln := listen(t)
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- (&Server{Addr: addr, Gatherer: testRegistry(t)}).Run(ctx) }()
	var resp *http.Response
	var err error
	for range 100 {
		if resp, err = http.Get("http://" + addr + "/healthz"); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("Run never served: %v", err)
	}
	resp.Body.Close()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// Routes are served beside the built-in endpoints, only on their method.
func TestRoutes(t *testing.T) {
	s := &Server{Gatherer: testRegistry(t), Routes: map[string]http.Handler{
		"POST /alerts/abort": http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "webhook") }),
	}}
	h := s.Handler()
	if code, body := get(t, h, "POST", "/alerts/abort"); code != 200 || body != "webhook" {
		t.Errorf("POST /alerts/abort = %d %q", code, body)
	}
	if code, _ := get(t, h, "GET", "/alerts/abort"); code != http.StatusMethodNotAllowed {
		t.Errorf("GET /alerts/abort = %d, want 405", code)
	}
	if code, _ := get(t, h, "GET", "/healthz"); code != 200 {
		t.Errorf("GET /healthz = %d", code)
	}
}
