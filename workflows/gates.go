package workflows

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/shepherd-release/shepherd/activities"
	"github.com/shepherd-release/shepherd/approvals"
	"github.com/shepherd-release/shepherd/record"
)

// changeVerifiedApprovals verifies every approval (a local activity checks its signature against the
// worker's trust anchors) before it counts, and lets a gate need several distinct approvers.
const changeVerifiedApprovals = "verified-approvals"

// gate is an approval gate in progress: a stage's, or a pre-release sign-off's.
type gate struct {
	// claim names the gate in signed approvals: "stage:3", "signoff:qa".
	claim string
	// roles the approvers must hold one of (empty: anyone the policy accepts).
	roles []string
	// required is how many distinct approvers the gate needs.
	required int
	given    []givenApproval
}

// givenApproval is one accepted approval with the identity it proved.
type givenApproval struct {
	req      ControlRequest
	id       approvals.Identity
	verified bool
}

func (g *gate) done() bool { return len(g.given) >= g.required }

// who is "alice@example.com (verified, SHA256:…) and bob (unverified)".
func (g *gate) who() string {
	names := make([]string, len(g.given))
	for i, a := range g.given {
		names[i] = a.describe()
	}
	return strings.Join(names, " and ")
}

func (a givenApproval) describe() string {
	if a.verified {
		return fmt.Sprintf("%s (verified, %s)", a.id.Principal, a.id.Fingerprint)
	}
	return a.id.Principal + " (unverified)"
}

// comments joins the approvers' comments.
func (g *gate) comments() string {
	var out []string
	for _, a := range g.given {
		if t := a.req.text(); t != "" {
			out = append(out, t)
		}
	}
	return strings.Join(out, " / ")
}

func (g *gate) principals() []string {
	out := make([]string, len(g.given))
	for i, a := range g.given {
		out[i] = a.id.Principal
	}
	return out
}

// verifyInput asks whether req proves its sender for gate and action of this run.
func (r *release) verifyInput(ctx workflow.Context, gate, action string, req ControlRequest, roles []string) activities.VerifyInput {
	info := workflow.GetInfo(ctx)
	return activities.VerifyInput{
		Environment: r.spec.Environment,
		Want:        approvals.Claim{WorkflowID: info.WorkflowExecution.ID, RunID: info.WorkflowExecution.RunID, Gate: gate, Action: action},
		Roles:       roles,
		Signed:      req.Signed,
		By:          req.By,
		Now:         workflow.Now(ctx),
	}
}

// ask runs one of the approval policy's local activities (verification, freezes): the trust anchors stay
// in the worker's configuration, and the answer is recorded in history for replay.
func ask(ctx workflow.Context, activity string, in, out any) error {
	lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout: 10 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 3},
	})
	return workflow.ExecuteLocalActivity(lctx, activity, in).Get(lctx, out)
}

// openGate starts waiting at a gate.
func (r *release) openGate(claim string, roles []string, required int) {
	r.gate = &gate{claim: claim, roles: roles, required: max(required, 1)}
	r.status.Gate = claim
	r.syncGateStatus()
}

// syncGateStatus shows who has approved and how many more are needed.
func (r *release) syncGateStatus() {
	if s := r.status.Stage; s != nil && r.gate != nil && strings.HasPrefix(r.gate.claim, "stage:") {
		s.ApprovedBy = strings.Join(r.gate.principals(), ", ")
		s.ApprovalsNeeded = r.gate.required - len(r.gate.given)
	}
}

