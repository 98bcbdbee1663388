package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"sigs.k8s.io/yaml"

	"github.com/shepherd-release/shepherd/config"
	"github.com/shepherd-release/shepherd/internal/devstack"
	"github.com/shepherd-release/shepherd/spec"
	"github.com/shepherd-release/shepherd/starter"
	"github.com/shepherd-release/shepherd/workflows"
)

// The scale benchmark: N releases soaking at once with analysis on, against the production-shaped stack
// (PostgreSQL + the Temporal server, devstack.Cluster), with `shepherd worker` processes of their own so
// their CPU and memory can be read from /proc.

const (
	scaleEnvironment = "bench"
	scaleTarget      = "scale"
	scaleChecks      = 2
	// scaleSoak is the first stage's soak: longer than any measuring run, so every release soaks until
	// the bench aborts or terminates it.
	scaleSoak = time.Hour
	// scaleStarters is how many releases are started at once during the ramp.
	scaleStarters = 16
	// scaleQueryTimeout bounds one status query; a slower one counts as failed.
	scaleQueryTimeout = 10 * time.Second
	// scaleAbortTimeout bounds one abort's wait for traffic back on stable.
	scaleAbortTimeout = 60 * time.Second
)

// ScaleConfig configures `shepherd bench --scale`.
type ScaleConfig struct {
	// Releases are the numbers of concurrent soaking releases measured on one worker, in order.
	Releases []int
	// TwoWorkers are the numbers measured on two worker processes after those.
	TwoWorkers []int
	// Interval is the analysis interval of every release.
	Interval time.Duration
	// Window is how long each point is measured once every release soaks.
	Window time.Duration
	// RampTimeout bounds the time to get every release of a point soaking.
	RampTimeout time.Duration
	// Aborts is how many soaking releases are aborted, one at a time, under load (and idle, before it).
	Aborts int
	// Queries is how many status queries are timed during the window.
	Queries int
	// Scrape is Prometheus's scrape interval.
	Scrape time.Duration
	// Tuning is written into the workers' configuration (its worker section); zero fields take the
	// defaults.
	Tuning config.Tuning
	// StateDir keeps the cluster, the workers' state and every log; default a new directory under
	// /var/tmp (PostgreSQL, run as its own user, must reach it), removed afterwards.
	StateDir string
	// ShepherdBin runs the workers; default this executable.
	ShepherdBin string
	// PrometheusBin locates Prometheus (see devstack.FindPrometheus).
	PrometheusBin string
}

func (c *ScaleConfig) defaults() {
	if len(c.Releases) == 0 && len(c.TwoWorkers) == 0 {
		c.Releases = []int{100, 500, 1000}
		c.TwoWorkers = []int{1000}
	}
	if c.Interval <= 0 {
		c.Interval = 10 * time.Second
	}
	if c.Window <= 0 {
		c.Window = time.Minute
	}
	if c.RampTimeout <= 0 {
		c.RampTimeout = 6 * time.Minute
	}
	if c.Aborts <= 0 {
		c.Aborts = 10
	}
	if c.Queries <= 0 {
		c.Queries = 20
	}
	if c.Scrape <= 0 {
		c.Scrape = time.Second
	}
	c.Tuning = c.Tuning.WithDefaults()
}

// ScaleResults is what one `shepherd bench --scale` run measured.
type ScaleResults struct {
	Started, Finished time.Time
	Config            ScaleConfig
	Points            []ScalePoint
	// Versions of the programs that ran.
	TemporalServer, Postgres, Prometheus string
}

