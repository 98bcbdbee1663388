package cli

import (
	"fmt"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/shepherd-release/shepherd/examples"
	"github.com/shepherd-release/shepherd/internal/devstack"
	"github.com/shepherd-release/shepherd/worker"
)

func newDevCmd(g *globals) *cobra.Command {
	var f workerFlags
	var port, uiPort int
	var dataDir, temporalBin string
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run a local stack: Temporal dev server + web UI + a Shepherd worker",
		Long: `Start a Temporal dev server (state kept in a SQLite file under --data-dir, web UI on --ui-port)
with every Shepherd search attribute registered, and a worker connected to it. Ctrl-C stops both.
The worker's configuration is --config (or $SHEPHERD_CONFIG), by default the example configuration
examples/shepherd.yaml (built into the binary). The Temporal CLI comes from $SHEPHERD_TEMPORAL, the build
cache (make tools) or PATH.`,
		Example: `  shepherd dev --config examples/shepherd.yaml
  # in another terminal:
  shepherd start -f examples/release-exec.yaml --wait`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			logger, sync, err := f.newLogger()
			if err != nil {
				return err
			}
			defer sync()
			if f.config == "" {
				// The example configuration, as built into the binary: `shepherd dev` works from anywhere.
				path, err := writeExampleConfig(dataDir)
				if err != nil {
					return err
				}
				f.config = path
			}
			fmt.Fprintf(g.stdout, "Worker configuration: %s\n", f.config)
			fmt.Fprintf(g.stdout, "Starting Temporal dev server on 127.0.0.1:%d (data in %s) ...\n", port, dataDir)
			srv, err := devstack.StartTemporal(ctx, devstack.TemporalOptions{
				Binary: temporalBin, Port: port, UIPort: uiPort,
				DBFile:  filepath.Join(dataDir, "temporal.db"),
				LogFile: filepath.Join(dataDir, "temporal.log"),
			})
			if err != nil {
				return withHint(ExitError, err, "is another server on the port? `make tools` builds the Temporal CLI")
			}
			defer srv.Stop()
			os.Setenv("TEMPORAL_ADDRESS", srv.Address)
			return runWorker(ctx, logger, f, func() {
				fmt.Fprintf(g.stdout, "\nShepherd dev stack is up.\n  Temporal:  %s\n  Web UI:    %s\n"+
					"  Start a release:  TEMPORAL_ADDRESS=%s shepherd start -f examples/release-exec.yaml --wait\n"+
					"Ctrl-C stops the worker and the server.\n", srv.Address, srv.UIURL, srv.Address)
			})
		},
	}
	f.register(cmd)
	cmd.Flags().IntVar(&port, "port", 7233, "Temporal frontend port")
	cmd.Flags().IntVar(&uiPort, "ui-port", 8233, "Temporal web UI port")
	cmd.Flags().StringVar(&dataDir, "data-dir", filepath.Join(worker.DefaultStateDir(), "dev"), "where the dev server keeps its SQLite file and log")
	cmd.Flags().StringVar(&temporalBin, "temporal", "", "Temporal CLI binary (default: $SHEPHERD_TEMPORAL, the build cache, PATH)")
	return cmd
}

// writeExampleConfig writes the built-in examples/shepherd.yaml into dir and returns its path.
func writeExampleConfig(dir string) (string, error) {
	data, err := fs.ReadFile(examples.FS, examples.WorkerConfig)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	path := filepath.Join(dir, examples.WorkerConfig)
	return path, os.WriteFile(path, data, 0o600)
}
