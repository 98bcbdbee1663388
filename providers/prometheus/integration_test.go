package prometheus_test

import (
	"context"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/shepherd-release/shepherd/internal/testenv"
	"github.com/shepherd-release/shepherd/providers"
	promprovider "github.com/shepherd-release/shepherd/providers/prometheus"
	"github.com/shepherd-release/shepherd/spec"
)

// app is a fake service exposing the documented metrics, http_requests_total{service,version,code} and
// http_request_duration_seconds{service,version}, on an httptest server.
type app struct {
	mu       sync.Mutex // held while a batch is recorded and while scraped: scrapes see whole batches
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	target   string // host:port
}

func newApp(t *testing.T) *app {
	t.Helper()
	a := &app{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "http_requests_total", Help: "Requests served.",
		}, []string{"service", "version", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "http_request_duration_seconds", Help: "Request latency.",
			Buckets: []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1},
		}, []string{"service", "version"}),
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(a.requests, a.duration)
	metrics := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		defer a.mu.Unlock()
		metrics.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	a.target = strings.TrimPrefix(srv.URL, "http://")
	return a
}

// batch records requests of one version: codes maps a status code to a count, latencies a latency in
// seconds to a count. Every batch adds the same proportions, so rates over any window keep them exactly.
func (a *app) batch(service, version string, codes map[string]int, latencies map[float64]int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for code, n := range codes {
		a.requests.WithLabelValues(service, version, code).Add(float64(n))
	}
	for lat, n := range latencies {
		h := a.duration.WithLabelValues(service, version)
		for range n {
			h.Observe(lat)
		}
	}
}

const (
	service = "checkout"
	stable  = "v1.0.0"
	// canary holds a double quote and a backslash: the queries only find its series if escaping is right.
	canary = `v2.0.0"rc\1`
)

// traffic records one batch for each version: the canary fails 20 % with 5xx (404s do not count) and has a
// p99 of 0.175 s; the stable version fails 1 % and is fast.
func (a *app) traffic() {
	a.batch(service, canary,
		map[string]int{"200": 70, "404": 10, "500": 15, "503": 5},
		map[float64]int{0.02: 90, 0.07: 8, 0.2: 2}) // cumulative: le=0.05 90, le=0.1 98, le=0.25 100
	a.batch(service, stable,
		map[string]int{"200": 99, "500": 1},
		map[float64]int{0.02: 100})
}

func checkByName(t *testing.T, name string) spec.Check {
	t.Helper()
	for _, c := range spec.DefaultChecks() {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("spec.DefaultChecks() has no check %q", name)
	return spec.Check{}
}

func TestDefaultChecksAgainstRealPrometheus(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real Prometheus")
	}
	a := newApp(t)
	a.traffic() // every series exists before the first scrape
	base := testenv.StartPrometheus(t, testenv.PrometheusOptions{Targets: []string{a.target}})
	var m providers.Metrics
	m, err := promprovider.New(promprovider.Config{Address: base, Timeout: spec.Duration(5 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	errorRate, latency := checkByName(t, "error-rate"), checkByName(t, "p99-latency")
	canaryData := spec.TemplateData{Service: service, Environment: "production", Version: canary,
		PreviousVersion: stable}

	// rate() needs two scrapes of a series; keep traffic flowing until the query has data.
	deadline := time.Now().Add(30 * time.Second)
	var got float64
	for {
		a.traffic()
		var query string
		got, query, err = m.Evaluate(t.Context(), errorRate.Query, canaryData)
		if err == nil {
			break
		}
		if !errors.Is(err, promprovider.ErrNoData) || time.Now().After(deadline) {
			t.Fatalf("waiting for the error rate to have data: %v\nquery: %s", err, query)
		}
		time.Sleep(250 * time.Millisecond) // scrapes come every second; a few polls per scrape
	}
	if math.Abs(got-0.2) > 1e-3 {
		t.Errorf("canary error rate = %v, want 0.2 (20 %% 5xx)", got)
	}
	if limit := *errorRate.Max; got <= limit {
		t.Errorf("canary error rate %v passes the default max %v; the test traffic should fail it", got, limit)
	}

	p99, query, err := m.Evaluate(t.Context(), latency.Query, canaryData)
	if err != nil {
		t.Fatalf("p99 latency: %v\nquery: %s", err, query)
	}
	if p99 <= 0.1 || p99 > 0.25 {
		t.Errorf("canary p99 = %v, want it in the bucket (0.1, 0.25] where the 99th percentile falls", p99)
	}
	if math.Abs(p99-0.175) > 1e-3 {
		t.Errorf("canary p99 = %v, want 0.175 (linear interpolation in (0.1, 0.25])", p99)
	}

	stableData := canaryData
	stableData.Version = stable
	if got, query, err := m.Evaluate(t.Context(), errorRate.Query, stableData); err != nil ||
		math.Abs(got-0.01) > 1e-3 {
		t.Errorf("stable error rate = %v, %v; want 0.01\nquery: %s", got, err, query)
	}

	for _, version := range []string{"v9.9.9", `v1"} or vector(1) #`} {
		noData := canaryData
		noData.Version = version
		for _, c := range []spec.Check{errorRate, latency} {
			got, query, err := m.Evaluate(t.Context(), c.Query, noData)
			if !errors.Is(err, promprovider.ErrNoData) {
				t.Errorf("%s for version %q with no data = %v, %v; want ErrNoData (inconclusive)\nquery: %s",
					c.Name, version, got, err, query)
			}
		}
	}

	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if _, _, err := m.Evaluate(ctx, `sum(rate(http_requests_total[1m])) by (version)`, canaryData); !errors.Is(err,
		promprovider.ErrUnusableResult) || !strings.Contains(err.Error(), "2 series") {
		t.Errorf("two-series query error = %v, want ErrUnusableResult naming 2 series", err)
	}
	if _, _, err := m.Evaluate(ctx, `sum(rate(http_requests_total[1m])`, canaryData); !errors.Is(err,
		promprovider.ErrRejected) {
		t.Errorf("unbalanced query error = %v, want ErrRejected", err)
	}
}
