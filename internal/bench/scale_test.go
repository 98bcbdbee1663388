package bench

import (
	"math"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/shepherd-release/shepherd/config"
)

// A histogram read from a real registry, differenced, gives histogram_quantile's estimates.
func TestHistogramFromAWorkerScrape(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "shepherd_analysis_lag_seconds", Help: "x",
		Buckets: []float64{0.001, 0.01, 0.1, 1, 10}})
	reg.MustRegister(h)
	scrape := func() families {
		rec := httptest.NewRecorder()
		promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		f, err := parseFamilies(rec.Body)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	h.Observe(5) // before the window: must not count
	before := scrape()
	for range 98 {
		h.Observe(0.005)
	}
	h.Observe(0.5)
	h.Observe(0.5)
	d := scrape().histogram("shepherd_analysis_lag_seconds").sub(before.histogram("shepherd_analysis_lag_seconds"))
	if d.Count != 100 {
		t.Fatalf("count %d, want 100", d.Count)
	}
	if q := d.quantile(0.5); q < 0.001 || q > 0.01 {
		t.Errorf("p50 = %v, want within (1 ms, 10 ms]", q)
	}
	if q := d.quantile(0.99); q <= 0.1 || q > 1 {
		t.Errorf("p99 = %v, want within (100 ms, 1 s]", q)
	}
	if m := d.maxBound(); m != 1 {
		t.Errorf("max bucket %v, want 1", m)
	}
	if got := d.maxText(); got != "≤ 1s" {
		t.Errorf("maxText = %q", got)
	}
	sum := d.add(d)
	if sum.Count != 200 || sum.Cumulative[0] != 0 || sum.Cumulative[1] != 196 {
		t.Errorf("add = %+v", sum)
	}
	var empty Histogram
	if !math.IsNaN(empty.quantile(0.5)) || empty.quantileText(0.99) != "—" {
		t.Error("an empty histogram has no quantile")
	}
	if empty.add(d).Count != 100 {
		t.Error("adding to an empty histogram")
	}
}

func TestHistogramBeyondTheLastBucket(t *testing.T) {
	h := Histogram{Bounds: []float64{1, math.Inf(1)}, Cumulative: []uint64{1, 10}, Count: 10}
	if !math.IsInf(h.quantile(0.99), 1) || h.quantileText(0.99) != "> last bucket" {
		t.Errorf("p99 = %v", h.quantile(0.99))
	}
}

func TestProcReadingsOfThisProcess(t *testing.T) {
	self, _, ppid, ok := procStat(os.Getpid())
	if !ok || self < 0 || ppid != os.Getppid() {
		t.Errorf("procStat = %v %v %v", self, ppid, ok)
	}
	if rss(os.Getpid()) <= 0 {
		t.Error("no RSS for this process")
	}
	if treeCPU(os.Getppid()) < cpuSeconds(os.Getppid(), true) {
		t.Error("a tree has at least its root's CPU")
	}
	if _, _, _, ok := procStat(0); ok {
		t.Error("pid 0 read")
	}
	if loadAverage() < 0 {
		t.Error("no load average")
	}
}

func TestSpliceScaleReplacesOnlyItsSection(t *testing.T) {
	sec := ScaleBegin + "\nnew\n" + ScaleEnd
	doc := "# Benchmarks\n\nresults\n"
	once := SpliceScale(doc, sec)
	if !strings.HasPrefix(once, doc) || !strings.Contains(once, "new") {
		t.Fatalf("appended: %q", once)
	}
	twice := SpliceScale(once+"\ntrailer\n", ScaleBegin+"\nnewer\n"+ScaleEnd)
	if strings.Contains(twice, "\nnew\n") || !strings.Contains(twice, "newer") || !strings.HasSuffix(twice, "trailer\n") {
		t.Errorf("replaced: %q", twice)
	}
	if ScaleSection(twice) != ScaleBegin+"\nnewer\n"+ScaleEnd || ScaleSection(doc) != "" {
		t.Errorf("section: %q", ScaleSection(twice))
	}
	if got := KeepScale("# Benchmarks\n\nfresh\n", twice); !strings.HasPrefix(got, "# Benchmarks\n\nfresh\n\n"+ScaleBegin) ||
		!strings.HasSuffix(got, "trailer\n") || strings.Contains(got, "results") {
		t.Errorf("KeepScale: %q", got)
	}
	if KeepScale("md", doc) != "md" {
		t.Error("nothing to keep")
	}
}

