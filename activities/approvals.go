package activities

import (
	"context"
	"time"

	"github.com/shepherd-release/shepherd/approvals"
)

// VerifyInput asks whether a control request proves who sent it, for one gate of one run.
type VerifyInput struct {
	Environment string `json:"environment"`
	// Want is what the release waits for now (workflow, run, gate, action); the signed claim must match it.
	Want approvals.Claim `json:"want"`
	// Roles the approver must hold one of; empty: any trusted key.
	Roles []string `json:"roles,omitempty"`
	// Signed is the request's signed claim; nil for an unsigned request.
	Signed *approvals.Signed `json:"signed,omitempty"`
	// By is the name the sender typed.
	By string `json:"by"`
	// Now is the workflow's time, against which the expiry is checked.
	Now time.Time `json:"now"`
}

// VerifyResult is the verification's answer; it is recorded in history (a local activity's marker).
type VerifyResult struct {
	// Verified is true when a trusted signature proved the identity.
	Verified bool               `json:"verified"`
	Identity approvals.Identity `json:"identity"`
	// Rejected says why the request is refused ("" when accepted).
	Rejected string `json:"rejected,omitempty"`
}

// StartResult says who started a release, and whether four eyes apply to it.
type StartResult struct {
	Starter  approvals.Identity `json:"starter"`
	Verified bool               `json:"verified"`
	// FourEyes: the starter may not approve this release's gates.
	FourEyes bool `json:"fourEyes"`
	// Rejected says why the release may not start ("" when it may).
	Rejected string `json:"rejected,omitempty"`
}

// VerifyStart checks a release's signed start (spec.startedBy) the same way, and says whether four eyes
// apply. Where they do, an unsigned start is refused: an unproven starter could not be kept from
// approving.
func (a *Activities) VerifyStart(_ context.Context, in VerifyInput) (StartResult, error) {
	fourEyes := a.Approvals != nil && a.Approvals.FourEyes(in.Environment)
	if in.Signed == nil {
		if fourEyes {
			return StartResult{Rejected: "releases in " + in.Environment + " need four eyes, so they must be started signed " +
				"(shepherd start --key): the starter may not approve them"}, nil
		}
		return StartResult{}, nil
	}
	if a.Approvals == nil || a.Approvals.Verifier == nil {
		return StartResult{Rejected: "the start is signed, but this worker has no trust anchors configured to verify it"}, nil
	}
	id, err := a.Approvals.Verifier.Verify(*in.Signed, in.Want, in.Now, nil)
	if err != nil {
		return StartResult{Rejected: "the signed start does not verify: " + err.Error()}, nil
	}
	return StartResult{Starter: id, Verified: true, FourEyes: fourEyes}, nil
}

// FreezeInput asks whether a change freeze holds an environment at a time.
type FreezeInput struct {
	Environment string    `json:"environment"`
	Now         time.Time `json:"now"`
}

// FreezeResult is the freeze that holds (if any) and who may break glass.
type FreezeResult struct {
	approvals.FreezeState
	BreakGlassRoles []string `json:"breakGlassRoles,omitempty"`
}

// CheckFreeze reads the operators' freeze windows; a local activity, so the answer is recorded.
func (a *Activities) CheckFreeze(_ context.Context, in FreezeInput) (FreezeResult, error) {
	if a.Approvals == nil {
		return FreezeResult{}, nil
	}
	return FreezeResult{FreezeState: approvals.FreezeAt(a.Approvals.Freezes, in.Environment, in.Now),
		BreakGlassRoles: a.Approvals.BreakGlassRoles}, nil
}

// VerifyControl checks a control request's signature against the operators' trust anchors. It runs as a
// local activity from the workflow's handlers, so the trust anchors stay in the worker's configuration and
// the answer is recorded for replay.
func (a *Activities) VerifyControl(_ context.Context, in VerifyInput) (VerifyResult, error) {
	if in.Signed == nil {
		unsignedResume := in.Want.Action == "resume" && (a.Approvals == nil || !a.Approvals.SignedResume)
		if a.Approvals == nil || a.Approvals.AllowsUnsigned(in.Environment) || unsignedResume {
			return VerifyResult{Identity: approvals.Identity{Principal: in.By}}, nil
		}
		what := "an approval"
		if in.Want.Action == "resume" {
			what = "a resume"
		}
		return VerifyResult{Rejected: what + " in " + in.Environment + " must be signed: `shepherd " + in.Want.Action +
			"` signs with your SSH key (--key), or sign the payload with ssh-keygen -Y sign (docs/temporal-cli.md)"}, nil
	}
	if a.Approvals == nil || a.Approvals.Verifier == nil {
		return VerifyResult{Rejected: "this worker has no trust anchors configured (approvals.allowedSigners), so no signature can be verified"}, nil
	}
	id, err := a.Approvals.Verifier.Verify(*in.Signed, in.Want, in.Now, in.Roles)
	if err != nil {
		return VerifyResult{Rejected: err.Error()}, nil
	}
	return VerifyResult{Verified: true, Identity: id}, nil
}
