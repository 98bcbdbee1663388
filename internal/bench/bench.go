// Package bench measures Shepherd's rollback speed on a local stack (internal/demo) and writes the
// results as Markdown (docs/BENCHMARKS.md); `shepherd bench` wires it as a command.
package bench

import (
	"bytes"
	"context"
	"debug/buildinfo"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/shepherd-release/shepherd/config"
	"github.com/shepherd-release/shepherd/internal/demo"
	"github.com/shepherd-release/shepherd/internal/devstack"
	"github.com/shepherd-release/shepherd/record"
	"github.com/shepherd-release/shepherd/spec"
	"github.com/shepherd-release/shepherd/starter"
	"github.com/shepherd-release/shepherd/workflows"
)

// Names used only by the benchmark's floor measurement, on a task queue of its own.
const (
	benchFloorQueue    = "shepherd-bench-floor"
	benchFloorWorkflow = "ShepherdBenchFloor"
	benchFloorActivity = "ShepherdBenchNoop"
	benchFloorSignal   = "go"
	benchReadyQuery    = "ready"
	benchWarmup        = 2
	// MinReleases is the least Config.Releases that gives a p99 worth the name.
	MinReleases = 20
	// benchBreachGap separates breach runs (and the first one from the bootstrap): Prometheus throttles
	// target updates with a back-off that only resets after 5 s without one, so a canary deployed right
	// after another target change is discovered seconds late. Spaced out, each deploy is discovered as
	// in a fleet where deploys are rare.
	benchBreachGap = 8 * time.Second
)

// Config configures one benchmark run.
type Config struct {
	// Releases is how many releases are aborted for (a), and floor runs; at least MinReleases.
	Releases int
	// BreachRuns is how many bad releases analysis rolls back for (b); at least 1.
	BreachRuns int
	// StateDir keeps the stack's data and logs; default a temporary directory, removed.
	StateDir string
	// ServiceBinary, TemporalBin and PrometheusBin locate the executables (see demo.Options).
	ServiceBinary, TemporalBin, PrometheusBin string
	// InMemory runs Temporal without its SQLite file.
	InMemory bool
}

// Results is everything one run measured.
type Results struct {
	started, finished time.Time
	abort, floor      []time.Duration // (a): signal sent → traffic-0 command ran; signal sent → no-op activity ran
	warmAbort         []time.Duration // (a): the warm-up runs, not counted
	warmFloor         []time.Duration
	restoredAfter     []time.Duration // (a): the workflow's own TrafficRestoredAfter
	breaches          []demo.Release  // (b)
	history           []historyRun    // (c)
	interval, scrape  time.Duration   // (b) configuration
	loadRPS           float64
}

// breachVersion names the bad version of breach run i; each run gets a version of its own so that no
// series of an earlier run is still inside the checks' rate window.
func breachVersion(i int) string { return fmt.Sprintf("%s.%d", demo.BadVersion, i+1) }

// Run starts a local stack and measures (a) and (b), printing progress to out.
func Run(ctx context.Context, out io.Writer, c Config) (Results, error) {
	res := Results{started: time.Now()}
	dir := c.StateDir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "shepherd-bench-")
		if err != nil {
			return res, err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	bin, err := demo.ServiceBinary(ctx, c.ServiceBinary, filepath.Join(dir, "bin"), out)
	if err != nil {
		return res, err
	}
	profiles := demo.Profiles()
	for i := range c.BreachRuns {
		profiles[breachVersion(i)] = profiles[demo.BadVersion]
	}
	fmt.Fprintf(out, "Starting the stack (state in %s) ...\n", dir)
	s, err := demo.Start(ctx, demo.Options{
		StateDir: dir, UIPort: -1, InMemory: c.InMemory, ServiceBinary: bin, Profiles: profiles, Progress: out,
		TemporalBinary: c.TemporalBin, PrometheusBinary: c.PrometheusBin,
		Configure: func(cfg *config.Config) { cfg.Targets[benchTarget] = benchTargetConfig(filepath.Join(dir, "marks")) },
	})
	if err != nil {
		return res, err
	}
	defer s.Close()
	res.scrape, res.loadRPS = s.ScrapeInterval, demo.LoadRPS

	if err := benchAbort(ctx, out, s, c.Releases, dir, &res); err != nil {
		return res, err
	}
	if err := benchBreach(ctx, out, s, c.BreachRuns, &res); err != nil {
		return res, err
	}
	if err := benchHistory(ctx, out, s.Client, &res); err != nil {
		return res, err
	}
	res.finished = time.Now()
	return res, nil
}

