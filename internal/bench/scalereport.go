package bench

import (
	"fmt"
	"math"
	"runtime"
	"slices"
	"strings"
	"time"
)

// ScaleBegin and ScaleEnd delimit the scale section in docs/BENCHMARKS.md: `shepherd bench --scale
// --out` replaces what is between them, and `shepherd bench --out` keeps it.
const (
	ScaleBegin = "<!-- shepherd bench --scale: begin -->"
	ScaleEnd   = "<!-- shepherd bench --scale: end -->"
)

// SpliceScale puts section (which starts with ScaleBegin and ends with ScaleEnd) into doc in place of
// the one there, or at its end.
func SpliceScale(doc, section string) string {
	i, j := strings.Index(doc, ScaleBegin), strings.Index(doc, ScaleEnd)
	if i >= 0 && j > i {
		return doc[:i] + section + doc[j+len(ScaleEnd):]
	}
	if doc != "" && !strings.HasSuffix(doc, "\n\n") {
		doc = strings.TrimRight(doc, "\n") + "\n\n"
	}
	return doc + section + "\n"
}

// KeepScale appends to md everything of doc from its scale section on (the section and what was
// written after it, e.g. the tuning comparison), so a plain `shepherd bench --out` keeps it.
func KeepScale(md, doc string) string {
	i := strings.Index(doc, ScaleBegin)
	if i < 0 {
		return md
	}
	return strings.TrimRight(md, "\n") + "\n\n" + doc[i:]
}

// ScaleSection returns the scale section of doc, markers included, or "".
func ScaleSection(doc string) string {
	i, j := strings.Index(doc, ScaleBegin), strings.Index(doc, ScaleEnd)
	if i < 0 || j < i {
		return ""
	}
	return doc[i : j+len(ScaleEnd)]
}

// workerCPU is the workers' CPU in cores, summed.
func (p ScalePoint) workerCPU() float64 {
	var s float64
	for _, v := range p.WorkerCPU {
		s += v
	}
	return s
}

// cpuPerReleaseMinute is the workers' CPU per soaking release and minute.
func (p ScalePoint) cpuPerReleaseMinute() time.Duration {
	if p.Soaking == 0 {
		return 0
	}
	return time.Duration(p.workerCPU() * 60 / float64(p.Soaking) * float64(time.Second))
}

// rssPerRelease is the workers' memory growth from idle to the window's end, per soaking release.
func (p ScalePoint) rssPerRelease() float64 {
	if p.Soaking == 0 {
		return 0
	}
	var d int64
	for i := range p.WorkerRSS {
		d += p.WorkerRSS[i] - p.WorkerRSSIdle[i]
	}
	return float64(d) / float64(p.Soaking)
}

func (p ScalePoint) measurementsPerSecond() float64 {
	var n float64
	for _, v := range p.Measurements {
		n += v
	}
	if p.Window <= 0 {
		return 0
	}
	return n / p.Window.Seconds()
}

func median(ds []time.Duration) time.Duration { return percentile(ds, 0.5) }

func maxDur(ds []time.Duration) time.Duration { return slices.Max(append([]time.Duration{0}, ds...)) }

func (p ScalePoint) summary() string {
	return fmt.Sprintf("  => lag p50 %s p99 %s max %s (%d rounds); abort idle p50 %s, under load p50 %s max %s (%d timed out); "+
		"status p50 %s (%d failed); worker %.2f cores = %s CPU per release-minute, %s per release; server %.2f, PostgreSQL %.2f, Prometheus %.2f cores\n",
		p.Lag.quantileText(0.5), p.Lag.quantileText(0.99), p.Lag.maxText(), p.Lag.Count,
		durText(median(p.IdleAbort)), durText(median(p.LoadAbort)), durText(maxDur(p.LoadAbort)), p.AbortTimeouts,
		durText(median(p.Status)), p.StatusFailed, p.workerCPU(), durText(p.cpuPerReleaseMinute()), bytesText(p.rssPerRelease()),
		p.ServerCPU, p.PostgresCPU, p.PromCPU)
}

func bytesText(b float64) string {
	switch {
	case math.Abs(b) >= 1<<20:
		return fmt.Sprintf("%.1f MiB", b/(1<<20))
	default:
		return fmt.Sprintf("%.0f KiB", b/(1<<10))
	}
}

