//go:build unix

package fleet

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

func pct(p int) *int { return &p }

func TestAdmit(t *testing.T) {
	fence := func(release string, seq int64, step string) Fence {
		return Fence{ReleaseID: release, Seq: seq, Step: step}
	}
	traffic := func(p int, f Fence) write { return write{action: "traffic", version: "v2", percent: pct(p), fence: f} }
	deploy := func(f Fence) write { return write{action: "deploy", version: "v2", fence: f} }
	// cur: release A applied traffic 50 % as seq 5, successfully; release Z was superseded earlier.
	cur := &FenceState{ReleaseID: "A", Seq: 5, Step: "traffic", Action: "traffic", Version: "v2", Percent: pct(50),
		Done: true, Superseded: []string{"Z"}}
	for _, tc := range []struct {
		name    string
		cur     *FenceState
		w       write
		outcome Outcome
		stale   bool   // refused with CodeStaleWrite
		status  int    // other refusal
		seq     int64  // recorded seq afterwards
		release string // recorded release afterwards
	}{
		{name: "first fenced write", w: deploy(fence("A", 1, "deploy")), outcome: OutcomeApplied, seq: 1, release: "A"},
		{name: "unfenced write leaves the state", cur: cur, w: traffic(25, Fence{}), outcome: OutcomeApplied, seq: 5, release: "A"},
		{name: "seq 0 is unfenced", cur: cur, w: traffic(25, fence("A", 0, "traffic")), outcome: OutcomeApplied, seq: 5, release: "A"},
		{name: "newer seq", cur: cur, w: traffic(100, fence("A", 6, "traffic")), outcome: OutcomeApplied, seq: 6, release: "A"},
		{name: "same seq, done: repeat", cur: cur, w: traffic(50, fence("A", 5, "traffic")), outcome: OutcomeRepeat, seq: 5, release: "A"},
		{name: "same seq, not done yet: applied", cur: &FenceState{ReleaseID: "A", Seq: 5, Action: "traffic", Version: "v2", Percent: pct(50)},
			w: traffic(50, fence("A", 5, "traffic")), outcome: OutcomeApplied, seq: 5, release: "A"},
		{name: "older seq: stale", cur: cur, w: traffic(25, fence("A", 4, "traffic")), outcome: OutcomeRefused, stale: true, seq: 5, release: "A"},
		{name: "same seq, other change: conflict", cur: cur, w: traffic(25, fence("A", 5, "traffic")), outcome: OutcomeRefused,
			status: http.StatusConflict, seq: 5, release: "A"},
		{name: "same seq, other action: conflict", cur: cur, w: deploy(fence("A", 5, "deploy")), outcome: OutcomeRefused,
			status: http.StatusConflict, seq: 5, release: "A"},
		{name: "new release supersedes, whatever its seq", cur: cur, w: deploy(fence("B", 1, "deploy")), outcome: OutcomeApplied, seq: 1, release: "B"},
		{name: "superseded release: stale", cur: cur, w: deploy(fence("Z", 9, "deploy")), outcome: OutcomeRefused, stale: true, seq: 5, release: "A"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			next, o, err := admit(tc.cur, tc.w)
			if o != tc.outcome {
				t.Errorf("outcome %q, want %q (err %v)", o, tc.outcome, err)
			}
			var ae *apiError
			switch {
			case tc.stale || tc.status != 0:
				if !errors.As(err, &ae) {
					t.Fatalf("err %v, want a refusal", err)
				}
				if tc.stale && (ae.status != http.StatusConflict || ae.code != CodeStaleWrite) {
					t.Errorf("stale refusal: %d %q: %v", ae.status, ae.code, err)
				}
				if !tc.stale && (ae.status != tc.status || ae.code == CodeStaleWrite) {
					t.Errorf("refusal: %d %q, want %d without code StaleWrite: %v", ae.status, ae.code, tc.status, err)
				}
			case err != nil:
				t.Fatalf("unexpected refusal: %v", err)
			}
			if next == nil || next.Seq != tc.seq || next.ReleaseID != tc.release {
				t.Errorf("recorded %+v, want release %s seq %d", next, tc.release, tc.seq)
			}
		})
	}

	// Superseded releases are remembered, boundedly, and the newest ones are kept.
	f := &FenceState{ReleaseID: "r0", Seq: 1, Action: "deploy", Version: "v2"}
	for i := 1; i <= maxSuperseded+5; i++ {
		var err error
		f, _, err = admit(f, deploy(fence(fmt.Sprintf("r%d", i), 1, "deploy")))
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(f.Superseded) != maxSuperseded || f.Superseded[len(f.Superseded)-1] != fmt.Sprintf("r%d", maxSuperseded+4) {
		t.Errorf("superseded after %d releases: %d entries, last %q", maxSuperseded+5, len(f.Superseded), f.Superseded[len(f.Superseded)-1])
	}
}