// floorRecorder remembers when each floor run's no-op activity ran.
type floorRecorder struct {
	mu  sync.Mutex
	ran map[string]time.Time
}

func (f *floorRecorder) noop(_ context.Context, id string) error {
	now := time.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ran[id] = now
	return nil
}

func (f *floorRecorder) get(id string) (time.Time, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, ok := f.ran[id]
	return t, ok
}

// floorWorkflow is the least a signal-driven workflow does: wait for a signal, then run one activity.
func floorWorkflow(ctx workflow.Context, id string) error {
	if err := workflow.SetQueryHandler(ctx, benchReadyQuery, func() (bool, error) { return true, nil }); err != nil {
		return err
	}
	workflow.GetSignalChannel(ctx, benchFloorSignal).Receive(ctx, nil)
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 10 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 1},
	})
	return workflow.ExecuteActivity(ctx, benchFloorActivity, id).Get(ctx, nil)
}

// benchAbort measures (a): Shepherd's abort path and the floor, interleaved so both see the same load.
func benchAbort(ctx context.Context, out io.Writer, s *demo.Stack, n int, dir string, res *Results) error {
	rec := &floorRecorder{ran: map[string]time.Time{}}
	w := sdkworker.New(s.Client, benchFloorQueue, sdkworker.Options{})
	w.RegisterWorkflowWithOptions(floorWorkflow, workflow.RegisterOptions{Name: benchFloorWorkflow})
	w.RegisterActivityWithOptions(rec.noop, activity.RegisterOptions{Name: benchFloorActivity})
	if err := w.Start(); err != nil {
		return fmt.Errorf("starting the floor worker: %w", err)
	}
	defer w.Stop()
	marks := filepath.Join(dir, "marks")
	if err := os.MkdirAll(marks, 0o755); err != nil {
		return err
	}
	fmt.Fprintf(out, "\n(a) abort signal → traffic on stable: %d releases (+%d warm-up), interleaved with the Temporal floor\n", n, benchWarmup)
	for i := range n + benchWarmup {
		fl, err := floorOnce(ctx, s.Client, rec, i)
		if err != nil {
			return fmt.Errorf("floor run %d: %w", i+1, err)
		}
		ab, restored, err := abortOnce(ctx, s.Client, marks, i)
		if err != nil {
			return fmt.Errorf("abort run %d: %w", i+1, err)
		}
		if i < benchWarmup {
			res.warmAbort, res.warmFloor = append(res.warmAbort, ab), append(res.warmFloor, fl)
			fmt.Fprintf(out, "  warm-up %d: shepherd %s, floor %s\n", i+1, demo.FormatDuration(ab), demo.FormatDuration(fl))
			continue
		}
		res.floor = append(res.floor, fl)
		res.abort = append(res.abort, ab)
		res.restoredAfter = append(res.restoredAfter, restored)
		if k := i - benchWarmup + 1; k%5 == 0 || k == n {
			fmt.Fprintf(out, "  %d/%d: shepherd %s, floor %s\n", k, n, demo.FormatDuration(ab), demo.FormatDuration(fl))
		}
	}
	return nil
}

