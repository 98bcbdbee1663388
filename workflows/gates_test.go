package workflows

import (
	"crypto/ed25519"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"

	"github.com/shepherd-release/shepherd/approvals"
	"github.com/shepherd-release/shepherd/record"
	"github.com/shepherd-release/shepherd/spec"
)

// people holds the test's keys: alice (sre), bob (sre, qa), and mallory, whose key nobody trusts.
type people struct{ alice, bob, mallory ssh.Signer }

func newPeople(t *testing.T) people {
	key := func() ssh.Signer {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		require.NoError(t, err)
		s, err := ssh.NewSignerFromKey(priv)
		require.NoError(t, err)
		return s
	}
	return people{alice: key(), bob: key(), mallory: key()}
}

// trust configures the harness' worker with alice's and bob's keys; unsigned approvals are accepted
// only in the listed environments.
func (p people) trust(t *testing.T, h *harness, unsigned ...string) {
	line := func(who string, k ssh.Signer) string {
		return who + " " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k.PublicKey()))) + "\n"
	}
	v, err := approvals.NewVerifier(strings.NewReader(line("alice@example.com", p.alice)+line("bob@example.com", p.bob)),
		map[string][]string{"sre": {"alice@example.com", "bob@example.com"}, "qa": {"bob@example.com"}})
	require.NoError(t, err)
	h.acts.Approvals = &approvals.Policy{Verifier: v, UnsignedEnvironments: unsigned}
}

// signed is an approve request by key for gate of the test release's run, valid for an hour from at.
func signed(t *testing.T, by string, key ssh.Signer, runID, gate string, at time.Time) ControlRequest {
	c := approvals.Claim{WorkflowID: "release:checkout:production", RunID: runID, Gate: gate, Action: Approve, Expires: at.Add(time.Hour)}
	sig, err := approvals.Sign(key, approvals.Namespace, c.Payload())
	require.NoError(t, err)
	return ControlRequest{By: by, Signed: &approvals.Signed{Claim: c, Signature: sig}}
}

const testRun = "default-test-run-id" // the run ID of Temporal's test environment

func gatedSpec(approvers int, roles ...string) spec.Release {
	s := baseSpec()
	s.Stages = []spec.Stage{{Percent: 10, Soak: spec.Duration(time.Minute)},
		{Percent: 100, Soak: spec.Duration(time.Minute), Approval: true, Approvers: approvers, ApprovalRoles: roles}}
	return s
}

func TestSignedApprovalRecordsTheVerifiedIdentity(t *testing.T) {
	p := newPeople(t)
	h := newHarness(t, gatedSpec(1, "sre"))
	p.trust(t, h)
	var ok *outcome
	h.at(5*time.Minute, func() {
		req := signed(t, "typed-name-ignored", p.alice, testRun, "stage:2", h.env.Now())
		req.Comment = "dashboards fine"
		ok = h.update(Approve, req)
	})
	res, err := h.run()
	require.NoError(t, err)
	assert.Equal(t, record.PhaseSucceeded, res.Phase)
	fp := ssh.FingerprintSHA256(p.alice.PublicKey())
	assert.Equal(t, "stage 2 approved by alice@example.com (verified, "+fp+")", ok.accepted(t).Message)
	approved := decisionsOf(res, record.KindApproval)
	require.Len(t, approved, 1)
	assert.Contains(t, approved[0], "stage 2 approved by alice@example.com (verified, "+fp+") after ")
}

