package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/shepherd-release/shepherd/activities"
	"github.com/shepherd-release/shepherd/record"
	"github.com/shepherd-release/shepherd/starter"
)

func renderStatus(w io.Writer, st record.Status, live *activities.WatchProgress, now time.Time) {
	fmt.Fprintf(w, "Release %s → %s in %s: %s\n", st.Service, st.Version, st.Environment, st.Phase)
	if st.Reason != "" {
		fmt.Fprintf(w, "Reason:   %s\n", st.Reason)
	}
	fmt.Fprintf(w, "Traffic:  %d%% on %s\n", st.TrafficPercent, st.Version)
	fmt.Fprintf(w, "Workflow: %s\n", st.ReleaseID)
	if line := progressLine(st, now); line != "" && !st.Phase.Terminal() {
		fmt.Fprintf(w, "Progress: %s\n", line)
	}
	if live != nil {
		fmt.Fprintf(w, "Live:     %s\n", live.Line(now))
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STAGE\tTRAFFIC\tSOAK\tAPPROVAL\tOUTCOME")
	for _, p := range st.Stages {
		approval := ""
		if p.Approval {
			approval = "required"
		}
		outcome := p.Outcome
		if outcome == "" && st.Stage != nil && st.Stage.Number == p.Number && !st.Phase.Terminal() {
			outcome = "← " + string(st.Phase)
		}
		fmt.Fprintf(tw, "%d\t%d%%\t%s\t%s\t%s\n", p.Number, p.Percent, p.Soak, approval, outcome)
	}
	tw.Flush()
	if len(st.Latest) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "CHECK\tVALUE\tVERDICT\tWHY")
		for _, m := range st.Latest {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", m.Check, value(m), m.Verdict, m.Reason)
		}
		tw.Flush()
	}
	if st.Phase == record.PhaseAwaitingApproval && st.Gate != "" {
		fmt.Fprint(w, strings.TrimSuffix(approvalNotice(st, now), "\n"))
	}
	// A release that ended ends with its outcome (its last decisions are bookkeeping: the archived report).
	if st.Phase.Terminal() {
		fmt.Fprintf(w, "\nOutcome: %s: %s (full log: shepherd history %s --env %s)\n", st.Phase, st.Reason, st.Service, st.Environment)
	} else if n := len(st.Decisions); n > 0 {
		fmt.Fprintf(w, "\nLast decision: %s (full log: shepherd history %s --env %s)\n", st.Decisions[n-1].Message, st.Service, st.Environment)
	}
}

// approvalNotice tells a person following a release that it waits at an approval gate: which, the exact
// command that passes it, and when the gate times out and what happens then.
func approvalNotice(st record.Status, now time.Time) string {
	var b strings.Builder
	cmd := fmt.Sprintf("shepherd approve %s --env %s", st.Service, st.Environment)
	if role, ok := strings.CutPrefix(st.Gate, "signoff:"); ok {
		fmt.Fprintf(&b, "\nThe release waits for a sign-off by role %s before anything changes. To sign off:\n  %s --role %s\n\n", role, cmd, role)
		return b.String()
	}
	if st.Stage == nil {
		fmt.Fprintf(&b, "\nThe release waits for approval. To approve:\n  %s\n\n", cmd)
		return b.String()
	}
	n := st.Stage.Number
	fmt.Fprintf(&b, "\nStage %d/%d (%d%%) waits for approval", n, st.Stage.Of, st.Stage.Percent)
	if st.Stage.ApprovalsNeeded > 1 {
		fmt.Fprintf(&b, " (%d more approvers)", st.Stage.ApprovalsNeeded)
	}
	fmt.Fprintf(&b, ". To approve:\n  %s --stage %d\n", cmd, n)
	var plan record.StagePlan
	if n >= 1 && n <= len(st.Stages) {
		plan = st.Stages[n-1]
	}
	if plan.ApprovalTimeout <= 0 {
		b.WriteString("The gate has no timeout: the release waits until it is approved or aborted.\n\n")
		return b.String()
	}
	then := "the release is rolled back"
	if plan.OnApprovalTimeout == "proceed" {
		then = "the release proceeds without it (onApprovalTimeout: proceed)"
	}
	if opened, ok := gateOpened(st, n); ok {
		at := opened.Add(plan.ApprovalTimeout)
		fmt.Fprintf(&b, "Without approval the gate times out in %s (at %s UTC); then %s.\n\n",
			max(at.Sub(now), 0).Round(time.Second), at.UTC().Format(time.TimeOnly), then)
	} else {
		fmt.Fprintf(&b, "Without approval the gate times out %s after it opened; then %s.\n\n", plan.ApprovalTimeout, then)
	}
	return b.String()
}

