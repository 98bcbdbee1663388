package cli

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/shepherd-release/shepherd/fleet"
	"github.com/shepherd-release/shepherd/internal/demo"
)

func init() { extraCommands = append(extraCommands, newFleetCmd) }

func newFleetCmd(g *globals) *cobra.Command {
	var cfg fleet.Config
	var profiles []string
	var bin, logLevel string
	cmd := &cobra.Command{
		Use:   "fleet",
		Short: "Run the local demo fleet: demo-service versions behind a weighted proxy, with load",
		Long: `Run the local fleet controller that the "local" deploy target drives. It starts versions of the
demo service as child processes, splits traffic between the stable version and a canary behind a
weighted reverse proxy (requests to <proxy>/<service>/), sends --load-rps requests per second per service
through it so metrics exist, and writes a Prometheus file_sd file listing every instance with its
service and version labels. Releases then deploy, shift traffic, promote and roll back through its
admin API (--listen; spec target.local.controller).

Each version behaves as its --profile says: KEY=errors:RATE,latency:DURATION where KEY is a version
("v3") or service/version ("checkout/v3"), RATE the share of requests answered with 500 (0.2 or 20%)
and DURATION the mean latency (default 20ms). Versions without a profile are healthy.

State (state.json, instance logs, file_sd.json) lives in --state-dir and survives a restart; delete the
directory with the fleet stopped to start from nothing. SIGINT/SIGTERM stop the controller and, unless
--keep-processes, every instance.`,
		Example: `  # a fleet where v3 fails 20% of requests and is slow
  shepherd fleet --profile v3=errors:0.2,latency:50ms
  # in another terminal: start the first stable version, then release v2
  curl -X POST localhost:9300/v1/services/checkout/bootstrap -d '{"version":"v1"}'
  shepherd start -f examples/release.yaml --wait
  # Prometheus scrapes the instances from the file_sd file:
  #   scrape_configs: [{job_name: fleet, file_sd_configs: [{files: [.shepherd/fleet/file_sd.json]}]}]`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if cfg.Profiles, err = parseProfiles(profiles); err != nil {
				return err
			}
			if cfg.ServiceBinary, err = findServiceBinary(bin); err != nil {
				return err
			}
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return withHint(ExitUsage, fmt.Errorf("--log-level %q: %w", logLevel, err), "use debug, info, warn or error")
			}
			cfg.Logger = slog.New(slog.NewTextHandler(g.stderr, &slog.HandlerOptions{Level: level}))
			cfg.OnReady = func(e fleet.Endpoints) {
				fmt.Fprintf(g.stdout, "Fleet controller ready.\n  Admin API: %s  (target.local.controller)\n"+
					"  Proxy:     %s/<service>/\n  file_sd:   %s\nCtrl-C stops it.\n", e.Admin, e.Proxy, fileSDPath(cfg))
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if err := fleet.Run(ctx, cfg); err != nil {
				return withHint(ExitError, err, "is another `shepherd fleet` or `shepherd demo` running? pick other --listen/--proxy addresses")
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Listen, "listen", fleet.DefaultListen, "admin API address (the local target's controller)")
	f.StringVar(&cfg.ProxyListen, "proxy", fleet.DefaultProxyListen, "weighted reverse proxy address")
	f.StringVar(&bin, "service-binary", "", "demo-service executable (default: demo-service next to shepherd, bin/demo-service, or on PATH)")
	f.StringVar(&cfg.StateDir, "state-dir", fleet.DefaultStateDir, "state file, instance logs and default file_sd location")
	f.StringVar(&cfg.FileSD, "file-sd", "", "Prometheus file_sd JSON file to write (default <state-dir>/file_sd.json)")
	f.StringArrayVar(&profiles, "profile", nil, "behaviour of a version: KEY=errors:RATE,latency:DURATION (repeatable)")
	f.Float64Var(&cfg.LoadRPS, "load-rps", fleet.DefaultLoadRPS, fmt.Sprintf("load per service through the proxy in requests/s (at most %d; negative disables)", fleet.MaxLoadRPS))
	f.DurationVar(&cfg.Grace, "grace", fleet.DefaultGrace, "how long the old stable version keeps running after a promotion")
	f.StringVar(&cfg.FlagFile, "flag-file", "", "flagd-format JSON flag file passed to every instance")
	f.BoolVar(&cfg.KeepProcesses, "keep-processes", false, "leave the instances running on exit, for the next controller to adopt")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
	return cmd
}

func fileSDPath(cfg fleet.Config) string {
	if cfg.FileSD != "" {
		return cfg.FileSD
	}
	dir := cfg.StateDir
	if dir == "" {
		dir = fleet.DefaultStateDir
	}
	return filepath.Join(dir, "file_sd.json")
}

// parseProfiles reads --profile values: KEY=errors:RATE,latency:DURATION.
func parseProfiles(specs []string) (map[string]fleet.Profile, error) {
	out := map[string]fleet.Profile{}
	for _, s := range specs {
		key, p, err := parseProfile(s)
		if err != nil {
			return nil, withHint(ExitUsage, fmt.Errorf("--profile %q: %w", s, err),
				"write KEY=errors:RATE,latency:DURATION, e.g. --profile v3=errors:0.2,latency:50ms")
		}
		if _, dup := out[key]; dup {
			return nil, withHint(ExitUsage, fmt.Errorf("--profile: %q is given twice", key), "give one --profile per version")
		}
		out[key] = p
	}
	return out, nil
}

func parseProfile(s string) (string, fleet.Profile, error) {
	p := fleet.DefaultProfile
	key, rest, ok := strings.Cut(s, "=")
	key = strings.TrimSpace(key)
	if !ok || key == "" || strings.Count(key, "/") > 1 {
		return "", p, errors.New("missing VERSION= or SERVICE/VERSION= before the settings")
	}
	if strings.TrimSpace(rest) == "" {
		return "", p, errors.New("no settings after =")
	}
	for _, kv := range strings.Split(rest, ",") {
		name, val, ok := strings.Cut(strings.TrimSpace(kv), ":")
		if !ok {
			return "", p, fmt.Errorf("setting %q: want name:value", kv)
		}
		switch strings.TrimSpace(name) {
		case "errors", "error-rate":
			r, err := parseRate(strings.TrimSpace(val))
			if err != nil {
				return "", p, err
			}
			p.ErrorRate = r
		case "latency":
			d, err := time.ParseDuration(strings.TrimSpace(val))
			if err != nil || d < 0 {
				return "", p, fmt.Errorf("latency %q: want a Go duration such as 50ms", val)
			}
			p.Latency = d
		default:
			return "", p, fmt.Errorf("unknown setting %q: want errors or latency", name)
		}
	}
	return key, p, nil
}

// parseRate reads a share of requests as a fraction (0.2) or a percentage (20%).
func parseRate(s string) (float64, error) {
	pct := strings.HasSuffix(s, "%")
	v, err := strconv.ParseFloat(strings.TrimSuffix(s, "%"), 64)
	if err == nil && pct {
		v /= 100
	}
	if err != nil || v < 0 || v > 1 {
		return 0, fmt.Errorf("errors %q: want a fraction in [0, 1] such as 0.2, or a percentage such as 20%%", s)
	}
	return v, nil
}

// findServiceBinary is demo.FindServiceBinary, with an explicit path that is not executable a usage error.
func findServiceBinary(explicit string) (string, error) {
	p, err := demo.FindServiceBinary(explicit)
	if err != nil && explicit != "" {
		return "", withHint(ExitUsage, err, "pass the demo-service executable, or build it with `make build`")
	}
	return p, err
}
