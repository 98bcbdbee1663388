package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shepherd-release/shepherd/record"
	"github.com/shepherd-release/shepherd/spec"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./report/ -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test ./report/ -update to accept):\n--- got ---\n%s", path, got)
	}
}

func f(v float64) *float64 { return &v }

var t0 = time.Date(2026, 3, 14, 9, 30, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

const (
	errQuery = `sum(rate(http_requests_total{service="checkout",version="1.4.0",code=~"5.."}[1m])) / sum(rate(http_requests_total{service="checkout",version="1.4.0"}[1m]))`
	latQuery = `histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{service="checkout",version="1.4.0"}[1m])))`
)

func plan(percents []int, approval map[int]bool) []record.StagePlan {
	out := make([]record.StagePlan, len(percents))
	for i, p := range percents {
		out[i] = record.StagePlan{Number: i + 1, Percent: p, Soak: 15 * time.Minute, Approval: approval[i+1]}
	}
	return out
}

// rolledBack is a release that was paused and resumed by a person, then failed analysis at stage 2 and
// rolled back.
func rolledBack() record.Result {
	stage1Pass := []record.Measurement{
		{Check: "error-rate", Time: at(15*time.Minute + 25*time.Second), Stage: 1, Query: errQuery, Value: f(0.002), Max: f(0.01), Verdict: record.Pass, Reason: "0.002 <= max 0.01"},
		{Check: "p99-latency", Time: at(15*time.Minute + 25*time.Second), Stage: 1, Query: latQuery, Value: f(0.21), Max: f(0.5), Verdict: record.Pass, Reason: "0.21 <= max 0.5"},
	}
	failing := []record.Measurement{
		{Check: "error-rate", Time: at(28*time.Minute + 10*time.Second), Stage: 2, Query: errQuery, Value: f(0.052), Max: f(0.01), Verdict: record.Fail, Reason: "0.052 > max 0.01"},
		{Check: "p99-latency", Time: at(28*time.Minute + 10*time.Second), Stage: 2, Query: latQuery, Max: f(0.5), Error: "prometheus: dial tcp 127.0.0.1:9090: connection refused", Verdict: record.Inconclusive},
	}
	stages := plan([]int{1, 5, 25, 50, 100}, map[int]bool{3: true})
	stages[0].StartedAt, stages[0].FinishedAt, stages[0].Outcome = at(25*time.Second), at(15*time.Minute+25*time.Second), "passed"
	stages[1].StartedAt, stages[1].FinishedAt, stages[1].Outcome = at(15*time.Minute+26*time.Second), at(28*time.Minute+11*time.Second+460*time.Millisecond), "rolled back"
	return record.Result{
		ReleaseID: "01JQ7ZK3M8W4-checkout", WorkflowID: "release:checkout:production",
		Service: "checkout", Environment: "production", Version: "1.4.0", PreviousVersion: "1.3.2",
		Phase: record.PhaseRolledBack, Reason: "check error-rate failed at stage 2: 0.052 > max 0.01",
		StartedAt: t0, EndedAt: at(28*time.Minute + 11*time.Second + 460*time.Millisecond),
		Stages: stages, TrafficPercent: 0,
		Latest: failing,
		Decisions: []record.Decision{
			{Time: t0, Kind: record.KindTransition, Phase: record.PhaseValidating, By: "alice", Message: "Release started"},
			{Time: at(120 * time.Millisecond), Kind: record.KindCheck, Phase: record.PhaseValidating, Message: "Pre-release check artifact passed: HTTP 200"},
			{Time: at(1500 * time.Millisecond), Kind: record.KindTransition, Phase: record.PhaseDeploying, Message: "Deploying 1.4.0 beside 1.3.2 at 0% traffic"},
			{Time: at(20 * time.Second), Kind: record.KindStep, Phase: record.PhaseDeploying, Message: "deploy done; health check passed"},
			{Time: at(25 * time.Second), Kind: record.KindTransition, Phase: record.PhaseProgressing, Stage: 1, Message: "Traffic at 1%"},
			{Time: at(15*time.Minute + 25*time.Second), Kind: record.KindAnalysis, Phase: record.PhaseProgressing, Stage: 1, Message: "Stage 1 passed", Measurements: stage1Pass,
				Evidence: &record.StageEvidence{Stage: 1, From: at(25 * time.Second), To: at(15*time.Minute + 25*time.Second), Rounds: 90,
					Checks: []record.CheckEvidence{
						{Check: "error-rate", Measurements: 90, Passed: 89, Inconclusive: 1, Min: f(0.001), Max: f(0.004), Last: f(0.002),
							Graph: "http://prometheus:9090/graph?g0.expr=sum%28rate%28x%5B1m%5D%29%29&g0.range_input=900s&g0.tab=0"},
						{Check: "p99-latency", Measurements: 90, Passed: 90, Min: f(0.18), Max: f(0.24), Last: f(0.21)}},
					Notable: []record.Measurement{{Check: "error-rate", Time: at(5 * time.Minute), Stage: 1, Max: f(0.01), Error: "no data", Verdict: record.Inconclusive, Reason: "no usable value: no data"}}}},
			{Time: at(15*time.Minute + 26*time.Second), Kind: record.KindTransition, Phase: record.PhaseProgressing, Stage: 2, Message: "Traffic at 5%"},
			{Time: at(20 * time.Minute), Kind: record.KindControl, Phase: record.PhasePaused, Stage: 2, By: "bob", Message: "Paused", Comment: "checking the payments dashboard"},
			{Time: at(22 * time.Minute), Kind: record.KindRejection, Phase: record.PhasePaused, Stage: 2, By: "carol", Message: "approve rejected: stage 2 has no approval gate"},
			{Time: at(25 * time.Minute), Kind: record.KindControl, Phase: record.PhaseProgressing, Stage: 2, By: "bob", Message: "Resumed", Comment: "dashboard | looks fine\nresuming"},
			{Time: at(28*time.Minute + 10*time.Second + 250*time.Millisecond), Kind: record.KindAnalysis, Phase: record.PhaseRollingBack, Stage: 2, Message: "error-rate failed 1 time (failureLimit 1): rolling back", Measurements: failing},
			{Time: at(28*time.Minute + 10*time.Second + 300*time.Millisecond), Kind: record.KindRollback, Phase: record.PhaseRollingBack, Stage: 2, Message: "Traffic back on 1.3.2 (0% to 1.4.0)"},
			{Time: at(28*time.Minute + 11*time.Second + 454*time.Millisecond), Kind: record.KindRollback, Phase: record.PhaseRollingBack, Stage: 2, Message: "Flags off; canary removed"},
			{Time: at(28*time.Minute + 11*time.Second + 460*time.Millisecond), Kind: record.KindTransition, Phase: record.PhaseRolledBack, Stage: 2, Message: "Rolled back: check error-rate failed at stage 2: 0.052 > max 0.01"},
		},
		RollbackDuration:     1210 * time.Millisecond,
		TrafficRestoredAfter: 50 * time.Millisecond,
	}
}

// succeeded is a two-stage release with an approval gate that went through.
func succeeded() record.Result {
	pass := func(d time.Duration, stage int) []record.Measurement {
		return []record.Measurement{
			{Check: "error-rate", Time: at(d), Stage: stage, Query: errQuery, Value: f(0.001), Max: f(0.01), Verdict: record.Pass, Reason: "0.001 <= max 0.01"},
			{Check: "p99-latency", Time: at(d), Stage: stage, Query: latQuery, Value: f(0.18), Max: f(0.5), Baseline: f(0.17), BaselineMaxRelativeIncrease: 0.2, Verdict: record.Pass, Reason: "0.18 <= 0.17 × 1.2"},
		}
	}
	stages := plan([]int{50, 100}, map[int]bool{2: true})
	stages[0].StartedAt, stages[0].FinishedAt, stages[0].Outcome = at(10*time.Second), at(10*time.Minute+10*time.Second), "passed"
	stages[1].StartedAt, stages[1].FinishedAt, stages[1].Outcome = at(12*time.Minute), at(27*time.Minute), "passed"
	for i := range stages {
		stages[i].Soak = 10 * time.Minute
	}
	stages[1].Soak = 15 * time.Minute
	return record.Result{
		ReleaseID: "01JQ80AA-payments", WorkflowID: "release:payments:staging",
		Service: "payments", Environment: "staging", Version: "2.0.1", PreviousVersion: "2.0.0",
		Phase: record.PhaseSucceeded, StartedAt: t0, EndedAt: at(27*time.Minute + 2*time.Second),
		Stages: stages, TrafficPercent: 100,
		Decisions: []record.Decision{
			{Time: t0, Kind: record.KindTransition, Phase: record.PhaseValidating, Message: "Release started"},
			{Time: at(10 * time.Second), Kind: record.KindTransition, Phase: record.PhaseProgressing, Stage: 1, Message: "Traffic at 50%"},
			{Time: at(10*time.Minute + 10*time.Second), Kind: record.KindAnalysis, Phase: record.PhaseProgressing, Stage: 1, Message: "Stage 1 passed", Measurements: pass(10*time.Minute+10*time.Second, 1)},
			{Time: at(10*time.Minute + 11*time.Second), Kind: record.KindTransition, Phase: record.PhaseAwaitingApproval, Stage: 2, Message: "Waiting for approval before stage 2"},
			{Time: at(12 * time.Minute), Kind: record.KindApproval, Phase: record.PhaseAwaitingApproval, Stage: 2, By: "alice", Message: "Approved", Comment: "dashboards green"},
			{Time: at(12 * time.Minute), Kind: record.KindTransition, Phase: record.PhaseProgressing, Stage: 2, Message: "Traffic at 100%"},
			{Time: at(27 * time.Minute), Kind: record.KindAnalysis, Phase: record.PhaseProgressing, Stage: 2, Message: "Stage 2 passed", Measurements: pass(27*time.Minute, 2)},
			{Time: at(27*time.Minute + 2*time.Second), Kind: record.KindTransition, Phase: record.PhaseSucceeded, Stage: 2, Message: "Promoted 2.0.1; 2.0.0 kept warm for 30m"},
		},
	}
}

func specJSON(t *testing.T) []byte {
	t.Helper()
	r := spec.Release{Service: "checkout", Version: "1.4.0", PreviousVersion: "1.3.2",
		Target: "checkout-prod",
		Stages: []spec.Stage{{Percent: 1}, {Percent: 5}, {Percent: 25, Approval: true}, {Percent: 50}, {Percent: 100}},
	}.WithDefaults()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRenderGolden(t *testing.T) {
	js, md, err := Render(rolledBack(), specJSON(t))
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "rolledback.json", js)
	golden(t, "rolledback.md", md)
	golden(t, "rolledback.postmortem.md", PostMortem(rolledBack()))

	js, md, err = Render(succeeded(), nil)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "succeeded.json", js)
	golden(t, "succeeded.md", md)
}