// Each forgery is refused with its reason (update) and recorded as a rejection (signal); the gate stays
// closed until a valid approval arrives.
func TestForgedReplayedExpiredAndWrongRoleApprovalsAreRejected(t *testing.T) {
	p := newPeople(t)
	h := newHarness(t, gatedSpec(1, "qa"))
	p.trust(t, h)
	got := map[string]*outcome{}
	h.at(5*time.Minute, func() {
		now := h.env.Now()
		forged := signed(t, "alice", p.alice, testRun, "stage:2", now)
		forged.Signed.Claim.Gate = "stage:9"
		expired := signed(t, "bob", p.bob, testRun, "stage:2", now.Add(-2*time.Hour))
		got["forged"] = h.update(Approve, forged)
		got["another run"] = h.update(Approve, signed(t, "bob", p.bob, "an-earlier-run", "stage:2", now))
		got["another stage"] = h.update(Approve, signed(t, "bob", p.bob, testRun, "stage:1", now))
		got["expired"] = h.update(Approve, expired)
		got["wrong role"] = h.update(Approve, signed(t, "alice", p.alice, testRun, "stage:2", now))
		got["untrusted key"] = h.update(Approve, signed(t, "mallory", p.mallory, testRun, "stage:2", now))
		got["unsigned in production"] = h.update(Approve, ControlRequest{By: "mallory", Role: "qa"})
		h.signal(Approve, signed(t, "mallory", p.mallory, testRun, "stage:2", now))
	})
	h.at(10*time.Minute, func() { got["valid"] = h.update(Approve, signed(t, "bob", p.bob, testRun, "stage:2", h.env.Now())) })
	res, err := h.run()
	require.NoError(t, err)
	assert.Equal(t, record.PhaseSucceeded, res.Phase)
	for name, want := range map[string]string{
		"forged":                 "approve stage:9, but the release waits for approve stage:2",
		"another run":            "run an-earlier-run, not this release",
		"another stage":          "approve stage:1, but the release waits for approve stage:2",
		"expired":                "expired at",
		"wrong role":             "alice@example.com holds roles sre, the gate needs qa",
		"untrusted key":          "is not in the operators' allowed signers",
		"unsigned in production": "an approval in production must be signed",
	} {
		got[name].rejected(t, want)
	}
	assert.Contains(t, got["valid"].accepted(t).Message, "approved by bob@example.com (verified")
	rejections := strings.Join(decisionsOf(res, record.KindRejection), "\n")
	assert.Contains(t, rejections, "approve signal rejected: unknown key", "a forged signal is recorded as a rejection")
	assert.Equal(t, 7, strings.Count(rejections, "approve update rejected"), rejections)
	assert.Equal(t, 1, strings.Count(rejections, "approve signal rejected"), rejections)
	// The gate opened only with the valid approval, 10 minutes in.
	approved := decisionsOf(res, record.KindApproval)
	require.Len(t, approved, 1)
	assert.Contains(t, approved[0], "after 9m0s")
}

func TestQuorumNeedsDistinctApprovers(t *testing.T) {
	p := newPeople(t)
	h := newHarness(t, gatedSpec(2))
	p.trust(t, h)
	var first, again, second *outcome
	var midway record.Status
	h.at(5*time.Minute, func() {
		first = h.update(Approve, signed(t, "alice", p.alice, testRun, "stage:2", h.env.Now()))
	})
	h.at(6*time.Minute, func() {
		midway = h.status()
		again = h.update(Approve, signed(t, "alice", p.alice, testRun, "stage:2", h.env.Now()))
	})
	h.at(7*time.Minute, func() { second = h.update(Approve, signed(t, "bob", p.bob, testRun, "stage:2", h.env.Now())) })
	res, err := h.run()
	require.NoError(t, err)
	assert.Equal(t, record.PhaseSucceeded, res.Phase)
	assert.Contains(t, first.accepted(t).Message, "approval 1 of 2 by alice@example.com (verified")
	again.rejected(t, "alice@example.com already approved this gate; it needs 2 distinct approvers")
	assert.Contains(t, second.accepted(t).Message, "stage 2 approved by alice@example.com (verified")
	assert.Contains(t, second.accepted(t).Message, "and bob@example.com (verified")
	require.NotNil(t, midway.Stage)
	assert.Equal(t, record.PhaseAwaitingApproval, midway.Phase, "one approval of two does not open the gate")
	assert.Equal(t, "alice@example.com", midway.Stage.ApprovedBy)
	assert.Equal(t, 1, midway.Stage.ApprovalsNeeded)
}