// floorOnce starts a floor workflow, waits until it waits for its signal, signals it and returns the
// time from sending the signal to the activity running.
func floorOnce(ctx context.Context, c client.Client, rec *floorRecorder, i int) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	id := fmt.Sprintf("bench-floor-%d-%d", time.Now().UnixNano(), i)
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: benchFloorQueue}, benchFloorWorkflow, id)
	if err != nil {
		return 0, err
	}
	if err := pollUntil(ctx, 10*time.Millisecond, func() (bool, error) {
		_, err := c.QueryWorkflow(ctx, id, run.GetRunID(), benchReadyQuery)
		return err == nil, nil
	}); err != nil {
		return 0, fmt.Errorf("floor workflow never became ready: %w", err)
	}
	sent := time.Now()
	if err := c.SignalWorkflow(ctx, id, run.GetRunID(), benchFloorSignal, nil); err != nil {
		return 0, err
	}
	if err := run.Get(ctx, nil); err != nil {
		return 0, err
	}
	ran, ok := rec.get(id)
	if !ok {
		return 0, errors.New("the no-op activity did not record its run")
	}
	return ran.Sub(sent), nil
}

// benchTarget is the exec target of the abort benchmark: its traffic command writes a nanosecond
// timestamp to marks/restored-<version> when traffic is set back to 0 %.
const benchTarget = "bench"

func benchTargetConfig(marks string) config.Provider {
	settings, _ := json.Marshal(map[string]string{
		"deploy":   "true",
		"traffic":  `if [ "$SHEPHERD_PERCENT" -eq 0 ]; then date +%s%N > "$SHEPHERD_BENCH_MARKS/restored-$SHEPHERD_VERSION"; fi`,
		"promote":  "true",
		"rollback": "true",
		"timeout":  "30s",
	})
	var m map[string]any
	_ = json.Unmarshal(settings, &m)
	m["env"] = map[string]string{"SHEPHERD_BENCH_MARKS": marks}
	settings, _ = json.Marshal(m)
	return config.Provider{Type: "exec", Settings: settings}
}

// abortSpec is a release on the bench target, aborted while soaking.
func abortSpec(i int) spec.Release {
	return spec.Release{
		Service: "bench", Environment: "bench", Version: fmt.Sprintf("b%d", i+1), PreviousVersion: "b0",
		Description: "shepherd bench: aborted while soaking",
		Target:      benchTarget,
		Stages:      []spec.Stage{{Percent: 10, Soak: spec.Duration(time.Hour)}, {Percent: 100, Soak: spec.Duration(time.Minute)}},
		// Analysis on with the default interval: the abort lands while the stage's watch runs.
		Analysis: spec.Analysis{Source: demo.Metrics, Checks: []spec.Check{{Name: "constant", Query: "vector(0.001)", Max: &abortCheckMax}}},
	}
}

var abortCheckMax = 0.01

// abortOnce starts a release, waits until its first stage soaks, sends the abort signal and returns the
// time from sending it to the traffic-0 command having run, and the workflow's TrafficRestoredAfter.
func abortOnce(ctx context.Context, c client.Client, marks string, i int) (time.Duration, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	r := abortSpec(i)
	mark := filepath.Join(marks, "restored-"+r.Version)
	st, err := starter.Start(ctx, c, r)
	if err != nil {
		return 0, 0, err
	}
	d := st.Spec
	if err := pollUntil(ctx, 10*time.Millisecond, func() (bool, error) {
		s, err := starter.Status(ctx, c, d.Service, d.Environment, st.RunID)
		if err != nil {
			return false, nil // the first workflow task may not have run yet
		}
		if s.Phase.Terminal() {
			return false, fmt.Errorf("release ended before it was aborted: %s %s", s.Phase, s.Reason)
		}
		return s.Phase == record.PhaseProgressing && s.Stage != nil && !s.Stage.SoakEndsAt.IsZero(), nil
	}); err != nil {
		return 0, 0, fmt.Errorf("waiting for the soak: %w", err)
	}
	sent := time.Now()
	if err := c.SignalWorkflow(ctx, st.WorkflowID, st.RunID, workflows.Abort,
		workflows.ControlRequest{By: "bench", Reason: "benchmark"}); err != nil {
		return 0, 0, err
	}
	final, err := starter.Wait(ctx, c, d.Service, d.Environment, st.RunID)
	if err != nil {
		return 0, 0, err
	}
	if final.Phase != record.PhaseRolledBack {
		return 0, 0, fmt.Errorf("release ended %s, not RolledBack: %s", final.Phase, final.Reason)
	}
	data, err := os.ReadFile(mark)
	if err != nil {
		return 0, 0, fmt.Errorf("the traffic-0 command left no timestamp: %w", err)
	}
	ns, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("timestamp %q: %w (is `date +%%s%%N` GNU date?)", data, err)
	}
	return time.Unix(0, ns).Sub(sent), final.TrafficRestoredAfter, nil
}

