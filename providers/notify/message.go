package notify

import (
	"errors"
	"fmt"
	"strings"
	"text/template"

	"github.com/shepherd-release/shepherd/internal/safetmpl"
	"github.com/shepherd-release/shepherd/record"
)

// MaxMessageLen caps a rendered message (in bytes); chat services reject or cut much longer ones.
const MaxMessageLen = 30000

// footer ends every default message with the IDs an SRE pastes into `shepherd status` or the Temporal UI.
const footer = "\nRelease {{.ReleaseID}} · workflow {{.WorkflowID}}"

// what names the release in every default message: "checkout 1.4.0 in production".
const what = "{{.Service}} {{.Version}} in {{.Environment}}"

// at says where in the plan the release was, when it had reached a stage.
const at = "{{if .Stage}} at stage {{.Stage}} ({{.Percent}}% of traffic){{end}}"

// DefaultTemplates are the messages sent when Config.Templates does not override a kind. They are Go
// text/templates over Event, and may use the functions "evidence" (one bullet line per measurement),
// "measurement", "value" and "threshold".
var DefaultTemplates = map[EventKind]string{
	KindStarted: "🚀 Release started: {{.Service}} {{.Version}} to {{.Environment}}" +
		"{{with .PreviousVersion}} (stable: {{.}}){{end}}." +
		"{{with .Message}}\n{{.}}{{end}}" + footer,
	KindStageEntered: "➡️ " + what + ": stage {{.Stage}}, {{.Percent}}% of traffic on the new version." +
		"{{with .Message}}\n{{.}}{{end}}" + footer,
	KindApprovalNeeded: "✋ Approval needed: " + what + " is waiting before stage {{.Stage}} ({{.Percent}}% of traffic)." +
		"{{with .Message}}\n{{.}}{{end}}" +
		"{{with .ApproveCommand}}\nApprove: `{{.}}`{{end}}" +
		"{{with .AbortCommand}}\nAbort: `{{.}}`{{end}}" + footer,
	KindAnalysisFailed: "⚠️ Analysis failed: " + what + at + "." +
		"{{with .Message}}\nCause: {{.}}{{end}}" +
		"{{with .Evidence}}\nEvidence:\n{{evidence .}}{{end}}" + footer,
	KindRolledBack: "⏪ Rolled back: " + what + at +
		"; traffic is back on {{with .PreviousVersion}}{{.}}{{else}}the stable version{{end}}." +
		"{{with .Message}}\nCause: {{.}}{{end}}" +
		"{{with .Evidence}}\nEvidence:\n{{evidence .}}{{end}}" + footer,
	KindSucceeded: "✅ Released: {{.Service}} {{.Version}} serves 100% of {{.Environment}}" +
		"{{with .PreviousVersion}}, replacing {{.}}{{end}}." +
		"{{with .Message}}\n{{.}}{{end}}" + footer,
	KindRollbackFailed: "🚨 Rollback FAILED: " + what + at + ". Manual intervention required: " +
		"the new version may still be serving traffic." +
		"{{with .Message}}\nError: {{.}}{{end}}" +
		"{{with .Evidence}}\nEvidence:\n{{evidence .}}{{end}}" + footer,
	KindRollbackStuck: "🚨 Rollback STUCK: " + what + at + ". A rollback step keeps failing; nothing after it runs " +
		"until a person sends retry (after fixing the cause) or acknowledge (after finishing it by hand)." +
		"{{with .Message}}\nError: {{.}}{{end}}" + footer,
	KindPostMortem: "📝 Post-mortem needed: " + what + "." +
		"{{with .Message}}\n{{.}}{{end}}" + footer,
}

var funcs = template.FuncMap{
	"evidence":    Evidence,
	"measurement": FormatMeasurement,
	"value":       record.Measurement.ValueText,
	"threshold":   record.Measurement.ThresholdText,
}

func parseTemplate(k EventKind, text string) (*safetmpl.Template, error) {
	return safetmpl.Parse(string(k), text, funcs)
}

// Message renders the text sent for event: the config's template for its kind, else the default. For
// Slack, the event's values are escaped (&, <, >) so they cannot turn into mentions or links.
func Message(cfg Config, event Event) (string, error) {
	text, ok := cfg.Templates[event.Kind]
	if !ok {
		text, ok = DefaultTemplates[event.Kind]
	}
	if !ok {
		return "", fmt.Errorf("no template for event kind %q", event.Kind)
	}
	t, err := parseTemplate(event.Kind, text)
	if err != nil {
		return "", fmt.Errorf("template for %s: %v", event.Kind, err)
	}
	data := event
	if cfg.Type == TypeSlack {
		data = escapeEvent(event)
	}
	rendered, err := t.Execute(data)
	if err != nil && !errors.Is(err, safetmpl.ErrTooLarge) { // too large is cut below
		return "", fmt.Errorf("template for %s: %v", event.Kind, err)
	}
	out := strings.TrimSpace(rendered)
	if len(out) > MaxMessageLen {
		cut := MaxMessageLen
		for cut > 0 && !utf8Start(out[cut]) {
			cut--
		}
		out = out[:cut] + "\n… (truncated; see the release report)"
	}
	return out, nil
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }

// Evidence formats measurements as bullet lines, one per measurement.
func Evidence(ms []record.Measurement) string {
	lines := make([]string, len(ms))
	for i, m := range ms {
		lines[i] = "• " + FormatMeasurement(m)
	}
	return strings.Join(lines, "\n")
}

// FormatMeasurement says check, value, threshold and verdict in one line:
// "error-rate = 0.052 (max 0.01): Fail".
func FormatMeasurement(m record.Measurement) string { return m.Summary() }

var slackEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

// escapeEvent returns a copy of e whose text is safe in Slack mrkdwn.
func escapeEvent(e Event) Event {
	esc := slackEscaper.Replace
	e.ReleaseID, e.WorkflowID = esc(e.ReleaseID), esc(e.WorkflowID)
	e.Service, e.Environment = esc(e.Service), esc(e.Environment)
	e.Version, e.PreviousVersion = esc(e.Version), esc(e.PreviousVersion)
	e.Message = esc(e.Message)
	e.ApproveCommand, e.AbortCommand = esc(e.ApproveCommand), esc(e.AbortCommand)
	if e.Evidence != nil {
		ev := make([]record.Measurement, len(e.Evidence))
		for i, m := range e.Evidence {
			m.Check, m.Query, m.Error, m.Reason = esc(m.Check), esc(m.Query), esc(m.Error), esc(m.Reason)
			ev[i] = m
		}
		e.Evidence = ev
	}
	return e
}