// fenced posts one fenced write and returns the status and body.
func (h *harness) fenced(service, what string, version string, percent *int, f Fence) (int, []byte) {
	h.t.Helper()
	body := map[string]any{"version": version, "releaseID": f.ReleaseID, "seq": f.Seq, "step": f.Step}
	if percent != nil {
		body["percent"] = *percent
	}
	return h.call(http.MethodPost, "/v1/services/"+service+"/"+what, body)
}

// mustChange posts a fenced write that must succeed and returns the answer.
func (h *harness) mustChange(service, what string, version string, percent *int, f Fence) ChangeResult {
	h.t.Helper()
	code, data := h.fenced(service, what, version, percent, f)
	if code != http.StatusOK {
		h.t.Fatalf("%s %s seq %d: %d %s", what, version, f.Seq, code, data)
	}
	var res ChangeResult
	if err := json.Unmarshal(data, &res); err != nil {
		h.t.Fatalf("%s: %v in %s", what, err, data)
	}
	return res
}

// mustRefuseStale posts a fenced write that must be refused as stale and returns the error message.
func (h *harness) mustRefuseStale(service, what string, version string, percent *int, f Fence) string {
	h.t.Helper()
	code, data := h.fenced(service, what, version, percent, f)
	var e ErrorResponse
	if err := json.Unmarshal(data, &e); err != nil || code != http.StatusConflict || e.Code != CodeStaleWrite {
		h.t.Fatalf("%s %s seq %d (step %s): got %d %s, want 409 with code %s", what, version, f.Seq, f.Step, code, data, CodeStaleWrite)
	}
	return e.Error
}

func (h *harness) journal(service string) Journal {
	h.t.Helper()
	code, data := h.call(http.MethodGet, "/v1/services/"+service+"/journal", nil)
	if code != http.StatusOK {
		h.t.Fatalf("GET journal of %s: %d %s", service, code, data)
	}
	var j Journal
	if err := json.Unmarshal(data, &j); err != nil {
		h.t.Fatal(err)
	}
	return j
}

// outcomes lists the journal as "action seq outcome" lines.
func outcomes(j Journal) []string {
	var out []string
	for _, e := range j.Entries {
		s := fmt.Sprintf("%s %s", e.Action, e.Version)
		if e.Percent != nil {
			s += fmt.Sprintf(" %d%%", *e.Percent)
		}
		out = append(out, fmt.Sprintf("%s seq %d %s", s, e.Seq, e.Outcome))
	}
	return out
}

