// Package demo runs Shepherd's demo on a local stack: a Temporal dev server, Prometheus, the demo fleet
// and a worker configured with examples/shepherd.yaml pointed at the stack, then a good release that is
// promoted and a bad one that is rolled back. `shepherd demo`, `shepherd bench` and the end-to-end tests
// use it; the CLI only wires the command.
package demo

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.uber.org/zap"
	"go.uber.org/zap/exp/zapslog"

	"github.com/shepherd-release/shepherd/activities"
	"github.com/shepherd-release/shepherd/config"
	"github.com/shepherd-release/shepherd/examples"
	"github.com/shepherd-release/shepherd/fleet"
	"github.com/shepherd-release/shepherd/internal/devstack"
	"github.com/shepherd-release/shepherd/providers/local"
	"github.com/shepherd-release/shepherd/record"
	"github.com/shepherd-release/shepherd/spec"
	"github.com/shepherd-release/shepherd/starter"
	"github.com/shepherd-release/shepherd/worker"
)

// The demo's service and versions: v1 is bootstrapped as stable, v2 (healthy) is promoted, v3 (about
// 20 % of requests answered with 500) is rolled back.
const (
	Service       = "checkout"
	StableVersion = "v1"
	GoodVersion   = "v2"
	BadVersion    = "v3"
	// BadErrorRate is v3's share of requests answered with 500.
	BadErrorRate = 0.2
	// LoadRPS is the demo fleet's load: enough requests that a 10 % canary shows its error rate
	// within one analysis interval.
	LoadRPS = 50
)

// Profiles are the fleet profiles of the demo versions: v1 and v2 healthy, v3 failing
// BadErrorRate of its requests.
func Profiles() map[string]fleet.Profile {
	return map[string]fleet.Profile{
		BadVersion: {ErrorRate: BadErrorRate, Latency: fleet.DefaultProfile.Latency},
	}
}

// Options configure the local stack `shepherd demo` runs on. Zero ports pick free ones.
type Options struct {
	// StateDir holds the Temporal database (kept between runs, so earlier demos stay browsable in the
	// UI), logs, the fleet's state and Prometheus's data (both reset at every start).
	StateDir string
	// TemporalPort is the Temporal frontend port; 0 picks a free one.
	TemporalPort int
	// UIPort is the Temporal web UI port; 0 picks a free one, -1 runs without the UI.
	UIPort int
	// PrometheusPort is Prometheus's HTTP port; 0 picks a free one.
	PrometheusPort int
	// FleetListen and ProxyListen are the fleet controller's admin API and proxy addresses; default
	// 127.0.0.1:0.
	FleetListen, ProxyListen string
	// ServiceBinary is the demo-service executable; required.
	ServiceBinary string
	// InMemory keeps Temporal's state in memory instead of StateDir/temporal.db (nothing survives Close).
	InMemory bool
	// TemporalBinary and PrometheusBinary default to devstack.FindTemporal and devstack.FindPrometheus.
	TemporalBinary, PrometheusBinary string
	// ScrapeInterval is Prometheus's scrape interval; default 1s.
	ScrapeInterval time.Duration
	// LoadRPS is the fleet's load per service; default LoadRPS.
	LoadRPS float64
	// Profiles are the versions' behaviours; default Profiles().
	Profiles map[string]fleet.Profile
	// Progress receives one line per component started; nil discards them.
	Progress io.Writer
	// Follow prints a release's progress live to w until it ends (the CLI's `shepherd watch`); it returns
	// an error only when it could not follow. Optional: without it, Release prints nothing while waiting.
	Follow func(ctx context.Context, c client.Client, service, environment, runID string, w io.Writer) error
	// Configure adjusts the worker configuration (examples/shepherd.yaml pointed at this stack) before
	// the worker builds its providers, e.g. to add a target; optional.
	Configure func(*config.Config)
}

// Stack is a running local stack: Temporal dev server, Prometheus scraping the fleet through
// file_sd, the fleet controller with its demo-service instances, and a Shepherd worker. Close stops
// all of it.
type Stack struct {
	// Temporal is the dev server; Temporal.UIURL is empty without a UI.
	Temporal *devstack.Temporal
	// Prometheus scrapes every fleet instance.
	Prometheus *devstack.Prometheus
	// Fleet holds the controller's admin API and proxy URLs.
	Fleet fleet.Endpoints
	// Client is connected to Temporal (namespace default).
	Client client.Client
	// StateDir is where the stack keeps its data and logs.
	StateDir string
	// ScrapeInterval is Prometheus's scrape interval.
	ScrapeInterval time.Duration

	logs        []io.Closer
	syncLog     func()
	configure   func(*config.Config)
	follow      func(ctx context.Context, c client.Client, service, environment, runID string, w io.Writer) error
	stopFleet   context.CancelFunc
	fleetDone   chan error
	stopWorker  context.CancelFunc
	workerDone  chan error
	stopSync    context.CancelFunc
	syncDone    chan struct{}
	closeOnce   sync.Once
	progressOut io.Writer
}

