package activities

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/shepherd-release/shepherd/providers"
	"github.com/shepherd-release/shepherd/record"
	"github.com/shepherd-release/shepherd/spec"
)

// Clock is the time source of long-running activities; tests replace it to run a soak in no time.
type Clock interface {
	Now() time.Time
	// Sleep waits for d, or returns ctx's error when ctx ends first.
	Sleep(ctx context.Context, d time.Duration) error
}

type wallClock struct{}

func (wallClock) Now() time.Time { return time.Now() }

func (wallClock) Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (a *Activities) clock() Clock {
	if a.Clock != nil {
		return a.Clock
	}
	return wallClock{}
}

// WatchHeartbeatEvery is how often WatchStage reports its progress while it waits or measures: a
// worker that stops for longer than the heartbeat timeout (WatchHeartbeatTimeout) loses the activity to
// another worker, which resumes from the last report.
const (
	WatchHeartbeatEvery   = 5 * time.Second
	WatchHeartbeatTimeout = 20 * time.Second
)

// WatchInput asks for a stage to be watched: every check measured every Interval until the stage's course
// changes.
type WatchInput struct {
	ReleaseID string `json:"releaseID"`
	Stage     int    `json:"stage"`
	// Source names the metrics source, one of the worker configuration's metrics.
	Source string            `json:"source"`
	Checks []spec.Check      `json:"checks"`
	Data   spec.TemplateData `json:"data"`
	// Interval is the time between measurements; Soak the soak time still to do.
	Interval spec.Duration `json:"interval"`
	Soak     spec.Duration `json:"soak"`
	// FailureLimit and InconclusiveLimit are the analysis' limits (consecutive measurements per check).
	FailureLimit      int `json:"failureLimit"`
	InconclusiveLimit int `json:"inconclusiveLimit"`
}

// WatchOutcome is how a watch ended.
type WatchOutcome string

// Watch outcomes: each is a change of the stage's course.
const (
	// WatchPassed: the soak is done and the last measurement of every check passed.
	WatchPassed WatchOutcome = "Passed"
	// WatchFailed: a check failed FailureLimit times in a row (roll back).
	WatchFailed WatchOutcome = "Failed"
	// WatchInconclusive: a check had no usable value InconclusiveLimit times in a row (pause for a human).
	WatchInconclusive WatchOutcome = "Inconclusive"
	// WatchUnsettled: the soak is done but the last measurement did not pass every check (pause: never
	// promote on missing or failing data).
	WatchUnsettled WatchOutcome = "Unsettled"
)

// WatchProgress is a watch's state: its heartbeat details (visible live as the pending activity's
// details, and resumed from after a worker crash) and, at the end, part of its result.
type WatchProgress struct {
	// Soaked is the soak time done by this watch (time a worker was down is not counted).
	Soaked spec.Duration `json:"soaked"`
	// Streaks are the consecutive failed and inconclusive measurements per check.
	Streaks record.Streaks `json:"streaks"`
	// LastPassed says the latest round passed every check; Verdict and Reason are that round's overall
	// verdict ("" while something is off but below its limit).
	LastPassed bool           `json:"lastPassed"`
	Verdict    record.Verdict `json:"verdict,omitempty"`
	Reason     string         `json:"reason,omitempty"`
	// NextAt is when the next measurement is due.
	NextAt   time.Time            `json:"nextAt,omitzero"`
	Evidence record.StageEvidence `json:"evidence"`
}

// WatchResult is how a watch ended, with the stage's evidence.
type WatchResult struct {
	Outcome  WatchOutcome  `json:"outcome"`
	Reason   string        `json:"reason"`
	Progress WatchProgress `json:"progress"`
}

