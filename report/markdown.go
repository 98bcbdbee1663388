package report

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/shepherd-release/shepherd/record"
)

// renderMarkdown writes the human release report.
func renderMarkdown(res record.Result, spec json.RawMessage) []byte {
	var w mdWriter
	w.line("# Release report: %s %s → %s", res.Service, res.Version, res.Environment)
	w.blank()
	w.summary(res)
	w.plan(res)
	w.timeline(res, "## Timeline")
	w.stageEvidence(res)
	w.measurements(res)
	w.approvals(res)
	if len(spec) > 0 {
		w.line("## Spec")
		w.blank()
		w.fenced("json", string(spec))
	}
	return w.bytes()
}

// mdWriter accumulates Markdown; every section ends with one blank line.
type mdWriter struct{ b strings.Builder }

func (w *mdWriter) line(format string, args ...any) {
	if len(args) == 0 {
		w.b.WriteString(format)
	} else {
		fmt.Fprintf(&w.b, format, args...)
	}
	w.b.WriteByte('\n')
}

func (w *mdWriter) blank() { w.b.WriteByte('\n') }

func (w *mdWriter) bytes() []byte {
	return []byte(strings.TrimRight(w.b.String(), "\n") + "\n")
}

// table writes a Markdown table; cells are escaped, empty cells show "—".
func (w *mdWriter) table(header []string, align string, rows [][]string) {
	w.line("| %s |", strings.Join(header, " | "))
	seps := make([]string, len(header))
	for i := range seps {
		seps[i] = "---"
		if i < len(align) && align[i] == 'r' {
			seps[i] = "---:"
		}
	}
	w.line("| %s |", strings.Join(seps, " | "))
	for _, r := range rows {
		cells := make([]string, len(r))
		for i, c := range r {
			cells[i] = cell(c)
		}
		w.line("| %s |", strings.Join(cells, " | "))
	}
	w.blank()
}

// fenced writes a code block whose fence is longer than any backtick run inside.
func (w *mdWriter) fenced(lang, body string) {
	fence := "```"
	for strings.Contains(body, fence) {
		fence += "`"
	}
	w.line("%s%s", fence, lang)
	w.line("%s", strings.TrimRight(body, "\n"))
	w.line("%s", fence)
	w.blank()
}

func (w *mdWriter) summary(res record.Result) {
	w.line("## Summary")
	w.blank()
	outcome := string(res.Phase)
	if res.Reason != "" {
		outcome += " — " + oneLine(res.Reason)
	}
	w.line("- **Outcome:** %s", outcome)
	w.line("- **Release:** %s (workflow %s)", code(res.ReleaseID), code(res.WorkflowID))
	w.line("- **Service:** %s in %s", res.Service, res.Environment)
	version := res.Version
	if res.PreviousVersion != "" {
		version += " (previous: " + res.PreviousVersion + ")"
	}
	w.line("- **Version:** %s", version)
	w.line("- **Started:** %s", stamp(res.StartedAt))
	if res.EndedAt.IsZero() {
		w.line("- **Ended:** not yet (phase %s)", res.Phase)
	} else {
		w.line("- **Ended:** %s (duration %s)", stamp(res.EndedAt), human(res.EndedAt.Sub(res.StartedAt)))
	}
	if rb := rollbackLine(res); rb != "" {
		w.line("- **Rollback:** %s", rb)
	}
	passed := 0
	for _, s := range res.Stages {
		if s.Outcome == "passed" {
			passed++
		}
	}
	w.line("- **Stages passed:** %d of %d; traffic on the new version at the end: %d%%", passed, len(res.Stages), res.TrafficPercent)
	w.blank()
}

// rollbackLine says how long the rollback took, when there was one.
func rollbackLine(res record.Result) string {
	var parts []string
	if res.RollbackDuration > 0 {
		parts = append(parts, "took "+human(res.RollbackDuration))
	}
	if res.TrafficRestoredAfter > 0 {
		parts = append(parts, "traffic back on stable after "+human(res.TrafficRestoredAfter))
	}
	return strings.Join(parts, "; ")
}

func (w *mdWriter) plan(res record.Result) {
	w.line("## Plan")
	w.blank()
	if len(res.Stages) == 0 {
		w.line("_No stages recorded._")
		w.blank()
		return
	}
	rows := make([][]string, len(res.Stages))
	for i, s := range res.Stages {
		approval := ""
		if s.Approval {
			approval = "required"
			if by := approvedBy(res, s.Number); by != "" {
				approval = "by " + by
			}
		}
		rows[i] = []string{
			strconv.Itoa(s.Number), strconv.Itoa(s.Percent) + "%", human(s.Soak), approval,
			clock(s.StartedAt), clock(s.FinishedAt), stageOutcome(res, s),
		}
	}
	w.line("Times are UTC.")
	w.blank()
	w.table([]string{"Stage", "Traffic", "Soak", "Approval", "Started", "Finished", "Outcome"}, "rr", rows)
}

