package spec

import (
	"fmt"
	"time"
)

// Bounds of a release spec. A release runs as one Temporal workflow whose history Temporal terminates at
// 51,200 events (warning from 10,240) without running any rollback, and whose status and result must stay
// well under the 2 MiB payload limit; these bounds keep every release the validator accepts inside both.
const (
	MaxStages        = 20
	MaxChecks        = 20
	MaxPrechecks     = 20
	MaxNotifications = 10
	// MaxApprovers bounds a stage gate's quorum.
	MaxApprovers = 10
	// MaxQueryBytes bounds a check's query template.
	MaxQueryBytes = 4096
	// MinInterval is the shortest analysis interval: a measurement costs no history, but each is a
	// query per check (and a baseline query) against the metrics source. Set the interval no shorter than
	// the source's scrape interval: a shorter one measures the same samples again.
	MinInterval = time.Second
	// MaxInterval is the longest analysis interval, and MaxSoak the longest soak of one stage: a stage
	// is watched by one activity however long it soaks, so only these bound a release's duration.
	MaxInterval = time.Hour
	MaxSoak     = 7 * 24 * time.Hour
	// MaxHistoryEvents bounds HistoryEstimate: the events the plan itself needs. It leaves room under
	// Temporal's 10,240-event warning for what people add at run time (each control request, pause and
	// resume costs a few events).
	MaxHistoryEvents = 8000
)

// History cost of the workflow's building blocks, in events, measured on a real server (e2e
// TestHistoryStaysWithinItsEstimate checks the estimate is an upper bound).
const (
	// eventsPerActivity: scheduled, started, completed, and the workflow task that follows (3).
	eventsPerActivity = 6
	// eventsPerTimer: timer started and fired, and a workflow task.
	eventsPerTimer = 5
	// eventsFixed covers the start, the version and side-effect markers, search-attribute upserts of
	// every phase change, the close, and slack.
	eventsFixed = 40
)

// HistoryEstimate is an upper estimate of the history events a release of this plan records when nobody
// intervenes, from start to close, whether it promotes or rolls back. Call it on a spec after
// WithDefaults. It does not depend on soak times or the analysis interval: each stage is watched by one
// activity however long it soaks.
func (r Release) HistoryEstimate() int {
	channels := len(r.Notifications)
	notify := channels * eventsPerActivity
	n := eventsFixed
	n += notify                               // started
	n += 3 * eventsPerActivity                // preflight, deploy, health
	n += len(r.Prechecks) * eventsPerActivity // checks (a sign-off is a signal and a timer instead: fewer)
	n += len(r.Prechecks) * (notify + eventsPerTimer)
	flags := 0
	if r.Flags != nil {
		flags = eventsPerActivity
	}
	n += flags // created off at deploy
	for _, st := range r.Stages {
		n += eventsPerActivity + flags + notify + 1 // traffic, flags, stageEntered, upsert
		if st.Approval {
			n += eventsPerTimer + notify + 4 // gate timer, approvalNeeded, the approve update or signal
		}
		if r.Analysis.Disabled {
			n += eventsPerTimer
		} else {
			n += eventsPerActivity // the stage's WatchStage
		}
	}
	// The end: promote and flags on, or the rollback's three steps (+ analysisFailed); then the tag,
	// two terminal notifications and the archived report.
	n += 3*eventsPerActivity + notify
	n += 2*eventsPerActivity + 2*notify
	return n
}

// validateBounds checks the spec against the bounds above.
func validateBounds(p *problems, r Release) {
	for _, b := range []struct {
		path   string
		n, max int
	}{
		{"stages", len(r.Stages), MaxStages},
		{"analysis.checks", len(r.Analysis.Checks), MaxChecks},
		{"prechecks", len(r.Prechecks), MaxPrechecks},
		{"notifications", len(r.Notifications), MaxNotifications},
	} {
		if b.n > b.max {
			p.add(b.path, "%d given; at most %d", b.n, b.max)
		}
	}
	if !r.Analysis.Disabled && r.Analysis.Interval > 0 && r.Analysis.Interval.D() < MinInterval {
		p.add("analysis.interval", "must be at least %s, got %s", MinInterval, r.Analysis.Interval)
	}
	if !r.Analysis.Disabled && r.Analysis.Interval.D() > MaxInterval {
		p.add("analysis.interval", "must be at most %s, got %s", MaxInterval, r.Analysis.Interval)
	}
	for i, st := range r.Stages {
		if st.Soak.D() > MaxSoak {
			p.add(fmt.Sprintf("stages[%d].soak", i), "must be at most %s (7 days), got %s", MaxSoak, st.Soak)
		}
	}
	if len(*p) > 0 {
		return // the estimate means little for a plan with other problems
	}
	// A safety net: the count bounds above keep every plan under it (TestTheLargestPlanFitsOneHistory),
	// until one of them is raised.
	if est := r.HistoryEstimate(); est > MaxHistoryEvents {
		p.add("stages", "this plan needs about %d workflow history events; at most %d fit a release safely: "+
			"use fewer stages, approval gates or notification channels", est, MaxHistoryEvents)
	}
}