// The metrics source is valid exposition text, with a failing-code series at 0 for every service (so
// the error-rate check has a numerator and passes instead of finding no data).
func TestScaleSourceServesEveryService(t *testing.T) {
	src := &scaleSource{start: time.Now().Add(-10 * time.Second)}
	src.set(3)
	rec := httptest.NewRecorder()
	src.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	f, err := parseFamilies(rec.Body)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(f["http_requests_total"].GetMetric()); n != 2*(3+5) {
		t.Errorf("%d request series, want 16", n)
	}
	if got := f.counter("http_requests_total", "code", "500"); got != 0 {
		t.Errorf("failing requests %v", got)
	}
	if got := f.counter("http_requests_total", "service", "scale-3"); got < 190 {
		t.Errorf("scale-3 served %v requests in 10 s", got)
	}
	if len(f["http_request_duration_seconds"].GetMetric()) != 8 {
		t.Error("want one latency histogram per service")
	}
}

func TestScaleConfigIsAValidWorkerConfiguration(t *testing.T) {
	path := filepath.Join(t.TempDir(), "shepherd.yaml")
	tun := config.Tuning{MaxConcurrentActivities: 3000}.WithDefaults()
	if err := writeScaleConfig(path, "http://127.0.0.1:9090", "/tmp/marks", tun); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.Worker.Tuning() != tun || c.Targets[scaleTarget].Type != "exec" || c.Metrics["prometheus"].Type != "prometheus" {
		t.Errorf("config = %+v", c)
	}
	var sc ScaleConfig
	sc.defaults()
	e := &scaleEnv{c: sc}
	r := e.spec("scale-1", "v1")
	if r.Analysis.Interval.D() != 10*time.Second || len(r.Analysis.Checks) != scaleChecks || r.Stages[0].Soak.D() != scaleSoak {
		t.Errorf("spec = %+v", r)
	}
}

func TestScaleMarkdownSaysWhatSaturates(t *testing.T) {
	lag := Histogram{Bounds: []float64{0.01, 1, 2.5, math.Inf(1)}, Cumulative: []uint64{50, 90, 100, 100}, Count: 100}
	p := ScalePoint{Workers: 1, Releases: 1000, Soaking: 1000, Window: time.Minute, Lag: lag,
		IdleAbort: ms(50, 60), LoadAbort: ms(500, 700), WorkerCPU: []float64{0.4}, ServerCPU: 1.1, PostgresCPU: 0.3,
		WorkerRSS: []int64{200 << 20}, WorkerRSSIdle: []int64{50 << 20}, ActivitySlotsFree: []float64{0}, WorkflowSlotsFree: []float64{100},
		Measurements: map[string]float64{"Pass": 6000}, StatusFailed: 2}
	var c ScaleConfig
	c.defaults()
	md := ScaleMarkdown(ScaleResults{Config: c, Points: []ScalePoint{p}, Started: time.Now(), Finished: time.Now()})
	for _, want := range []string{ScaleBegin, ScaleEnd, "1000 of 1000", "**MISS** lag, **MISS** abort", "the Temporal server 1.10",
		"analysis lag p99 ≥ 1 s", "no free activity slot", "2 status queries failed", "aborts slower than 2× idle",
		"24ms", "154 KiB", "100.0 (200.0)", "fewer than 90 % of the wanted measurements"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q", want)
		}
	}
}
