package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/contrib/envconfig"
	sdklog "go.temporal.io/sdk/log"
	"go.uber.org/zap"
	"go.uber.org/zap/exp/zapslog"
	"go.uber.org/zap/zapcore"

	"github.com/shepherd-release/shepherd/config"
	"github.com/shepherd-release/shepherd/internal/observe"
	"github.com/shepherd-release/shepherd/record"
	"github.com/shepherd-release/shepherd/starter"
	"github.com/shepherd-release/shepherd/worker"
)

// workerFlags configure `shepherd worker` (and the worker inside `shepherd dev`).
type workerFlags struct {
	config      string
	logFormat   string
	logLevel    string
	stateDir    string
	reportDir   string
	metricsAddr string
	tracing     string
	stopTimeout time.Duration
}

func (f *workerFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.config, "config", os.Getenv(config.EnvVar), "the worker configuration: its named targets, metrics sources, channels, ... (default $"+config.EnvVar+")")
	cmd.Flags().StringVar(&f.logFormat, "log-format", "json", `log format: "json" or "console"`)
	cmd.Flags().StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	cmd.Flags().StringVar(&f.stateDir, "state-dir", worker.DefaultStateDir(), "this worker's local files: archived reports (unless --report-dir); nothing a release depends on")
	cmd.Flags().StringVar(&f.reportDir, "report-dir", os.Getenv("SHEPHERD_REPORT_DIR"), "where release reports and post-mortem records are archived (default <state-dir>/reports)")
	cmd.Flags().DurationVar(&f.stopTimeout, "stop-timeout", worker.DefaultStopTimeout, "on SIGTERM, how long running release steps may finish before they are cancelled and retried elsewhere")
	cmd.Flags().StringVar(&f.metricsAddr, "metrics-addr", envOr("SHEPHERD_METRICS_ADDR", "127.0.0.1:9464"),
		`serve /metrics, /healthz and /readyz here ("off" disables)`)
	cmd.Flags().StringVar(&f.tracing, "tracing", envOr("SHEPHERD_TRACING", worker.TracingOff),
		`OpenTelemetry tracing of workflows and activities: "off", "otlp" (OTEL_EXPORTER_OTLP_* settings) or "stdout"`)
}

// newLogger builds the zap logger behind the SDK's structured-logger interface.
func (f *workerFlags) newLogger() (sdklog.Logger, func(), error) {
	var level zapcore.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return nil, nil, withHint(ExitUsage, fmt.Errorf("--log-level %q: %w", f.logLevel, err), "use debug, info, warn or error")
	}
	var cfg zap.Config
	switch f.logFormat {
	case "json":
		cfg = zap.NewProductionConfig()
	case "console":
		cfg = zap.NewDevelopmentConfig()
	default:
		return nil, nil, withHint(ExitUsage, fmt.Errorf("--log-format %q", f.logFormat), `use "json" or "console"`)
	}
	cfg.Level = zap.NewAtomicLevelAt(level)
	cfg.OutputPaths = []string{"stderr"}
	z, err := cfg.Build()
	if err != nil {
		return nil, nil, err
	}
	logger := sdklog.NewStructuredLogger(slog.New(zapslog.NewHandler(z.Core(), zapslog.WithCaller(true))))
	return logger, func() { _ = z.Sync() }, nil
}

// loadProviders reads the worker configuration file and builds every provider it declares; reports go
// to the configuration's reports.dir, else to reportDir.
func loadProviders(path, reportDir string, opts worker.BuildOptions) (*worker.Providers, error) {
	if path == "" {
		return nil, withHint(ExitUsage, errors.New("no worker configuration"),
			"give --config FILE or set "+config.EnvVar+"; examples/shepherd.yaml is the one `make dev` uses (docs/operations.md)")
	}
	cfg, err := config.Load(path)
	if err != nil {
		return nil, withHint(ExitUsage, err, "fix the file; docs/operations.md describes every key")
	}
	p, err := worker.Build(cfg, opts)
	if err != nil {
		var verr *config.ValidationError
		if errors.As(err, &verr) {
			verr.Source = path
		}
		return nil, withHint(ExitUsage, err, "fix the file; docs/operations.md describes every key")
	}
	if p.ReportDir == "" {
		p.ReportDir = reportDir
	}
	return p, nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// defaultReportDir is $SHEPHERD_REPORT_DIR, or reports/ in the default state directory: where
// `shepherd report` looks, matching a worker started with default flags.
func defaultReportDir() string {
	if d := os.Getenv("SHEPHERD_REPORT_DIR"); d != "" {
		return d
	}
	return filepath.Join(worker.DefaultStateDir(), "reports")
}

// reportDirOf is --report-dir, or reports/ in the worker's state directory.
func (f *workerFlags) reportDirOf() string {
	if f.reportDir != "" {
		return f.reportDir
	}
	return filepath.Join(f.stateDir, "reports")
}

func newWorkerCmd(g *globals) *cobra.Command {
	var f workerFlags
	cmd := &cobra.Command{
		Use:   "worker",
		Short: "Run a Shepherd worker (polls task queue \"shepherd\")",
		Long: `Run a worker that executes release workflows and their activities. It connects with the Temporal
CLI's configuration (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TLS, profiles), checks that
the namespace has every search attribute releases use (and says how to create them if not), and stops
gracefully on SIGINT/SIGTERM. Run several for availability; a release survives any of them dying.

The worker configuration (--config, or $SHEPHERD_CONFIG) declares the named providers release specs may
use: deploy targets (with their commands), metrics sources, notification channels, flag providers, git
repositories, pre-release checks, and where reports go. It is checked at start-up, credentials included;
a problem stops the worker with its field path. Every worker of a task queue needs the same file.`,
		Example: `  shepherd worker --config /etc/shepherd/shepherd.yaml
  SHEPHERD_CONFIG=shepherd.yaml TEMPORAL_ADDRESS=temporal.internal:7233 TEMPORAL_NAMESPACE=releases shepherd worker --log-format console`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			logger, sync, err := f.newLogger()
			if err != nil {
				return err
			}
			defer sync()
			return runWorker(ctx, logger, f, nil)
		},
	}
	f.register(cmd)
	return cmd
}