// ScalePoint is one measured point: N releases soaking on W workers.
type ScalePoint struct {
	Workers, Releases int
	// LoadBefore is the machine's 1-minute load average before the point started (other work on it),
	// LoadAfter at the window's end (this point's own work included).
	LoadBefore, LoadAfter float64
	// Ramp is the time from the first start to every release soaking; Soaking how many did.
	Ramp    time.Duration
	Soaking int
	// Window is the measured steady state.
	Window time.Duration
	// IdleAbort and LoadAbort are abort signal → traffic-0 command ran, without and with the load;
	// AbortTimeouts counts aborts under load that had not restored traffic after scaleAbortTimeout.
	IdleAbort, LoadAbort []time.Duration
	AbortTimeouts        int
	// Status are the status query latencies; StatusFailed the queries that failed or timed out.
	Status       []time.Duration
	StatusFailed int
	// Lag is the window's histogram, summed over the workers; WorkflowTaskS2S and ActivityS2S are from
	// the ramp's start to the last abort (in the window alone a soaking release schedules no task).
	Lag, WorkflowTaskS2S, ActivityS2S Histogram
	// Measurements by verdict taken in the window, summed over the workers.
	Measurements map[string]float64
	// Requests and Heartbeats are the workers' requests to the Temporal frontend per second in the
	// window (long polls excluded), and of those the activity heartbeats.
	Requests, Heartbeats float64
	// CPU in cores (CPU seconds per second of the window), by process: each worker, the server,
	// PostgreSQL (postmaster and backends), Prometheus.
	WorkerCPU                       []float64
	ServerCPU, PostgresCPU, PromCPU float64
	// BenchCPU is this process's own: the metrics source Prometheus scrapes, the status queries.
	BenchCPU                             float64
	WorkerRSS, WorkerRSSIdle             []int64   // bytes at the window's end, and once polling before the load
	ActivitySlotsFree, WorkflowSlotsFree []float64 // per worker at the window's end
}

