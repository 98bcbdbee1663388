package cli

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/shepherd-release/shepherd/config"
	"github.com/shepherd-release/shepherd/worker"
)

func init() { extraCommands = append(extraCommands, newConfigCmd) }

// configReport is `shepherd config -o json`: every provider the configuration declares, described.
type configReport struct {
	File      string                          `json:"file"`
	Providers map[string]map[string]described `json:"providers"`
	ReportDir string                          `json:"reportDir,omitempty"`
	Approvals bool                            `json:"approvals"`
	Worker    config.Tuning                   `json:"worker"`
}

type described struct {
	Type          string   `json:"type"`
	Summary       string   `json:"summary"`
	Prerequisites []string `json:"prerequisites,omitempty"`
}

func newConfigCmd(g *globals) *cobra.Command {
	var file string
	var noSecrets bool
	cmd := &cobra.Command{
		Use:   "config [--config FILE]",
		Short: "Check a worker configuration and list the providers it declares",
		Long: `Check the worker configuration exactly as a starting worker does — structure, every provider's
settings, and (unless --no-secrets) that every credential it references can be read here — and list the
providers release specs can name, each described as plans and runbooks describe it. Problems are
reported with their field paths; the exit code is 2 when there is one.`,
		Example: `  shepherd config --config examples/shepherd.yaml
  SHEPHERD_CONFIG=/etc/shepherd/shepherd.yaml shepherd config -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := loadProviders(file, "", worker.BuildOptions{CheckSecrets: !noSecrets})
			if err != nil {
				return err
			}
			rep := configReport{File: file, Providers: map[string]map[string]described{}, ReportDir: p.ReportDir,
				Approvals: p.Approvals != nil, Worker: p.Tuning}
			for section, descs := range p.Descriptions {
				rep.Providers[section] = map[string]described{}
				for name, d := range descs {
					rep.Providers[section][name] = described{Type: d.Type, Summary: d.Summary, Prerequisites: d.Prerequisites}
				}
			}
			if g.json() {
				return g.printJSON(rep)
			}
			fmt.Fprintf(g.stdout, "%s is valid.\n\n", file)
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SECTION\tNAME\tTYPE\tWHAT")
			for _, section := range []string{config.SectionTargets, config.SectionMetrics, config.SectionPrechecks,
				config.SectionFlags, config.SectionNotifications, config.SectionRepositories} {
				names := make([]string, 0, len(rep.Providers[section]))
				for n := range rep.Providers[section] {
					names = append(names, n)
				}
				slices.Sort(names)
				for _, n := range names {
					d := rep.Providers[section][n]
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", section, n, d.Type, strings.ReplaceAll(d.Summary, "`", ""))
				}
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			approvals := "none (approvals are accepted unsigned, recorded unverified)"
			if rep.Approvals {
				approvals = "configured"
			}
			fmt.Fprintf(g.stdout, "\nReports: %s\nApproval policy: %s\nWorker tuning: %s\n", orDefault(rep.ReportDir, "the worker's --report-dir"), approvals, rep.Worker)
			return nil
		},
	}
	cmd.Flags().StringVar(&file, "config", os.Getenv(config.EnvVar), "the worker configuration (default $"+config.EnvVar+")")
	cmd.Flags().BoolVar(&noSecrets, "no-secrets", false, "do not read the credentials (on a machine that does not hold them)")
	return cmd
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
