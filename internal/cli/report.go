package cli

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/shepherd-release/shepherd/report"
)

func init() { extraCommands = append(extraCommands, newReportCmd) }

func newReportCmd(g *globals) *cobra.Command {
	var dir string
	var postMortem bool
	cmd := &cobra.Command{
		Use:   "report RELEASE",
		Short: "Print the archived report of a release (Markdown, or -o json)",
		Long: `Print the report a worker archived when the release ended: the spec, the timeline, every
measurement and decision, the outcome and the rollback duration. RELEASE is a release ID or a prefix of
one, or a workflow ID (release:SERVICE:ENV) for its latest release. Reads the worker's --report-dir.`,
		Example: `  shepherd report release:checkout:production
  shepherd report release:checkout:production/0195 -o json
  shepherd report release:checkout:production --post-mortem`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := report.Find(dir, args[0])
			if errors.Is(err, report.ErrNotFound) || errors.Is(err, report.ErrAmbiguous) {
				return withHint(ExitError, err, "shepherd list --all shows releases; reports live in "+dir)
			}
			if err != nil {
				return err
			}
			path := e.MarkdownPath
			switch {
			case g.json():
				path = e.JSONPath
			case postMortem:
				if e.PostMortemPath == "" {
					return withHint(ExitError, fmt.Errorf("release %s needed no post-mortem", e.ReleaseID), "")
				}
				path = e.PostMortemPath
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			_, err = g.stdout.Write(b)
			return err
		},
	}
	cmd.Flags().StringVar(&dir, "report-dir", defaultReportDir(), "the workers' report directory")
	cmd.Flags().BoolVar(&postMortem, "post-mortem", false, "print the post-mortem record instead")
	return cmd
}