// Where the operators allow it (a dev or staging environment), an unsigned approval counts and the record
// says it is unverified; with a role required, the typed role must match.
func TestUnsignedApprovalsOnlyWhereAllowed(t *testing.T) {
	p := newPeople(t)
	s := gatedSpec(1, "qa")
	s.Environment = "staging"
	h := newHarness(t, s)
	p.trust(t, h, "staging")
	var noRole, ok *outcome
	h.at(5*time.Minute, func() {
		noRole = h.update(Approve, ControlRequest{By: "quinn"})
		ok = h.update(Approve, ControlRequest{By: "quinn", Role: "qa"})
	})
	res, err := h.run()
	require.NoError(t, err)
	assert.Equal(t, record.PhaseSucceeded, res.Phase)
	noRole.rejected(t, `this gate needs role qa; approve with "role" (got "")`)
	assert.Equal(t, "stage 2 approved by quinn (unverified)", ok.accepted(t).Message)
}

// signedStart signs the start of s by key, as `shepherd start --key` does.
func signedStart(t *testing.T, s spec.Release, key ssh.Signer, at time.Time) spec.Release {
	c := approvals.Claim{WorkflowID: "release:checkout:production", Gate: s.StartGate(), Action: "start", Expires: at.Add(time.Hour)}
	sig, err := approvals.Sign(key, approvals.Namespace, c.Payload())
	require.NoError(t, err)
	s.StartedBy = &approvals.Signed{Claim: c, Signature: sig}
	return s
}

func TestFourEyesTheStarterCannotApprove(t *testing.T) {
	p := newPeople(t)
	h := newHarness(t, gatedSpec(1))
	h.spec = signedStart(t, h.spec, p.alice, h.env.Now())
	p.trust(t, h)
	h.acts.Approvals.FourEyesEnvironments = []string{"production"}
	var self, other *outcome
	h.at(5*time.Minute, func() { self = h.update(Approve, signed(t, "alice", p.alice, testRun, "stage:2", h.env.Now())) })
	h.at(6*time.Minute, func() { other = h.update(Approve, signed(t, "bob", p.bob, testRun, "stage:2", h.env.Now())) })
	res, err := h.run()
	require.NoError(t, err)
	assert.Equal(t, record.PhaseSucceeded, res.Phase)
	self.rejected(t, "alice@example.com started this release and may not approve it (four eyes)")
	assert.Contains(t, other.accepted(t).Message, "approved by bob@example.com (verified")
	assert.Contains(t, strings.Join(decisionsOf(res, record.KindCheck), "\n"), "started by alice@example.com (verified, ")
}

func TestFourEyesNeedASignedStartOfThisVerySpec(t *testing.T) {
	p := newPeople(t)
	for name, tc := range map[string]struct {
		spec func(h *harness) spec.Release
		want string
	}{
		"unsigned": {func(h *harness) spec.Release { return h.spec }, "releases in production need four eyes, so they must be started signed"},
		"signature of another spec": {func(h *harness) spec.Release {
			s := signedStart(t, h.spec, p.alice, h.env.Now())
			s.Version = "v3" // changed after signing
			return s
		}, "the signed start does not verify: signed for something else"},
	} {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, gatedSpec(1))
			p.trust(t, h)
			h.acts.Approvals.FourEyesEnvironments = []string{"*"}
			h.spec = tc.spec(h)
			_, err := h.run()
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.Empty(t, h.target.Calls(), "nothing changes when the start is refused")
		})
	}
}

func twoStages() spec.Release {
	s := baseSpec()
	s.Stages = []spec.Stage{{Percent: 10, Soak: spec.Duration(time.Minute)}, {Percent: 100, Soak: spec.Duration(time.Minute)}}
	return s
}

// decidedAt is when the first decision whose message contains text was made, relative to the start.
func decidedAt(t *testing.T, h *harness, res record.Status, text string) time.Duration {
	t.Helper()
	for _, d := range res.Decisions {
		if strings.Contains(d.Message, text) {
			return d.Time.Sub(h.start)
		}
	}
	t.Fatalf("no decision says %q", text)
	return 0
}