// Start starts the demo stack and returns once every part is ready; on error it leaves nothing
// running. ctx bounds the start-up only: the stack runs until Close.
func Start(ctx context.Context, o Options) (_ *Stack, err error) {
	if o.StateDir == "" {
		o.StateDir = filepath.Join(worker.DefaultStateDir(), "demo")
	}
	if o.ServiceBinary == "" {
		return nil, errors.New("demo: Options.ServiceBinary is required")
	}
	o.ScrapeInterval = cmp.Or(o.ScrapeInterval, devstack.DefaultScrapeInterval)
	o.LoadRPS = cmp.Or(o.LoadRPS, LoadRPS)
	if o.Profiles == nil {
		o.Profiles = Profiles()
	}
	s := &Stack{StateDir: o.StateDir, ScrapeInterval: o.ScrapeInterval, progressOut: o.Progress, configure: o.Configure, follow: o.Follow}
	if s.progressOut == nil {
		s.progressOut = io.Discard
	}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	fleetDir := filepath.Join(o.StateDir, "fleet")
	promDir := filepath.Join(o.StateDir, "prometheus")
	sdDir := filepath.Join(o.StateDir, "prometheus-sd")
	if err := os.MkdirAll(o.StateDir, 0o755); err != nil {
		return nil, fmt.Errorf("demo state directory: %w", err)
	}
	// Every demo starts from an empty fleet and fresh metrics; Temporal's history is kept.
	stopOrphans(filepath.Join(fleetDir, "state.json"))
	for _, d := range []string{fleetDir, promDir, sdDir} {
		if err := os.RemoveAll(d); err != nil {
			return nil, fmt.Errorf("resetting %s: %w", d, err)
		}
	}

	db, history := filepath.Join(o.StateDir, "temporal.db"), "history kept in "+filepath.Join(o.StateDir, "temporal.db")
	if o.InMemory {
		db, history = "", "history in memory"
	}
	s.Temporal, err = devstack.StartTemporal(ctx, devstack.TemporalOptions{
		Binary: o.TemporalBinary, Port: o.TemporalPort, UIPort: o.UIPort,
		DBFile: db, LogFile: filepath.Join(o.StateDir, "temporal.log"),
	})
	if err != nil {
		return nil, hinted(fmt.Errorf("starting Temporal: %w", err),
			"`make tools` builds the Temporal CLI; is another server on the port (--port, --ui-port)?")
	}
	ui := "web UI " + s.Temporal.UIURL
	if s.Temporal.UIURL == "" {
		ui = "no web UI"
	}
	s.progress("Temporal dev server   %s (%s; %s)", s.Temporal.Address, ui, history)

	// Prometheus reads the targets from a copy of the fleet's file_sd file that changes only when the
	// targets do (see syncTargets), alone in its directory: Prometheus watches the whole directory and
	// takes any change in it (a log line, a database write) for a target update. It exists before
	// Prometheus starts, so Prometheus watches it from the first moment.
	targets := filepath.Join(sdDir, "targets.json")
	if err := os.MkdirAll(filepath.Dir(targets), 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(targets, []byte("[]\n"), 0o644); err != nil {
		return nil, err
	}
	s.Prometheus, err = devstack.StartPrometheus(ctx, devstack.PrometheusOptions{
		Binary: o.PrometheusBinary, Port: o.PrometheusPort, ScrapeInterval: o.ScrapeInterval,
		FileSD: targets, DataDir: promDir, LogFile: filepath.Join(o.StateDir, "prometheus.log"),
	})
	if err != nil {
		return nil, hinted(fmt.Errorf("starting Prometheus: %w", err),
			"`make tools` builds Prometheus; is another Prometheus on the port (--prometheus-port)?")
	}
	s.progress("Prometheus            %s (scrapes the fleet every %s through file_sd)", s.Prometheus.URL, o.ScrapeInterval)

	syncCtx, stopSync := context.WithCancel(context.Background())
	s.stopSync, s.syncDone = stopSync, make(chan struct{})
	go func() {
		defer close(s.syncDone)
		syncTargets(syncCtx, filepath.Join(fleetDir, "file_sd.json"), targets, 100*time.Millisecond)
	}()
	if err := s.startFleet(ctx, o, fleetDir); err != nil {
		return nil, err
	}
	s.progress("Fleet controller      %s, proxy %s (%g req/s of load; %s)", s.Fleet.Admin, s.Fleet.Proxy, o.LoadRPS,
		describeProfiles(o.Profiles))

	if err := s.startWorker(ctx); err != nil {
		return nil, err
	}
	s.progress("Shepherd worker       polling task queue \"shepherd\" (log %s)", filepath.Join(o.StateDir, "worker.log"))
	return s, nil
}

func (s *Stack) progress(format string, args ...any) {
	fmt.Fprintf(s.progressOut, "  "+format+"\n", args...)
}

func (s *Stack) openLog(name string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(s.StateDir, name), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	s.logs = append(s.logs, f)
	return f, nil
}

func (s *Stack) startFleet(ctx context.Context, o Options, dir string) error {
	logf, err := s.openLog("fleet.log")
	if err != nil {
		return err
	}
	ready := make(chan fleet.Endpoints, 1)
	fctx, stop := context.WithCancel(context.Background())
	s.stopFleet, s.fleetDone = stop, make(chan error, 1)
	cfg := fleet.Config{
		Listen:        cmp.Or(o.FleetListen, "127.0.0.1:0"),
		ProxyListen:   cmp.Or(o.ProxyListen, "127.0.0.1:0"),
		ServiceBinary: o.ServiceBinary,
		StateDir:      dir,
		Profiles:      o.Profiles,
		LoadRPS:       o.LoadRPS,
		Logger:        slog.New(slog.NewTextHandler(logf, nil)),
		OnReady:       func(e fleet.Endpoints) { ready <- e },
	}
	go func() { s.fleetDone <- fleet.Run(fctx, cfg) }()
	select {
	case s.Fleet = <-ready:
		return nil
	case err := <-s.fleetDone:
		s.fleetDone <- err
		return hinted(fmt.Errorf("starting the fleet: %w", err), "pick other --fleet-listen/--proxy-listen addresses")
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(30 * time.Second):
		return fmt.Errorf("the fleet controller did not start within 30s (log %s)", logf.Name())
	}
}

func (s *Stack) startWorker(ctx context.Context) error {
	logger, err := s.workerLogger()
	if err != nil {
		return err
	}
	s.Client, err = client.DialContext(ctx, client.Options{
		HostPort: s.Temporal.Address, Namespace: client.DefaultNamespace, Logger: logger,
	})
	if err != nil {
		return fmt.Errorf("connecting to the demo's Temporal at %s: %w", s.Temporal.Address, err)
	}
	ready := make(chan struct{})
	wctx, stop := context.WithCancel(context.Background())
	s.stopWorker, s.workerDone = stop, make(chan error, 1)
	cfg, err := s.WorkerConfig()
	if err != nil {
		return err
	}
	if s.configure != nil {
		s.configure(&cfg)
	}
	p, err := worker.Build(cfg, worker.BuildOptions{CheckSecrets: true, Log: logger.Info})
	if err != nil {
		return fmt.Errorf("the demo's worker configuration: %w", err)
	}
	if p.ReportDir == "" {
		p.ReportDir = filepath.Join(s.StateDir, "reports")
	}
	// The same worker library and provider wiring as `shepherd worker`; only the client is dialled
	// directly, so a user's Temporal CLI profile (TLS, API key, another namespace) cannot redirect the demo.
	go func() {
		s.workerDone <- worker.Run(wctx, s.Client, worker.Config{
			Namespace:  client.DefaultNamespace,
			Activities: p.Activities(),
			OnReady:    func() { close(ready) },
		})
	}()
	select {
	case <-ready:
		return nil
	case err := <-s.workerDone:
		s.workerDone <- err
		return fmt.Errorf("starting the worker: %w", err)
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(30 * time.Second):
		return errors.New("the worker did not start polling within 30s")
	}
}

// workerLogger sends the worker's and the client's logs (JSON, via zap) to StateDir/worker.log, keeping
// the terminal for the demo's own output.
func (s *Stack) workerLogger() (sdklog.Logger, error) {
	path := filepath.Join(s.StateDir, "worker.log")
	_ = os.Remove(path)
	cfg := zap.NewProductionConfig()
	cfg.OutputPaths, cfg.ErrorOutputPaths = []string{path}, []string{path}
	z, err := cfg.Build()
	if err != nil {
		return nil, fmt.Errorf("worker log %s: %w", path, err)
	}
	s.syncLog = func() { _ = z.Sync() }
	return sdklog.NewStructuredLogger(slog.New(zapslog.NewHandler(z.Core(), zapslog.WithCaller(true)))), nil
}

// Close stops the worker, the fleet (and every demo-service instance), Prometheus and Temporal, in that
// order, and waits for each. It is safe to call more than once.
func (s *Stack) Close() {
	s.closeOnce.Do(func() {
		if s.stopWorker != nil {
			s.stopWorker()
			<-s.workerDone
		}
		if s.Client != nil {
			s.Client.Close()
		}
		if s.stopFleet != nil {
			s.stopFleet()
			<-s.fleetDone
		}
		if s.stopSync != nil {
			s.stopSync()
			<-s.syncDone
		}
		s.Prometheus.Stop()
		s.Temporal.Stop()
		if s.syncLog != nil {
			s.syncLog()
		}
		for _, l := range s.logs {
			l.Close()
		}
	})
}

// WorkerConfig is the demo worker's configuration: examples/shepherd.yaml with its demo-fleet target
// and prometheus source pointed at this stack. The demo's specs are the example files unchanged: only the
// worker's configuration knows where things are.
func (s *Stack) WorkerConfig() (config.Config, error) {
	data, err := fs.ReadFile(examples.FS, examples.WorkerConfig)
	if err != nil {
		return config.Config{}, err
	}
	cfg, err := config.Parse(data)
	if err != nil {
		return config.Config{}, fmt.Errorf("%s: %w", examples.WorkerConfig, err)
	}
	cfg.Targets[Target] = config.Provider{Type: "local", Settings: mustJSON(map[string]string{"controller": s.Fleet.Admin})}
	cfg.Metrics[Metrics] = config.Provider{Type: "prometheus", Settings: mustJSON(map[string]string{"address": s.Prometheus.URL, "timeout": "3s"})}
	return cfg, nil
}

// Names of the demo worker's providers, as examples/shepherd.yaml and the demo specs give them.
const (
	Target  = "demo-fleet"
	Metrics = "prometheus"
)

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// FleetTarget is the local target driving this stack's fleet (for set-up and inspection).
func (s *Stack) FleetTarget() *local.Target {
	return &local.Target{Controller: s.Fleet.Admin}
}

// Bootstrap starts version as the first stable version of service on the fleet.
func (s *Stack) Bootstrap(ctx context.Context, service, version string) error {
	if err := s.FleetTarget().Bootstrap(ctx, service, version); err != nil {
		return fmt.Errorf("bootstrapping %s %s on the fleet: %w (see %s)", service, version, err, filepath.Join(s.StateDir, "fleet.log"))
	}
	return nil
}

// Prepare returns the spec with defaults filled in. The spec needs no rewriting for this stack: it names
// providers, and the demo worker's configuration points them here.
func (s *Stack) Prepare(r spec.Release) spec.Release {
	return r.WithDefaults()
}

// Release is one release run by the demo, with the timings its summary reports.
type Release struct {
	// Spec is the spec as started (defaults filled in, pointed at the stack).
	Spec spec.Release `json:"spec"`
	// WorkflowID and RunID identify the workflow.
	WorkflowID string `json:"workflowID"`
	RunID      string `json:"runID"`
	// Result is the workflow's final record.
	Result record.Status `json:"result"`
	// Wall is the wall-clock time from start to the end of the release.
	Wall time.Duration `json:"wall"`
	// BreachOnset is when the canary first got traffic (the first traffic decision of a stage); zero if
	// it never did.
	BreachOnset time.Time `json:"breachOnset,omitzero"`
	// RollbackDecided is when the release moved to RollingBack; zero if it did not.
	RollbackDecided time.Time `json:"rollbackDecided,omitzero"`
	// RolledBackAt is the time of the RolledBack decision; zero unless the release rolled back.
	RolledBackAt time.Time `json:"rolledBackAt,omitzero"`
	// FailedCheck is the last failed measurement before the rollback, if analysis caused it.
	FailedCheck *record.Measurement `json:"failedCheck,omitempty"`
}

// BreachToRollback is the time from breach onset (the canary got traffic) to the RolledBack decision.
func (r Release) BreachToRollback() time.Duration {
	if r.BreachOnset.IsZero() || r.RolledBackAt.IsZero() {
		return 0
	}
	return r.RolledBackAt.Sub(r.BreachOnset)
}

// BreachToDecision is the time from breach onset to the rollback decision.
func (r Release) BreachToDecision() time.Duration {
	if r.BreachOnset.IsZero() || r.RollbackDecided.IsZero() {
		return 0
	}
	return r.RollbackDecided.Sub(r.BreachOnset)
}

// Release starts r on this stack (after Prepare), waits for it to end and returns its record with the
// demo's timings. With progress set, it follows the release there as `shepherd watch` does. The wait is
// bounded by the release's total soak plus three minutes.
func (s *Stack) Release(ctx context.Context, r spec.Release, progress io.Writer) (Release, error) {
	d := s.Prepare(r)
	out := Release{Spec: d, WorkflowID: spec.WorkflowID(d.Service, d.Environment)}
	if err := s.terminateStale(ctx, out.WorkflowID); err != nil {
		return out, err
	}
	limit := d.TotalSoak() + 3*time.Minute
	ctx, cancelTimeout := context.WithTimeout(ctx, limit)
	defer cancelTimeout()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	began := time.Now()
	st, err := starter.Start(ctx, s.Client, d)
	if err != nil {
		return out, fmt.Errorf("starting the release of %s %s: %w", d.Service, d.Version, err)
	}
	out.RunID = st.RunID
	go s.stopIfPaused(ctx, cancel, d, st.RunID)
	if progress != nil && s.follow != nil {
		if err := s.follow(ctx, s.Client, d.Service, d.Environment, st.RunID, progress); err != nil {
			return out, s.waitError(ctx, d, limit, err)
		}
	}
	res, err := starter.Wait(ctx, s.Client, d.Service, d.Environment, st.RunID)
	if err != nil {
		return out, s.waitError(ctx, d, limit, err)
	}
	out.Wall = time.Since(began)
	out.Result = res
	out.fillTimings()
	return out, nil
}

// errPaused is the cause of a demo release's context when the release paused for a human.
var errPaused = errors.New("release paused")

// stopIfPaused cancels the wait for a release that pauses: nobody is there to resume a demo release, and
// a pause means its checks had no data (see the worker and Prometheus logs).
func (s *Stack) stopIfPaused(ctx context.Context, cancel context.CancelCauseFunc, d spec.Release, runID string) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
		st, err := starter.Status(ctx, s.Client, d.Service, d.Environment, runID)
		if err == nil && st.Phase == record.PhasePaused {
			last := ""
			if n := len(st.Decisions); n > 0 {
				last = st.Decisions[n-1].Message
			}
			cancel(fmt.Errorf("%w (%s); the demo does not resume it", errPaused, last))
			return
		}
	}
}