// benchBreach measures (b): bad versions rolled back by their failing error rate.
func benchBreach(ctx context.Context, out io.Writer, s *demo.Stack, n int, res *Results) error {
	_, bad, err := demo.Specs(0, 0)
	if err != nil {
		return err
	}
	// Analysis as a user gets it without tuning: the default interval and limits.
	bad.Analysis.Interval, bad.Analysis.FailureLimit, bad.Analysis.InconclusiveLimit = 0, 0, 0
	res.interval = bad.WithDefaults().Analysis.Interval.D()
	if err := s.Bootstrap(ctx, bad.Service, demo.StableVersion); err != nil {
		return err
	}
	fmt.Fprintf(out, "\n(b) breach onset → rollback complete: %d releases of a version failing %g%% of requests "+
		"(analysis every %s, scrape every %s)\n", n, demo.BadErrorRate*100, res.interval, s.ScrapeInterval)
	for i := range n {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(benchBreachGap):
		}
		r := bad
		r.Version, r.PreviousVersion = breachVersion(i), demo.StableVersion
		rel, err := s.Release(ctx, r, nil)
		if err != nil {
			return fmt.Errorf("breach run %d: %w", i+1, err)
		}
		if rel.Result.Phase != record.PhaseRolledBack {
			return fmt.Errorf("breach run %d: %s ended %s, not RolledBack: %s", i+1, r.Version, rel.Result.Phase, rel.Result.Reason)
		}
		res.breaches = append(res.breaches, rel)
		fmt.Fprintf(out, "  %d/%d: %s rolled back %s after breach onset (decided at +%s: %s)\n", i+1, n, r.Version,
			demo.FormatDuration(rel.BreachToRollback()), demo.FormatDuration(rel.BreachToDecision()), failedText(rel))
	}
	return nil
}

func failedText(r demo.Release) string {
	if r.FailedCheck == nil {
		return r.Result.Reason
	}
	return r.FailedCheck.Check + " " + r.FailedCheck.Reason
}

// pollUntil calls cond every step until it returns true or an error, or ctx ends.
func pollUntil(ctx context.Context, step time.Duration, cond func() (bool, error)) error {
	for {
		ok, err := cond()
		if err != nil || ok {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(step):
		}
	}
}

// percentile is the nearest-rank percentile p (0..1) of ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(p*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func durList(ds []time.Duration) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = demo.FormatDuration(d)
	}
	return strings.Join(parts, ", ")
}

func verdict(ok bool) string {
	if ok {
		return "**PASS**"
	}
	return "**MISS**"
}

