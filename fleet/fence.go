package fleet

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"
)

// Fencing. Every change a release makes carries its fencing token: the release ID and a sequence number
// that grows with every step the release starts and stays the same on every retry of one step
// (docs/targets.md). Per service the controller records the newest token it accepted, in the state file,
// so the rules hold across controller restarts:
//
//   - a Seq older than the newest of the same release is refused (409, code StaleWrite): it is a late
//     write from a cancelled or partitioned attempt, and applying it would undo a newer step;
//   - the same Seq is a repeat of the same step (a retry): the change is made again idempotently (it
//     converges to the same state, e.g. restarts a canary that died) and the answer says repeat;
//   - a newer Seq is applied and recorded;
//   - a token of another release supersedes the current release (releases of one service run one after
//     another: v2, then v3) once its change succeeds, and from then on writes of the superseded release
//     are refused as stale.
//
// Writes without a token (bootstrap, a manual call, a release started before fencing existed) are applied
// as before and leave the fencing state alone.

// CodeStaleWrite is ErrorResponse.Code of a write refused because a newer step was applied.
const CodeStaleWrite = "StaleWrite"

// Bounds of what a service remembers.
const (
	// MaxJournal is how many writes a service's journal keeps (the newest).
	MaxJournal = 200
	// maxSuperseded is how many superseded releases a service remembers.
	maxSuperseded = 32
)

// Fence is the fencing token a release step carries: spec.TemplateData's ReleaseID, Seq and Step. A write
// without ReleaseID or with Seq 0 is unfenced.
type Fence struct {
	// ReleaseID identifies the release (workflow ID / run ID).
	ReleaseID string `json:"releaseID,omitempty"`
	// Seq grows with every step the release starts; every retry of one step carries the same Seq.
	Seq int64 `json:"seq,omitempty"`
	// Step names the step ("deploy", "traffic", "rollback-traffic", ...), for messages and the journal.
	Step string `json:"step,omitempty"`
}

// Fenced reports whether the write carries a token the controller checks.
func (f Fence) Fenced() bool { return f.ReleaseID != "" && f.Seq > 0 }

// FenceState is one service's fencing state, recorded in the state file.
type FenceState struct {
	// ReleaseID is the release that wrote last.
	ReleaseID string `json:"releaseID"`
	// Seq is the newest sequence number accepted from it, and Step that step's name.
	Seq  int64  `json:"seq"`
	Step string `json:"step,omitempty"`
	// Action, Version and Percent are the change Seq was first used for; a repeat must ask for the same.
	Action  string `json:"action"`
	Version string `json:"version"`
	Percent *int   `json:"percent,omitempty"`
	// Done is true once a write with Seq succeeded; later ones with Seq are repeats.
	Done bool `json:"done"`
	// Superseded lists the releases the service has moved on from, oldest first (at most 32); their
	// writes are refused.
	Superseded []string `json:"superseded,omitempty"`
}

// Outcome is what the controller did with one write.
type Outcome string

// Outcomes, as the journal and ChangeResult report them.
const (
	// OutcomeApplied: the change was made (the first success of its Seq, or an unfenced write).
	OutcomeApplied Outcome = "applied"
	// OutcomeRepeat: the same Seq had succeeded before; the change was made again idempotently.
	OutcomeRepeat Outcome = "repeat"
	// OutcomeRefused: the write was stale (older Seq, or a superseded release) and changed nothing.
	OutcomeRefused Outcome = "refused"
	// OutcomeFailed: the write was accepted but the change failed (see Detail); a retry may repeat it.
	OutcomeFailed Outcome = "failed"
)

// JournalEntry is one write to a service, as the journal records it.
type JournalEntry struct {
	// Time is when the controller answered.
	Time time.Time `json:"time"`
	// Action is bootstrap, deploy, traffic, promote or rollback; Version and Percent its arguments.
	Action  string `json:"action"`
	Version string `json:"version"`
	Percent *int   `json:"percent,omitempty"`
	// Fence is the write's token (empty for unfenced writes).
	Fence
	// Outcome is what the controller did; Detail says why a write was refused or failed.
	Outcome Outcome `json:"outcome"`
	Detail  string  `json:"detail,omitempty"`
}