func (s *Stack) waitError(ctx context.Context, d spec.Release, limit time.Duration, err error) error {
	if cause := context.Cause(ctx); errors.Is(cause, errPaused) {
		return fmt.Errorf("the release of %s %s stopped: %w; see %s and %s", d.Service, d.Version, cause,
			filepath.Join(s.StateDir, "worker.log"), filepath.Join(s.StateDir, "prometheus.log"))
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("the release of %s %s did not end within %s: %w (is it paused for lack of data? "+
			"see %s and the web UI)", d.Service, d.Version, limit, err, filepath.Join(s.StateDir, "worker.log"))
	}
	return fmt.Errorf("waiting for the release of %s %s: %w", d.Service, d.Version, err)
}

// terminateStale ends a release left running by an interrupted demo (the Temporal database is kept
// between runs; the fleet it ran on is not).
func (s *Stack) terminateStale(ctx context.Context, workflowID string) error {
	desc, err := s.Client.DescribeWorkflow(ctx, workflowID, "")
	if err != nil || desc.Status != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		return nil // not found, or ended: nothing to do
	}
	if err := s.Client.TerminateWorkflow(ctx, workflowID, "", "left running by an interrupted shepherd demo"); err != nil {
		return fmt.Errorf("terminating the stale demo release %s: %w", workflowID, err)
	}
	s.progress("Terminated release %s left running by an earlier, interrupted demo", workflowID)
	return nil
}