// RunScale starts the cluster, Prometheus and a metrics source, then measures every point in turn,
// printing progress to out.
func RunScale(ctx context.Context, out io.Writer, c ScaleConfig) (ScaleResults, error) {
	c.defaults()
	res := ScaleResults{Started: time.Now(), Config: c}
	if c.ShepherdBin == "" {
		exe, err := os.Executable()
		if err != nil {
			return res, err
		}
		c.ShepherdBin = exe
	}
	dir := c.StateDir
	if dir == "" {
		tmp, err := os.MkdirTemp("/var/tmp", "shepherd-scale-")
		if err != nil {
			return res, err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return res, err
	}
	_ = os.Chmod(dir, 0o755) // PostgreSQL runs as its own user and must reach its data below
	bins, err := devstack.FindClusterBinaries()
	if err != nil {
		return res, err
	}
	res.TemporalServer = toolVersion(bins.Server, devstack.FindTemporalServer, "--version")
	res.Postgres = toolVersion(filepath.Join(bins.PostgresBin, "postgres"), devstack.FindPostgres, "--version")
	res.Prometheus = toolVersion(c.PrometheusBin, devstack.FindPrometheus, "--version")

	src := &scaleSource{start: time.Now()}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return res, err
	}
	srv := &http.Server{Handler: src, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	fmt.Fprintf(out, "Starting PostgreSQL and the Temporal server (state in %s) ...\n", dir)
	cl, err := devstack.StartCluster(ctx, devstack.ClusterOptions{Binaries: bins, Dir: filepath.Join(dir, "cluster")})
	if err != nil {
		return res, err
	}
	defer cl.Stop()
	prom, err := devstack.StartPrometheus(ctx, devstack.PrometheusOptions{
		Binary: c.PrometheusBin, ScrapeInterval: c.Scrape, StaticTargets: []string{ln.Addr().String()},
		DataDir: filepath.Join(dir, "prometheus"),
	})
	if err != nil {
		return res, err
	}
	defer prom.Stop()
	cfgPath := filepath.Join(dir, "shepherd.yaml")
	if err := writeScaleConfig(cfgPath, prom.URL, filepath.Join(dir, "marks"), c.Tuning); err != nil {
		return res, err
	}
	tc, err := client.DialContext(ctx, client.Options{HostPort: cl.Address, Namespace: cl.Namespace, Logger: quietLogger{}})
	if err != nil {
		return res, err
	}
	defer tc.Close()
	env := &scaleEnv{c: c, dir: dir, cfgPath: cfgPath, marks: filepath.Join(dir, "marks"), cluster: cl, prom: prom, client: tc, src: src, out: out}
	if err := os.MkdirAll(env.marks, 0o755); err != nil {
		return res, err
	}
	type plan struct{ workers, n int }
	var plans []plan
	for _, n := range c.Releases {
		plans = append(plans, plan{1, n})
	}
	for _, n := range c.TwoWorkers {
		plans = append(plans, plan{2, n})
	}
	for i, p := range plans {
		fmt.Fprintf(out, "\n[%d/%d] %d releases soaking on %d worker(s), analysis every %s\n", i+1, len(plans), p.n, p.workers, c.Interval)
		pt, err := env.point(ctx, i+1, p.workers, p.n)
		if err != nil {
			return res, fmt.Errorf("%d releases on %d worker(s): %w", p.n, p.workers, err)
		}
		res.Points = append(res.Points, pt)
		fmt.Fprint(out, pt.summary())
	}
	res.Finished = time.Now()
	return res, nil
}

// scaleEnv is the running stack of a scale benchmark.
type scaleEnv struct {
	c       ScaleConfig
	dir     string
	cfgPath string
	marks   string
	cluster *devstack.Cluster
	prom    *devstack.Prometheus
	client  client.Client
	src     *scaleSource
	out     io.Writer
}

func (e *scaleEnv) say(format string, args ...any) { fmt.Fprintf(e.out, "  "+format+"\n", args...) }

// point measures one point: fresh workers, idle aborts, the ramp, the window, aborts under load, then
// every release terminated and the workers stopped.
func (e *scaleEnv) point(ctx context.Context, id, workers, n int) (ScalePoint, error) {
	pt := ScalePoint{Workers: workers, Releases: n, LoadBefore: loadAverage(), Measurements: map[string]float64{}}
	version := fmt.Sprintf("v%d", id)
	e.src.set(n)
	var ws []*workerProc
	defer func() {
		for _, w := range ws {
			w.stop()
		}
	}()
	for i := range workers {
		w, err := startWorker(ctx, e.c.ShepherdBin, e.cfgPath, filepath.Join(e.dir, fmt.Sprintf("p%d-worker%d", id, i+1)), e.cluster)
		if err != nil {
			return pt, err
		}
		ws = append(ws, w)
	}
	for _, w := range ws {
		pt.WorkerRSSIdle = append(pt.WorkerRSSIdle, rss(w.pid()))
	}
	e.say("workers up (pids %v); load average %.2f", pids(ws), pt.LoadBefore)

	// Idle: one release at a time, aborted once its analysis runs.
	for k := range min(e.c.Aborts, 5) {
		r := e.spec(fmt.Sprintf("scale-idle-%d", k+1), version)
		st, err := starter.Start(ctx, e.client, r)
		if err != nil {
			return pt, fmt.Errorf("idle release: %w", err)
		}
		if err := e.waitSoaking(ctx, 1, 60*time.Second, "ReleaseService = '"+r.Service+"'"); err != nil {
			return pt, fmt.Errorf("idle release %s: %w", r.Service, err)
		}
		sleep(ctx, e.c.Interval+time.Second) // the watch is measuring
		d, err := e.abort(ctx, r.Service, r.Version)
		if err != nil {
			return pt, fmt.Errorf("idle abort: %w", err)
		}
		pt.IdleAbort = append(pt.IdleAbort, d)
		wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		_, _ = starter.Wait(wctx, e.client, r.Service, scaleEnvironment, st.RunID)
		cancel()
	}
	e.say("idle abort → traffic on stable: %s", durList(pt.IdleAbort))

	// Ramp.
	loaded, err := e.snapshot(ws)
	if err != nil {
		return pt, err
	}
	t0 := time.Now()
	var next, started, failed atomic.Int64
	var wg sync.WaitGroup
	rctx, cancel := context.WithTimeout(ctx, e.c.RampTimeout)
	defer cancel()
	for range scaleStarters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1))
				if i > n || rctx.Err() != nil {
					return
				}
				if _, err := starter.Start(rctx, e.client, e.spec(scaleService(i), version)); err != nil {
					if failed.Add(1) == 1 {
						e.say("start %s: %v", scaleService(i), err)
					}
					continue
				}
				if s := started.Add(1); s%100 == 0 {
					e.say("started %d/%d (%s)", s, n, time.Since(t0).Round(time.Second))
				}
			}
		}()
	}
	wg.Wait()
	if failed.Load() > 0 {
		return pt, fmt.Errorf("%d of %d releases failed to start", failed.Load(), n)
	}
	err = e.waitSoaking(rctx, n, e.c.RampTimeout, "ReleaseVersion = '"+version+"'")
	pt.Soaking = e.countSoaking(ctx, "ReleaseVersion = '"+version+"'")
	pt.Ramp = time.Since(t0)
	if err != nil {
		e.say("only %d of %d soaking after %s: measuring what there is", pt.Soaking, n, pt.Ramp.Round(time.Second))
	} else {
		e.say("all %d soaking after %s", n, pt.Ramp.Round(time.Second))
	}
	// Let every release's watch reach its rhythm before the window opens.
	sleep(ctx, e.c.Interval+5*time.Second)

	// The window.
	before, err := e.snapshot(ws)
	if err != nil {
		return pt, err
	}
	wstart := time.Now()
	step := e.c.Window / time.Duration(e.c.Queries+1)
	for q := range e.c.Queries {
		sleep(ctx, step)
		i := 1 + rand.IntN(n)
		qctx, qcancel := context.WithTimeout(ctx, scaleQueryTimeout)
		t := time.Now()
		_, err := starter.Status(qctx, e.client, scaleService(i), scaleEnvironment, "")
		qcancel()
		if err != nil {
			pt.StatusFailed++
		} else {
			pt.Status = append(pt.Status, time.Since(t))
		}
		if (q+1)%5 == 0 {
			e.say("window %s/%s: %d status queries, %d failed", time.Since(wstart).Round(time.Second), e.c.Window, q+1, pt.StatusFailed)
		}
	}
	sleep(ctx, e.c.Window-time.Since(wstart))
	after, err := e.snapshot(ws)
	if err != nil {
		return pt, err
	}
	pt.Window = after.at.Sub(before.at)
	secs := pt.Window.Seconds()
	for i := range ws {
		pt.WorkerCPU = append(pt.WorkerCPU, (after.worker[i]-before.worker[i])/secs)
		pt.WorkerRSS = append(pt.WorkerRSS, after.rss[i])
		m := after.metrics[i]
		pt.ActivitySlotsFree = append(pt.ActivitySlotsFree, m.gauge("temporal_worker_task_slots_available", "worker_type", "ActivityWorker"))
		pt.WorkflowSlotsFree = append(pt.WorkflowSlotsFree, m.gauge("temporal_worker_task_slots_available", "worker_type", "WorkflowWorker"))
		pb := before.metrics[i]
		pt.Lag = pt.Lag.add(m.histogram("shepherd_analysis_lag_seconds").sub(pb.histogram("shepherd_analysis_lag_seconds")))
		pt.Requests += (m.counter("temporal_request_total", "", "") - pb.counter("temporal_request_total", "", "")) / secs
		pt.Heartbeats += (m.counter("temporal_request_total", "operation", "RecordActivityTaskHeartbeat") -
			pb.counter("temporal_request_total", "operation", "RecordActivityTaskHeartbeat")) / secs
		for _, v := range []string{"Pass", "Fail", "Inconclusive"} {
			pt.Measurements[v] += m.counter("shepherd_analysis_measurements_total", "verdict", v) -
				pb.counter("shepherd_analysis_measurements_total", "verdict", v)
		}
	}
	pt.ServerCPU = (after.server - before.server) / secs
	pt.PostgresCPU = (after.postgres - before.postgres) / secs
	pt.PromCPU = (after.prom - before.prom) / secs
	pt.BenchCPU = (after.self - before.self) / secs
	pt.LoadAfter = loadAverage()
	e.say("window done: worker CPU %s cores, server %.2f, PostgreSQL %.2f, Prometheus %.2f; lag p99 %s (%d rounds)",
		floats(pt.WorkerCPU), pt.ServerCPU, pt.PostgresCPU, pt.PromCPU, pt.Lag.quantileText(0.99), pt.Lag.Count)

	// Aborts under load, one at a time.
	perm := rand.Perm(n)
	for k := range min(e.c.Aborts, n) {
		i := perm[k] + 1
		d, err := e.abort(ctx, scaleService(i), version)
		switch {
		case errors.Is(err, errAbortTimeout):
			pt.AbortTimeouts++
		case err != nil:
			return pt, err
		default:
			pt.LoadAbort = append(pt.LoadAbort, d)
		}
		e.say("abort %d/%d under load: %s", k+1, min(e.c.Aborts, n), abortText(d, err))
		sleep(ctx, time.Second)
	}

	end, err := e.snapshot(ws)
	if err != nil {
		return pt, err
	}
	for i := range ws {
		m, pb := end.metrics[i], loaded.metrics[i]
		pt.WorkflowTaskS2S = pt.WorkflowTaskS2S.add(m.histogram("temporal_workflow_task_schedule_to_start_latency_seconds").
			sub(pb.histogram("temporal_workflow_task_schedule_to_start_latency_seconds")))
		pt.ActivityS2S = pt.ActivityS2S.add(m.histogram("temporal_activity_schedule_to_start_latency_seconds").
			sub(pb.histogram("temporal_activity_schedule_to_start_latency_seconds")))
	}
	e.say("terminating the releases ...")
	if err := e.terminateAll(ctx); err != nil {
		return pt, err
	}
	return pt, nil
}

