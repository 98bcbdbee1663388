package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/shepherd-release/shepherd/activities"
	"github.com/shepherd-release/shepherd/config"
	"github.com/shepherd-release/shepherd/providers"
	"github.com/shepherd-release/shepherd/record"
	"github.com/shepherd-release/shepherd/spec"
	"github.com/shepherd-release/shepherd/worker"
)

// ExitInconclusive is the exit code of `shepherd analyze` when no check failed but at least one had no
// usable value (no data, NaN, Prometheus unreachable): a release would pause there for a human.
const ExitInconclusive = 6

func init() { extraCommands = append(extraCommands, newAnalyzeCmd) }

// AnalyzeReport is the result of `shepherd analyze`: one measurement of every check, judged as the
// release workflow judges it.
type AnalyzeReport struct {
	Service         string `json:"service"`
	Environment     string `json:"environment"`
	Version         string `json:"version"`
	PreviousVersion string `json:"previousVersion,omitempty"`
	Percent         int    `json:"percent"`
	// Source names the metrics source the checks ran against.
	Source string    `json:"source"`
	Time   time.Time `json:"time"`
	// Verdict is Fail when any check failed, else Inconclusive when any had no usable value, else Pass.
	Verdict record.Verdict `json:"verdict"`
	// Checks holds one measurement per check, in spec order, with its verdict and reason.
	Checks []record.Measurement `json:"checks"`
}