// fillTimings derives the demo's timings from the decision log (workflow time, one clock).
func (r *Release) fillTimings() {
	res := r.Result
	for i, d := range res.Decisions {
		switch {
		case r.BreachOnset.IsZero() && d.Kind == record.KindStep && d.Stage > 0 && strings.Contains(d.Message, "traffic"):
			r.BreachOnset = d.Time
		case r.RollbackDecided.IsZero() && d.Kind == record.KindTransition && d.Phase == record.PhaseRollingBack:
			r.RollbackDecided = d.Time
			for j := i - 1; j >= 0 && r.FailedCheck == nil; j-- {
				for _, m := range res.Decisions[j].Measurements {
					if m.Verdict == record.Fail {
						m := m
						r.FailedCheck = &m
						break
					}
				}
			}
		case d.Kind == record.KindTransition && d.Phase == record.PhaseRolledBack:
			r.RolledBackAt = d.Time
		}
	}
	// Should the traffic decision ever be worded differently, the first stage's start is the closest
	// earlier time (it precedes the traffic shift by the shift itself).
	if r.BreachOnset.IsZero() && len(res.Stages) > 0 {
		r.BreachOnset = res.Stages[0].StartedAt
	}
}

// Specs returns the demo's two release specs (examples/demo-good.yaml and demo-bad.yaml, embedded);
// a positive soak or interval replaces every stage's soak or the analysis interval.
func Specs(soak, interval time.Duration) (good, bad spec.Release, err error) {
	read := func(name string) (spec.Release, error) {
		data, err := fs.ReadFile(examples.FS, name)
		if err != nil {
			return spec.Release{}, err
		}
		r, err := spec.Parse(data)
		if err != nil {
			return r, fmt.Errorf("examples/%s: %w", name, err)
		}
		for i := range r.Stages {
			if soak > 0 {
				r.Stages[i].Soak = spec.Duration(soak)
			}
		}
		if interval > 0 {
			r.Analysis.Interval = spec.Duration(interval)
		}
		if err := activities.ValidateSpec(r.WithDefaults()); err != nil {
			return r, fmt.Errorf("examples/%s: %w", name, err)
		}
		return r, nil
	}
	if good, err = read(examples.DemoGood); err != nil {
		return
	}
	bad, err = read(examples.DemoBad)
	return
}