// benchMarkdown renders docs/BENCHMARKS.md.
// Markdown writes the results, the method and the machine as a Markdown document.
func Markdown(r Results, c Config) string {
	var b strings.Builder
	ap50, ap99 := percentile(r.abort, 0.5), percentile(r.abort, 0.99)
	fp50, fp99 := percentile(r.floor, 0.5), percentile(r.floor, 0.99)
	rp50, rp99 := percentile(r.restoredAfter, 0.5), percentile(r.restoredAfter, 0.99)
	var rollback, decide, restore []time.Duration
	for _, rel := range r.breaches {
		rollback = append(rollback, rel.BreachToRollback())
		decide = append(decide, rel.BreachToDecision())
		restore = append(restore, rel.Result.TrafficRestoredAfter)
	}
	target := r.interval + r.scrape + time.Second
	within := 0
	for _, d := range rollback {
		if d <= target {
			within++
		}
	}
	bmax := slices.Max(append([]time.Duration{0}, rollback...))

	fmt.Fprintf(&b, "# Benchmarks\n\n")
	fmt.Fprintf(&b, "How fast Shepherd gets traffic back on the stable version, measured by `shepherd bench` on %s "+
		"(one run, %s). The numbers below are what that run measured, misses included; re-run it on your machine "+
		"with `make bench`.\n\n", r.started.UTC().Format("2006-01-02 15:04 MST"), r.finished.Sub(r.started).Round(time.Second))

	b.WriteString("## Results\n\n")
	b.WriteString("| Measurement | Samples | p50 | p99 | Max | Target | Result |\n|---|---|---|---|---|---|---|\n")
	fmt.Fprintf(&b, "| (a) abort signal → traffic-0 command ran (Shepherd, exec target) | %d | %s | %s | %s | p50 ≤ 2 × floor p50 (%s) | %s |\n",
		len(r.abort), demo.FormatDuration(ap50), demo.FormatDuration(ap99), demo.FormatDuration(slices.Max(r.abort)), demo.FormatDuration(2*fp50), verdict(ap50 <= 2*fp50))
	fmt.Fprintf(&b, "| | | | | | p99 ≤ 2 × floor p99 (%s) | %s |\n", demo.FormatDuration(2*fp99), verdict(ap99 <= 2*fp99))
	fmt.Fprintf(&b, "| (a) Temporal floor: signal → no-op activity ran | %d | %s | %s | %s | — | — |\n",
		len(r.floor), demo.FormatDuration(fp50), demo.FormatDuration(fp99), demo.FormatDuration(slices.Max(r.floor)))
	fmt.Fprintf(&b, "| (a) the workflow's TrafficRestoredAfter (decision → traffic step done) | %d | %s | %s | %s | — | — |\n",
		len(r.restoredAfter), demo.FormatDuration(rp50), demo.FormatDuration(rp99), demo.FormatDuration(slices.Max(r.restoredAfter)))
	fmt.Fprintf(&b, "| (b) breach onset → rollback complete (default analysis settings, real Prometheus, fleet) | %d | %s | %s | %s | ≤ %s + %s + 1s = %s | %s (%d/%d within) |\n",
		len(rollback), demo.FormatDuration(percentile(rollback, 0.5)), demo.FormatDuration(percentile(rollback, 0.99)), demo.FormatDuration(bmax),
		r.interval, r.scrape, target, verdict(within == len(rollback)), within, len(rollback))
	fmt.Fprintf(&b, "| (b) of which breach onset → rollback decision | %d | %s | %s | %s | — | — |\n",
		len(decide), demo.FormatDuration(percentile(decide, 0.5)), demo.FormatDuration(percentile(decide, 0.99)), demo.FormatDuration(slices.Max(append([]time.Duration{0}, decide...))))
	fmt.Fprintf(&b, "| (b) of which decision → traffic on stable (TrafficRestoredAfter) | %d | %s | %s | %s | — | — |\n\n",
		len(restore), demo.FormatDuration(percentile(restore, 0.5)), demo.FormatDuration(percentile(restore, 0.99)), demo.FormatDuration(slices.Max(append([]time.Duration{0}, restore...))))
	if p50 := percentile(rollback, 0.5); p50 > 0 {
		fmt.Fprintf(&b, "(b) against Flagger's default (analysis interval 1 m × threshold 1: a breach waits up to 60 s for "+
			"its first failed check): Shepherd's p50 %s is %.1f× faster than 60 s, its slowest run %.1f× faster.\n\n",
			demo.FormatDuration(p50), float64(time.Minute)/float64(p50), float64(time.Minute)/float64(bmax))
	}
	fmt.Fprintf(&b, "p50 and p99 are nearest-rank percentiles; with %d samples p99 is the slowest sample. Each (a) sample "+
		"pairs with a floor sample taken right before it, so both saw the same load.\n\n", len(r.abort))

	b.WriteString("(b) run by run:\n\n| Run | Version | Failing check | Onset → decision | Decision → traffic on stable | Onset → RolledBack |\n|---|---|---|---|---|---|\n")
	for i, rel := range r.breaches {
		check := "-"
		if rel.FailedCheck != nil {
			check = fmt.Sprintf("%s = %s (%s)", rel.FailedCheck.Check, value(*rel.FailedCheck), rel.FailedCheck.Reason)
		}
		fmt.Fprintf(&b, "| %d | %s | %s | %s | %s | %s |\n", i+1, rel.Spec.Version, check, demo.FormatDuration(rel.BreachToDecision()),
			demo.FormatDuration(rel.Result.TrafficRestoredAfter), demo.FormatDuration(rel.BreachToRollback()))
	}

	b.WriteString("\n")
	b.WriteString(historyMarkdown(r.history))
	b.WriteString("## Machine\n\n| | |\n|---|---|\n")
	fmt.Fprintf(&b, "| CPUs (nproc) | %d |\n", runtime.NumCPU())
	fmt.Fprintf(&b, "| CPU model | %s |\n", cpuModel())
	fmt.Fprintf(&b, "| Memory | %s |\n", memTotal())
	fmt.Fprintf(&b, "| OS | %s %s |\n", runtime.GOOS, kernelRelease())
	fmt.Fprintf(&b, "| Go | %s |\n", runtime.Version())
	fmt.Fprintf(&b, "| Temporal | %s (`temporal server start-dev`, SQLite file) |\n", toolVersion(c.TemporalBin, devstack.FindTemporal, "--version"))
	fmt.Fprintf(&b, "| Prometheus | %s |\n", toolVersion(c.PrometheusBin, devstack.FindPrometheus, "--version"))
	fmt.Fprintf(&b, "| Load during the run | the demo fleet's load generator, %g requests/s through its proxy |\n\n", r.loadRPS)

	b.WriteString(benchMethod)
	fmt.Fprintf(&b, "\nThis run: %d aborted releases and %d floor runs after %d warm-up runs of each (not counted; Shepherd %s, "+
		"floor %s), %d breach runs; analysis interval %s, scrape interval %s.\n", len(r.abort), len(r.floor), len(r.warmAbort),
		durList(r.warmAbort), durList(r.warmFloor), len(r.breaches), r.interval, r.scrape)
	return b.String()
}