// runWorker dials with the user's Temporal configuration and runs the worker, its /metrics endpoint and
// the active-release scan until ctx ends.
func runWorker(ctx context.Context, logger sdklog.Logger, f workerFlags, onReady func()) error {
	providers, err := loadProviders(f.config, f.reportDirOf(), worker.BuildOptions{CheckSecrets: true, Log: logger.Info})
	if err != nil {
		return err
	}
	opts, err := envconfig.LoadDefaultClientOptions()
	if err != nil {
		return fmt.Errorf("reading Temporal client configuration: %w", err)
	}
	tel, err := worker.NewTelemetry()
	if err != nil {
		return err
	}
	opts.Logger = logger
	opts.MetricsHandler = tel.SDK
	tracer, flush, err := worker.NewTracing(ctx, f.tracing)
	if err != nil {
		return withHint(ExitUsage, err, "--tracing takes off, otlp or stdout")
	}
	defer func() { _ = flush(context.Background()) }()
	if tracer != nil {
		opts.Interceptors = append(opts.Interceptors, tracer)
	}
	c, err := client.DialContext(ctx, opts)
	if err != nil {
		return withHint(ExitError, fmt.Errorf("cannot reach Temporal at %s: %w", hostPort(opts), err),
			"start a local stack with `make dev`, or point TEMPORAL_ADDRESS at your server")
	}
	defer c.Close()
	logger.Info("Worker starting", "address", hostPort(opts), "namespace", namespace(opts), "config", f.config,
		"targets", providers.Targets.Names(), "metrics", providers.Metrics.Names(), "stateDir", f.stateDir,
		"reportDir", providers.ReportDir, "metricsAddr", f.metricsAddr, "tuning", providers.Tuning.String())

	if providers.Alerts != nil && (f.metricsAddr == "off" || f.metricsAddr == "") {
		return withHint(ExitUsage, errors.New("alerts.webhook is configured but the worker's HTTP server is off (--metrics-addr off)"),
			"give --metrics-addr an address Alertmanager can reach, or remove alerts.webhook from the configuration")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var polling atomic.Bool
	var served chan error // nil when the endpoint is off
	if f.metricsAddr != "off" && f.metricsAddr != "" {
		// Bind before polling: a taken port is an error now, not a surprise at shutdown.
		ln, err := net.Listen("tcp", f.metricsAddr)
		if err != nil {
			return withHint(ExitError, fmt.Errorf("metrics endpoint on %s: %w", f.metricsAddr, err),
				"another worker on this host? give each its own --metrics-addr, or --metrics-addr off")
		}
		served = make(chan error, 1)
		httpLog := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		var routes map[string]http.Handler
		if a := providers.Alerts; a != nil {
			routes = map[string]http.Handler{a.Pattern(): a.Handler(c, tel.Engine, logger)}
			logger.Info("Alert webhook enabled", "addr", f.metricsAddr, "path", a.Path, "serviceLabel", a.Labels.Service,
				"environmentLabel", a.Labels.Environment, "signed", a.Signed())
		}
		srv := &observe.Server{Routes: routes, Addr: f.metricsAddr, Gatherer: tel.Registry,
			Ready: observe.AllReady(
				func(ctx context.Context) error {
					if !polling.Load() {
						return errors.New("not polling the task queue yet")
					}
					return nil
				},
				func(ctx context.Context) error {
					_, err := c.CheckHealth(ctx, &client.CheckHealthRequest{})
					return err
				}),
			Logger: httpLog}
		go func() { served <- srv.Serve(ctx, ln) }()
		go func() {
			_ = tel.Engine.RunScanner(ctx, 15*time.Second, func(ctx context.Context) ([]observe.ActiveRelease, error) {
				return activeReleases(ctx, c)
			})
		}()
	}
	acts := providers.Activities()
	acts.Observer = tel.Observer()
	err = worker.Run(ctx, c, worker.Config{
		Namespace:   namespace(opts),
		Activities:  acts,
		StopTimeout: f.stopTimeout,
		Tuning:      providers.Tuning,
		OnReady: func() {
			polling.Store(true)
			logger.Info("Worker polling", "taskQueue", "shepherd")
			if onReady != nil {
				onReady()
			}
		},
	})
	cancel()
	if err != nil {
		return err
	}
	if served != nil {
		if err := <-served; err != nil {
			return fmt.Errorf("metrics endpoint on %s: %w", f.metricsAddr, err)
		}
	}
	logger.Info("Worker stopped")
	return nil
}

// activeReleases lists running releases for the live gauges.
func activeReleases(ctx context.Context, c client.Client) ([]observe.ActiveRelease, error) {
	rows, err := starter.List(ctx, c, "ExecutionStatus = 'Running'", 1000)
	if err != nil {
		return nil, err
	}
	out := make([]observe.ActiveRelease, 0, len(rows))
	for _, r := range rows {
		out = append(out, observe.ActiveRelease{Service: r.Service, Environment: r.Environment,
			Phase: record.Phase(r.Phase), TrafficPercent: int(r.TrafficPercent)})
	}
	return out, nil
}

func hostPort(o client.Options) string {
	if o.HostPort == "" {
		return client.DefaultHostPort
	}
	return o.HostPort
}

func namespace(o client.Options) string {
	if o.Namespace == "" {
		return client.DefaultNamespace
	}
	return o.Namespace
}