func TestRenderIsDeterministicAndRoundTrips(t *testing.T) {
	js1, md1, _ := Render(rolledBack(), specJSON(t))
	js2, md2, _ := Render(rolledBack(), specJSON(t))
	if !bytes.Equal(js1, js2) || !bytes.Equal(md1, md2) {
		t.Fatal("Render gave different bytes for the same input")
	}
	var r Report
	if err := json.Unmarshal(js1, &r); err != nil {
		t.Fatal(err)
	}
	if r.SchemaVersion != SchemaVersion {
		t.Errorf("schemaVersion = %d", r.SchemaVersion)
	}
	back, _ := json.Marshal(r.Release)
	orig, _ := json.Marshal(rolledBack())
	if !bytes.Equal(back, orig) {
		t.Errorf("release does not round-trip:\n%s\n%s", back, orig)
	}
	var s spec.Release
	if err := json.Unmarshal(r.Spec, &s); err != nil || s.Service != "checkout" || len(s.Stages) != 5 {
		t.Errorf("spec does not round-trip: %v %+v", err, s)
	}
}

func TestRenderSpecInput(t *testing.T) {
	if _, _, err := Render(rolledBack(), []byte("service: checkout\n")); err == nil {
		t.Error("non-JSON spec accepted")
	}
	for _, empty := range [][]byte{nil, []byte(""), []byte("  \n"), []byte("null")} {
		js, md, err := Render(rolledBack(), empty)
		if err != nil {
			t.Fatalf("empty spec %q: %v", empty, err)
		}
		if bytes.Contains(js, []byte(`"spec"`)) || bytes.Contains(md, []byte("## Spec")) {
			t.Errorf("empty spec %q rendered a spec section", empty)
		}
	}
}