const benchMethod = `## Method

Everything runs on one machine in one ` + "`shepherd bench`" + ` process and its children: a Temporal dev server
(` + "`temporal server start-dev`" + `, started by the bench on free ports, no web UI), Prometheus scraping every
demo-service instance through the fleet's file_sd file every second, the demo fleet (controller, weighted
proxy, load generator, one process per version), and a Shepherd worker registered exactly as ` + "`shepherd worker`" + `
registers it (same workflows, same activities and providers).

**(a) Abort signal → traffic on stable.** Each release is on the exec target with no-op commands
(` + "`true`" + `) and analysis on (one constant check against Prometheus at the default interval, so the abort
cancels a running ` + "`WatchStage`" + `); its first stage (10 %) soaks for an hour. Once the status query shows the
soak running, the bench records the wall-clock time and sends the ` + "`abort`" + ` signal (as ` + "`temporal workflow signal`" + `
would). The release rolls back; its first compensation runs the traffic command with percent 0, which writes
` + "`date +%s%N`" + ` to a file. The sample is that timestamp minus the time the signal was sent: signal delivery,
one workflow task, the rollback decision, the activity dispatch, the step ledger and a ` + "`sh -c`" + `.
The **floor** is the least Temporal itself needs for the same thing, measured in the same run on a task
queue of its own: a workflow that waits for a signal and then runs one activity that only records the time.
Its sample is the activity's time minus the time the signal was sent. Floor and Shepherd samples are taken
alternately. The workflow's own ` + "`TrafficRestoredAfter`" + ` (from the rollback decision to the traffic step's
completion, in workflow time) is reported too.

**(b) Breach onset → rollback complete.** The stable version v1 serves the fleet's load. Each run releases
a new bad version (about 20 % of its requests answer 500; each run has a version of its own so no earlier
series is in the checks' rate windows) with the checks of ` + "`examples/demo-bad.yaml`" + ` (error rate over 30 s ≤ 1 %,
p99 latency over 30 s ≤ 500 ms) and the default analysis settings (interval 10 s, rollback at the first
failed measurement): one ` + "`WatchStage`" + ` activity measures every interval for the whole soak. *Breach onset* is the time the canary got traffic (the
decision recording the first traffic shift, 10 %); *rollback complete* is the time of the RolledBack decision,
after traffic went back to stable and the canary process was stopped. Both are workflow timestamps, one clock.
The target allows one analysis interval (the first measurement is one interval after the shift), one scrape
interval (the newest data Prometheus can have) and 1 s for everything else. Runs start 8 s apart: Prometheus
throttles target-discovery updates with a back-off that resets only after 5 s without one, so a canary deployed
right after another target change would be discovered seconds late; spaced out, each deploy is discovered as
in a fleet where deploys are rare. (For the same reason Prometheus reads a copy of the fleet's file_sd file,
alone in its directory, that changes only when the targets do: the fleet rewrites its file on every traffic
shift, and Prometheus takes any change in the watched directory for a target update.)

**Caveats.** The floor includes the same client, dev server and worker as Shepherd, so (a) isolates what
Shepherd adds. A freshly started dev server hands over the first few tasks faster than one in steady use,
which is why the warm-up runs are not counted (their times are listed below). A measurement can pass by
chance when too few of the canary's requests have been scraped to show an error; that run then rolls back one
interval later and (b) reports the miss. A dev server with SQLite is not a production cluster: absolute
numbers on a real cluster differ (network round trips, persistence), the ratio to the floor is the comparable
figure.

## Re-running

` + "```" + `
make bench                 # builds bin/shepherd and bin/demo-service, then: bin/shepherd bench --out docs/BENCHMARKS.md
bin/shepherd bench --releases 50 --breach-runs 10 --out /tmp/bench.md
` + "```" + `
It needs the Temporal CLI and Prometheus (` + "`make tools`" + ` builds both into ~/.cache/shepherd/bin) and takes
about four minutes on 2 cores. ` + "`--state-dir`" + ` keeps the stack's logs.
`