var errAbortTimeout = errors.New("traffic not back on stable in time")

func abortText(d time.Duration, err error) string {
	if err != nil {
		return err.Error()
	}
	return durText(d)
}

// spec is one release of the benchmark: on the exec target (no-op commands; traffic 0 leaves a
// timestamp), its first stage soaking an hour with two checks against Prometheus every interval.
func (e *scaleEnv) spec(service, version string) spec.Release {
	maxErr, maxLat := 0.01, 0.5
	return spec.Release{
		Service: service, Environment: scaleEnvironment, Version: version, PreviousVersion: "v0",
		Description: "shepherd bench --scale: soaking under load",
		Target:      scaleTarget,
		Stages:      []spec.Stage{{Percent: 10, Soak: spec.Duration(scaleSoak)}, {Percent: 100, Soak: spec.Duration(time.Minute)}},
		Analysis: spec.Analysis{
			Interval: spec.Duration(e.c.Interval), FailureLimit: 1,
			// A slow Prometheus must not pause releases mid-run: the bench counts inconclusive rounds.
			InconclusiveLimit: 1000,
			Source:            "prometheus",
			Checks: []spec.Check{
				{Name: "error-rate", Max: &maxErr, Query: `sum(rate(http_requests_total{service="{{.Service}}",code=~"5.."}[30s]))` +
					` / sum(rate(http_requests_total{service="{{.Service}}"}[30s]))`},
				{Name: "p99-latency", Max: &maxLat, Query: `histogram_quantile(0.99, sum by (le) ` +
					`(rate(http_request_duration_seconds_bucket{service="{{.Service}}"}[30s])))`},
			},
		},
	}
}