// gateOpened is when stage n's approval gate opened: the decision that moved the release to
// AwaitingApproval there (the workflow starts the gate's timer at the same instant).
func gateOpened(st record.Status, n int) (time.Time, bool) {
	for i := len(st.Decisions) - 1; i >= 0; i-- {
		d := st.Decisions[i]
		if d.Kind == record.KindTransition && d.Phase == record.PhaseAwaitingApproval && d.Stage == n {
			return d.Time, true
		}
	}
	return time.Time{}, false
}

func value(m record.Measurement) string {
	if m.Value == nil {
		return "no data"
	}
	return fmt.Sprintf("%.4g", *m.Value)
}

// progressLine is the one-line live view: stage, traffic, soak left, latest checks.
func progressLine(st record.Status, now time.Time) string {
	if st.Stage == nil {
		return string(st.Phase)
	}
	s := fmt.Sprintf("%s · stage %d/%d · traffic %d%%", st.Phase, st.Stage.Number, st.Stage.Of, st.TrafficPercent)
	switch {
	case now.IsZero():
	case !st.Stage.SoakEndsAt.IsZero():
		left := st.Stage.SoakEndsAt.Sub(now).Round(time.Second)
		s += fmt.Sprintf(" · soak ends in %s", max(left, 0))
	case st.Phase == record.PhasePaused:
		s += fmt.Sprintf(" · %s of soak left", st.Stage.SoakRemaining.Round(time.Second))
	}
	for _, m := range st.Latest {
		s += fmt.Sprintf(" · %s %s %s", m.Check, value(m), m.Verdict)
	}
	return s
}

func renderDecisions(w io.Writer, ds []record.Decision) {
	for _, d := range ds {
		who := ""
		if d.By != "" {
			who = " [" + d.By + "]"
		}
		stage := ""
		if d.Stage > 0 {
			stage = fmt.Sprintf(" stage %d", d.Stage)
		}
		fmt.Fprintf(w, "%s %-10s%s%s %s\n", d.Time.UTC().Format("15:04:05"), d.Kind, stage, who, d.Text())
		if d.Comment != "" {
			fmt.Fprintf(w, "           “%s”\n", d.Comment)
		}
	}
}

func renderList(w io.Writer, rows []starter.Summary) {
	if len(rows) == 0 {
		fmt.Fprintln(w, "No releases match. (shepherd list --all includes ended ones.)")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tENV\tVERSION\tPHASE\tTRAFFIC\tSTATUS\tSTARTED")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d%%\t%s\t%s\n", r.Service, r.Environment, r.Version, r.Phase,
			r.TrafficPercent, r.Status, r.StartedAt.UTC().Format(time.RFC3339))
	}
	tw.Flush()
}

func urlPathEscape(s string) string { return url.PathEscape(s) }

// statusJSON is a status as the CLI prints it with -o json: durations as Go duration strings ("15m0s"),
// as a spec writes them, instead of the nanoseconds of the query's wire format.
func statusJSON(st record.Status) (map[string]any, error) {
	b, err := json.Marshal(st)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	asString := func(obj any, keys ...string) {
		o, ok := obj.(map[string]any)
		if !ok {
			return
		}
		for _, k := range keys {
			if n, ok := o[k].(json.Number); ok {
				if ns, err := n.Int64(); err == nil {
					o[k] = time.Duration(ns).String()
				}
			}
		}
	}
	asString(m, "rollbackDuration", "trafficRestoredAfter")
	asString(m["stage"], "soakRemaining")
	if stages, ok := m["stages"].([]any); ok {
		for _, s := range stages {
			asString(s, "soak", "approvalTimeout")
		}
	}
	return m, nil
}