// verifyApproval proves who sent an approve: a local activity checks its signature (or, where the
// operators allow unsigned approvals, takes the typed name as unverified). The answer is recorded in
// history. It returns the approval to count, or the reason it is refused (recorded as a rejection).
func (r *release) verifyApproval(ctx workflow.Context, name string, req ControlRequest) (givenApproval, error) {
	g := r.gate
	in := r.verifyInput(ctx, g.claim, name, req, g.roles)
	var res activities.VerifyResult
	if err := ask(ctx, ActivityVerifyControl, in, &res); err != nil {
		return givenApproval{}, fmt.Errorf("could not verify the approval: %s", describeError(err))
	}
	if res.Rejected != "" {
		return givenApproval{}, fmt.Errorf("%s", res.Rejected)
	}
	if strings.HasPrefix(g.claim, "freeze:") && len(g.roles) == 0 {
		return givenApproval{}, fmt.Errorf("nobody may break this change freeze: the operators configured no break-glass roles")
	}
	a := givenApproval{req: req, id: res.Identity, verified: res.Verified}
	if !a.verified && len(g.roles) > 0 && !slices.Contains(g.roles, req.Role) {
		return givenApproval{}, fmt.Errorf("this gate needs role %s; approve with \"role\" (got %q)", strings.Join(g.roles, " or "), req.Role)
	}
	// Four eyes and quorum: every approval of a gate comes from someone else.
	if r.fourEyes && a.id.Principal == r.starter.id.Principal {
		return givenApproval{}, fmt.Errorf("%s started this release and may not approve it (four eyes)", a.id.Principal)
	}
	if r.gate != g || g.done() {
		return givenApproval{}, fmt.Errorf("the gate was passed or closed while the approval was verified")
	}
	if slices.Contains(g.principals(), a.id.Principal) {
		return givenApproval{}, fmt.Errorf("%s already approved this gate; it needs %d distinct approvers", a.id.Principal, g.required)
	}
	return a, nil
}

// verifyResume proves who resumes a paused release where the operators made resume approval-like
// (approvals.Policy.SignedResume); elsewhere an unsigned resume counts, recorded unverified.
func (r *release) verifyResume(ctx workflow.Context, req ControlRequest) (givenApproval, error) {
	stage := 0
	if r.status.Stage != nil {
		stage = r.status.Stage.Number
	}
	in := r.verifyInput(ctx, fmt.Sprintf("resume:stage:%d", stage), Resume, req, nil)
	var res activities.VerifyResult
	if err := ask(ctx, ActivityVerifyControl, in, &res); err != nil {
		return givenApproval{}, fmt.Errorf("could not verify the resume: %s", describeError(err))
	}
	if res.Rejected != "" {
		return givenApproval{}, fmt.Errorf("%s", res.Rejected)
	}
	if !r.paused {
		return givenApproval{}, fmt.Errorf("the release was resumed while this resume was verified")
	}
	return givenApproval{req: req, id: res.Identity, verified: res.Verified}, nil
}

// verifyStop checks the signature on an abort or a pause after it was applied (stopping never waits on
// a verification) and records who it proves, or that it did not verify.
func (r *release) verifyStop(ctx workflow.Context, name string, req ControlRequest) {
	in := r.verifyInput(ctx, name, name, req, nil)
	var res activities.VerifyResult
	err := ask(ctx, ActivityVerifyControl, in, &res)
	switch {
	case err != nil:
		r.decide(ctx, record.KindNotice, req.By, "the signature on the %s by %s could not be checked: %s (the %s stands)", name, req.By, describeError(err), name)
	case res.Rejected != "":
		r.decide(ctx, record.KindNotice, req.By, "the signature on the %s by %s does not verify: %s (the %s stands: stopping never needs one)", name, req.By, res.Rejected, name)
	default:
		a := givenApproval{id: res.Identity, verified: res.Verified}
		r.decide(ctx, record.KindControl, res.Identity.Principal, "%s signed by %s", name, a.describe())
	}
}

// verifyStart proves who started the release (spec.startedBy), and learns whether four eyes apply.
func (r *release) verifyStart(ctx workflow.Context) error {
	info := workflow.GetInfo(ctx)
	in := activities.VerifyInput{
		Environment: r.spec.Environment,
		Want:        approvals.Claim{WorkflowID: info.WorkflowExecution.ID, Gate: r.startGate, Action: "start"},
		Signed:      r.spec.StartedBy,
		Now:         workflow.Now(ctx),
	}
	var res activities.StartResult
	if err := ask(ctx, ActivityVerifyStart, in, &res); err != nil {
		return fmt.Errorf("could not verify who started the release: %s", describeError(err))
	}
	if res.Rejected != "" {
		return fmt.Errorf("%s", res.Rejected)
	}
	r.starter = givenApproval{id: res.Starter, verified: res.Verified}
	r.fourEyes = res.FourEyes
	if res.Verified {
		note := ""
		if res.FourEyes {
			note = "; four eyes: the starter may not approve this release"
		}
		r.decide(ctx, record.KindCheck, res.Starter.Principal, "started by %s%s", r.starter.describe(), note)
	}
	return nil
}

