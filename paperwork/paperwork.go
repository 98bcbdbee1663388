// Package paperwork writes the documents a release needs besides the release itself: the release plan a
// change review reads (timeline, success criteria, rollback triggers, risks, prerequisites, communication)
// and the runbook the on-call follows (the exact commands for this release, including rolling back by
// hand when Shepherd itself is down).
//
// Both are generated from the spec and from the worker's description of the providers the spec names
// (each provider describes itself: what it runs, what it needs, how to undo it by hand), never written by
// hand, so the paperwork cannot drift from what the workflow and the worker will do. Generation is pure and deterministic: the same spec (and start time) always gives the
// same bytes, which is what lets the documents be reviewed as diffs and tested as golden files.
package paperwork

import (
	"bytes"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/shepherd-release/shepherd/activities"
	"github.com/shepherd-release/shepherd/config"
	"github.com/shepherd-release/shepherd/providers"
	"github.com/shepherd-release/shepherd/spec"
)

// SpecFile is the name the documents use for the spec file in commands (`shepherd start -f release.yaml`):
// a document made from a parsed spec cannot know the file it came from.
const SpecFile = "release.yaml"

// RunIDPlaceholder stands for the run ID in release IDs (<workflow ID>/<run ID>), which exists only once
// the release has started; `temporal workflow describe` shows it.
const RunIDPlaceholder = "RUN_ID"

// ConfigFile is the name the documents use for the worker configuration file in commands.
const ConfigFile = "shepherd.yaml"

// Worker is what the documents know of the worker that will run the release: the descriptions of the
// providers its configuration declares, by section (config.SectionTargets, ...) and name; that is
// worker.Providers.Descriptions.
type Worker map[string]map[string]providers.Description

// of returns the description of a provider the spec names; prepare checked that it exists.
func (w Worker) of(section, name string) providers.Description {
	return w[section][name]
}

// sections maps the kinds of spec.Use to the configuration's sections.
var sections = map[string]string{
	spec.KindTarget: config.SectionTargets, spec.KindMetrics: config.SectionMetrics,
	spec.KindPrecheck: config.SectionPrechecks, spec.KindFlags: config.SectionFlags,
	spec.KindNotification: config.SectionNotifications, spec.KindRepository: config.SectionRepositories,
}

// prepare fills in the defaults and validates the spec exactly as `shepherd start` does, and checks that
// the worker has every provider the spec names as the preflight would, so a document is never written
// for a release that could not run.
func prepare(r spec.Release, w Worker) (spec.Release, error) {
	d := r.WithDefaults()
	if err := activities.ValidateSpec(d); err != nil {
		return spec.Release{}, err
	}
	var problems []spec.FieldError
	for _, u := range d.Uses() {
		section := sections[u.Kind]
		if _, ok := w[section][u.Name]; !ok {
			have := make(providers.Registry[providers.Description], len(w[section]))
			for n, v := range w[section] {
				have[n] = v
			}
			_, err := have.Lookup(u.Kind, u.Name)
			problems = append(problems, spec.FieldError{Path: u.Path, Message: err.Error()})
		}
	}
	if len(problems) > 0 {
		return spec.Release{}, &spec.ValidationError{Problems: problems}
	}
	return d, nil
}

// templateData is what the release's templates see when Shepherd runs them at the given stage and percent.
// The release ID carries RunIDPlaceholder, because documents are written before the release starts.
func templateData(d spec.Release, stage, percent int) spec.TemplateData {
	wf := spec.WorkflowID(d.Service, d.Environment)
	return spec.TemplateData{
		Service:         d.Service,
		Environment:     d.Environment,
		Version:         d.Version,
		PreviousVersion: d.PreviousVersion,
		Percent:         percent,
		Stage:           stage,
		ReleaseID:       wf + "/" + RunIDPlaceholder,
	}
}

// md accumulates a Markdown document.
type md struct{ b bytes.Buffer }

func (m *md) bytes() []byte { return m.b.Bytes() }