// Journal is the answer to GET /v1/services/{service}/journal: the service's fencing state and its last
// MaxJournal writes, oldest first.
type Journal struct {
	Service string         `json:"service"`
	Fence   *FenceState    `json:"fence,omitempty"`
	Entries []JournalEntry `json:"entries"`
}

// ChangeResult is the answer to every successful change: the service's state after it and what the
// controller did with the request.
type ChangeResult struct {
	ServiceState
	// Outcome is applied or repeat.
	Outcome Outcome `json:"outcome"`
	// Repeat is true when the step had already succeeded with this Seq (Outcome repeat): nothing new
	// happened, and the caller may say so.
	Repeat bool `json:"repeat,omitempty"`
}

// write is one change request: what it asks for and the token it carries.
type write struct {
	action  string
	version string
	percent *int
	fence   Fence
}

func (w write) String() string {
	s := w.action + " " + w.version
	if w.percent != nil {
		s += " " + strconv.Itoa(*w.percent) + "%"
	}
	return s
}

func (f *FenceState) String() string {
	w := write{action: f.Action, version: f.Version, percent: f.Percent}
	return fmt.Sprintf("step %q (%s, seq %d) of release %s", f.Step, w, f.Seq, f.ReleaseID)
}

// admit decides what to do with w given the service's fencing state cur (nil: none yet). It returns the
// state to record and the outcome a success will have, or the error to answer: 409 StaleWrite for a
// stale write, 409 for a Seq reused for another change.
func admit(cur *FenceState, w write) (*FenceState, Outcome, error) {
	if !w.fence.Fenced() {
		return cur, OutcomeApplied, nil
	}
	what := fmt.Sprintf("%s (step %q, seq %d) of release %s", w, w.fence.Step, w.fence.Seq, w.fence.ReleaseID)
	newest := func(superseded []string) *FenceState {
		return &FenceState{ReleaseID: w.fence.ReleaseID, Seq: w.fence.Seq, Step: w.fence.Step, Action: w.action,
			Version: w.version, Percent: w.percent, Superseded: superseded}
	}
	switch {
	case cur == nil:
		return newest(nil), OutcomeApplied, nil
	case slices.Contains(cur.Superseded, w.fence.ReleaseID):
		return cur, OutcomeRefused, staleError("stale write refused: %s comes from a release this service has moved on "+
			"from; the newest is %s. It changes nothing", what, cur)
	case cur.ReleaseID != w.fence.ReleaseID:
		sup := append(slices.Clone(cur.Superseded), cur.ReleaseID)
		if len(sup) > maxSuperseded {
			sup = sup[len(sup)-maxSuperseded:]
		}
		return newest(sup), OutcomeApplied, nil
	case w.fence.Seq < cur.Seq:
		return cur, OutcomeRefused, staleError("stale write refused: %s is older than the newest step applied to "+
			"this service, %s; it is a late write from a cancelled or partitioned attempt and changes nothing",
			what, cur)
	case w.fence.Seq > cur.Seq:
		return newest(cur.Superseded), OutcomeApplied, nil
	}
	if w.action != cur.Action || w.version != cur.Version || !equalPercent(w.percent, cur.Percent) {
		return cur, OutcomeRefused, errorf(http.StatusConflict, "fencing conflict: %s reuses seq %d, which was "+
			"first used for %s; a retry must repeat the same step with the same seq, a new step needs a newer "+
			"one (a bug in the caller)", what, w.fence.Seq, cur)
	}
	if cur.Done {
		return cur, OutcomeRepeat, nil
	}
	return cur, OutcomeApplied, nil
}

func equalPercent(a, b *int) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }

func staleError(format string, args ...any) error {
	return &apiError{status: http.StatusConflict, code: CodeStaleWrite, msg: fmt.Sprintf(format, args...)}
}