func scaleService(i int) string { return fmt.Sprintf("scale-%d", i) }

// waitSoaking waits until want releases matching extra are in their first stage's soak (Progressing at
// 10 %), as visibility shows it.
func (e *scaleEnv) waitSoaking(ctx context.Context, want int, limit time.Duration, extra string) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	last := -1
	for {
		n := e.countSoaking(ctx, extra)
		if n >= want {
			return nil
		}
		if want > 1 && n/100 != last/100 {
			e.say("soaking %d/%d", n, want)
			last = n
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d of %d releases soaking: %w", n, want, ctx.Err())
		case <-time.After(time.Second):
		}
	}
}

func (e *scaleEnv) countSoaking(ctx context.Context, extra string) int {
	q := fmt.Sprintf("ExecutionStatus = 'Running' AND ReleaseEnvironment = '%s' AND ReleasePhase = 'Progressing' AND ReleaseTrafficPercent = 10", scaleEnvironment)
	if extra != "" {
		q += " AND " + extra
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := e.client.CountWorkflow(cctx, &workflowservice.CountWorkflowExecutionsRequest{Namespace: e.cluster.Namespace, Query: q})
	if err != nil {
		return 0
	}
	return int(resp.GetCount())
}

// abort sends the abort signal to a soaking release and returns the time until its traffic command for
// 0 % had run (the target writes a timestamp).
func (e *scaleEnv) abort(ctx context.Context, service, version string) (time.Duration, error) {
	mark := filepath.Join(e.marks, "restored-"+service+"-"+version)
	_ = os.Remove(mark)
	sent := time.Now()
	if err := e.client.SignalWorkflow(ctx, spec.WorkflowID(service, scaleEnvironment), "", workflows.Abort,
		workflows.ControlRequest{By: "bench", Reason: "scale benchmark"}); err != nil {
		return 0, fmt.Errorf("abort %s: %w", service, err)
	}
	deadline := sent.Add(scaleAbortTimeout)
	for time.Now().Before(deadline) {
		if data, err := os.ReadFile(mark); err == nil && len(strings.TrimSpace(string(data))) > 0 {
			ns, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("timestamp %q: %w", data, err)
			}
			return time.Unix(0, ns).Sub(sent), nil
		}
		if !sleep(ctx, 10*time.Millisecond) {
			return 0, ctx.Err()
		}
	}
	return 0, errAbortTimeout
}