// ScaleMarkdown renders the scale section of docs/BENCHMARKS.md, between ScaleBegin and ScaleEnd.
func ScaleMarkdown(r ScaleResults) string {
	c := r.Config
	var b strings.Builder
	b.WriteString(ScaleBegin + "\n")
	fmt.Fprintf(&b, "## Scale: concurrent soaking releases\n\n")
	fmt.Fprintf(&b, "Measured by `shepherd bench --scale` on %s (one run, %s) on the production-shaped stack: PostgreSQL, the "+
		"Temporal server binary and `shepherd worker` processes of their own, all on this one machine (%d CPUs). "+
		"Every release soaks its first stage with analysis on (two checks against the real Prometheus every %s, "+
		"scraped every %s). Worker tuning: `%s`. The numbers are what this run measured, misses included.\n\n",
		r.Started.UTC().Format("2006-01-02 15:04 MST"), r.Finished.Sub(r.Started).Round(time.Second), runtime.NumCPU(),
		c.Interval, c.Scrape, c.Tuning.String())

	b.WriteString("### Latency\n\n")
	b.WriteString("| Workers | Releases soaking | Analysis lag p50 / p99 / max (rounds) | Measurements/s (wanted) | Abort → stable, idle p50 | under load p50 / max (timed out) | Target: p99 lag < 1 s, abort ≤ 2× idle | Status query p50 / max (failed) | Workflow task schedule-to-start p50 / p99 (tasks), ramp to aborts | Activity schedule-to-start p50 / p99 (tasks), ramp to aborts |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|\n")
	for _, p := range r.Points {
		lagOK := p.Lag.Count > 0 && p.Lag.quantile(0.99) < 1
		abortOK := len(p.LoadAbort) > 0 && p.AbortTimeouts == 0 && median(p.LoadAbort) <= 2*median(p.IdleAbort)
		target := verdict(lagOK) + " lag, " + verdict(abortOK) + " abort"
		if p.Lag.Count == 0 {
			target = "lag: no samples, " + verdict(abortOK) + " abort"
		}
		fmt.Fprintf(&b, "| %d | %d of %d | %s / %s / %s (%d) | %.1f (%.1f) | %s | %s / %s (%d) | %s | %s / %s (%d) | %s / %s (%d) | %s / %s (%d) |\n",
			p.Workers, p.Soaking, p.Releases,
			p.Lag.quantileText(0.5), p.Lag.quantileText(0.99), p.Lag.maxText(), p.Lag.Count,
			p.measurementsPerSecond(), float64(p.Soaking*scaleChecks)/c.Interval.Seconds(),
			durText(median(p.IdleAbort)), durText(median(p.LoadAbort)), durText(maxDur(p.LoadAbort)), p.AbortTimeouts, target,
			durText(median(p.Status)), durText(maxDur(p.Status)), p.StatusFailed,
			p.WorkflowTaskS2S.quantileText(0.5), p.WorkflowTaskS2S.quantileText(0.99), p.WorkflowTaskS2S.Count,
			p.ActivityS2S.quantileText(0.5), p.ActivityS2S.quantileText(0.99), p.ActivityS2S.Count)
	}

	b.WriteString("\n### Cost\n\n")
	fmt.Fprintf(&b, "| Workers | Releases soaking | Ramp (start → all soaking) | Worker CPU (cores) | Worker CPU per soaking release-minute | Worker RSS (idle → loaded) | RSS per release | Free activity / workflow slots | Requests to Temporal/s (of which heartbeats) | Temporal server CPU | PostgreSQL CPU | Prometheus CPU | Bench process CPU | Sum of these (of %d cores) | Load average before / at the window's end |\n", runtime.NumCPU())
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, p := range r.Points {
		var rss []string
		for i := range p.WorkerRSS {
			rss = append(rss, bytesText(float64(p.WorkerRSSIdle[i]))+" → "+bytesText(float64(p.WorkerRSS[i])))
		}
		var slots []string
		for i := range p.ActivitySlotsFree {
			slots = append(slots, fmt.Sprintf("%.0f / %.0f", p.ActivitySlotsFree[i], p.WorkflowSlotsFree[i]))
		}
		sum := p.workerCPU() + p.ServerCPU + p.PostgresCPU + p.PromCPU + p.BenchCPU
		fmt.Fprintf(&b, "| %d | %d | %s | %s | %s | %s | %s | %s | %.1f (%.1f) | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f / %.2f |\n",
			p.Workers, p.Soaking, p.Ramp.Round(time.Second), floats(p.WorkerCPU), durText(p.cpuPerReleaseMinute()),
			strings.Join(rss, ", "), bytesText(p.rssPerRelease()), strings.Join(slots, ", "), p.Requests, p.Heartbeats,
			p.ServerCPU, p.PostgresCPU, p.PromCPU, p.BenchCPU, sum, p.LoadBefore, p.LoadAfter)
	}
	b.WriteString("\n" + saturation(r) + "\n")
	fmt.Fprintf(&b, "\n| Stack | |\n|---|---|\n| Temporal server | %s (all services in one process, 4 history shards) |\n| PostgreSQL | %s |\n| Prometheus | %s |\n| Machine | %d CPUs, %s, %s |\n\n",
		r.TemporalServer, r.Postgres, r.Prometheus, runtime.NumCPU(), cpuModel(), memTotal())
	b.WriteString(scaleMethod(c))
	b.WriteString(ScaleEnd)
	return b.String()
}

