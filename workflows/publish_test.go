package workflows

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/shepherd-release/shepherd/record"
)

// The web UI shows the top of the current details: the story (last decision, the approve command at a
// gate) comes before the tables, and every list or table starts after a blank line so Markdown renders it.
func TestDetailsMarkdownTellsTheStoryFirst(t *testing.T) {
	r := &release{status: record.Status{
		Service: "checkout", Environment: "staging", Version: "v2", Phase: record.PhaseAwaitingApproval,
		TrafficPercent: 10, Gate: "stage:2",
		Stage:     &record.StageStatus{Number: 2, Of: 2, Percent: 100, ApprovalRequired: true},
		Stages:    []record.StagePlan{{Number: 1, Percent: 10, Soak: 5 * time.Second, Outcome: "passed"}, {Number: 2, Percent: 100, Soak: 14968897892, Approval: true}},
		Decisions: []record.Decision{{Message: "stage 1/2 (10%) passed"}, {Message: "stage 2/2 (100%) waits for approval"}},
	}}
	md := r.detailsMarkdown()
	want := "**checkout** staging → v2 · phase **AwaitingApproval** · traffic on v2: **10%**\n\n" +
		"Last decision: stage 2/2 (100%) waits for approval\n\n" +
		"Approve: `shepherd approve checkout --env staging --stage 2` (or signal `approve` with `{\"by\": \"you\"}`)\n\n" +
		"| Stage | Traffic | Soak | Approval | Status |\n"
	assert.True(t, strings.HasPrefix(md, want), md)
	assert.Contains(t, md, "| 2 | 100% | 15s | required | AwaitingApproval |")

	r.status.Phase, r.status.Reason, r.status.Gate = record.PhaseRolledBack, "aborted by bob", ""
	r.status.Decisions = append(r.status.Decisions, record.Decision{Message: "report archived: /x.md"})
	md = r.detailsMarkdown()
	assert.True(t, strings.HasPrefix(md, "**checkout** staging → v2 · phase **RolledBack** · traffic on v2: **10%**\n\nReason: aborted by bob\n\n| Stage"), md)
	assert.NotContains(t, md, "x.md")
}