// A release crossing a change freeze waits, visibly, and moves on when the freeze ends.
func TestChangeFreezeHoldsTrafficShiftsUntilItEnds(t *testing.T) {
	p := newPeople(t)
	h := newHarness(t, twoStages())
	p.trust(t, h)
	f := approvals.Freeze{Name: "year end", Environments: []string{"production"}, From: h.start.Add(30 * time.Second), To: h.start.Add(2 * time.Hour)}
	require.NoError(t, f.Validate("freezes[0]"))
	h.acts.Approvals.Freezes = []approvals.Freeze{f}
	h.acts.Approvals.BreakGlassRoles = []string{"sre"}
	var during record.Status
	var early *outcome
	h.at(time.Hour, func() {
		during = h.status()
		early = h.update(Approve, signed(t, "mallory", p.mallory, testRun, "freeze:stage:2", h.env.Now()))
	})
	res, err := h.run()
	require.NoError(t, err)
	assert.Equal(t, record.PhaseSucceeded, res.Phase)
	assert.Equal(t, record.PhaseFrozen, during.Phase)
	assert.Contains(t, during.Decisions[len(during.Decisions)-1].Message, `the shift to stage 2 (100%) waits for the end of change freeze "year end"`)
	early.rejected(t, "is not in the operators' allowed signers")
	assert.GreaterOrEqual(t, decidedAt(t, h, res, "traffic on v2 is 100%"), 2*time.Hour, "the shift waited for the freeze to end")
	assert.Contains(t, strings.Join(decisionsOf(res, record.KindTransition), "\n"), `change freeze "year end" ended`)
}

func TestBreakGlassLetsAReleaseThroughAFreezeLoudly(t *testing.T) {
	p := newPeople(t)
	h := newHarness(t, twoStages())
	p.trust(t, h)
	f := approvals.Freeze{Name: "incident freeze", From: h.start.Add(-time.Hour), To: h.start.Add(48 * time.Hour)}
	require.NoError(t, f.Validate("freezes[0]"))
	h.acts.Approvals.Freezes = []approvals.Freeze{f}
	h.acts.Approvals.BreakGlassRoles = []string{"qa"}
	var wrongRole, ok1, ok2, ok3 *outcome
	h.at(10*time.Minute, func() {
		wrongRole = h.update(Approve, signed(t, "alice", p.alice, testRun, "freeze:stage:1", h.env.Now()))
		ok1 = h.update(Approve, signed(t, "bob", p.bob, testRun, "freeze:stage:1", h.env.Now()))
	})
	h.at(20*time.Minute, func() { ok2 = h.update(Approve, signed(t, "bob", p.bob, testRun, "freeze:stage:2", h.env.Now())) })
	h.at(30*time.Minute, func() { ok3 = h.update(Approve, signed(t, "bob", p.bob, testRun, "freeze:promote", h.env.Now())) })
	res, err := h.run()
	require.NoError(t, err)
	assert.Equal(t, record.PhaseSucceeded, res.Phase)
	wrongRole.rejected(t, "alice@example.com holds roles sre, the gate needs qa")
	ok1.accepted(t)
	ok2.accepted(t)
	ok3.accepted(t)
	approvalsLog := strings.Join(decisionsOf(res, record.KindApproval), "\n")
	assert.Contains(t, approvalsLog, `BREAK-GLASS: the shift to stage 1 (10%) goes ahead during change freeze "incident freeze", approved by bob@example.com (verified`)
	assert.Contains(t, approvalsLog, `BREAK-GLASS: promotion goes ahead during change freeze "incident freeze"`)
	assert.Equal(t, 30*time.Minute, decidedAt(t, h, res, "promoted v2"), "every shift and the promotion waited for its own break-glass approval")
}

