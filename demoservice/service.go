// Package demoservice is the small HTTP service the local demo fleet runs, one version per process. Its
// error rate and latency are set per process, so a canary can be made good or bad on purpose, and it exports
// Prometheus metrics under the names and labels Shepherd's default checks query
// (spec.DefaultErrorRateQuery, spec.DefaultLatencyQuery).
package demoservice

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Defaults used when Config leaves a field zero.
const (
	// DefaultListen is where the service listens when Config.Listen is empty.
	DefaultListen = "127.0.0.1:8080"
	// DefaultFlagPollInterval is how often the flag file is re-read.
	DefaultFlagPollInterval = 2 * time.Second
	// ShutdownTimeout bounds the graceful shutdown once the context is cancelled.
	ShutdownTimeout = 5 * time.Second
)

// Response headers set by GET /. The fleet's tests and people using curl read them without parsing bodies.
const (
	// HeaderVersion names the version that answered.
	HeaderVersion = "X-Version"
	// HeaderService names the service that answered.
	HeaderService = "X-Service"
	// HeaderRequestID echoes (or assigns) the request id that feature-flag bucketing hashed.
	HeaderRequestID = "X-Request-Id"
	// HeaderNewCheckout is "on" or "off": the new-checkout flag as evaluated for this request.
	HeaderNewCheckout = "X-Feature-New-Checkout"
)

// Config is one demo service process.
type Config struct {
	// Listen is the address to serve on; default 127.0.0.1:8080.
	Listen string
	// Service is the service name used in metric labels and responses; required.
	Service string
	// Version is the version name used in metric labels and responses; required.
	Version string
	// ErrorRate is the probability in [0, 1] that GET / answers 500.
	ErrorRate float64
	// Latency is the mean time GET / spends working; each request draws a latency around it.
	Latency time.Duration
	// FlagFile is an optional flagd-format JSON file, re-read every FlagPollInterval; a missing or invalid
	// file leaves every flag off (or at its last good value) rather than failing requests.
	FlagFile string
	// FlagPollInterval is how often FlagFile is re-read; default 2s.
	FlagPollInterval time.Duration
	// Seed makes the random draws (latency, failures, request ids) reproducible; 0 seeds randomly.
	Seed uint64
	// Logger receives start-up, shutdown and flag-file messages; default slog.Default().
	Logger *slog.Logger
}

// Service is the demo service's HTTP handler with its metrics and feature flags.
type Service struct {
	cfg     Config
	log     *slog.Logger
	mux     *http.ServeMux
	metrics *metrics
	flags   *flagWatcher

	rngMu sync.Mutex
	rng   *rand.Rand
}

// New validates cfg and builds the service without listening, so tests can drive it with httptest.
func New(cfg Config) (*Service, error) {
	if cfg.Service == "" || cfg.Version == "" {
		return nil, errors.New("demoservice: service and version are required (--service, --version)")
	}
	if cfg.ErrorRate < 0 || cfg.ErrorRate > 1 {
		return nil, fmt.Errorf("demoservice: error rate %v out of range: want a probability in [0, 1]", cfg.ErrorRate)
	}
	if cfg.Latency < 0 {
		return nil, fmt.Errorf("demoservice: latency %v is negative", cfg.Latency)
	}
	if cfg.Listen == "" {
		cfg.Listen = DefaultListen
	}
	if cfg.FlagPollInterval <= 0 {
		cfg.FlagPollInterval = DefaultFlagPollInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	seed := cfg.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	s := &Service{
		cfg:     cfg,
		log:     cfg.Logger.With("service", cfg.Service, "version", cfg.Version),
		metrics: newMetrics(cfg.Service, cfg.Version),
		rng:     rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
	}
	s.flags = newFlagWatcher(cfg.FlagFile, s.metrics.feature, s.log)
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("GET /{$}", s.work)
	s.mux.HandleFunc("GET /healthz", s.healthz)
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.registry, promhttp.HandlerOpts{}))
	return s, nil
}

