package activities

import (
	"sync"
	"time"

	"github.com/shepherd-release/shepherd/record"
)

// Observer receives release events for the worker's engine metrics. Activities call it, never workflow
// code, so nothing is counted again when a workflow replays. Events that count once per release are
// deduplicated per worker process: a retry that lands on another worker after a crash can count twice.
type Observer interface {
	// ReleaseStarted is called once per release, when its preflight passes.
	ReleaseStarted(service, environment string)
	// Measured is called for every measurement, with the verdict the workflow will reach for it.
	Measured(service, environment string, verdict record.Verdict)
	// AnalysisLag is called once per measurement round with how late the round started compared with
	// its schedule.
	AnalysisLag(service, environment string, lag time.Duration)
	// ReleaseEnded is called once per release with its final record.
	ReleaseEnded(res record.Result)
}

// onceSet remembers the keys seen by once, up to onceLimit (then it starts afresh).
type onceSet struct {
	mu   sync.Mutex
	seen map[string]bool
}

const onceLimit = 100_000

// once runs fn the first time this worker process sees key.
func (a *Activities) once(key string, fn func()) {
	s := &a.observed
	s.mu.Lock()
	if s.seen == nil || len(s.seen) >= onceLimit {
		s.seen = map[string]bool{}
	}
	first := !s.seen[key]
	s.seen[key] = true
	s.mu.Unlock()
	if first {
		fn()
	}
}