func TestNeedsPostMortem(t *testing.T) {
	paused := succeeded()
	paused.Decisions = append(paused.Decisions, record.Decision{Kind: record.KindTransition, Phase: record.PhasePaused, Message: "Paused: p99-latency inconclusive 3 times"})
	failed := succeeded()
	failed.Phase = record.PhaseFailed
	for name, c := range map[string]struct {
		res  record.Result
		want bool
	}{
		"rolled back":           {rolledBack(), true},
		"failed":                {failed, true},
		"succeeded":             {succeeded(), false},
		"succeeded after pause": {paused, true},
	} {
		if got := NeedsPostMortem(c.res); got != c.want {
			t.Errorf("%s: NeedsPostMortem = %v, want %v", name, got, c.want)
		}
	}
}

func TestPostMortemMarksHumanSections(t *testing.T) {
	pm := string(PostMortem(rolledBack()))
	for _, section := range []string{"## Summary", "## Impact", "## Timeline", "## Evidence", "## Root cause", "## Action items"} {
		if !strings.Contains(pm, "\n"+section+"\n") {
			t.Errorf("post-mortem lacks %q", section)
		}
	}
	rootCause := pm[strings.Index(pm, "## Root cause"):strings.Index(pm, "## Action items")]
	if !strings.Contains(rootCause, HumanMarker) {
		t.Errorf("root cause section is not marked for humans:\n%s", rootCause)
	}
	if !strings.Contains(pm[strings.Index(pm, "## Action items"):], HumanMarker) {
		t.Error("action items are not marked for humans")
	}
}