// ServeHTTP serves GET / (the work), GET /healthz and GET /metrics.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// ReloadFlags re-reads the flag file now; Run does this every FlagPollInterval.
func (s *Service) ReloadFlags() error { return s.flags.reload() }

// Run serves cfg until ctx is cancelled, then shuts down gracefully within ShutdownTimeout.
func Run(ctx context.Context, cfg Config) error {
	s, err := New(cfg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("demoservice: listen on %s: %w (pick a free address with --listen)", s.cfg.Listen, err)
	}
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 5 * time.Second}
	if s.cfg.FlagFile != "" {
		if err := s.flags.reload(); err != nil {
			s.log.Warn("flag file not loaded; flags stay off until it is valid", "flagFile", s.cfg.FlagFile, "error", err)
		}
		go s.flags.watch(ctx, s.cfg.FlagPollInterval)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	s.log.Info("demo service listening", "address", ln.Addr().String(), "pid", os.Getpid(),
		"errorRate", s.cfg.ErrorRate, "latency", s.cfg.Latency.String())
	select {
	case err := <-errc:
		return fmt.Errorf("demoservice: serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("demoservice: graceful shutdown: %w", err)
	}
	s.log.Info("demo service stopped")
	return nil
}

// workResponse is the body of GET /.
type workResponse struct {
	Service     string `json:"service"`
	Version     string `json:"version"`
	RequestID   string `json:"requestId"`
	NewCheckout string `json:"newCheckout"`
	Error       string `json:"error,omitempty"`
}

func (s *Service) work(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	reqID := r.Header.Get(HeaderRequestID)
	delay, fail, generatedID := s.draw()
	if reqID == "" {
		reqID = generatedID
	}
	feature := "off"
	if s.flags.enabled(flagNewCheckout, reqID) {
		feature = "on"
	}
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			// The client left; there is nobody to answer and counting it would skew the error rate.
			t.Stop()
			return
		}
	}
	code := http.StatusOK
	body := workResponse{Service: s.cfg.Service, Version: s.cfg.Version, RequestID: reqID, NewCheckout: feature}
	if fail {
		code = http.StatusInternalServerError
		body.Error = fmt.Sprintf("injected failure (error rate %g)", s.cfg.ErrorRate)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set(HeaderVersion, s.cfg.Version)
	h.Set(HeaderService, s.cfg.Service)
	h.Set(HeaderRequestID, reqID)
	h.Set(HeaderNewCheckout, feature)
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(body)
	s.metrics.observe(code, time.Since(start))
}

// draw takes this request's random choices under one lock: latency, failure and a request id.
func (s *Service) draw() (time.Duration, bool, string) {
	s.rngMu.Lock()
	defer s.rngMu.Unlock()
	var d time.Duration
	if mean := s.cfg.Latency; mean > 0 {
		// Normal around the mean (σ = mean/4), clamped to [0, 3×mean]: p99 ≈ 1.6×mean, so a 50ms service
		// passes a 500ms p99 check and a 400ms one does not.
		f := 1 + s.rng.NormFloat64()/4
		d = time.Duration(float64(mean) * min(max(f, 0), 3))
	}
	fail := s.cfg.ErrorRate > 0 && s.rng.Float64() < s.cfg.ErrorRate
	id := strconv.FormatUint(s.rng.Uint64(), 36)
	return d, fail, id
}

// healthResponse is the body of GET /healthz. The fleet controller matches pid, service and version to
// re-adopt a process after its own restart without mistaking a reused pid or port for its child.
type healthResponse struct {
	Status  string `json:"status"`
	Service string `json:"service"`
	Version string `json:"version"`
	PID     int    `json:"pid"`
}

func (s *Service) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(healthResponse{Status: "ok", Service: s.cfg.Service, Version: s.cfg.Version, PID: os.Getpid()})
}