// Where operators make resume approval-like, an unsigned resume is refused and a signed one is recorded
// with the verified identity; pause never needs a signature.
func TestSignedResumeWhereOperatorsRequireIt(t *testing.T) {
	p := newPeople(t)
	h := newHarness(t, twoStages())
	p.trust(t, h)
	h.acts.Approvals.SignedResume = true
	var pause, unsigned, ok *outcome
	h.at(30*time.Second, func() { pause = h.update(Pause, ControlRequest{By: "anyone", Reason: "checking"}) })
	h.at(10*time.Minute, func() {
		unsigned = h.update(Resume, ControlRequest{By: "mallory"})
		c := approvals.Claim{WorkflowID: "release:checkout:production", RunID: testRun, Gate: "resume:stage:1", Action: Resume, Expires: h.env.Now().Add(time.Hour)}
		sig, err := approvals.Sign(p.alice, approvals.Namespace, c.Payload())
		require.NoError(t, err)
		ok = h.update(Resume, ControlRequest{By: "alice", Signed: &approvals.Signed{Claim: c, Signature: sig}})
	})
	res, err := h.run()
	require.NoError(t, err)
	assert.Equal(t, record.PhaseSucceeded, res.Phase)
	pause.accepted(t)
	unsigned.rejected(t, "a resume in production must be signed")
	ok.accepted(t)
	assert.Contains(t, strings.Join(decisionsOf(res, record.KindControl), "\n"), "resume by alice@example.com (verified, SHA256:")
}

// Stopping never needs a signature: an unsigned pause or abort counts at once and is recorded as
// unverified; a signed one counts at once too, and its signer is recorded once verified.
func TestStoppingNeverWaitsOnASignature(t *testing.T) {
	p := newPeople(t)
	h := newHarness(t, twoStages())
	p.trust(t, h)
	h.at(30*time.Second, func() { h.signal(Pause, ControlRequest{By: "night-shift", Reason: "alert"}) })
	h.at(5*time.Minute, func() {
		c := approvals.Claim{WorkflowID: "release:checkout:production", RunID: testRun, Gate: Abort, Action: Abort, Expires: h.env.Now().Add(time.Hour)}
		sig, err := approvals.Sign(p.alice, approvals.Namespace, c.Payload())
		require.NoError(t, err)
		h.signal(Abort, ControlRequest{By: "alice", Reason: "bad canary", Signed: &approvals.Signed{Claim: c, Signature: sig}})
	})
	res, err := h.run()
	require.NoError(t, err)
	assert.Equal(t, record.PhaseRolledBack, res.Phase)
	controls := strings.Join(decisionsOf(res, record.KindControl), "\n")
	assert.Contains(t, controls, "pause by night-shift (unverified): pause accepted")
	assert.Contains(t, controls, "abort by alice (signature being verified): abort accepted")
	assert.Contains(t, controls, "abort signed by alice@example.com (verified, SHA256:")
}

func TestSignedPartIsBounded(t *testing.T) {
	h := newHarness(t, gatedSpec(1))
	var big *outcome
	h.at(5*time.Minute, func() {
		big = h.update(Approve, ControlRequest{By: "x", Signed: &approvals.Signed{Signature: strings.Repeat("A", 3*MaxControlText)}})
		h.signal(Abort, ControlRequest{By: "ci"})
	})
	_, err := h.run()
	require.NoError(t, err)
	big.rejected(t, `"signed" is limited to`)
}

// An abort while a freeze holds the release rolls it back at once; a pause there is refused (nothing
// moves while frozen, so there is no soak clock to stop).
func TestAbortWhileFrozenRollsBack(t *testing.T) {
	p := newPeople(t)
	h := newHarness(t, twoStages())
	p.trust(t, h)
	f := approvals.Freeze{Name: "year end", From: h.start.Add(30 * time.Second), To: h.start.Add(48 * time.Hour)}
	require.NoError(t, f.Validate("freezes[0]"))
	h.acts.Approvals.Freezes = []approvals.Freeze{f}
	var pause *outcome
	h.at(time.Hour, func() {
		pause = h.update(Pause, ControlRequest{By: "carol"})
		h.signal(Abort, ControlRequest{By: "ci", Reason: "give up"})
	})
	res, err := h.run()
	require.NoError(t, err)
	assert.Equal(t, record.PhaseRolledBack, res.Phase)
	pause.rejected(t, "pause applies only while Progressing")
	assert.Equal(t, []string{"deploy v2", "health", "traffic 10", "traffic 0", "rollback"}, h.target.Calls())
	assert.Equal(t, time.Hour, h.elapsed().Round(time.Minute))
}