// Run runs the demo on a started stack: it bootstraps v1 as stable, releases v2 (healthy, promoted)
// and then v3 (failing, rolled back), following each on progress when it is not nil. It returns both
// releases; whether they ended as intended is for the caller to judge (Check).
func Run(ctx context.Context, s *Stack, soak, interval time.Duration, progress io.Writer) ([]Release, error) {
	good, bad, err := Specs(soak, interval)
	if err != nil {
		return nil, err
	}
	say := func(format string, args ...any) {
		if progress != nil {
			fmt.Fprintf(progress, format, args...)
		}
	}
	if err := s.Bootstrap(ctx, good.Service, good.PreviousVersion); err != nil {
		return nil, err
	}
	say("\n%s %s is the stable version, serving all traffic.\n", good.Service, good.PreviousVersion)
	var out []Release
	for i, r := range []spec.Release{good, bad} {
		say("\n=== Release %d/2: %s %s → %s — %s\n", i+1, r.Service, r.PreviousVersion, r.Version, r.Description)
		if u := s.uiLink(spec.WorkflowID(r.Service, cmp.Or(r.Environment, spec.DefaultEnvironment)), ""); u != "" {
			say("    (follow it in the web UI: %s)\n", u)
		}
		rel, err := s.Release(ctx, r, progress)
		if err != nil {
			return out, err
		}
		out = append(out, rel)
	}
	return out, nil
}