// terminateAll terminates every running release of the benchmark and waits until none runs.
func (e *scaleEnv) terminateAll(ctx context.Context) error {
	q := fmt.Sprintf("ExecutionStatus = 'Running' AND ReleaseEnvironment = '%s'", scaleEnvironment)
	deadline := time.Now().Add(5 * time.Minute)
	for time.Now().Before(deadline) {
		var ids []string
		var token []byte
		for {
			resp, err := e.client.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
				Namespace: e.cluster.Namespace, Query: q, PageSize: 1000, NextPageToken: token})
			if err != nil {
				return fmt.Errorf("listing running releases: %w", err)
			}
			for _, x := range resp.GetExecutions() {
				ids = append(ids, x.GetExecution().GetWorkflowId())
			}
			if token = resp.GetNextPageToken(); len(token) == 0 {
				break
			}
		}
		if len(ids) == 0 {
			return nil
		}
		var wg sync.WaitGroup
		ch := make(chan string)
		for range scaleStarters {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for id := range ch {
					_ = e.client.TerminateWorkflow(ctx, id, "", "scale benchmark point done")
				}
			}()
		}
		for _, id := range ids {
			ch <- id
		}
		close(ch)
		wg.Wait()
		sleep(ctx, 2*time.Second) // visibility catches up
	}
	return errors.New("releases still running 5 minutes after they were terminated")
}

// stackSnapshot is every reading taken at one instant of the window.
type stackSnapshot struct {
	at                     time.Time
	worker                 []float64 // CPU seconds, reaped children included (the targets' sh -c)
	rss                    []int64
	metrics                []families
	server, postgres, prom float64
	self                   float64
}

func (e *scaleEnv) snapshot(ws []*workerProc) (stackSnapshot, error) {
	s := stackSnapshot{at: time.Now()}
	for _, w := range ws {
		m, err := w.scrape()
		if err != nil {
			return s, err
		}
		s.metrics = append(s.metrics, m)
		s.worker = append(s.worker, cpuSeconds(w.pid(), true))
		s.rss = append(s.rss, rss(w.pid()))
	}
	s.server = cpuSeconds(e.cluster.ServerPID(), true)
	s.postgres = treeCPU(e.cluster.PostgresPID())
	s.prom = cpuSeconds(e.prom.PID(), true)
	s.self = cpuSeconds(os.Getpid(), false)
	return s, nil
}

// writeScaleConfig writes the workers' configuration: the exec target, the Prometheus source and the
// tuning.
func writeScaleConfig(path, promURL, marks string, t config.Tuning) error {
	cfg := map[string]any{
		"targets": map[string]any{scaleTarget: map[string]any{
			"type":     "exec",
			"deploy":   "true",
			"traffic":  `if [ "$SHEPHERD_PERCENT" -eq 0 ]; then date +%s%N > "$SHEPHERD_BENCH_MARKS/restored-$SHEPHERD_SERVICE-$SHEPHERD_VERSION"; fi`,
			"promote":  "true",
			"rollback": "true",
			"timeout":  "30s",
			"env":      map[string]string{"SHEPHERD_BENCH_MARKS": marks},
		}},
		"metrics":   map[string]any{"prometheus": map[string]any{"type": "prometheus", "address": promURL, "timeout": "5s"}},
		"approvals": map[string]any{"unsignedEnvironments": []string{scaleEnvironment}},
		"worker":    t,
	}
	data, err := yaml.Marshal(cfg)
	if err != nil {
		return err
	}
	if _, err := config.Parse(data); err != nil {
		return fmt.Errorf("the benchmark's worker configuration: %w", err)
	}
	return os.WriteFile(path, data, 0o644)
}

// scaleSource serves the released services' metrics for Prometheus to scrape: every service receives 20
// requests a second, none failing, all within 50 ms, so every check passes and every round measures.
type scaleSource struct {
	start time.Time
	n     atomic.Int64
}