// saturation says, from the numbers, what ran out first.
func saturation(r ScaleResults) string {
	if len(r.Points) == 0 {
		return ""
	}
	var lines []string
	for _, p := range r.Points {
		parts := map[string]float64{"the Temporal server": p.ServerCPU, "PostgreSQL": p.PostgresCPU,
			"the worker(s)": p.workerCPU(), "Prometheus": p.PromCPU}
		names := make([]string, 0, len(parts))
		for k := range parts {
			names = append(names, k)
		}
		slices.SortFunc(names, func(a, b string) int { return int(math.Copysign(1, parts[b]-parts[a])) })
		sum := p.workerCPU() + p.ServerCPU + p.PostgresCPU + p.PromCPU + p.BenchCPU
		var signs []string
		if p.Lag.Count > 0 && p.Lag.quantile(0.99) >= 1 {
			signs = append(signs, "analysis lag p99 ≥ 1 s")
		}
		if p.measurementsPerSecond() < 0.9*float64(p.Soaking*scaleChecks)/r.Config.Interval.Seconds() {
			signs = append(signs, "fewer than 90 % of the wanted measurements")
		}
		for _, f := range p.ActivitySlotsFree {
			if f == 0 {
				signs = append(signs, "no free activity slot")
				break
			}
		}
		if p.StatusFailed > 0 {
			signs = append(signs, fmt.Sprintf("%d status queries failed", p.StatusFailed))
		}
		if p.AbortTimeouts > 0 {
			signs = append(signs, fmt.Sprintf("%d aborts not done in %s", p.AbortTimeouts, scaleAbortTimeout))
		}
		if len(p.LoadAbort) > 0 && median(p.LoadAbort) > 2*median(p.IdleAbort) {
			signs = append(signs, "aborts slower than 2× idle")
		}
		state := "no sign of saturation"
		if len(signs) > 0 {
			state = "signs of saturation: " + strings.Join(signs, "; ")
		}
		lines = append(lines, fmt.Sprintf("- %d releases on %d worker(s): %.2f of %d cores busy; most CPU: %s %.2f, then %s %.2f; %s.",
			p.Soaking, p.Workers, sum, runtime.NumCPU(), names[0], parts[names[0]], names[1], parts[names[1]], state))
	}
	return "**What saturates first**, point by point (CPU in cores over the window):\n\n" + strings.Join(lines, "\n") + "\n"
}

func scaleMethod(c ScaleConfig) string {
	return fmt.Sprintf(`### Method

One `+"`shepherd bench --scale`"+` process starts PostgreSQL and the Temporal server (devstack.Cluster, as `+"`make cluster`"+`),
Prometheus scraping a metrics source served by the bench (every released service gets 20 requests/s, none failing,
all within 50 ms, so every check passes and every round measures), and for each point fresh `+"`shepherd worker`"+`
processes (their own state directories and metrics ports, the configuration written by the bench: an exec target
with no-op commands whose traffic-0 command writes a timestamp, the Prometheus source, the worker tuning above).

For each point: %d releases are started one at a time (idle) and aborted once their analysis runs, then N
releases are started (%d at a time) and the bench waits until visibility shows every one Progressing at 10 %%
(their first stage, soaking an hour with checks error-rate and p99-latency every %s), then one more interval.
Then the **window** (%s): CPU seconds of every process are read from /proc/<pid>/stat at its start and end (the
workers' include their reaped children, the exec target's `+"`sh -c`"+`; PostgreSQL is the postmaster, its reaped
and its live backends), the workers' /metrics are scraped at both ends and their difference taken
(`+"`shepherd_analysis_lag_seconds`"+`, `+"`shepherd_analysis_measurements_total`"+`; the SDK's schedule-to-start
histograms are differenced from the ramp's start to the last abort instead, since a soaking release schedules no
task in the window),
and %d status queries (`+"`shepherd status`"+`, a workflow query; %s timeout) are spread over it. RSS is VmRSS after the
workers first poll (idle) and at the window's end. Then %d soaking releases are aborted one at a time, each timed
from sending the signal to the traffic-0 command having run (as in (a) above). Last, every release is terminated and
the workers stopped.

Percentiles of the histograms are estimated as Prometheus's histogram_quantile does (linear within a bucket), so
they are as fine as the buckets (1 ms … 60 s for the lag, 5 ms … 90 s for schedule-to-start); the max is the
bucket holding the largest sample. **Analysis lag** is how late each round of a soaking stage's watch started
compared with its schedule, as the worker reports it; it has samples only with the watch activity (issue 11).

Everything shares the one machine: the workers, the server, PostgreSQL, Prometheus and the bench's own client
compete for the same cores, so a point's CPU column is what that part needed here, not what it would get alone.

`+"```"+`
make bench-scale           # bin/shepherd bench --scale --out docs/BENCHMARKS.md: 100, 500, 1000 on one worker, 1000 on two
bin/shepherd bench --scale --releases 100,500,1000 --two-workers 1000,2000 --ramp-timeout 10m --out docs/BENCHMARKS.md
`+"```"+`
It needs temporal-server, temporal-sql-tool, the Temporal CLI, PostgreSQL and Prometheus (`+"`make tools`"+`).
`, min(c.Aborts, 5), scaleStarters, c.Interval, c.Window, c.Queries, scaleQueryTimeout, c.Aborts)
}