func TestArchiveFindLoad(t *testing.T) {
	dir := t.TempDir()
	first := rolledBack()
	second := succeeded()
	second.Service, second.Environment, second.WorkflowID = "checkout", "production", "release:checkout:production"
	second.ReleaseID, second.StartedAt = "01JQ9B-checkout", t0.Add(24*time.Hour)
	other := succeeded()
	weird := succeeded()
	weird.ReleaseID, weird.WorkflowID = "../../escape:me/now", "release:inventory:production"
	weird.Service, weird.Environment = "inventory", "production"

	paths, err := Archive(dir, first, specJSON(t))
	if err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(dir, "checkout", "production", "01JQ7ZK3M8W4-checkout")
	want := []string{base + ".md", base + ".postmortem.md", base + ".json"}
	if strings.Join(paths, "\n") != strings.Join(want, "\n") {
		t.Errorf("paths = %v, want %v", paths, want)
	}
	js, md, _ := Render(first, specJSON(t))
	for p, content := range map[string][]byte{base + ".json": js, base + ".md": md, base + ".postmortem.md": PostMortem(first)} {
		if got, err := os.ReadFile(p); err != nil || !bytes.Equal(got, content) {
			t.Errorf("%s: %v, content matches Render: %v", p, err, bytes.Equal(got, content))
		}
	}
	// Archiving again is harmless.
	if again, err := Archive(dir, first, specJSON(t)); err != nil || len(again) != 3 {
		t.Errorf("re-archive: %v %v", again, err)
	}
	for _, r := range []record.Result{second, other, weird} {
		paths, err := Archive(dir, r, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(paths) != 2 {
			t.Errorf("%s: succeeded release wrote %v, want json and md only", r.ReleaseID, paths)
		}
		for _, p := range paths {
			if rel, err := filepath.Rel(dir, p); err != nil || strings.HasPrefix(rel, "..") {
				t.Errorf("%s escaped the archive: %s", r.ReleaseID, p)
			}
		}
	}
	leftovers, _ := filepath.Glob(filepath.Join(dir, "*", "*", ".*tmp-*"))
	if len(leftovers) > 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}

	find := func(id string) (Entry, error) { t.Helper(); return Find(dir, id) }
	for id, wantID := range map[string]string{
		"01JQ7ZK3M8W4-checkout":              "01JQ7ZK3M8W4-checkout", // exact
		"01JQ7Z":                             "01JQ7ZK3M8W4-checkout", // release ID prefix
		"01JQ9":                              "01JQ9B-checkout",
		"release:checkout:production":        "01JQ9B-checkout", // workflow ID: latest release
		"release:checkout":                   "01JQ9B-checkout", // workflow ID prefix, one workflow
		"release:payments:staging":           "01JQ80AA-payments",
		"../../escape:me/now":                "../../escape:me/now",
		"release:inventory:production":       "../../escape:me/now",
		"  01JQ7ZK3M8W4-checkout  ":          "01JQ7ZK3M8W4-checkout",
		"release:checkout:production\t":      "01JQ9B-checkout",
		"01JQ80AA-payments":                  "01JQ80AA-payments",
		"release:payments:staging-not-there": "",
	} {
		e, err := find(id)
		if wantID == "" {
			if !errors.Is(err, ErrNotFound) {
				t.Errorf("Find(%q) = %+v, %v; want ErrNotFound", id, e, err)
			}
			continue
		}
		if err != nil || e.ReleaseID != wantID {
			t.Errorf("Find(%q) = %q, %v; want %q", id, e.ReleaseID, err, wantID)
		}
	}
	e, _ := find("01JQ7Z")
	if e.MarkdownPath != base+".md" || e.PostMortemPath != base+".postmortem.md" || e.Phase != record.PhaseRolledBack {
		t.Errorf("entry = %+v", e)
	}
	if _, err := find("release:"); !errors.Is(err, ErrAmbiguous) || !strings.Contains(err.Error(), "01JQ80AA-payments") {
		t.Errorf("Find(release:) = %v, want ErrAmbiguous listing the candidates", err)
	}
	if _, err := find("01JQ"); !errors.Is(err, ErrAmbiguous) {
		t.Errorf("Find(01JQ) = %v, want ErrAmbiguous", err)
	}
	if _, err := Find(filepath.Join(dir, "missing"), "x"); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing archive: %v", err)
	}

	r, err := Load(dir, "01JQ7Z")
	if err != nil {
		t.Fatal(err)
	}
	if r.Release.ReleaseID != first.ReleaseID || len(r.Release.Decisions) != len(first.Decisions) || len(r.Spec) == 0 {
		t.Errorf("Load = %+v", r.Release)
	}
	list, err := List(dir)
	if err != nil || len(list) != 4 {
		t.Fatalf("List = %d entries, %v", len(list), err)
	}
	if list[0].ReleaseID != "01JQ9B-checkout" {
		t.Errorf("List is not newest first: %s", list[0].ReleaseID)
	}
}