func stageOutcome(res record.Result, s record.StagePlan) string {
	switch {
	case s.Outcome != "":
		return s.Outcome
	case s.StartedAt.IsZero():
		return "not reached"
	case !res.Phase.Terminal():
		return "in progress"
	}
	return ""
}

// approvedBy is who approved stage n, from the decision log.
func approvedBy(res record.Result, n int) string {
	for _, d := range res.Decisions {
		if d.Kind == record.KindApproval && d.Stage == n && d.By != "" {
			return d.By
		}
	}
	return ""
}

// timeline writes the decision log; the post-mortem reuses it.
func (w *mdWriter) timeline(res record.Result, heading string) {
	w.line("%s", heading)
	w.blank()
	if len(res.Decisions) == 0 {
		w.line("_No decisions recorded._")
		w.blank()
		return
	}
	rows := make([][]string, len(res.Decisions))
	for i, d := range res.Decisions {
		what := d.Text()
		if d.Comment != "" {
			what += " — “" + d.Comment + "”"
		}
		if ev := evidence(d.Measurements); ev != "" {
			what += " (evidence: " + ev + ")"
		}
		rows[i] = []string{clock(d.Time), since(res.StartedAt, d.Time), string(d.Phase), stageNum(d.Stage),
			string(d.Kind), d.By, what}
	}
	w.line("Times are UTC; T+ counts from the start of the release.")
	w.blank()
	w.table([]string{"Time", "T+", "Phase", "Stage", "Kind", "By", "What happened"}, "-r-r", rows)
}

// stageEvidence is each watch of a stage: every measurement counted, each check's range, and a link to the
// check's query graphed over the stage's window.
func (w *mdWriter) stageEvidence(res record.Result) {
	var evs []*record.StageEvidence
	for _, d := range res.Decisions {
		if d.Evidence != nil {
			evs = append(evs, d.Evidence)
		}
	}
	if len(evs) == 0 {
		return
	}
	w.line("## Analysis by stage")
	w.blank()
	for _, ev := range evs {
		w.line("Stage %d, %s–%s UTC: %d rounds.", ev.Stage, clock(ev.From), clock(ev.To), ev.Rounds)
		w.blank()
		rows := make([][]string, len(ev.Checks))
		for i, c := range ev.Checks {
			graph := "—"
			if c.Graph != "" {
				graph = "[graph](" + c.Graph + ")"
			}
			rows[i] = []string{c.Check, fmt.Sprint(c.Measurements), fmt.Sprint(c.Passed), fmt.Sprint(c.Failed),
				fmt.Sprint(c.Inconclusive), number(c.Min), number(c.Max), number(c.Last), graph}
		}
		w.table([]string{"Check", "Measured", "Passed", "Failed", "Inconclusive", "Min", "Max", "Last", "Query over the stage"}, "-rrrrrrr-", rows)
		if ev.NotableDropped > 0 {
			w.line("%d more failed or inconclusive measurements are counted above but not listed below.", ev.NotableDropped)
			w.blank()
		}
	}
}

func number(v *float64) string {
	if v == nil {
		return "—"
	}
	return record.Exact(*v)
}

func (w *mdWriter) measurements(res record.Result) {
	w.line("## Measurements")
	w.blank()
	ms := allMeasurements(res)
	if len(ms) == 0 {
		w.line("_No measurements: analysis did not run._")
		w.blank()
		return
	}
	w.measurementTable(res, ms)
	queries := map[string]string{}
	var checks []string
	for _, m := range ms {
		if m.Query == "" {
			continue
		}
		if _, seen := queries[m.Check]; !seen {
			checks = append(checks, m.Check)
		}
		queries[m.Check] = m.Query // the last query that ran for the check
	}
	if len(checks) > 0 {
		w.line("Queries (as last run):")
		w.blank()
		for _, c := range checks {
			w.line("- %s: %s", code(c), code(queries[c]))
		}
		w.blank()
	}
}