// TestFencedRollbackRefusesStaleTraffic is the race fencing exists for: a traffic shift to 25 % is sent,
// its worker dies, the release rolls back (traffic 0, remove canary), and then the old request arrives.
// It must change nothing, and say why; retries of a step are idempotent repeats; a controller restart
// keeps all of it.
func TestFencedRollbackRefusesStaleTraffic(t *testing.T) {
	dir := t.TempDir()
	h := startFleet(t, Config{StateDir: dir})
	const svc, rel = "fenced", "release:fenced:production/run-1"
	st := h.op(svc, "bootstrap", VersionRequest{Version: "v1"})
	killOnCleanup(t, pids(st)...)

	res := h.mustChange(svc, "deploy", "v2", nil, Fence{rel, 1, "deploy"})
	killOnCleanup(t, pids(res.ServiceState)...)
	canary := instanceOf(t, res.ServiceState, "v2").PID
	if res.Outcome != OutcomeApplied || res.Repeat {
		t.Errorf("first deploy: outcome %q repeat %v, want applied", res.Outcome, res.Repeat)
	}
	// The retry of the deploy: a repeat, said so, and the canary is the same process.
	res = h.mustChange(svc, "deploy", "v2", nil, Fence{rel, 1, "deploy"})
	if res.Outcome != OutcomeRepeat || !res.Repeat || instanceOf(t, res.ServiceState, "v2").PID != canary {
		t.Errorf("repeated deploy: outcome %q repeat %v, canary %+v (was pid %d)", res.Outcome, res.Repeat,
			instanceOf(t, res.ServiceState, "v2"), canary)
	}
	h.mustChange(svc, "traffic", "v2", pct(5), Fence{rel, 2, "traffic"})
	// Seq 3 (traffic 25 %) goes out and hangs; the release rolls back meanwhile.
	res = h.mustChange(svc, "traffic", "v2", pct(0), Fence{rel, 4, "rollback-traffic"})
	if res.Weight != 0 || res.Fence == nil || res.Fence.Seq != 4 {
		t.Fatalf("rollback traffic: %+v", res)
	}

	msg := h.mustRefuseStale(svc, "traffic", "v2", pct(25), Fence{rel, 3, "traffic"})
	for _, want := range []string{`step "traffic"`, "seq 3", "traffic v2 25%", `step "rollback-traffic"`, "seq 4", rel} {
		if !strings.Contains(msg, want) {
			t.Errorf("stale refusal %q does not say %q", msg, want)
		}
	}
	if st := h.get(svc); st.Weight != 0 {
		t.Fatalf("the stale traffic 25%% was applied: weight %d", st.Weight)
	}

	h.mustChange(svc, "rollback", "v2", nil, Fence{rel, 5, "remove-canary"})
	requireGone(t, canary)
	// Now even the rollback's own earlier step is stale, and so is the late traffic shift.
	h.mustRefuseStale(svc, "traffic", "v2", pct(0), Fence{rel, 4, "rollback-traffic"})
	h.mustRefuseStale(svc, "traffic", "v2", pct(25), Fence{rel, 3, "traffic"})
	// Reusing a seq for another change is refused, but not as stale.
	code, data := h.fenced(svc, "traffic", "v2", pct(50), Fence{rel, 5, "traffic"})
	if code != http.StatusConflict || strings.Contains(string(data), CodeStaleWrite) || !strings.Contains(string(data), "reuses seq 5") {
		t.Errorf("seq reused for another change: %d %s", code, data)
	}

	want := []string{
		"bootstrap v1 seq 0 applied",
		"deploy v2 seq 1 applied",
		"deploy v2 seq 1 repeat",
		"traffic v2 5% seq 2 applied",
		"traffic v2 0% seq 4 applied",
		"traffic v2 25% seq 3 refused",
		"rollback v2 seq 5 applied",
		"traffic v2 0% seq 4 refused",
		"traffic v2 25% seq 3 refused",
		"traffic v2 50% seq 5 refused",
	}
	if got := outcomes(h.journal(svc)); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("journal:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// A new controller on the same state directory keeps the fencing state and the journal.
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
	h2 := startFleet(t, Config{StateDir: dir})
	killOnCleanup(t, pids(h2.get(svc))...)
	if f := h2.get(svc).Fence; f == nil || f.ReleaseID != rel || f.Seq != 5 || f.Step != "remove-canary" || !f.Done {
		t.Fatalf("fence after restart: %+v", f)
	}
	h2.mustRefuseStale(svc, "traffic", "v2", pct(25), Fence{rel, 3, "traffic"})
	if st := h2.get(svc); st.Canary != "" || st.Weight != 0 {
		t.Fatalf("after restart the stale write changed the service: %+v", st)
	}
	res = h2.mustChange(svc, "rollback", "v2", nil, Fence{rel, 5, "remove-canary"})
	if !res.Repeat {
		t.Errorf("the rollback's retry after a restart is not reported as a repeat: %+v", res)
	}
	if got := outcomes(h2.journal(svc)); len(got) != len(want)+2 || got[len(got)-2] != "traffic v2 25% seq 3 refused" ||
		got[len(got)-1] != "rollback v2 seq 5 repeat" {
		t.Errorf("journal after restart:\n%s", strings.Join(got, "\n"))
	}
}

// TestNextReleaseSupersedes: release v2 then release v3 of one service, as the demo runs them. The second
// release's first write starts over at seq 1 and is applied; a late write of the first release is refused.
func TestNextReleaseSupersedes(t *testing.T) {
	h := startFleet(t, Config{})
	const svc, first, second = "demo", "release:demo:production/run-1", "release:demo:production/run-2"
	st := h.op(svc, "bootstrap", VersionRequest{Version: "v1"})
	killOnCleanup(t, pids(st)...)
	res := h.mustChange(svc, "deploy", "v2", nil, Fence{first, 1, "deploy"})
	killOnCleanup(t, pids(res.ServiceState)...)
	h.mustChange(svc, "traffic", "v2", pct(100), Fence{first, 2, "traffic"})
	res = h.mustChange(svc, "promote", "v2", nil, Fence{first, 3, "promote"})
	if res.Stable != "v2" {
		t.Fatalf("promote: %+v", res)
	}

	res = h.mustChange(svc, "deploy", "v3", nil, Fence{second, 1, "deploy"})
	killOnCleanup(t, pids(res.ServiceState)...)
	if res.Outcome != OutcomeApplied || res.Canary != "v3" || res.Fence.ReleaseID != second {
		t.Fatalf("deploy of the next release: %+v", res)
	}
	msg := h.mustRefuseStale(svc, "traffic", "v2", pct(100), Fence{first, 2, "traffic"})
	if !strings.Contains(msg, first) || !strings.Contains(msg, second) || !strings.Contains(msg, "moved on") {
		t.Errorf("refusal of the superseded release does not name both releases: %q", msg)
	}
	// A third release whose first change fails (another canary runs) does not take over.
	code, data := h.fenced(svc, "deploy", "v4", nil, Fence{"release:demo:staging/run-1", 1, "deploy"})
	if code != http.StatusConflict || strings.Contains(string(data), CodeStaleWrite) {
		t.Fatalf("deploy of v4 beside canary v3: %d %s", code, data)
	}
	h.mustChange(svc, "traffic", "v3", pct(0), Fence{second, 2, "rollback-traffic"})
	h.mustChange(svc, "rollback", "v3", nil, Fence{second, 3, "remove-canary"})
	// An unfenced write (a person with curl) still works and leaves the fence alone.
	code, data = h.call(http.MethodPost, "/v1/services/"+svc+"/traffic", TrafficRequest{Version: "v3", Percent: 0})
	if code != http.StatusOK {
		t.Fatalf("unfenced traffic: %d %s", code, data)
	}
	if f := h.get(svc).Fence; f.ReleaseID != second || f.Seq != 3 || len(f.Superseded) != 1 || f.Superseded[0] != first {
		t.Errorf("fence: %+v", f)
	}
}

func TestJournalIsBounded(t *testing.T) {
	h := startFleet(t, Config{})
	st := h.op("busy", "bootstrap", VersionRequest{Version: "v1"})
	killOnCleanup(t, pids(st)...)
	res := h.mustChange("busy", "deploy", "v2", nil, Fence{"r", 1, "deploy"})
	killOnCleanup(t, pids(res.ServiceState)...)
	for seq := int64(2); seq < MaxJournal+10; seq++ {
		h.mustChange("busy", "traffic", "v2", pct(int(seq%100)), Fence{"r", seq, "traffic"})
	}
	j := h.journal("busy")
	last := j.Entries[len(j.Entries)-1]
	if len(j.Entries) != MaxJournal || last.Seq != MaxJournal+9 || j.Entries[0].Seq != 10 {
		t.Errorf("journal after %d writes: %d entries, seq %d to %d; want the newest %d", MaxJournal+10, len(j.Entries),
			j.Entries[0].Seq, last.Seq, MaxJournal)
	}
}
