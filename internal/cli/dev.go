package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	sdklog "go.temporal.io/sdk/log"
	"sigs.k8s.io/yaml"

	"github.com/shepherd-release/shepherd/examples"
	"github.com/shepherd-release/shepherd/internal/devstack"
	"github.com/shepherd-release/shepherd/worker"
)

func newDevCmd(g *globals) *cobra.Command {
	var f workerFlags
	var port, uiPort int
	var dataDir, temporalBin string
	var cluster, kube bool
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run a local stack: Temporal dev server + web UI + a Shepherd worker",
		Long: `Start a Temporal dev server (state kept in a SQLite file under --data-dir, web UI on --ui-port)
with every Shepherd search attribute registered, and a worker connected to it. Ctrl-C stops both.
The worker's configuration is --config (or $SHEPHERD_CONFIG), by default the example configuration
examples/shepherd.yaml (built into the binary). The Temporal CLI comes from $SHEPHERD_TEMPORAL, the build
cache (make tools) or PATH.

With --cluster it runs the production-shaped stack instead: PostgreSQL (Debian's server, as the user
postgres when run as root), Temporal's schema set up by temporal-sql-tool, the Temporal server binary
(` + devstack.TemporalServerVersion + `) and the namespace and search attributes created with the Temporal CLI; data under
--data-dir/cluster (run as root: ` + rootClusterDir + `/cluster unless --data-dir is given, as the user postgres
cannot enter root's home). It has no web UI (docker-compose.yml adds one). Binaries: make tools.

With --kube it also starts a local Kubernetes control plane without containers (etcd, kube-apiserver,
controller-manager, scheduler, kwok with one fake node, Gateway API CRDs; built by make tools), sets up
namespace "shop" with a Deployment, Service and HTTPRoute "checkout" and the kubernetes target's Role,
adds the target "checkout-kube" to the worker's configuration and writes a release spec naming it
(docs/targets.md).`,
		Example: `  shepherd dev --config examples/shepherd.yaml
  shepherd dev --cluster   # PostgreSQL + the Temporal server instead of the dev server
  shepherd dev --kube      # also a Kubernetes control plane; prints the spec to start
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
			if cluster {
				return runCluster(ctx, g, logger, f, port, dataDir, cmd.Flags().Changed("data-dir"))
			}
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
			example, kubeInfo := "examples/release-exec.yaml", ""
			if kube {
				k, spec, config, err := startDevKube(ctx, g, filepath.Join(dataDir, "kube"), f.config)
				if err != nil {
					return err
				}
				defer k.Stop()
				example, f.config = spec, config
				kubeInfo = fmt.Sprintf("  Kubernetes: %s (admin kubeconfig %s; namespace %s)\n", k.URL, k.AdminKubeconfig, devstack.KubeDemoNamespace)
			}
			return runWorker(ctx, logger, f, func() {
				fmt.Fprintf(g.stdout, "\nShepherd dev stack is up.\n  Temporal:  %s\n  Web UI:    %s\n%s"+
					"  Start a release:  TEMPORAL_ADDRESS=%s %s start -f %s --wait\n"+
					"Ctrl-C stops the worker and the server.\n", srv.Address, srv.UIURL, kubeInfo, srv.Address, selfCommand(), example)
			})
		},
	}
	f.register(cmd)
	cmd.Flags().IntVar(&port, "port", 7233, "Temporal frontend port")
	cmd.Flags().IntVar(&uiPort, "ui-port", 8233, "Temporal web UI port")
	cmd.Flags().StringVar(&dataDir, "data-dir", filepath.Join(worker.DefaultStateDir(), "dev"), "where the dev server keeps its SQLite file and log")
	cmd.Flags().StringVar(&temporalBin, "temporal", "", "Temporal CLI binary (default: $SHEPHERD_TEMPORAL, the build cache, PATH)")
	cmd.Flags().BoolVar(&cluster, "cluster", false, "run PostgreSQL and the Temporal server binary instead of the dev server")
	cmd.Flags().BoolVar(&kube, "kube", false, "also run a local Kubernetes control plane with a Deployment to release (make tools builds it)")
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

// rootClusterDir is where `shepherd dev --cluster` run as root keeps its data by default.
const rootClusterDir = "/var/tmp/shepherd-dev"

// runCluster is `shepherd dev --cluster`: the production-shaped stack and a worker on it.
func runCluster(ctx context.Context, g *globals, logger sdklog.Logger, f workerFlags, port int, dataDir string, dataDirSet bool) error {
	if os.Geteuid() == 0 && !dataDirSet {
		// PostgreSQL runs as the user postgres, who cannot enter root's home directory (0700).
		dataDir = rootClusterDir
	}
	dir := filepath.Join(dataDir, "cluster")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	fmt.Fprintf(g.stdout, "Starting PostgreSQL and the Temporal server %s on 127.0.0.1:%d (data in %s) ...\n",
		devstack.TemporalServerVersion, port, dir)
	c, err := devstack.StartCluster(ctx, devstack.ClusterOptions{Dir: dir, Port: port})
	if err != nil {
		return withHint(ExitError, err, "`make tools` builds the Temporal server and temporal-sql-tool; is another server on the port?")
	}
	defer c.Stop()
	os.Setenv("TEMPORAL_ADDRESS", c.Address)
	return runWorker(ctx, logger, f, func() {
		fmt.Fprintf(g.stdout, "\nShepherd on a Temporal cluster is up.\n  Temporal:  %s (namespace %s; server metrics %s)\n"+
			"  Logs:      %s, %s\n"+
			"  Start a release:  TEMPORAL_ADDRESS=%s %s start -f examples/release-exec.yaml --wait\n"+
			"  More workers:     TEMPORAL_ADDRESS=%s %s worker --state-dir DIR2 --metrics-addr 127.0.0.1:9465\n"+
			"Ctrl-C stops the worker, the server and PostgreSQL.\n",
			c.Address, c.Namespace, c.MetricsURL, c.ServerLog, c.PostgresLog, c.Address, selfCommand(), c.Address, selfCommand())
	})
}

// startDevKube starts a fresh control plane in dir, sets up the demo namespace in it, and writes a worker
// configuration (configPath's, plus the target "checkout-kube") and a release spec naming that target.
func startDevKube(ctx context.Context, g *globals, dir, configPath string) (k *devstack.Kube, spec, config string, err error) {
	if err := os.RemoveAll(dir); err != nil {
		return nil, "", "", err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, "", "", err
	}
	fmt.Fprintf(g.stdout, "Starting a Kubernetes control plane (state and logs in %s) ...\n", dir)
	k, err = devstack.StartKube(ctx, devstack.KubeOptions{Dir: dir, Users: []string{"shepherd"}})
	if err != nil {
		return nil, "", "", withHint(ExitError, err, "`make tools` builds the control plane")
	}
	defer func() {
		if err != nil {
			k.Stop()
		}
	}()
	target, err := devstack.SeedKubeDemo(ctx, k, dir)
	if err != nil {
		return nil, "", "", err
	}
	base, err := os.ReadFile(configPath)
	if err != nil {
		return nil, "", "", err
	}
	var doc map[string]any
	if err := yaml.Unmarshal(base, &doc); err != nil {
		return nil, "", "", fmt.Errorf("%s: %w", configPath, err)
	}
	targets, _ := doc["targets"].(map[string]any)
	if targets == nil {
		targets = map[string]any{}
	}
	targets[devstack.KubeDemoTarget] = target
	doc["targets"] = targets
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, "", "", err
	}
	config = filepath.Join(dir, "shepherd.json")
	if err := os.WriteFile(config, out, 0o600); err != nil {
		return nil, "", "", err
	}
	spec = filepath.Join(dir, "release-kubernetes.yaml")
	return k, spec, config, os.WriteFile(spec, []byte(devstack.KubeDemoSpec), 0o644)
}

// selfCommand is how to run this shepherd binary from the current directory, for commands a banner
// prints: "shepherd" when PATH finds this very binary, else its path (relative when under the current
// directory, as bin/shepherd after make build).
func selfCommand() string {
	self, err := os.Executable()
	if err != nil {
		return "shepherd"
	}
	self, _ = filepath.EvalSymlinks(self)
	if p, err := exec.LookPath("shepherd"); err == nil {
		if p, err = filepath.EvalSymlinks(p); err == nil && p == self {
			return "shepherd"
		}
	}
	if wd, err := os.Getwd(); err == nil {
		if rel, err := filepath.Rel(wd, self); err == nil && !strings.HasPrefix(rel, "..") {
			if rel = filepath.ToSlash(rel); !strings.Contains(rel, "/") {
				rel = "./" + rel
			}
			return rel
		}
	}
	return self
}