// holdForFreeze waits, before what (a traffic shift or promotion), while a change freeze holds the
// release's environment: until the freeze ends, or until a break-glass approval (gate claim "freeze:…",
// by a configured break-glass role) lets the release through, recorded loudly. Time is the workflow's.
func (r *release) holdForFreeze(ctx workflow.Context, claim, what string) error {
	if !r.verify {
		return nil
	}
	for {
		var st activities.FreezeResult
		in := activities.FreezeInput{Environment: r.spec.Environment, Now: workflow.Now(ctx)}
		if err := ask(ctx, ActivityCheckFreeze, in, &st); err != nil {
			return fmt.Errorf("could not read the change freezes: %s", describeError(err))
		}
		if !st.Frozen {
			return nil
		}
		r.openGate(claim, st.BreakGlassRoles, 1)
		breakGlass := "nobody may break glass (no breakGlassRoles configured)"
		if len(st.BreakGlassRoles) > 0 {
			breakGlass = fmt.Sprintf("a break-glass approval by role %s lets it through: shepherd approve %s --env %s --key …",
				strings.Join(st.BreakGlassRoles, " or "), r.spec.Service, r.spec.Environment)
		}
		r.setPhase(ctx, record.PhaseFrozen, "%s waits for the end of change freeze %q at %s UTC; %s", what, st.Name,
			st.Until.UTC().Format(time.DateTime), breakGlass)
		broken, err := workflow.AwaitWithOptions(ctx, workflow.AwaitOptions{
			Timeout:      max(st.Until.Sub(workflow.Now(ctx)), time.Second),
			TimerOptions: workflow.TimerOptions{Summary: fmt.Sprintf("Change freeze %q until %s", st.Name, st.Until.UTC().Format(time.DateTime))},
		}, func() bool { return r.gate.done() })
		g := r.gate
		r.gate, r.status.Gate = nil, ""
		if err != nil {
			return err
		}
		if broken {
			d := r.decide(ctx, record.KindApproval, strings.Join(g.principals(), ", "), "BREAK-GLASS: %s goes ahead during change freeze %q, approved by %s",
				what, st.Name, g.who())
			d.Comment = g.comments()
			return nil
		}
		r.decide(ctx, record.KindTransition, "", "change freeze %q ended", st.Name)
	}
}

// countApproval adds a verified approval to the gate and logs it.
func (r *release) countApproval(ctx workflow.Context, a givenApproval) string {
	g := r.gate
	g.given = append(g.given, a)
	r.syncGateStatus()
	if !g.done() {
		d := r.decide(ctx, record.KindApproval, a.id.Principal, "approval %d of %d for %s by %s; waiting for %d more",
			len(g.given), g.required, g.claim, a.describe(), g.required-len(g.given))
		d.Comment = a.req.text()
		r.publishDetails(ctx)
		return fmt.Sprintf("approval %d of %d by %s; %d more needed", len(g.given), g.required, a.describe(), g.required-len(g.given))
	}
	if role, ok := strings.CutPrefix(g.claim, "signoff:"); ok {
		return fmt.Sprintf("sign-off as %s by %s", role, g.who())
	}
	return fmt.Sprintf("%s approved by %s", strings.Replace(g.claim, ":", " ", 1), g.who())
}

// rejectApproval records a refused approval and returns the error the update answers with.
func (r *release) rejectApproval(ctx workflow.Context, req ControlRequest, err error) error {
	r.recordRejection(ctx, Approve, "update", req, err)
	return fmt.Errorf("approve rejected: %w", err)
}