// change runs op, one write to service name, under the service's op lock and its fencing rules, and
// records the write in the journal. Writes to a service the fleet does not have are not fenced (there
// is nothing to protect; op answers 404 or, for rollback, does nothing), but journalled once it exists.
func (c *controller) change(ctx context.Context, name string, w write, op func(context.Context) (ServiceState, error)) (ChangeResult, error) {
	defer c.lockOp(name)()
	c.mu.Lock()
	outcome := OutcomeApplied
	var prev *FenceState
	if svc := c.services[name]; svc != nil {
		prev = svc.Fence
		next, o, err := admit(svc.Fence, w)
		if err != nil {
			c.journalLocked(svc, w, o, err)
			serr := c.saveLocked()
			c.mu.Unlock()
			c.log.Warn("write refused", "service", name, "write", w.String(), "releaseID", w.fence.ReleaseID,
				"seq", w.fence.Seq, "step", w.fence.Step, "error", err)
			if serr != nil {
				c.log.Error("could not record a refused write in the journal", "service", name, "error", serr)
			}
			return ChangeResult{}, err
		}
		svc.Fence, outcome = next, o
	}
	c.mu.Unlock()

	st, err := op(ctx)

	c.mu.Lock()
	defer c.mu.Unlock()
	svc := c.services[name]
	if svc == nil {
		return ChangeResult{ServiceState: st, Outcome: outcome}, err
	}
	if err != nil {
		outcome = OutcomeFailed
		if prev != nil && svc.Fence != nil && svc.Fence.ReleaseID != prev.ReleaseID {
			// A release takes over only by a change that happened: a failed one (e.g. a conflicting
			// deploy) must not lock out the release that is still running here.
			svc.Fence = prev
		}
	} else if svc.Fence != nil && w.fence.Fenced() && svc.Fence.ReleaseID == w.fence.ReleaseID && svc.Fence.Seq == w.fence.Seq {
		svc.Fence.Done = true
	}
	c.journalLocked(svc, w, outcome, err)
	if serr := c.saveLocked(); serr != nil {
		if err == nil {
			// The change happened but is not recorded: say so, and let the caller's retry repeat it.
			return ChangeResult{}, serr
		}
		c.log.Error("could not record a failed write in the journal", "service", name, "error", serr)
	}
	if err != nil {
		return ChangeResult{}, err
	}
	if outcome == OutcomeRepeat {
		c.log.Info("idempotent repeat", "service", name, "write", w.String(), "releaseID", w.fence.ReleaseID,
			"seq", w.fence.Seq, "step", w.fence.Step)
	}
	st.Fence = cloneFence(svc.Fence)
	return ChangeResult{ServiceState: st, Outcome: outcome, Repeat: outcome == OutcomeRepeat}, nil
}

// journalLocked appends one entry to the service's journal, keeping the newest MaxJournal. Caller holds c.mu.
func (c *controller) journalLocked(svc *service, w write, o Outcome, err error) {
	e := JournalEntry{Time: time.Now().UTC(), Action: w.action, Version: w.version, Percent: w.percent,
		Fence: w.fence, Outcome: o}
	if err != nil {
		e.Detail = err.Error()
	}
	svc.Journal = append(svc.Journal, e)
	if over := len(svc.Journal) - MaxJournal; over > 0 {
		svc.Journal = slices.Delete(svc.Journal, 0, over)
	}
}

// journal is one service's journal, or 404.
func (c *controller) journal(name string) (Journal, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	svc := c.services[name]
	if svc == nil {
		return Journal{}, errorf(http.StatusNotFound, "service %q is not in the fleet: nothing was written to it", name)
	}
	return Journal{Service: name, Fence: cloneFence(svc.Fence), Entries: append([]JournalEntry{}, svc.Journal...)}, nil
}

func cloneFence(f *FenceState) *FenceState {
	if f == nil {
		return nil
	}
	c := *f
	c.Superseded = slices.Clone(f.Superseded)
	return &c
}