// Check says whether the demo showed what it should: v2 Succeeded, v3 RolledBack because error-rate
// failed.
func Check(rels []Release) error {
	if len(rels) != 2 {
		return fmt.Errorf("demo ran %d of 2 releases", len(rels))
	}
	var problems []string
	if p := rels[0].Result.Phase; p != record.PhaseSucceeded {
		problems = append(problems, fmt.Sprintf("the good release %s ended %s, not Succeeded: %s", rels[0].Spec.Version, p, rels[0].Result.Reason))
	}
	switch b := rels[1]; {
	case b.Result.Phase != record.PhaseRolledBack:
		problems = append(problems, fmt.Sprintf("the bad release %s ended %s, not RolledBack: %s", b.Spec.Version, b.Result.Phase, b.Result.Reason))
	case b.FailedCheck == nil || b.FailedCheck.Check != "error-rate":
		problems = append(problems, fmt.Sprintf("the bad release %s rolled back, but not on a failed error-rate check: %s", b.Spec.Version, b.Result.Reason))
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

// uiLink is the web UI page of a workflow (its latest run when runID is empty), or "" without a UI.
func (s *Stack) uiLink(workflowID, runID string) string {
	if s.Temporal == nil || s.Temporal.UIURL == "" {
		return ""
	}
	u := fmt.Sprintf("%s/namespaces/%s/workflows/%s", s.Temporal.UIURL, client.DefaultNamespace, url.PathEscape(workflowID))
	if runID != "" {
		u += "/" + runID
	}
	return u
}

// RenderSummary writes the demo's summary: each release's outcome and per-stage measurements, and
// for a rolled-back release the time from breach onset to rollback.
func RenderSummary(w io.Writer, s *Stack, rels []Release) {
	fmt.Fprintln(w, "\n=== Summary")
	for _, r := range rels {
		res := r.Result
		fmt.Fprintf(w, "\n%s %s → %s: %s in %s\n", res.Service, res.PreviousVersion, res.Version, res.Phase, r.Wall.Round(100*time.Millisecond))
		fmt.Fprintf(w, "  Reason: %s\n", res.Reason)
		renderStageMeasurements(w, r)
		if res.Phase == record.PhaseRolledBack && !r.BreachOnset.IsZero() {
			fmt.Fprintf(w, "  Breach onset:        %s  %s got %d%% of the traffic\n", r.BreachOnset.Local().Format("15:04:05.000"),
				res.Version, firstPercent(r.Spec))
			if r.FailedCheck != nil {
				fmt.Fprintf(w, "  Rollback decided:    +%s  %s = %s (%s)\n", FormatDuration(r.BreachToDecision()), r.FailedCheck.Check,
					value(*r.FailedCheck), r.FailedCheck.Reason)
			} else if !r.RollbackDecided.IsZero() {
				fmt.Fprintf(w, "  Rollback decided:    +%s\n", FormatDuration(r.BreachToDecision()))
			}
			fmt.Fprintf(w, "  Traffic on stable:   %s after the decision (TrafficRestoredAfter)\n", FormatDuration(res.TrafficRestoredAfter))
			fmt.Fprintf(w, "  Rollback complete:   +%s after breach onset (RolledBack; canary removed)\n", FormatDuration(r.BreachToRollback()))
			fmt.Fprintf(w, "  (analysis every %s, Prometheus scrapes every %s)\n", r.Spec.Analysis.Interval, s.ScrapeInterval)
		}
		if u := s.uiLink(r.WorkflowID, r.RunID); u != "" {
			fmt.Fprintf(w, "  Web UI: %s\n", u)
		}
	}
}

func firstPercent(d spec.Release) int {
	if len(d.Stages) == 0 {
		return 0
	}
	return d.Stages[0].Percent
}

// FormatDuration shows a duration rounded for people: to the millisecond below 1 s, else to 10 ms.
func FormatDuration(d time.Duration) string {
	if d < time.Second {
		return d.Round(time.Millisecond).String()
	}
	return d.Round(10 * time.Millisecond).String()
}

// renderStageMeasurements is a table of every stage with each check's measured values in order.
func renderStageMeasurements(w io.Writer, r Release) {
	checks := make([]string, 0, len(r.Spec.Analysis.Checks))
	for _, c := range r.Spec.Analysis.Checks {
		checks = append(checks, c.Name)
	}
	values := map[int]map[string][]string{}
	for _, d := range r.Result.Decisions {
		for _, m := range d.Measurements {
			if values[m.Stage] == nil {
				values[m.Stage] = map[string][]string{}
			}
			v := value(m)
			if m.Verdict == record.Fail {
				v += "✗"
			}
			values[m.Stage][m.Check] = append(values[m.Stage][m.Check], v)
		}
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprint(tw, "  STAGE\tTRAFFIC\tSOAK\tOUTCOME")
	for _, c := range checks {
		fmt.Fprint(tw, "\t"+strings.ToUpper(c))
	}
	fmt.Fprintln(tw)
	for _, p := range r.Result.Stages {
		outcome := cmp.Or(p.Outcome, "not reached")
		fmt.Fprintf(tw, "  %d\t%d%%\t%s\t%s", p.Number, p.Percent, p.Soak, outcome)
		for _, c := range checks {
			fmt.Fprint(tw, "\t"+cmp.Or(strings.Join(values[p.Number][c], " "), "-"))
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
}

// syncTargets copies the fleet's file_sd file src to dst whenever its content changes, checking every
// step, until ctx ends. The fleet rewrites its file on every change of its state (each traffic shift),
// and Prometheus treats every rewrite as a target update; it throttles updates with a back-off that grows
// towards 5 s while they keep coming, so a stream of rewrites that change nothing would delay the first
// scrape of the next canary by seconds. The copy changes only when the targets do.
func syncTargets(ctx context.Context, src, dst string, step time.Duration) {
	var last []byte
	t := time.NewTicker(step)
	defer t.Stop()
	for {
		if data, err := os.ReadFile(src); err == nil && !bytes.Equal(data, last) && json.Valid(data) {
			// Written beside the watched directory and renamed into it: one event per change.
			tmp := filepath.Join(filepath.Dir(filepath.Dir(dst)), "."+filepath.Base(dst)+".tmp")
			if os.WriteFile(tmp, data, 0o644) == nil && os.Rename(tmp, dst) == nil {
				last = data
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// stopOrphans stops demo-service instances that a demo killed without warning (SIGKILL) left running,
// as its fleet state file records them. It only signals processes that still run the recorded service
// and version, so a reused pid is left alone.
func stopOrphans(statePath string) {
	data, err := os.ReadFile(statePath)
	if err != nil {
		return
	}
	var st struct {
		Services map[string]struct {
			Instances map[string]struct {
				PID int `json:"pid"`
			} `json:"instances"`
		} `json:"services"`
	}
	if json.Unmarshal(data, &st) != nil {
		return
	}
	for name, svc := range st.Services {
		for version, inst := range svc.Instances {
			if inst.PID <= 0 {
				continue
			}
			cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(inst.PID) + "/cmdline")
			if err != nil || !bytes.Contains(cmdline, []byte("--service\x00"+name+"\x00")) ||
				!bytes.Contains(cmdline, []byte("--version\x00"+version+"\x00")) {
				continue
			}
			_ = syscall.Kill(inst.PID, syscall.SIGTERM)
		}
	}
}

// ServiceBinary finds the demo-service executable as `shepherd fleet` does; failing that, inside a
// checkout of this repository, it builds one into dir.
func ServiceBinary(ctx context.Context, explicit, dir string, progress io.Writer) (string, error) {
	p, err := FindServiceBinary(explicit)
	if err == nil || explicit != "" {
		return p, err
	}
	mod, rerr := os.ReadFile("go.mod")
	if rerr != nil || !bytes.Contains(mod, []byte("module github.com/shepherd-release/shepherd\n")) {
		return "", err
	}
	if _, lerr := exec.LookPath("go"); lerr != nil {
		return "", err
	}
	out := filepath.Join(dir, ServiceBinaryName)
	fmt.Fprintf(progress, "  Building %s (go build ./cmd/demo-service) ...\n", out)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/demo-service")
	if b, berr := cmd.CombinedOutput(); berr != nil {
		return "", hinted(fmt.Errorf("building the demo service: %v\n%s", berr, b), "run `make build` and try again")
	}
	return out, nil
}

// Abandon terminates the demo's releases still running when the demo is interrupted or fails, so the
// next demo (same Temporal database) starts clean and the UI does not show them forever running.
func (s *Stack) Abandon() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	good, bad, err := Specs(0, 0)
	if err != nil {
		return
	}
	for _, r := range []spec.Release{good, bad} {
		d := r.WithDefaults()
		_ = s.Client.TerminateWorkflow(ctx, spec.WorkflowID(d.Service, d.Environment), "", "shepherd demo interrupted")
	}
}

// hinted adds what to do about err to its message.
func hinted(err error, hint string) error {
	if hint == "" {
		return err
	}
	return fmt.Errorf("%w (%s)", err, hint)
}

// ServiceBinaryName is the demo service executable that `make build` puts next to bin/shepherd.
const ServiceBinaryName = "demo-service"

// FindServiceBinary locates the demo-service executable: the explicit path, else demo-service next to
// this executable (bin/shepherd and bin/demo-service, as `make build` lays them out), else
// bin/demo-service under the working directory, else demo-service on PATH.
func FindServiceBinary(explicit string) (string, error) {
	hint := "build it with `make build` (go build -o bin/demo-service ./cmd/demo-service) or pass --service-binary"
	if explicit != "" {
		if !isExecutableFile(explicit) {
			return "", hinted(fmt.Errorf("--service-binary %s is not an executable file", explicit), hint)
		}
		return filepath.Abs(explicit)
	}
	var tried []string
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), ServiceBinaryName)
		if isExecutableFile(p) {
			return p, nil
		}
		tried = append(tried, p)
	}
	if p, err := filepath.Abs(filepath.Join("bin", ServiceBinaryName)); err == nil {
		if isExecutableFile(p) {
			return p, nil
		}
		tried = append(tried, p)
	}
	if p, err := exec.LookPath(ServiceBinaryName); err == nil {
		return filepath.Abs(p)
	}
	tried = append(tried, ServiceBinaryName+" on PATH")
	return "", hinted(fmt.Errorf("demo service binary not found (tried %s)", strings.Join(tried, ", ")), hint)
}

func isExecutableFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode().Perm()&0o111 != 0
}

// describeProfiles is a one-line summary of the profiles, for start-up messages.
func describeProfiles(m map[string]fleet.Profile) string {
	if len(m) == 0 {
		return "every version healthy"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		p := m[k]
		parts = append(parts, fmt.Sprintf("%s: %g%% errors, %s latency", k, p.ErrorRate*100, p.Latency))
	}
	return strings.Join(parts, "; ")
}

func value(m record.Measurement) string {
	if m.Value == nil {
		return "no data"
	}
	return fmt.Sprintf("%.4g", *m.Value)
}