func TestArchiveNeedsReleaseID(t *testing.T) {
	r := succeeded()
	r.ReleaseID = ""
	if _, err := Archive(t.TempDir(), r, nil); err == nil {
		t.Error("archived a release without an ID")
	}
}

func TestSafeName(t *testing.T) {
	for _, id := range []string{"01JQ7ZK3M8W4", "0f8fad5b-d9cb-469f-a165-70867728950e", "v1.2_3"} {
		if got := SafeName(id); got != id {
			t.Errorf("SafeName(%q) = %q, want unchanged", id, got)
		}
	}
	seen := map[string]string{}
	for _, id := range []string{"a:b", "a_b", "a/b", "..", ".", "", ".hidden", strings.Repeat("x", 300), "../../etc/passwd"} {
		got := SafeName(id)
		if got == "" || strings.ContainsAny(got, "/\\:") || strings.HasPrefix(got, ".") || len(got) > 128 {
			t.Errorf("SafeName(%q) = %q is not a safe file name", id, got)
		}
		if prev, dup := seen[got]; dup {
			t.Errorf("SafeName(%q) = SafeName(%q) = %q", id, prev, got)
		}
		seen[got] = id
	}
}

func TestCellEscaping(t *testing.T) {
	for in, want := range map[string]string{
		"":                 "—",
		"a | b":            `a \| b`,
		"line1\nline2":     "line1<br>line2",
		"<b>bold</b> <= 5": "&lt;b>bold&lt;/b> <= 5",
		"<!-- hidden -->":  "&lt;!-- hidden -->",
		`C:\path`:          `C:\\path`,
		"  padded  ":       "padded",
	} {
		if got := cell(in); got != want {
			t.Errorf("cell(%q) = %q, want %q", in, got, want)
		}
	}
}