// heading writes a heading of the given level followed by a blank line.
func (m *md) heading(level int, text string) {
	fmt.Fprintf(&m.b, "%s %s\n\n", strings.Repeat("#", level), text)
}

// para writes a paragraph followed by a blank line.
func (m *md) para(format string, args ...any) {
	fmt.Fprintf(&m.b, format, args...)
	m.b.WriteString("\n\n")
}

// bullets writes a list followed by a blank line; nothing when items is empty.
func (m *md) bullets(items ...string) {
	if len(items) == 0 {
		return
	}
	for _, it := range items {
		m.b.WriteString("- " + it + "\n")
	}
	m.b.WriteString("\n")
}

// checklist writes a task list followed by a blank line.
func (m *md) checklist(items ...string) {
	for _, it := range items {
		m.b.WriteString("- [ ] " + it + "\n")
	}
	m.b.WriteString("\n")
}

// warn writes a quoted warning.
func (m *md) warn(format string, args ...any) {
	m.para("> **Warning:** "+format, args...)
}

// table writes a GitHub-flavoured Markdown table. Cells are written as given: build them with cell() or
// code(), which escape what would break the row.
func (m *md) table(header []string, rows [][]string) {
	m.b.WriteString("| " + strings.Join(header, " | ") + " |\n|")
	for range header {
		m.b.WriteString("---|")
	}
	m.b.WriteString("\n")
	for _, r := range rows {
		m.b.WriteString("| " + strings.Join(r, " | ") + " |\n")
	}
	m.b.WriteString("\n")
}

// block writes a fenced code block; the fence grows when the body holds one.
func (m *md) block(lang string, lines ...string) {
	body := strings.Join(lines, "\n")
	fence := "```"
	for strings.Contains(body, fence) {
		fence += "`"
	}
	fmt.Fprintf(&m.b, "%s%s\n%s\n%s\n\n", fence, lang, body, fence)
}

// cell makes text safe inside a table cell: no line breaks, and pipes escaped.
func cell(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	return strings.ReplaceAll(s, "|", `\|`)
}

// code is s as inline code, safe inside a table cell. The backtick fence is longer than any run of
// backticks in s, as CommonMark requires.
func code(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	longest, run := 0, 0
	for _, r := range s {
		if r == '`' {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	fence := strings.Repeat("`", longest+1)
	if strings.HasPrefix(s, "`") || strings.HasSuffix(s, "`") {
		s = " " + s + " "
	}
	return fence + strings.ReplaceAll(s, "|", `\|`) + fence
}

// shq quotes s for a POSIX shell, in single quotes.
func shq(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

var shellSafe = regexp.MustCompile(`^[A-Za-z0-9_./:@%+=,-]+$`)

// shword is s as one shell word: bare when that is safe, quoted otherwise.
func shword(s string) string {
	if shellSafe.MatchString(s) {
		return s
	}
	return shq(s)
}

// dur formats a duration the way people write it in specs: "15m", "1h30m", "4h", "20s".
func dur(d time.Duration) string {
	if d == 0 {
		return "0s"
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// num formats a threshold without trailing zeros.
func num(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// pct formats a traffic share.
func pct(p int) string { return strconv.Itoa(p) + "%" }

// plural is "1 check", "2 checks".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}

// orStable names the stable version in a sentence, or says which one it is when the spec does not.
func orStable(d spec.Release) string {
	if d.PreviousVersion == "" {
		return "the current stable version"
	}
	return code(d.PreviousVersion)
}

// stableNow names the stable version in a table cell.
func stableNow(d spec.Release) string {
	if d.PreviousVersion == "" {
		return "not named in the spec (`previousVersion`)"
	}
	return code(d.PreviousVersion)
}

// times is "once" or "N times in a row".
func times(n int) string {
	if n == 1 {
		return "once"
	}
	return strconv.Itoa(n) + " times in a row"
}

// joinAnd joins "a", "a and b", "a, b and c".
func joinAnd(items []string) string {
	switch len(items) {
	case 0:
		return ""
	case 1:
		return items[0]
	}
	return strings.Join(items[:len(items)-1], ", ") + " and " + items[len(items)-1]
}