// cpuModel is the first "model name" of /proc/cpuinfo.
func cpuModel() string {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown (" + runtime.GOARCH + ")"
	}
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown (" + runtime.GOARCH + ")"
}

func memTotal() string {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
			if kb, err := strconv.ParseFloat(f[1], 64); err == nil {
				return fmt.Sprintf("%.1f GiB", kb/1024/1024)
			}
		}
	}
	return "unknown"
}

func kernelRelease() string {
	data, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(data))
}

// toolVersion names a tool binary's version: the module version it was built from (go install leaves
// Prometheus's own version string empty) and the first line of `bin --version`.
func toolVersion(bin string, find func() (string, error), flag string) string {
	if bin == "" {
		var err error
		if bin, err = find(); err != nil {
			return "unknown"
		}
	}
	var parts []string
	if info, err := buildinfo.ReadFile(bin); err == nil && info.Main.Path != "" {
		parts = append(parts, "`"+info.Main.Path+"@"+info.Main.Version+"`")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if outb, err := exec.CommandContext(ctx, bin, flag).CombinedOutput(); err == nil {
		line, _, _ := strings.Cut(string(bytes.TrimSpace(outb)), "\n")
		// A go-installed Prometheus reports an empty version; the module version above says it.
		if line = strings.TrimSpace(line); line != "" && !strings.Contains(line, "version  (") {
			parts = append(parts, "“"+line+"”")
		}
	}
	if len(parts) == 0 {
		return "unknown"
	}
	return strings.Join(parts, ", ")
}

func value(m record.Measurement) string {
	if m.Value == nil {
		return "no data"
	}
	return fmt.Sprintf("%.4g", *m.Value)
}
