package bench

import (
	"github.com/shepherd-release/shepherd/config"
	"github.com/shepherd-release/shepherd/internal/demo"
	"github.com/shepherd-release/shepherd/providers/exec"
	"strings"
	"testing"
	"time"

	"github.com/shepherd-release/shepherd/record"
	"github.com/shepherd-release/shepherd/spec"
)

func ms(v ...int) []time.Duration {
	out := make([]time.Duration, len(v))
	for i, x := range v {
		out[i] = time.Duration(x) * time.Millisecond
	}
	return out
}

func TestPercentile(t *testing.T) {
	for _, tc := range []struct {
		in   []time.Duration
		p    float64
		want time.Duration
	}{
		{ms(), 0.5, 0},
		{ms(7), 0.99, 7 * time.Millisecond},
		{ms(5, 1, 4, 2, 3), 0.5, 3 * time.Millisecond},
		{ms(1, 2, 3, 4), 0.5, 2 * time.Millisecond},
		{ms(10, 20, 30, 40, 50, 60, 70, 80, 90, 100), 0.99, 100 * time.Millisecond},
		{ms(10, 20, 30, 40, 50, 60, 70, 80, 90, 100), 0.9, 90 * time.Millisecond},
	} {
		if got := percentile(tc.in, tc.p); got != tc.want {
			t.Errorf("percentile(%v, %g) = %s, want %s", tc.in, tc.p, got, tc.want)
		}
	}
}

func TestAbortSpecIsValid(t *testing.T) {
	r := abortSpec(3).WithDefaults()
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	if r.Target != benchTarget {
		t.Errorf("target %q", r.Target)
	}
	tg, err := exec.New(mustDecode(t, benchTargetConfig("/tmp/marks")))
	if err != nil {
		t.Fatal(err)
	}
	if s := tg.Describe().Steps["traffic"]; !strings.Contains(s, "-eq 0") || !strings.Contains(s, "restored-$SHEPHERD_VERSION") {
		t.Errorf("traffic command %q does not mark the 0%% shift", s)
	}
}

// TestBenchMarkdownVerdicts: the targets are judged on the numbers, misses reported as misses.
func TestBenchMarkdownVerdicts(t *testing.T) {
	t0 := time.Now()
	rel := func(took time.Duration) demo.Release {
		return demo.Release{Spec: spec.Release{Version: "v3.1"}, BreachOnset: t0, RollbackDecided: t0.Add(took - 100*time.Millisecond),
			RolledBackAt: t0.Add(took), Result: record.Status{TrafficRestoredAfter: 40 * time.Millisecond}}
	}
	res := Results{
		started: t0, finished: t0.Add(time.Minute),
		abort: ms(30, 31, 32, 90), floor: ms(20, 20, 20, 40), restoredAfter: ms(10, 10, 10, 10),
		breaches: []demo.Release{rel(5200 * time.Millisecond), rel(9 * time.Second)},
		interval: 5 * time.Second, scrape: time.Second, loadRPS: 50,
	}
	md := Markdown(res, Config{})
	for _, want := range []string{
		"| 4 | 31ms | 90ms | 90ms | p50 ≤ 2 × floor p50 (40ms) | **PASS** |",
		"p99 ≤ 2 × floor p99 (80ms) | **MISS** |",
		"≤ 5s + 1s + 1s = 7s | **MISS** (1/2 within) |",
		"## Machine", "CPUs (nproc)", "## Method", "make bench",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}

func mustDecode(t *testing.T, p config.Provider) exec.Config {
	t.Helper()
	c, err := config.Decode[exec.Config](p)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestHistoryVerdict(t *testing.T) {
	pass := historyMarkdown([]historyRun{{soak: 2 * time.Second, rounds: 10, events: 120}, {soak: 8 * time.Second, rounds: 40, events: 120}})
	if !strings.Contains(pass, "**PASS** (120 events; equal at every soak)") {
		t.Errorf("equal counts under 300 should pass:\n%s", pass)
	}
	grew := historyMarkdown([]historyRun{{soak: 2 * time.Second, events: 120}, {soak: 8 * time.Second, events: 180}})
	if !strings.Contains(grew, "**MISS** (180 events; the count changed with the soak)") {
		t.Errorf("a count that grows with the soak should miss:\n%s", grew)
	}
	big := historyMarkdown([]historyRun{{soak: 2 * time.Second, events: 301}})
	if !strings.Contains(big, "**MISS**") {
		t.Errorf("more than 300 events should miss:\n%s", big)
	}
}
