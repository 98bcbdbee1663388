// Package observe holds what operators and Prometheus see of a Shepherd worker: the HTTP server for
// /metrics, /healthz and /readyz, and the engine's own metrics (EngineMetrics). It knows nothing of
// Temporal: the worker passes in a Gatherer, a readiness check and, for the live gauges, a list of the
// running releases.
package observe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// DefaultAddr is where a worker serves /metrics, /healthz and /readyz unless told otherwise; the compose
// stack and deploy/prometheus/prometheus.yml scrape it.
const DefaultAddr = ":9464"

// Defaults for Server's timeouts.
const (
	DefaultReadyTimeout    = 5 * time.Second
	DefaultShutdownTimeout = 10 * time.Second
)

// Server serves a worker's operational endpoints:
//
//   - /metrics: the Gatherer in the Prometheus exposition format;
//   - /healthz: 200 while the process is up (liveness: restart me if this fails);
//   - /readyz: 200 when Ready returns nil, else 503 with the reason; 503 once shutdown has begun.
//
// The zero value is not usable: Gatherer is required.
type Server struct {
	// Addr is the TCP listen address; empty means DefaultAddr.
	Addr string
	// Gatherer supplies /metrics, typically a registry holding the engine and Temporal SDK metrics.
	Gatherer prometheus.Gatherer
	// Ready reports whether the worker can do work (connected to Temporal, polling its task queue).
	// Nil means ready whenever the process is up. It must honour ctx: it runs on every /readyz request.
	Ready func(ctx context.Context) error
	// ReadyTimeout bounds one Ready call; zero means DefaultReadyTimeout.
	ReadyTimeout time.Duration
	// ShutdownTimeout bounds the graceful shutdown once Run's context is done; zero means
	// DefaultShutdownTimeout. Requests still running after it are cut off.
	ShutdownTimeout time.Duration
	// Logger receives serving and metric-gathering errors; nil discards them.
	Logger *slog.Logger
	// Routes are further endpoints by their ServeMux pattern (e.g. "POST /alerts/abort", the alert
	// webhook); optional. Each handler bounds its own requests.
	Routes map[string]http.Handler

	draining atomic.Bool
}

// AllReady combines readiness checks: ready when every check passes, otherwise not ready with the
// reasons of every failing check. Checks run in order, each with the caller's context.
func AllReady(checks ...func(context.Context) error) func(context.Context) error {
	return func(ctx context.Context) error {
		var errs []error
		for _, check := range checks {
			if err := check(ctx); err != nil {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	}
}

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// Handler returns the HTTP handler with the three endpoints, for embedding in another server or tests.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	if s.Gatherer != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(s.Gatherer, promhttp.HandlerOpts{
			// A failing collector should not blank every other metric (and fire the worker-down alert):
			// serve what was gathered and log the error.
			ErrorHandling: promhttp.ContinueOnError,
			ErrorLog:      slogPrintln{s.logger()},
		}))
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeText(w, http.StatusOK, "ok")
	})
	mux.HandleFunc("GET /readyz", s.serveReady)
	for pattern, h := range s.Routes {
		mux.Handle(pattern, h)
	}
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		writeText(w, http.StatusOK, "shepherd worker: /metrics /healthz /readyz")
	})
	return mux
}

func (s *Server) serveReady(w http.ResponseWriter, r *http.Request) {
	if s.draining.Load() {
		writeText(w, http.StatusServiceUnavailable, "not ready: shutting down")
		return
	}
	if s.Ready == nil {
		writeText(w, http.StatusOK, "ready")
		return
	}
	timeout := s.ReadyTimeout
	if timeout <= 0 {
		timeout = DefaultReadyTimeout
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	err := s.Ready(ctx)
	if err == nil && ctx.Err() != nil {
		err = fmt.Errorf("readiness check did not answer within %s", timeout)
	}
	if err != nil {
		writeText(w, http.StatusServiceUnavailable, "not ready: "+err.Error())
		return
	}
	writeText(w, http.StatusOK, "ready")
}

func writeText(w http.ResponseWriter, code int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, body+"\n")
}

// Run listens on Addr and serves until ctx is done, then shuts down gracefully: /readyz turns 503 at
// once, open requests get ShutdownTimeout to finish. It returns nil after a clean shutdown, or the error
// that stopped it (address in use, a shutdown that timed out).
func (s *Server) Run(ctx context.Context) error {
	addr := s.Addr
	if addr == "" {
		addr = DefaultAddr
	}
	if s.Gatherer == nil {
		return errors.New("observe: Server.Gatherer is nil; pass the registry holding the metrics")
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("observe: listen on %s: %w", addr, err)
	}
	return s.Serve(ctx, ln)
}

// Serve is Run on a listener the caller opened (e.g. on port 0 in tests). It closes ln.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if s.Gatherer == nil {
		_ = ln.Close()
		return errors.New("observe: Server.Gatherer is nil; pass the registry holding the metrics")
	}
	s.draining.Store(false)
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.logger().Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	select {
	case err := <-served:
		return fmt.Errorf("observe: serving %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	s.draining.Store(true)
	timeout := s.ShutdownTimeout
	if timeout <= 0 {
		timeout = DefaultShutdownTimeout
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
		<-served
		return fmt.Errorf("observe: graceful shutdown: %w", err)
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("observe: serving %s: %w", ln.Addr(), err)
	}
	return nil
}

// slogPrintln adapts slog to promhttp's Println logger.
type slogPrintln struct{ l *slog.Logger }

func (p slogPrintln) Println(v ...any) { p.l.Error("metrics: " + fmt.Sprint(v...)) }
