// Package cli is the `shepherd` command line: flag parsing, output formatting and exit codes over the
// starter and worker libraries.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/user"
	"strings"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/contrib/envconfig"
	sdklog "go.temporal.io/sdk/log"

	"github.com/shepherd-release/shepherd/record"
)

// Exit codes, documented in docs/cli.md.
const (
	ExitOK         = 0
	ExitError      = 1
	ExitUsage      = 2
	ExitRolledBack = 3
	ExitFailed     = 4
	ExitRejected   = 5
)

// exitError carries an exit code and an optional hint line.
type exitError struct {
	code int
	err  error
	hint string
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func withHint(code int, err error, hint string) error {
	return &exitError{code: code, err: err, hint: hint}
}

// globals are the flags every command shares.
type globals struct {
	env string
	// envSet is true when --env was given: commands then never look for the release elsewhere.
	envSet bool
	output string
	stdout io.Writer
	stderr io.Writer
}

func (g *globals) json() bool { return g.output == "json" }

// printJSON writes v as indented JSON (a status with its durations as strings: statusJSON).
func (g *globals) printJSON(v any) error {
	if st, ok := v.(record.Status); ok {
		m, err := statusJSON(st)
		if err != nil {
			return err
		}
		v = m
	}
	enc := json.NewEncoder(g.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// Main runs the CLI with args and returns the process exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	g := &globals{stdout: stdout, stderr: stderr}
	root := newRoot(g)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	var ee *exitError
	code := ExitError
	if errors.As(err, &ee) {
		code = ee.code
	}
	fmt.Fprintln(stderr, "error: "+err.Error())
	if ee != nil && ee.hint != "" {
		fmt.Fprintln(stderr, "hint: "+ee.hint)
	}
	return code
}

func newRoot(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:   "shepherd",
		Short: "Staged canary releases on Temporal, steered by people and SLOs",
		Long: `Shepherd releases a new version of a service in stages (1% → 5% → 25% → 50% → 100% by default),
soaking each stage while SLO checks run against Prometheus, and promotes it or rolls it back.
Every release is a durable Temporal workflow: it survives worker crashes and is steered with
approve / abort / pause / resume.

Connection settings come from the Temporal CLI's environment and profiles
(TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS_*, TEMPORAL_PROFILE).`,
		Example: `  shepherd validate -f release.yaml
  shepherd start -f release.yaml --wait
  shepherd watch checkout
  shepherd approve checkout --stage 3 --comment "dashboards look fine"
  shepherd abort checkout --reason "error budget burning"`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	// A mistyped flag is a usage error: exit 2, with the command's usage line.
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return withHint(ExitUsage, err, "usage: "+c.UseLine()+"   (shepherd "+c.Name()+" --help explains every flag)")
	})
	root.PersistentFlags().StringVar(&g.env, "env", "production", "environment of the release")
	root.PersistentFlags().StringVarP(&g.output, "output", "o", "text", `output format of read commands: "text" or "json"`)
	root.AddCommand(
		newValidateCmd(g), newStartCmd(g), newStatusCmd(g), newWatchCmd(g), newHistoryCmd(g), newListCmd(g),
		newControlCmd(g, "approve"), newControlCmd(g, "abort"), newControlCmd(g, "pause"), newControlCmd(g, "resume"),
		newControlCmd(g, "retry"), newControlCmd(g, "acknowledge"),
		newWorkerCmd(g), newDevCmd(g),
	)
	for _, extra := range extraCommands {
		root.AddCommand(extra(g))
	}
	return root
}

// extraCommands are added by other files of this package (so each concern stays in its own file).
var extraCommands []func(*globals) *cobra.Command

// dial connects to Temporal with the Temporal CLI's configuration (env vars and profiles).
func dial(ctx context.Context) (client.Client, error) {
	opts, err := envconfig.LoadDefaultClientOptions()
	if err != nil {
		return nil, withHint(ExitError, fmt.Errorf("reading Temporal client configuration: %w", err),
			"check TEMPORAL_* variables and your Temporal CLI profile (temporal config get)")
	}
	opts.Logger = quietLogger()
	c, err := client.DialContext(ctx, opts)
	if err != nil {
		addr := opts.HostPort
		if addr == "" {
			addr = client.DefaultHostPort
		}
		return nil, withHint(ExitError, fmt.Errorf("cannot reach Temporal at %s: %w", addr, err),
			"start a local stack with `make dev`, or point TEMPORAL_ADDRESS at your server")
	}
	return c, nil
}

// quietLogger keeps the SDK's chatter out of a person's terminal: warnings and errors only.
func quietLogger() sdklog.Logger {
	return sdklog.NewStructuredLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
}

// whoami is the default "by" of control requests.
func whoami() string {
	if u := os.Getenv("SHEPHERD_USER"); u != "" {
		return u
	}
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	return os.Getenv("USER")
}

// serviceArg returns the service named on the command line.
func serviceArg(args []string) (string, error) {
	if len(args) != 1 || strings.TrimSpace(args[0]) == "" {
		return "", withHint(ExitUsage, errors.New("name the service: one argument"), "e.g. shepherd status checkout --env production")
	}
	return args[0], nil
}
