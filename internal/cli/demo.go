package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"

	"github.com/shepherd-release/shepherd/fleet"
	"github.com/shepherd-release/shepherd/internal/demo"
	"github.com/shepherd-release/shepherd/worker"
)

func init() { extraCommands = append(extraCommands, newDemoCmd) }

func newDemoCmd(g *globals) *cobra.Command {
	o := demo.Options{}
	var keep bool
	var soak, interval time.Duration
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "See Shepherd work: a good release promoted and a bad one rolled back, on a local stack",
		Long: `Start a complete local stack and run two real releases on it:

  - a Temporal dev server with its web UI (--ui-port), history kept in --state-dir between runs
  - Prometheus scraping every demo-service instance of the fleet every second (file_sd)
  - the fleet: checkout v1 (stable), v2 (healthy) and v3 (~20% of requests fail) behind a weighted
    proxy with steady load
  - a Shepherd worker

Then checkout v2 is released in stages (10% → 50% → 100%, short soaks, checks every 5 s) and promoted,
and checkout v3 is released the same way and rolled back automatically when its error rate breaches
the SLO. The specs are examples/demo-good.yaml and examples/demo-bad.yaml. Progress is printed live; the
summary shows each stage's measurements and the time from breach to rollback.

Everything stops when the demo ends or on Ctrl-C; with --keep the stack stays up until Ctrl-C so you
can browse the releases in the web UI or try other commands against it. Logs are in --state-dir.
Exit code 0 when both releases ended as intended, 1 otherwise.`,
		Example: `  make demo                     # builds, then runs: bin/shepherd demo
  shepherd demo --keep          # then browse http://localhost:8233, Ctrl-C to stop
  shepherd demo --ui-port 8080 --port 7300 --prometheus-port 9091`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			out := g.stdout
			var err error
			fmt.Fprintf(out, "Shepherd demo: starting a local stack (state and logs in %s)\n", o.StateDir)
			if o.ServiceBinary, err = demo.ServiceBinary(ctx, o.ServiceBinary, filepath.Join(o.StateDir, "bin"), out); err != nil {
				return withHint(ExitError, err, "")
			}
			o.Progress = out
			o.Follow = func(ctx context.Context, c client.Client, service, env, runID string, w io.Writer) error {
				var ee *exitError
				if err := follow(ctx, &globals{output: "text", stdout: w, stderr: w}, c, service, env, runID); err != nil && !errors.As(err, &ee) {
					return err
				}
				return nil
			}
			s, err := demo.Start(ctx, o)
			if err != nil {
				return withHint(ExitError, err, "")
			}
			defer func() {
				fmt.Fprintln(out, "\nStopping the stack (worker, fleet, Prometheus, Temporal) ...")
				s.Close()
				fmt.Fprintln(out, "Stopped; nothing left running.")
			}()
			rels, err := demo.Run(ctx, s, soak, interval, out)
			if err != nil {
				s.Abandon()
				if ctx.Err() != nil {
					return withHint(ExitError, errors.New("demo interrupted"), "")
				}
				return err
			}
			demo.RenderSummary(out, s, rels)
			outcome := demo.Check(rels)
			if outcome != nil {
				fmt.Fprintf(out, "\nThe demo did not go as intended: %v\n", outcome)
			}
			if keep {
				fmt.Fprintf(out, "\nThe stack stays up until Ctrl-C (--keep):\n  Web UI:      %s\n  Temporal:    %s  "+
					"(TEMPORAL_ADDRESS=%s shepherd history %s --env %s)\n  Prometheus:  %s\n  Fleet:       %s (proxy %s)\n",
					cmp.Or(s.Temporal.UIURL, "disabled"), s.Temporal.Address, s.Temporal.Address, demo.Service,
					rels[0].Spec.Environment, s.Prometheus.URL, s.Fleet.Admin, s.Fleet.Proxy)
				<-ctx.Done()
			}
			if outcome != nil {
				return withHint(ExitError, outcome, "the logs in "+o.StateDir+" say more")
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&keep, "keep", false, "leave the stack running after the demo until Ctrl-C, to browse the web UI")
	f.IntVar(&o.UIPort, "ui-port", 8233, "Temporal web UI port")
	f.IntVar(&o.TemporalPort, "port", 7233, "Temporal frontend port")
	f.IntVar(&o.PrometheusPort, "prometheus-port", 9090, "Prometheus port")
	f.StringVar(&o.FleetListen, "fleet-listen", fleet.DefaultListen, "fleet controller admin API address")
	f.StringVar(&o.ProxyListen, "proxy-listen", fleet.DefaultProxyListen, "fleet proxy address")
	f.StringVar(&o.StateDir, "state-dir", filepath.Join(worker.DefaultStateDir(), "demo"), "Temporal database, logs, fleet and Prometheus data")
	f.StringVar(&o.ServiceBinary, "service-binary", "", "demo-service executable (default: next to shepherd, bin/, PATH, or built)")
	f.StringVar(&o.TemporalBinary, "temporal", "", "Temporal CLI (default: $SHEPHERD_TEMPORAL, the build cache, PATH)")
	f.StringVar(&o.PrometheusBinary, "prometheus", "", "Prometheus server (default: $SHEPHERD_PROMETHEUS, the build cache, PATH)")
	f.DurationVar(&soak, "soak", 0, "soak of every stage (default: as in the example specs, 20s)")
	f.DurationVar(&interval, "interval", 0, "analysis interval (default: as in the example specs, 5s)")
	return cmd
}
