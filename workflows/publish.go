package workflows

import (
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/shepherd-release/shepherd/record"
)

// publish tells the Temporal UI and visibility where the release is: search attributes (upserted only
// when they change, to keep history small) and the current-details Markdown.
func (r *release) publish(ctx workflow.Context) {
	var updates []temporal.SearchAttributeUpdate
	first := !r.published
	r.published = true
	if first {
		updates = append(updates,
			AttrService.ValueSet(r.spec.Service),
			AttrEnvironment.ValueSet(r.spec.Environment),
			AttrVersion.ValueSet(r.spec.Version))
	}
	if first || r.publishedPhase != r.status.Phase {
		updates = append(updates, AttrPhase.ValueSet(string(r.status.Phase)))
		r.publishedPhase = r.status.Phase
	}
	if first || r.publishedTraffic != r.status.TrafficPercent {
		updates = append(updates, AttrTrafficPercent.ValueSet(int64(r.status.TrafficPercent)))
		r.publishedTraffic = r.status.TrafficPercent
	}
	if len(updates) > 0 {
		if err := workflow.UpsertTypedSearchAttributes(ctx, updates...); err != nil {
			r.logger.Warn("Search attribute upsert failed", "error", err)
		}
	}
	r.publishDetails(ctx)
}

// publishDetails sets the UI's current details: a Markdown summary and stage table.
func (r *release) publishDetails(ctx workflow.Context) {
	workflow.SetCurrentDetails(ctx, r.detailsMarkdown())
}

func (r *release) detailsMarkdown() string {
	var b strings.Builder
	s := r.status
	fmt.Fprintf(&b, "**%s** %s → %s · phase **%s** · traffic on %s: **%d%%**\n\n",
		s.Service, s.Environment, s.Version, s.Phase, s.Version, s.TrafficPercent)
	// The story first: why it ended, or what happened last and what the release waits for. The UI shows
	// the top of the details; the tables follow.
	if s.Reason != "" {
		fmt.Fprintf(&b, "Reason: %s\n\n", s.Reason)
	}
	if n := len(s.Decisions); n > 0 && !s.Phase.Terminal() {
		fmt.Fprintf(&b, "Last decision: %s\n\n", s.Decisions[n-1].Message)
	}
	if r.watch && !r.spec.Analysis.Disabled && s.Phase == record.PhaseProgressing && s.Stage != nil && !s.Stage.SoakEndsAt.IsZero() {
		fmt.Fprintf(&b, "Live measurements: **Pending Activities** → `%s` (its heartbeat details), or `shepherd status %s --env %s`\n\n",
			ActivityWatchStage, s.Service, s.Environment)
	}
	if s.Phase == record.PhaseAwaitingApproval && s.Stage != nil && s.Gate != "" {
		fmt.Fprintf(&b, "Approve: `shepherd approve %s --env %s --stage %d` (or signal `approve` with `{\"by\": \"you\"}`)\n\n",
			s.Service, s.Environment, s.Stage.Number)
	}
	b.WriteString("| Stage | Traffic | Soak | Approval | Status |\n|---|---|---|---|---|\n")
	for _, p := range s.Stages {
		state := p.Outcome
		if state == "" && s.Stage != nil && s.Stage.Number == p.Number && !s.Phase.Terminal() {
			state = string(s.Phase)
			if !s.Stage.SoakEndsAt.IsZero() {
				state += ", soak ends " + s.Stage.SoakEndsAt.UTC().Format(time.TimeOnly) + " UTC"
			} else if s.Stage.SoakRemaining > 0 && s.Phase == record.PhasePaused {
				state += fmt.Sprintf(", %s of soak left", human(s.Stage.SoakRemaining))
			}
		}
		approval := ""
		if p.Approval {
			approval = "required"
			if s.Stage != nil && s.Stage.Number == p.Number && s.Stage.Approved {
				approval = "by " + s.Stage.ApprovedBy
			}
		}
		fmt.Fprintf(&b, "| %d | %d%% | %s | %s | %s |\n", p.Number, p.Percent, human(p.Soak), approval, state)
	}
	if len(s.Latest) > 0 {
		b.WriteString("\n| Check | Value | Threshold | Verdict |\n|---|---|---|---|\n")
		for _, m := range s.Latest {
			fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", m.Check, valueText(m), m.ThresholdText(), m.Verdict)
		}
	}
	return b.String()
}

func valueText(m record.Measurement) string {
	if m.Value == nil {
		return "no data"
	}
	return record.Num(*m.Value)
}
