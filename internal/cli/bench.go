package cli

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/shepherd-release/shepherd/internal/bench"
)

func init() { extraCommands = append(extraCommands, newBenchCmd) }

func newBenchCmd(g *globals) *cobra.Command {
	var c bench.Config
	var out string
	cmd := &cobra.Command{
		Use:   "bench [--out docs/BENCHMARKS.md]",
		Short: "Measure rollback speed on a local stack and write the results as Markdown",
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
(CPUs, CPU model, Go version) are written as Markdown. Takes about two minutes.`,
		Example: `  make bench                                   # bin/shepherd bench --out docs/BENCHMARKS.md
  shepherd bench --releases 50 --breach-runs 10
  shepherd bench --out /tmp/bench.md --state-dir /tmp/bench   # keep the logs`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if c.Releases < bench.MinReleases {
				return withHint(ExitUsage, fmt.Errorf("--releases %d", c.Releases), fmt.Sprintf("use at least %d for a p99 worth the name", bench.MinReleases))
			}
			if c.BreachRuns < 1 {
				return withHint(ExitUsage, fmt.Errorf("--breach-runs %d", c.BreachRuns), "use at least 1")
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			res, err := bench.Run(ctx, g.stdout, c)
			if err != nil {
				return withHint(ExitError, err, "")
			}
			md := bench.Markdown(res, c)
			if out == "" {
				fmt.Fprint(g.stdout, "\n"+md)
				return nil
			}
			if err := os.WriteFile(out, []byte(md), 0o644); err != nil {
				return fmt.Errorf("writing %s: %w", out, err)
			}
			fmt.Fprintf(g.stdout, "\nWrote %s\n", out)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&out, "out", "", "write the results as Markdown to this file (default: print them)")
	f.IntVar(&c.Releases, "releases", 30, fmt.Sprintf("releases aborted for (a), and floor runs; at least %d", bench.MinReleases))
	f.IntVar(&c.BreachRuns, "breach-runs", 5, "bad releases rolled back by analysis for (b)")
	f.BoolVar(&c.InMemory, "in-memory", false, "run Temporal without its SQLite file (state in memory)")
	f.StringVar(&c.StateDir, "state-dir", "", "keep the stack's data and logs here (default: a temporary directory, removed)")
	f.StringVar(&c.ServiceBinary, "service-binary", "", "demo-service executable (default: next to shepherd, bin/, PATH, or built)")
	f.StringVar(&c.TemporalBin, "temporal", "", "Temporal CLI (default: $SHEPHERD_TEMPORAL, the build cache, PATH)")
	f.StringVar(&c.PrometheusBin, "prometheus", "", "Prometheus server (default: $SHEPHERD_PROMETHEUS, the build cache, PATH)")
	return cmd
}