func (s *scaleSource) set(n int) { s.n.Store(int64(n)) }

func (s *scaleSource) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	b := bufio.NewWriterSize(w, 64<<10)
	defer b.Flush()
	reqs := math.Floor(time.Since(s.start).Seconds() * 20)
	services := make([]string, 0, s.n.Load()+5)
	for i := range int(s.n.Load()) {
		services = append(services, scaleService(i+1))
	}
	for k := range 5 {
		services = append(services, fmt.Sprintf("scale-idle-%d", k+1))
	}
	b.WriteString("# TYPE http_requests_total counter\n")
	for _, svc := range services {
		fmt.Fprintf(b, "http_requests_total{service=%q,code=\"200\"} %g\nhttp_requests_total{service=%q,code=\"500\"} 0\n", svc, reqs, svc)
	}
	b.WriteString("# TYPE http_request_duration_seconds histogram\n")
	for _, svc := range services {
		for _, le := range []string{"0.05", "0.1", "0.5", "+Inf"} {
			fmt.Fprintf(b, "http_request_duration_seconds_bucket{service=%q,le=%q} %g\n", svc, le, reqs)
		}
		fmt.Fprintf(b, "http_request_duration_seconds_sum{service=%q} %g\nhttp_request_duration_seconds_count{service=%q} %g\n", svc, reqs*0.01, svc, reqs)
	}
}

// workerProc is one `shepherd worker` process.
type workerProc struct {
	cmd     *exec.Cmd
	metrics string
	done    chan struct{}
}

func startWorker(ctx context.Context, bin, cfg, dir string, cl *devstack.Cluster) (*workerProc, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	port, err := devstack.FreePort()
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	logf, err := os.Create(filepath.Join(dir, "worker.log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(bin, "worker", "--config", cfg, "--state-dir", dir, "--metrics-addr", addr,
		"--log-level", "warn", "--stop-timeout", "5s")
	cmd.Env = append(scrubTemporalEnv(os.Environ()), "TEMPORAL_ADDRESS="+cl.Address, "TEMPORAL_NAMESPACE="+cl.Namespace)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s worker: %w", bin, err)
	}
	w := &workerProc{cmd: cmd, metrics: "http://" + addr, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(w.done) }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-w.done:
			return nil, fmt.Errorf("the worker exited at start:\n%s", tailFile(filepath.Join(dir, "worker.log"), 20))
		default:
		}
		if resp, err := http.Get(w.metrics + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return w, nil
			}
		}
		if time.Now().After(deadline) {
			w.stop()
			return nil, fmt.Errorf("the worker was not ready after 60 s:\n%s", tailFile(filepath.Join(dir, "worker.log"), 20))
		}
		if !sleep(ctx, 200*time.Millisecond) {
			w.stop()
			return nil, ctx.Err()
		}
	}
}

// scrubTemporalEnv drops the caller's Temporal settings so the workers reach the benchmark's cluster.
func scrubTemporalEnv(env []string) []string {
	return slices.DeleteFunc(slices.Clone(env), func(kv string) bool { return strings.HasPrefix(kv, "TEMPORAL_") })
}

func (w *workerProc) pid() int { return w.cmd.Process.Pid }

// stop sends SIGTERM and waits; SIGKILL after 20 s.
func (w *workerProc) stop() {
	select {
	case <-w.done:
		return
	default:
	}
	_ = syscall.Kill(-w.pid(), syscall.SIGTERM)
	select {
	case <-w.done:
	case <-time.After(20 * time.Second):
		_ = syscall.Kill(-w.pid(), syscall.SIGKILL)
		<-w.done
	}
}

func (w *workerProc) scrape() (families, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, w.metrics+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scraping the worker: %w", err)
	}
	defer resp.Body.Close()
	return parseFamilies(resp.Body)
}

func pids(ws []*workerProc) []int {
	var out []int
	for _, w := range ws {
		out = append(out, w.pid())
	}
	return out
}

// sleep waits d or until ctx ends; it reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

func tailFile(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

type quietLogger struct{}

func (quietLogger) Debug(string, ...any) {}
func (quietLogger) Info(string, ...any)  {}
func (quietLogger) Warn(string, ...any)  {}
func (quietLogger) Error(string, ...any) {}
