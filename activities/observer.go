package activities

import (
	"context"

	"github.com/shepherd-release/shepherd/record"
)

// Observer receives release events for the worker's engine metrics. Activities call it, never workflow
// code, so nothing is counted again when a workflow replays; events that must count once per release are
// guarded by the step ledger.
type Observer interface {
	// ReleaseStarted is called once per release, when its preflight passes.
	ReleaseStarted(service, environment string)
	// Measured is called for every measurement, with the verdict the workflow will reach for it.
	Measured(service, environment string, verdict record.Verdict)
	// ReleaseEnded is called once per release with its final record.
	ReleaseEnded(res record.Result)
}

// once runs fn the first time key is seen by the ledger (always, without a ledger).
func (a *Activities) once(ctx context.Context, key string, fn func()) {
	if a.Ledger != nil {
		if done, err := a.Ledger.Done(key); err != nil || done {
			return
		}
	}
	fn()
	if a.Ledger != nil {
		_ = a.Ledger.Mark(key)
	}
}