func newAnalyzeCmd(g *globals) *cobra.Command {
	var file, version, previous, configFile string
	var percent, stage int
	cmd := &cobra.Command{
		Use:   "analyze -f release.yaml [--version X] [--percent N]",
		Short: "Run every SLO check of a spec once against the live metrics source, now",
		Long: `Measure every analysis check of the spec once, with the same query rendering, the same
measurement (canary and baseline queries) and the same verdict rules as a running release:
no usable value is Inconclusive, a value above max or below min is Fail, and so is a value above the
baseline (the stable version) by more than baseline.maxRelativeIncrease.
Use it to try a spec's checks before releasing, or to see what a release is judging.

--version (default: the spec's version) and --percent / --stage fill the templates' .Version,
.Percent and .Stage. The metrics source is the one the spec names, from the worker configuration
(--config, or $SHEPHERD_CONFIG), with its credentials. Nothing is deployed and Temporal is not contacted.

Exit codes: 0 every check passed, 3 at least one check failed (a release would roll back),
6 no check failed but at least one was inconclusive (a release would pause), 2 bad usage or spec.`,
		Example: `  shepherd analyze -f examples/release.yaml --config examples/shepherd.yaml
  SHEPHERD_CONFIG=examples/shepherd.yaml shepherd analyze -f examples/demo-good.yaml --version v2 --percent 10
  shepherd analyze -f release.yaml -o json | jq '.checks[] | {check, value, verdict}'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			d, err := readSpec(file)
			if err != nil {
				return err
			}
			if version != "" {
				d.Version = version
			}
			if cmd.Flags().Changed("previous-version") {
				d.PreviousVersion = previous
			}
			if err := activities.ValidateSpec(d); err != nil {
				return withHint(ExitUsage, err, "check --version and --previous-version")
			}
			if d.Analysis.Disabled {
				return withHint(ExitUsage, errors.New(file+": analysis is disabled; there are no checks to run"),
					"remove analysis.disabled and add analysis.checks (or rely on the default checks)")
			}
			if percent < 0 || percent > 100 {
				return withHint(ExitUsage, fmt.Errorf("--percent %d", percent), "give a traffic percentage in [0, 100]")
			}
			p, err := loadProviders(configFile, "", worker.BuildOptions{CheckSecrets: true})
			if err != nil {
				return err
			}
			acts := p.Activities()
			if err := acts.CheckUses(d.Uses()); err != nil {
				return withHint(ExitUsage, err, "name providers that "+configFile+" declares")
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), analyzeTimeout(d, p.Descriptions))
			defer cancel()
			rep, err := Analyze(ctx, d, acts, percent, stage)
			if err != nil {
				return err
			}
			if g.json() {
				if err := g.printJSON(rep); err != nil {
					return err
				}
			} else {
				renderAnalyze(g.stdout, rep)
			}
			return analyzeOutcome(rep)
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "release spec (YAML or JSON; - for stdin)")
	cmd.Flags().StringVar(&version, "version", "", "version to measure (default: the spec's version)")
	cmd.Flags().StringVar(&previous, "previous-version", "", "stable version for baseline comparisons (default: the spec's previousVersion)")
	cmd.Flags().StringVar(&configFile, "config", os.Getenv(config.EnvVar), "the worker configuration whose metrics source the spec names (default $"+config.EnvVar+")")
	cmd.Flags().IntVar(&percent, "percent", 0, "traffic percentage the templates see as .Percent")
	cmd.Flags().IntVar(&stage, "stage", 0, "stage number the templates see as .Stage")
	return cmd
}

// analyzeTimeout bounds a whole analyze run: every check's canary and baseline queries, each within the
// provider's own timeout and retries.
func analyzeTimeout(d spec.Release, described map[string]map[string]providers.Description) time.Duration {
	per := 10 * time.Second
	if t := described[config.SectionMetrics][d.Analysis.Source].StepTimeout; t > 0 {
		per = t
	}
	return time.Duration(2*len(d.Analysis.Checks))*per + 10*time.Second
}

// Analyze measures every check of d (a spec with defaults) once against its metrics source, through the
// same activity code (and the same providers) a release uses, and judges each measurement with the
// release's own rules (record.Assess).
func Analyze(ctx context.Context, d spec.Release, a *activities.Activities, percent, stage int) (AnalyzeReport, error) {
	rep := AnalyzeReport{
		Service: d.Service, Environment: d.Environment, Version: d.Version, PreviousVersion: d.PreviousVersion,
		Percent: percent, Source: d.Analysis.Source, Time: time.Now().UTC(),
	}
	in := activities.MeasureInput{
		ReleaseID: "analyze",
		Stage:     stage,
		Source:    d.Analysis.Source,
		Checks:    d.Analysis.Checks,
		Data: spec.TemplateData{
			Service: d.Service, Environment: d.Environment, Version: d.Version, PreviousVersion: d.PreviousVersion,
			Percent: percent, Stage: stage, ReleaseID: "analyze",
		},
	}
	res, err := a.Measure(ctx, in)
	if err != nil {
		return rep, fmt.Errorf("measuring the checks: %w", err)
	}
	rep.Checks = res.Measurements
	rep.Verdict = record.Pass
	for i := range rep.Checks {
		m := &rep.Checks[i]
		m.Verdict, m.Reason = record.Assess(*m)
		switch {
		case m.Verdict == record.Fail:
			rep.Verdict = record.Fail
		case m.Verdict == record.Inconclusive && rep.Verdict != record.Fail:
			rep.Verdict = record.Inconclusive
		}
	}
	return rep, nil
}

// thresholdOf describes a measurement's thresholds as the status views do.
func thresholdOf(m record.Measurement) string {
	var parts []string
	if m.Max != nil {
		parts = append(parts, "<= "+record.Num(*m.Max))
	}
	if m.Min != nil {
		parts = append(parts, ">= "+record.Num(*m.Min))
	}
	if m.BaselineMaxRelativeIncrease > 0 {
		b := "baseline"
		if m.Baseline != nil {
			b += " " + record.Num(*m.Baseline)
		}
		parts = append(parts, fmt.Sprintf("<= %s +%s%%", b, record.Num(m.BaselineMaxRelativeIncrease*100)))
	}
	return strings.Join(parts, ", ")
}

func renderAnalyze(w io.Writer, rep AnalyzeReport) {
	fmt.Fprintf(w, "Checks of %s %s in %s at %d%% against %s: %s\n\n", rep.Service, rep.Version, rep.Environment,
		rep.Percent, rep.Source, rep.Verdict)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CHECK\tVALUE\tTHRESHOLD\tVERDICT\tWHY")
	for _, m := range rep.Checks {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", m.Check, value(m), thresholdOf(m), m.Verdict, m.Reason)
	}
	tw.Flush()
	fmt.Fprintln(w, "\nQueries:")
	for _, m := range rep.Checks {
		q := m.Query
		if q == "" {
			q = "(not rendered: " + m.Error + ")"
		}
		fmt.Fprintf(w, "  %s: %s\n", m.Check, strings.Join(strings.Fields(q), " "))
	}
}

// analyzeOutcome maps the overall verdict to the exit code.
func analyzeOutcome(rep AnalyzeReport) error {
	var failed, undecided []string
	for _, m := range rep.Checks {
		switch m.Verdict {
		case record.Fail:
			failed = append(failed, m.Check)
		case record.Inconclusive:
			undecided = append(undecided, m.Check)
		}
	}
	switch {
	case len(failed) > 0:
		return withHint(ExitRolledBack, fmt.Errorf("%d of %d checks failed: %s", len(failed), len(rep.Checks),
			strings.Join(failed, ", ")), "a release measuring this would roll back")
	case len(undecided) > 0:
		return withHint(ExitInconclusive, fmt.Errorf("%d of %d checks inconclusive: %s", len(undecided), len(rep.Checks),
			strings.Join(undecided, ", ")), "is Prometheus reachable, and is the version receiving traffic and being scraped?")
	}
	return nil
}