// WatchStage watches a soaking stage: it measures every check every Interval, judges each round with the
// pure record.Streaks, and returns only when the stage's course changes (WatchOutcome). Measurement
// problems never fail it: they are inconclusive measurements. It heartbeats its progress every
// WatchHeartbeatEvery and, when retried on another worker, resumes from the last heartbeat (soak clock,
// streaks and evidence). A cancellation (pause, abort) ends it at its next heartbeat or measurement.
func (a *Activities) WatchStage(ctx context.Context, in WatchInput) (WatchResult, error) {
	clk := a.clock()
	p := WatchProgress{Streaks: *record.NewStreaks(in.FailureLimit, in.InconclusiveLimit), Evidence: record.StageEvidence{Stage: in.Stage}}
	if activity.IsActivity(ctx) && activity.HasHeartbeatDetails(ctx) {
		var prev WatchProgress
		if err := activity.GetHeartbeatDetails(ctx, &prev); err == nil && prev.Evidence.Stage == in.Stage {
			p = prev
			activity.GetLogger(ctx).Info("WatchStage resumes from its last heartbeat", "stage", in.Stage, "soaked", p.Soaked.D(), "rounds", p.Evidence.Rounds)
		}
	}
	if p.Evidence.From.IsZero() {
		p.Evidence.From = clk.Now().UTC()
	}
	hb := newHeartbeater(ctx, p)
	defer hb.stop()

	interval, soak := in.Interval.D(), in.Soak.D()
	if interval <= 0 {
		interval = soak
	}
	// The soak's end is fixed when the watch (re)starts; rounds keep to their schedule, and the last one
	// is taken at the soak's end.
	start, done := clk.Now(), p.Soaked.D()
	end := start.Add(max(soak-done, 0))
	next := minTime(start.Add(interval), end)
	for {
		p.NextAt = next
		hb.set(p)
		if err := clk.Sleep(ctx, next.Sub(clk.Now())); err != nil {
			return WatchResult{Progress: p}, err
		}
		now := clk.Now()
		if lag := now.Sub(next); lag >= 0 {
			a.observeLag(in.Data, lag)
		}
		p.Soaked = spec.Duration(done + now.Sub(start))

		ms := a.measureRound(ctx, MeasureInput{ReleaseID: in.ReleaseID, Stage: in.Stage, Source: in.Source, Checks: in.Checks, Data: in.Data}, func(int) { hb.beat() })
		if ctx.Err() != nil {
			return WatchResult{Progress: p}, ctx.Err()
		}
		p.Evidence.Add(ms)
		p.Verdict, p.Reason = p.Streaks.Observe(ms)
		p.LastPassed = p.Verdict == record.Pass
		soaked := !now.Before(end)
		var out WatchOutcome
		switch {
		case p.Verdict == record.Fail:
			out = WatchFailed
		case p.Verdict == record.Inconclusive:
			out = WatchInconclusive
		case soaked && p.LastPassed:
			out, p.Reason = WatchPassed, "soak done and every check passed its last measurement"
		case soaked:
			out, p.Reason = WatchUnsettled, "soak done without a passing last measurement of every check: "+p.Reason
		}
		if out != "" {
			p.NextAt = time.Time{}
			a.linkGraphs(in, &p.Evidence)
			hb.set(p)
			return WatchResult{Outcome: out, Reason: p.Reason, Progress: p}, nil
		}
		// A round that ran late (slow queries) is followed by the next one a whole interval later, not
		// by a burst.
		next = next.Add(interval)
		if next.Before(now) {
			next = now.Add(interval)
		}
		next = minTime(next, end)
	}
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// linkGraphs gives each check's evidence a link to its query over the stage's window, when the metrics
// source can make one.
func (a *Activities) linkGraphs(in WatchInput, e *record.StageEvidence) {
	m, err := a.Metrics.Lookup(spec.KindMetrics, in.Source)
	if err != nil {
		return
	}
	g, ok := m.(providers.Grapher)
	if !ok {
		return
	}
	for _, d := range e.Decisive {
		for i := range e.Checks {
			if u := g.GraphURL(d.Query, e.From, e.To); e.Checks[i].Check == d.Check && len(u) <= MaxGraphURL {
				e.Checks[i].Graph = u
			}
		}
	}
}

// MaxGraphURL bounds a graph link kept in the evidence (a longer query is read off the report instead):
// every stage's evidence stays in the release's status.
const MaxGraphURL = 1024

func (a *Activities) observeLag(d spec.TemplateData, lag time.Duration) {
	if a.Observer != nil {
		a.Observer.AnalysisLag(d.Service, d.Environment, lag)
	}
}

// heartbeater reports a watch's progress every WatchHeartbeatEvery from its own goroutine, so a slow
// query does not look like a dead worker, and on demand.
type heartbeater struct {
	ctx context.Context
	mu  sync.Mutex
	// p is the latest progress, encoded when it was set: the watch goes on changing its own copy.
	p    json.RawMessage
	done chan struct{}
	wg   sync.WaitGroup
}

func newHeartbeater(ctx context.Context, p WatchProgress) *heartbeater {
	h := &heartbeater{ctx: ctx, done: make(chan struct{})}
	h.set(p)
	if !activity.IsActivity(ctx) {
		return h
	}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		t := time.NewTicker(WatchHeartbeatEvery)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				h.beat()
			case <-h.done:
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return h
}

// set records the progress and reports it.
func (h *heartbeater) set(p WatchProgress) {
	// Queries stay out of heartbeats (the spec and the result have them): a heartbeat is sent every few
	// seconds for every soaking release.
	p.Evidence.Decisive = append([]record.Measurement(nil), p.Evidence.Decisive...)
	for i := range p.Evidence.Decisive {
		p.Evidence.Decisive[i].Query = ""
	}
	b, err := json.Marshal(p)
	if err != nil {
		return
	}
	h.mu.Lock()
	h.p = b
	h.mu.Unlock()
	h.beat()
}

func (h *heartbeater) beat() {
	if !activity.IsActivity(h.ctx) || h.p == nil {
		return
	}
	h.mu.Lock()
	p := h.p
	h.mu.Unlock()
	activity.RecordHeartbeat(h.ctx, p)
}

func (h *heartbeater) stop() {
	close(h.done)
	h.wg.Wait()
}

// Line says in one line how the watch stands at now, for people following a release: rounds, soak done,
// each check's passes and latest value, and when the next round is due.
func (p WatchProgress) Line(now time.Time) string {
	var b strings.Builder
	ev := p.Evidence
	fmt.Fprintf(&b, "watching stage %d: %d round(s), %s soaked", ev.Stage, ev.Rounds, p.Soaked.D().Round(time.Second))
	for i, c := range ev.Checks {
		sep := ", "
		if i == 0 {
			sep = "; "
		}
		fmt.Fprintf(&b, "%s%s %d/%d passed", sep, c.Check, c.Passed, c.Measurements)
		if c.Last != nil {
			fmt.Fprintf(&b, " (last %.4g, max %.4g)", *c.Last, *c.Max)
		}
	}
	if !p.NextAt.IsZero() {
		if d := p.NextAt.Sub(now); d > 0 {
			fmt.Fprintf(&b, "; next round in %s", d.Round(time.Second))
		} else {
			b.WriteString("; measuring")
		}
	}
	return b.String()
}