func (w *mdWriter) measurementTable(res record.Result, ms []record.Measurement) {
	rows := make([][]string, len(ms))
	for i, m := range ms {
		reason := m.Reason
		if reason == "" {
			reason = m.Error
		}
		rows[i] = []string{clock(m.Time), stageNum(m.Stage), m.Check, valueCell(m), m.ThresholdText(), string(m.Verdict), reason}
	}
	w.table([]string{"Time", "Stage", "Check", "Value", "Threshold", "Verdict", "Reason"}, "-r-r", rows)
}

func (w *mdWriter) approvals(res record.Result) {
	w.line("## Approvals and interventions")
	w.blank()
	var rows [][]string
	for _, d := range res.Decisions {
		if d.Kind != record.KindApproval && d.Kind != record.KindRejection && d.Kind != record.KindControl {
			continue
		}
		rows = append(rows, []string{clock(d.Time), stageNum(d.Stage), string(d.Kind), d.By, d.Message, d.Comment})
	}
	if len(rows) == 0 {
		w.line("_None: nobody approved, paused, resumed or aborted this release._")
		w.blank()
		return
	}
	w.table([]string{"Time", "Stage", "Kind", "By", "What", "Comment"}, "-r", rows)
}

// allMeasurements gathers every measurement in the decision log, then the latest ones not logged, in
// time order (stable, so equal times keep log order).
func allMeasurements(res record.Result) []record.Measurement {
	type key struct {
		check string
		t     time.Time
		stage int
	}
	seen := map[key]bool{}
	var out []record.Measurement
	add := func(m record.Measurement) {
		k := key{m.Check, m.Time.UTC(), m.Stage}
		if seen[k] {
			return
		}
		seen[k] = true
		out = append(out, m)
	}
	for _, d := range res.Decisions {
		if d.Evidence != nil {
			for _, m := range d.Evidence.Notable {
				add(m)
			}
		}
		for _, m := range d.Measurements {
			add(m)
		}
	}
	for _, m := range res.Latest {
		add(m)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	return out
}

// valueCell is the value alone: the table's reason column already says why a value is missing.
func valueCell(m record.Measurement) string {
	if m.Value == nil {
		return "no value"
	}
	return record.Exact(*m.Value)
}

// evidence summarises measurements in one line: "error-rate = 0.052 (max 0.01): Fail".
func evidence(ms []record.Measurement) string {
	parts := make([]string, len(ms))
	for i, m := range ms {
		parts[i] = m.Summary()
	}
	return strings.Join(parts, "; ")
}

// human formats a duration the way people write it: "15m", "1h30m", "1.204s", "310ms".
func human(d time.Duration) string {
	switch {
	case d == 0:
		return "0s"
	case d < 0:
		return "-" + human(-d)
	case d < time.Minute:
		return d.Round(time.Millisecond).String()
	}
	d = d.Round(time.Second)
	h, m, s := d/time.Hour, (d%time.Hour)/time.Minute, (d%time.Minute)/time.Second
	var b strings.Builder
	if h > 0 {
		fmt.Fprintf(&b, "%dh", h)
	}
	if m > 0 {
		fmt.Fprintf(&b, "%dm", m)
	}
	if s > 0 {
		fmt.Fprintf(&b, "%ds", s)
	}
	return b.String()
}

// stamp is a full UTC time for the summary.
func stamp(t time.Time) string {
	if t.IsZero() {
		return "unknown"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// clock is a UTC time of day with milliseconds for tables; T+ columns carry the date-proof offset.
func clock(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("15:04:05.000")
}

func since(start, t time.Time) string {
	if start.IsZero() || t.IsZero() {
		return ""
	}
	return human(t.Sub(start))
}

func stageNum(n int) string {
	if n == 0 {
		return ""
	}
	return strconv.Itoa(n)
}

var htmlish = regexp.MustCompile(`<([A-Za-z/!?])`)

// cell escapes text for a Markdown table cell; empty cells show a dash so columns stay readable.
func cell(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return "—"
	}
	s = strings.ReplaceAll(s, "\\", "\\\\")
	s = strings.ReplaceAll(s, "|", "\\|")
	s = htmlish.ReplaceAllString(s, "&lt;$1") // keep "<b" or "</" from turning into HTML; "<= 5" stays readable
	s = strings.ReplaceAll(s, "\r\n", "\n")
	return strings.ReplaceAll(s, "\n", "<br>")
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// code formats an inline code span that survives backticks inside.
func code(s string) string {
	if s == "" {
		return "—"
	}
	fence := "`"
	for strings.Contains(s, fence) {
		fence += "`"
	}
	if strings.HasPrefix(s, "`") || strings.HasSuffix(s, "`") {
		s = " " + s + " "
	}
	return fence + s + fence
}
