package cli

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/shepherd-release/shepherd/config"
	"github.com/shepherd-release/shepherd/internal/bench"
)

func init() { extraCommands = append(extraCommands, newBenchCmd) }

// intList is a flag of comma-separated positive whole numbers.
type intList []int

func (l *intList) String() string {
	parts := make([]string, len(*l))
	for i, v := range *l {
		parts[i] = strconv.Itoa(v)
	}
	return strings.Join(parts, ",")
}

func (l *intList) Set(s string) error {
	var out []int
	for _, p := range strings.Split(s, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || v < 1 {
			return fmt.Errorf("%q is not a positive whole number", p)
		}
		out = append(out, v)
	}
	*l = out
	return nil
}

func (l *intList) Type() string { return "N[,N...]" }

func newBenchCmd(g *globals) *cobra.Command {
	var c bench.Config
	var sc bench.ScaleConfig
	var out string
	var scale bool
	var releases, twoWorkers intList
	var tuning string
	cmd := &cobra.Command{
		Use:   "bench [--out docs/BENCHMARKS.md] | bench --scale [--releases 100,500,1000] [--two-workers 1000]",
		Short: "Measure rollback speed, or capacity (--scale), on a local stack and write the results as Markdown",
		Long: `Start a local stack (Temporal dev server, Prometheus, the demo fleet, a worker; free ports, no UI)
and measure, in one run:

 (a) abort signal → traffic back on stable, over --releases releases on the exec target (no-op
     commands, analysis off): the abort signal is sent while the first stage soaks, and the time runs
     until the traffic command for 0 % has run (it writes a nanosecond timestamp). Next to it, the
     Temporal floor measured in the same run: a workflow that waits for a signal and then runs one no-op
     activity, timed from the signal to the activity running. Target: p50 and p99 within 2× the floor.
 (b) breach onset → rollback complete, over --breach-runs releases of a bad version (~20% errors) with
     the demo's checks against the real Prometheus: from the canary getting traffic to the RolledBack
     decision. Target: within one analysis interval + one scrape interval + 2 s.

Each target is reported PASS or MISS as measured. With --out the results, the method and the machine
(CPUs, CPU model, Go version) are written as Markdown. Takes about two minutes.

With --scale it measures capacity instead, on the production-shaped stack (PostgreSQL, the Temporal
server, shepherd worker processes of their own): for each number of --releases, that many releases
soak at once with analysis on against a real Prometheus, on one worker, then for each of --two-workers
on two. Per point: analysis lag beyond the interval, abort → traffic on stable under load and idle,
status-query latency, workflow and activity schedule-to-start, CPU of each worker, the server,
PostgreSQL and Prometheus, worker memory per release. With --out it replaces the scale section of the
file (the rest is kept, and a plain bench --out keeps the scale section). Each point takes a few minutes.`,
		Example: `  make bench                                   # bin/shepherd bench --out docs/BENCHMARKS.md
  shepherd bench --releases 50 --breach-runs 10
  shepherd bench --out /tmp/bench.md --state-dir /tmp/bench   # keep the logs
  shepherd bench --scale --releases 100,500,1000 --two-workers 1000 --out docs/BENCHMARKS.md`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if scale {
				sc.Releases, sc.TwoWorkers = releases, twoWorkers
				if !cmd.Flags().Changed("releases") && !cmd.Flags().Changed("two-workers") {
					sc.Releases, sc.TwoWorkers = []int{100, 500, 1000}, []int{1000}
				}
				if tuning != "" {
					wc, err := config.Parse([]byte("worker: {" + tuning + "}"))
					if err != nil {
						return withHint(ExitUsage, fmt.Errorf("--tuning: %w", err), "give key: value pairs of the worker section, e.g. \"maxConcurrentActivities: 1000\"")
					}
					sc.Tuning = wc.Worker.Tuning()
				}
				if sc.Interval < time.Second {
					return withHint(ExitUsage, fmt.Errorf("--interval %s", sc.Interval), "use 1s or more")
				}
				res, err := bench.RunScale(ctx, g.stdout, sc)
				if len(res.Points) == 0 && err != nil {
					return withHint(ExitError, err, "")
				}
				if err != nil {
					fmt.Fprintf(g.stdout, "\nstopped early: %v\n", err)
				}
				md := bench.ScaleMarkdown(res)
				if werr := writeBench(g, out, md, func(doc string) string { return bench.SpliceScale(doc, md) }); werr != nil {
					return werr
				}
				if err != nil {
					return withHint(ExitError, err, "the points measured before it are written")
				}
				return nil
			}
			switch {
			case cmd.Flags().Changed("two-workers"):
				return withHint(ExitUsage, errors.New("--two-workers needs --scale"), "")
			case len(releases) > 1:
				return withHint(ExitUsage, fmt.Errorf("--releases %s", releases.String()), "a list is for --scale; give one number")
			case len(releases) == 1:
				c.Releases = releases[0]
			default:
				c.Releases = 30
			}
			if c.Releases < bench.MinReleases {
				return withHint(ExitUsage, fmt.Errorf("--releases %d", c.Releases), fmt.Sprintf("use at least %d for a p99 worth the name", bench.MinReleases))
			}
			if c.BreachRuns < 1 {
				return withHint(ExitUsage, fmt.Errorf("--breach-runs %d", c.BreachRuns), "use at least 1")
			}
			c.StateDir, c.PrometheusBin = sc.StateDir, sc.PrometheusBin
			res, err := bench.Run(ctx, g.stdout, c)
			if err != nil {
				return withHint(ExitError, err, "")
			}
			md := bench.Markdown(res, c)
			// Keep the scale section a --scale run wrote, and what follows it.
			return writeBench(g, out, md, func(doc string) string { return bench.KeepScale(md, doc) })
		},
	}
	f := cmd.Flags()
	f.StringVar(&out, "out", "", "write the results as Markdown to this file (default: print them)")
	f.Var(&releases, "releases", fmt.Sprintf("releases aborted for (a), and floor runs; at least %d (default 30). With --scale: the numbers of soaking releases on one worker (default 100,500,1000)", bench.MinReleases))
	f.IntVar(&c.BreachRuns, "breach-runs", 5, "bad releases rolled back by analysis for (b)")
	f.BoolVar(&c.InMemory, "in-memory", false, "run Temporal without its SQLite file (state in memory)")
	f.StringVar(&sc.StateDir, "state-dir", "", "keep the stack's data and logs here (default: a temporary directory, removed)")
	f.StringVar(&c.ServiceBinary, "service-binary", "", "demo-service executable (default: next to shepherd, bin/, PATH, or built)")
	f.StringVar(&c.TemporalBin, "temporal", "", "Temporal CLI (default: $SHEPHERD_TEMPORAL, the build cache, PATH)")
	f.StringVar(&sc.PrometheusBin, "prometheus", "", "Prometheus server (default: $SHEPHERD_PROMETHEUS, the build cache, PATH)")
	f.BoolVar(&scale, "scale", false, "measure capacity: many releases soaking at once on one and two worker processes")
	f.Var(&twoWorkers, "two-workers", "with --scale: the numbers of soaking releases measured on two workers (default 1000)")
	f.DurationVar(&sc.Interval, "interval", 10*time.Second, "with --scale: the analysis interval of every release")
	f.DurationVar(&sc.Window, "window", time.Minute, "with --scale: how long each point is measured once every release soaks")
	f.DurationVar(&sc.RampTimeout, "ramp-timeout", 6*time.Minute, "with --scale: how long a point may take to get every release soaking (then it measures those that do)")
	f.IntVar(&sc.Aborts, "aborts", 10, "with --scale: releases aborted one at a time under load (and up to 5 idle)")
	f.StringVar(&tuning, "tuning", "", `with --scale: the workers' tuning, as the worker section's keys ("workflowTaskPollers: 2, maxConcurrentActivities: 1000"); default the defaults`)
	f.IntVar(&sc.Queries, "queries", 20, "with --scale: status queries timed during each window")
	return cmd
}

// writeBench prints md, or writes the file out, made by merge from what the file holds now ("" if none).
func writeBench(g *globals, out, md string, merge func(doc string) string) error {
	if out == "" {
		fmt.Fprint(g.stdout, "\n"+md+"\n")
		return nil
	}
	old, err := os.ReadFile(out)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("reading %s: %w", out, err)
	}
	if err := os.WriteFile(out, []byte(merge(string(old))), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", out, err)
	}
	fmt.Fprintf(g.stdout, "\nWrote %s\n", out)
	return nil
}
