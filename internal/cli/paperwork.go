package cli

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/shepherd-release/shepherd/config"
	"github.com/shepherd-release/shepherd/paperwork"
	"github.com/shepherd-release/shepherd/worker"
)

func init() { extraCommands = append(extraCommands, newPlanCmd, newRunbookCmd) }

// describeWorker builds the providers of the worker configuration at path without reading their
// credentials, for the documents to describe them.
func describeWorker(path string) (paperwork.Worker, error) {
	p, err := loadProviders(path, "", worker.BuildOptions{})
	if err != nil {
		return nil, err
	}
	return p.Descriptions, nil
}

func newPlanCmd(g *globals) *cobra.Command {
	var file, start, out, configFile string
	cmd := &cobra.Command{
		Use:   "plan -f release.yaml [--start RFC3339] [--out FILE]",
		Short: "Write the release plan for a change review (Markdown)",
		Long: `Write the release plan of a spec as Markdown: a summary; a timeline with each stage's earliest start
and end (soaks add up; approval gates add "+ approval wait"); the success criteria (checks, thresholds,
baseline margins, analysis interval); the rollback triggers and the exact abort commands; a risk matrix
(likelihood × impact of each failure mode, graded from the spec, with what Shepherd does about it);
prerequisites and pre-release checks; and the communication plan (which events reach which channel).

The spec is validated exactly as "shepherd start" validates it, and the providers it names are described
by the worker configuration (--config): what the target runs, what each provider needs, how to undo a
release by hand. Nothing is contacted; nothing changes. The plan is generated, not written: regenerate it after changing the spec. The same spec and --start give
the same bytes, so plans can be reviewed as diffs.`,
		Example: `  shepherd plan -f examples/release.yaml --config examples/shepherd.yaml
  shepherd plan -f release.yaml --start 2026-03-02T09:00:00+01:00 --out CHG-1234-plan.md
  # what a spec change changes, with the start pinned so only the spec differs:
  diff old-plan.md <(shepherd plan -f release.yaml --start 2026-03-02T09:00:00Z)`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			d, err := readSpec(file)
			if err != nil {
				return err
			}
			at := time.Now().Truncate(time.Minute)
			if start != "" {
				at, err = time.Parse(time.RFC3339, start)
				if err != nil {
					return withHint(ExitUsage, fmt.Errorf("--start %q is not an RFC 3339 time", start),
						"e.g. --start 2026-03-02T09:00:00Z or --start 2026-03-02T10:00:00+01:00")
				}
			}
			w, err := describeWorker(configFile)
			if err != nil {
				return err
			}
			doc, err := paperwork.Plan(d, w, at)
			if err != nil {
				return withHint(ExitUsage, fmt.Errorf("%s: %w", file, err), "docs/spec.md lists every key")
			}
			return writeDoc(g, out, "release plan", doc)
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "release spec (YAML or JSON; - for stdin)")
	cmd.Flags().StringVar(&configFile, "config", os.Getenv(config.EnvVar), "the worker configuration whose providers the spec names (default $"+config.EnvVar+")")
	cmd.Flags().StringVar(&start, "start", "", "planned start as an RFC 3339 time (default: now); times are shown in its zone")
	cmd.Flags().StringVar(&out, "out", "", "write the plan to this file instead of standard output")
	return cmd
}

func newRunbookCmd(g *globals) *cobra.Command {
	var file, out, configFile string
	cmd := &cobra.Command{
		Use:   "runbook -f release.yaml [--out FILE]",
		Short: "Write the deployment and rollback runbook of a release (Markdown)",
		Long: `Write the runbook of a spec as Markdown, for the person on call during the release: the exact
Shepherd CLI and Temporal CLI commands to start, watch, sign off, approve each gated stage, pause and abort,
with this release's workflow ID, service and environment filled in; how to roll it back by hand when
Shepherd itself is down, with the target's own steps as the worker configuration (--config) describes them
(an exec target's traffic and rollback commands rendered with their SHEPHERD_* environment, the fleet
controller's API calls); diagnosis of the common failures (stuck activity, missing search attributes,
metrics source unreachable, worker down, rollback failed);
and when to escalate to whom.

The spec is validated exactly as "shepherd start" validates it. Nothing is contacted; nothing changes.`,
		Example: `  shepherd runbook -f examples/release.yaml --config examples/shepherd.yaml
  shepherd runbook -f release.yaml --out RUNBOOK-checkout-v2.md
  shepherd plan -f release.yaml --out plan.md && shepherd runbook -f release.yaml --out runbook.md`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			d, err := readSpec(file)
			if err != nil {
				return err
			}
			w, err := describeWorker(configFile)
			if err != nil {
				return err
			}
			doc, err := paperwork.Runbook(d, w)
			if err != nil {
				return withHint(ExitUsage, fmt.Errorf("%s: %w", file, err), "docs/spec.md lists every key")
			}
			return writeDoc(g, out, "runbook", doc)
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "release spec (YAML or JSON; - for stdin)")
	cmd.Flags().StringVar(&configFile, "config", os.Getenv(config.EnvVar), "the worker configuration whose providers the spec names (default $"+config.EnvVar+")")
	cmd.Flags().StringVar(&out, "out", "", "write the runbook to this file instead of standard output")
	return cmd
}

// writeDoc writes a generated document to path, or to standard output when path is "" or "-".
func writeDoc(g *globals, path, what string, doc []byte) error {
	if path == "" || path == "-" {
		_, err := g.stdout.Write(doc)
		return err
	}
	if err := os.WriteFile(path, doc, 0o644); err != nil {
		return fmt.Errorf("writing the %s: %w", what, err)
	}
	fmt.Fprintf(g.stdout, "Wrote the %s to %s\n", what, path)
	return nil
}
