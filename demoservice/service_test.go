package demoservice

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
)

func newTestService(t *testing.T, cfg Config) *Service {
	t.Helper()
	if cfg.Service == "" {
		cfg.Service = "checkout"
	}
	if cfg.Version == "" {
		cfg.Version = "v2"
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

func get(s http.Handler, path string, header ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	return rec
}

// counter returns http_requests_total for code from the service's own registry.
func counter(t *testing.T, s *Service, code string) float64 {
	t.Helper()
	fams, err := s.metrics.registry.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, f := range fams {
		if f.GetName() != MetricRequests {
			continue
		}
		for _, m := range f.GetMetric() {
			l := labels(m)
			if l["code"] == code && l["service"] == s.cfg.Service && l["version"] == s.cfg.Version {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no %s{code=%q} series", MetricRequests, code)
	return 0
}

func labels(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, lp := range m.GetLabel() {
		out[lp.GetName()] = lp.GetValue()
	}
	return out
}

func TestNewRejectsBadConfig(t *testing.T) {
	for name, cfg := range map[string]Config{
		"no service":       {Version: "v1"},
		"no version":       {Service: "a"},
		"error rate > 1":   {Service: "a", Version: "v1", ErrorRate: 1.5},
		"error rate < 0":   {Service: "a", Version: "v1", ErrorRate: -0.1},
		"negative latency": {Service: "a", Version: "v1", Latency: -time.Second},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: New accepted %+v", name, cfg)
		}
	}
}

func TestErrorRateHonoured(t *testing.T) {
	for _, rate := range []float64{0, 0.2, 1} {
		s := newTestService(t, Config{ErrorRate: rate, Seed: 42})
		const n = 2000
		fails := 0
		for range n {
			rec := get(s, "/")
			switch rec.Code {
			case http.StatusInternalServerError:
				fails++
			case http.StatusOK:
			default:
				t.Fatalf("unexpected status %d", rec.Code)
			}
		}
		// Binomial(2000, 0.2) has σ ≈ 18; ±80 is > 4σ, yet far from 0 % or 100 %.
		want := rate * n
		if got := float64(fails); got < want-80 || got > want+80 {
			t.Errorf("rate %v: %d of %d failed, want about %v", rate, fails, n, want)
		}
		if got := counter(t, s, "500"); got != float64(fails) {
			t.Errorf("rate %v: %s{code=500} = %v, want %d", rate, MetricRequests, got, fails)
		}
		if got := counter(t, s, "200"); got != float64(n-fails) {
			t.Errorf("rate %v: %s{code=200} = %v, want %d", rate, MetricRequests, got, n-fails)
		}
	}
}

func TestResponseNamesVersion(t *testing.T) {
	s := newTestService(t, Config{Service: "cart", Version: "v7"})
	rec := get(s, "/", HeaderRequestID, "req-1")
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d", rec.Code)
	}
	var body workResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("body %q: %v", rec.Body, err)
	}
	if body.Version != "v7" || body.Service != "cart" || body.RequestID != "req-1" {
		t.Errorf("body = %+v", body)
	}
	if rec.Header().Get(HeaderVersion) != "v7" || rec.Header().Get(HeaderNewCheckout) != "off" {
		t.Errorf("headers = %v", rec.Header())
	}
	if rec := get(s, "/healthz"); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"version":"v7"`) {
		t.Errorf("healthz = %d %s", rec.Code, rec.Body)
	}
	if rec := get(s, "/nope"); rec.Code != http.StatusNotFound {
		t.Errorf("GET /nope = %d, want 404", rec.Code)
	}
}

func TestMetricsExposition(t *testing.T) {
	s := newTestService(t, Config{Service: "checkout", Version: "v2", Latency: 2 * time.Millisecond, Seed: 1})
	for range 5 {
		get(s, "/")
	}
	rec := get(s, "/metrics")
	if rec.Code != http.StatusOK {
		t.Fatalf("metrics status %d", rec.Code)
	}
	text := rec.Body.String()
	for _, want := range []string{
		`http_requests_total{code="200",service="checkout",version="v2"} 5`,
		`http_requests_total{code="500",service="checkout",version="v2"} 0`,
		`http_request_duration_seconds_bucket{service="checkout",version="v2",le="0.05"}`,
		`http_request_duration_seconds_bucket{service="checkout",version="v2",le="0.5"}`,
		`http_request_duration_seconds_bucket{service="checkout",version="v2",le="2"}`,
		`http_request_duration_seconds_count{service="checkout",version="v2"} 5`,
		`demo_feature_enabled{flag="new-checkout"} 0`,
		`go_goroutines`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	// Health checks and scrapes must not count as work.
	if got := counter(t, s, "200"); got != 5 {
		t.Errorf("200 counter = %v after 5 requests and a scrape, want 5", got)
	}
}

func TestLatencyAroundMean(t *testing.T) {
	s := newTestService(t, Config{Latency: 20 * time.Millisecond, Seed: 7})
	var total time.Duration
	const n = 2000
	for range n {
		d, _, _ := s.draw()
		if d < 0 || d > 60*time.Millisecond {
			t.Fatalf("latency %v outside [0, 3×mean]", d)
		}
		total += d
	}
	if mean := total / n; mean < 19*time.Millisecond || mean > 21*time.Millisecond {
		t.Errorf("mean latency %v, want about 20ms", mean)
	}
}

func TestRunServesAndStops(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, Config{Listen: addr, Service: "a", Version: "v1"}) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("service did not answer /healthz within 5s: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(ShutdownTimeout + time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if err := Run(t.Context(), Config{Service: "a"}); err == nil {
		t.Error("Run accepted a config without version")
	}
}
