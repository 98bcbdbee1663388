package workflows

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/shepherd-release/shepherd/approvals"

	"go.temporal.io/sdk/workflow"

	"github.com/shepherd-release/shepherd/record"
)

// ControlRequest is the one argument of the approve, abort, pause and resume signals and updates.
type ControlRequest struct {
	// By names the person (or system) asking; required, it goes into the decision log.
	By string `json:"by"`
	// Reason says why (abort, pause).
	Reason string `json:"reason,omitempty"`
	// Comment is free text (approve, resume).
	Comment string `json:"comment,omitempty"`
	// Stage, when set, is the 1-based stage number the request is meant for; a request for another stage
	// is rejected, so a late approval never approves the wrong stage.
	Stage int `json:"stage,omitempty"`
	// Role is the approver's role, for sign-off gates (prechecks[].signoff.role) and stage gates with
	// approvalRoles, when the approval is not signed (a signed one proves its roles).
	Role string `json:"role,omitempty"`
	// Signed is the approval's signed claim (approvals.Claim): it proves who approved, for which gate of
	// which run, until when. Required where the operators do not accept unsigned approvals.
	Signed *approvals.Signed `json:"signed,omitempty"`

	// verifiedAs describes the identity a verification proved, for the decision log ("" when none ran).
	verifiedAs string
}

func (c ControlRequest) text() string {
	return strings.TrimSpace(strings.Join([]string{c.Reason, c.Comment}, " "))
}

// ControlResponse is what an accepted update returns.
type ControlResponse struct {
	Accepted bool         `json:"accepted"`
	Phase    record.Phase `json:"phase"`
	Message  string       `json:"message"`
}

var controls = []string{Approve, Abort, Pause, Resume, Retry, Acknowledge}

// Bounds of a control request: it is written to history and the decision log.
const (
	// MaxControlBy bounds "by" and "role", in bytes.
	MaxControlBy = 128
	// MaxControlText bounds "reason" and "comment", in bytes.
	MaxControlText = 4096
	// maxRecordedRejections is how many rejected signals a stage records in the decision log (with
	// their text cut to rejectionTextCut); more are only counted (Status.UnrecordedRejections).
	maxRecordedRejections = 20
	rejectionTextCut      = 256
)

// registerHandlers installs the status query, the control updates (with validators) and a goroutine that
// applies the control signals with the same validation.
func (r *release) registerHandlers(ctx workflow.Context) error {
	if err := workflow.SetQueryHandlerWithOptions(ctx, StatusQuery, func() (record.Status, error) {
		return r.status, nil
	}, workflow.QueryHandlerOptions{Description: "The release's phase, stage, traffic, latest measurements and decision log"}); err != nil {
		return err
	}
	for _, name := range controls {
		name := name
		err := workflow.SetUpdateHandlerWithOptions(ctx, name,
			func(ctx workflow.Context, req ControlRequest) (ControlResponse, error) {
				if name == Approve && r.verify {
					a, err := r.verifyApproval(ctx, name, req)
					if err != nil {
						return ControlResponse{}, r.rejectApproval(ctx, req, err)
					}
					return ControlResponse{Accepted: true, Phase: r.status.Phase, Message: r.countApproval(ctx, a)}, nil
				}
				if name == Resume && r.verify {
					a, err := r.verifyResume(ctx, req)
					if err != nil {
						r.recordRejection(ctx, name, "update", req, err)
						return ControlResponse{}, fmt.Errorf("resume rejected: %w", err)
					}
					req.By, req.verifiedAs = a.id.Principal, a.describe()
				}
				msg := r.apply(ctx, name, req)
				return ControlResponse{Accepted: true, Phase: r.status.Phase, Message: msg}, nil
			},
			workflow.UpdateHandlerOptions{
				Validator:   func(ctx workflow.Context, req ControlRequest) error { return r.check(name, req) },
				Description: controlDescriptions[name],
			})
		if err != nil {
			return err
		}
	}
	workflow.Go(ctx, r.receiveSignals)
	return nil
}

var controlDescriptions = map[string]string{
	Approve:     `Approve the stage awaiting approval: {"by":"alice","comment":"...","stage":2}`,
	Abort:       `Abort and roll back: {"by":"alice","reason":"..."}`,
	Pause:       `Pause the soak (clock stops, traffic stays): {"by":"alice","reason":"..."}`,
	Resume:      `Resume a paused release: {"by":"alice","comment":"..."}`,
	Retry:       `While RollbackStuck: run the failed rollback step again: {"by":"alice","comment":"..."}`,
	Acknowledge: `While RollbackStuck: you finished the rollback by hand; end the release: {"by":"alice","reason":"..."}`,
}

// receiveSignals applies control signals for the life of the workflow; a signal that the update validator
// would reject is recorded as rejected and changes nothing.
func (r *release) receiveSignals(ctx workflow.Context) {
	sel := workflow.NewSelector(ctx)
	for _, name := range controls {
		name := name
		sel.AddReceive(workflow.GetSignalChannel(ctx, name), func(c workflow.ReceiveChannel, _ bool) {
			var req ControlRequest
			c.Receive(ctx, &req)
			if err := r.check(name, req); err != nil {
				r.recordRejection(ctx, name, "signal", req, err)
				return
			}
			if (name == Approve || name == Resume) && r.verify {
				// Verified aside, so a slow verification never delays an abort behind it.
				workflow.Go(ctx, func(gctx workflow.Context) {
					if name == Resume {
						a, err := r.verifyResume(gctx, req)
						if err != nil {
							r.recordRejection(gctx, name, "signal", req, err)
							return
						}
						req.By, req.verifiedAs = a.id.Principal, a.describe()
						r.apply(gctx, name, req)
						return
					}
					if a, err := r.verifyApproval(gctx, name, req); err != nil {
						r.recordRejection(gctx, name, "signal", req, err)
					} else {
						r.countApproval(gctx, a)
					}
				})
				return
			}
			r.apply(ctx, name, req)
		})
	}
	for {
		sel.Select(ctx)
	}
}

// recordRejection logs a rejected signal, with its text cut, up to maxRecordedRejections per stage; past
// that it only counts it, so a flood of bad signals cannot grow the status without bound.
func (r *release) recordRejection(ctx workflow.Context, name, via string, req ControlRequest, err error) {
	stage := 0
	if r.status.Stage != nil {
		stage = r.status.Stage.Number
	}
	if r.safe {
		if r.rejections[stage] >= maxRecordedRejections {
			r.status.UnrecordedRejections++
			return
		}
		r.rejections[stage]++
	}
	d := r.decide(ctx, record.KindRejection, cut(req.By, MaxControlBy), "%s %s rejected: %s", name, via, cut(err.Error(), rejectionTextCut))
	d.Comment = cut(req.text(), rejectionTextCut)
}

// cut shortens s to at most n bytes (on a rune boundary), marking the cut.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// check says whether a control request makes sense now; the error tells the person why not.
func (r *release) check(name string, req ControlRequest) error {
	phase := r.status.Phase
	if strings.TrimSpace(req.By) == "" {
		return fmt.Errorf(`%s needs "by": who is asking (it goes into the decision log)`, name)
	}
	if r.safe {
		if len(req.By) > MaxControlBy || len(req.Role) > MaxControlBy {
			return fmt.Errorf(`%s: "by" and "role" are limited to %d bytes`, name, MaxControlBy)
		}
		if len(req.Reason) > MaxControlText || len(req.Comment) > MaxControlText {
			return fmt.Errorf(`%s: "reason" and "comment" are limited to %d bytes each`, name, MaxControlText)
		}
		if sg := req.Signed; sg != nil && (len(sg.Signature) > MaxControlText*2 ||
			len(sg.Claim.WorkflowID)+len(sg.Claim.RunID)+len(sg.Claim.Gate)+len(sg.Claim.Action) > MaxControlText) {
			return fmt.Errorf(`%s: "signed" is limited to a %d-byte signature and a %d-byte claim`, name, 2*MaxControlText, MaxControlText)
		}
	}
	if phase.Terminal() {
		return fmt.Errorf("release already ended: %s (%s)", phase, r.status.Reason)
	}
	if req.Stage != 0 && (r.status.Stage == nil || req.Stage != r.status.Stage.Number) {
		return fmt.Errorf("%s is for stage %d, but the release is at %s", name, req.Stage, r.stageName())
	}
	switch name {
	case Approve:
		if phase != record.PhaseAwaitingApproval && phase != record.PhaseFrozen {
			return fmt.Errorf("nothing to approve: the release is %s at %s; approve applies only while AwaitingApproval (or Frozen, to break glass)", phase, r.stageName())
		}
		if r.gate == nil {
			return fmt.Errorf("nothing to approve at this instant; try again")
		}
		if r.gate.done() {
			return fmt.Errorf("already approved by %s", r.gate.who())
		}
		if r.signoffRole != "" && req.Signed == nil && req.Role != r.signoffRole {
			return fmt.Errorf("the release waits for sign-off by role %q; approve with \"role\": %q (got %q)", r.signoffRole, r.signoffRole, req.Role)
		}
	case Abort:
		if r.safe && phase == record.PhasePromoting {
			return fmt.Errorf("too late to abort: %s is being promoted to stable, the point of no return; to go back, "+
				"start a release of the previous version (%s) once this one ends", r.status.Version, orNone(r.status.PreviousVersion))
		}
		if r.safe && phase == record.PhaseRollbackStuck {
			return fmt.Errorf("already rolling back, and stuck: send retry to run the failed rollback step again, or acknowledge " +
				"(with a reason) once you finished the rollback by hand")
		}
		if r.abortReq != nil || phase == record.PhaseRollingBack {
			return fmt.Errorf("already rolling back (%s)", r.status.Reason)
		}
	case Pause:
		if r.paused {
			return fmt.Errorf("already paused: %s", r.pauseCause)
		}
		if phase != record.PhaseProgressing {
			return fmt.Errorf("the release is %s; pause applies only while Progressing (soaking a stage)", phase)
		}
	case Resume:
		if !r.paused {
			return fmt.Errorf("the release is %s, not Paused; nothing to resume", phase)
		}
	case Retry, Acknowledge:
		if phase != record.PhaseRollbackStuck {
			return fmt.Errorf("the release is %s; %s applies only while RollbackStuck", phase, name)
		}
		if r.stuckReq != nil {
			return fmt.Errorf("%s by %s already accepted", r.stuckCtl, r.stuckReq.By)
		}
		if name == Acknowledge && strings.TrimSpace(req.Reason) == "" {
			return fmt.Errorf(`acknowledge needs "reason": what you did by hand to finish the rollback (it goes into the report)`)
		}
	default:
		return fmt.Errorf("unknown control %q", name)
	}
	return nil
}

// apply carries out a checked control request and returns what happened, for the update's answer.
func (r *release) apply(ctx workflow.Context, name string, req ControlRequest) string {
	var msg string
	switch name {
	case Approve: // a release started before changeVerifiedApprovals: the typed name counts, unverified
		r.gate.given = append(r.gate.given, givenApproval{req: req, id: approvals.Identity{Principal: req.By}})
		r.syncGateStatus()
		msg = "approved by " + req.By
		if r.signoffRole != "" {
			msg = fmt.Sprintf("sign-off as %s by %s", r.signoffRole, req.By)
		} else if r.status.Stage != nil {
			msg = fmt.Sprintf("stage %d approved by %s", r.status.Stage.Number, req.By)
		}
		// The approval decision itself is logged by the gate with its wait time.
		return msg
	case Abort:
		if r.abortReq != nil { // two aborts validated in the same workflow task: the first one stands
			return "abort already accepted from " + r.abortReq.By
		}
		r.abortReq = &req
		msg = "abort accepted; rolling back"
		r.cancelFwd()
	case Pause:
		r.paused = true
		r.pauseCause = "paused by " + req.By
		if req.Reason != "" {
			r.pauseCause += ": " + req.Reason
		}
		msg = "pause accepted; the soak clock stops and traffic stays at " + fmt.Sprint(r.status.TrafficPercent) + "%"
		if r.shiftingTo >= 0 {
			msg = fmt.Sprintf("pause accepted; the traffic shift to %d%% in flight completes, then the soak clock stops "+
				"and traffic stays at %d%%", r.shiftingTo, r.shiftingTo)
		}
	case Resume:
		r.paused = false
		msg = "resume accepted"
	case Retry:
		r.stuckReq, r.stuckCtl = &req, Retry
		msg = "retry accepted; running the failed rollback step again"
	case Acknowledge:
		r.stuckReq, r.stuckCtl = &req, Acknowledge
		msg = "acknowledged; the release ends Failed with the rollback recorded as finished by hand"
	}
	who := req.By
	switch {
	case req.verifiedAs != "":
		who = req.verifiedAs
	case r.verify && (name == Abort || name == Pause) && req.Signed == nil:
		who += " (unverified)"
	case r.verify && (name == Abort || name == Pause):
		who += " (signature being verified)"
		workflow.Go(ctx, func(gctx workflow.Context) { r.verifyStop(gctx, name, req) })
	}
	d := r.decide(ctx, record.KindControl, req.By, "%s by %s: %s", name, who, msg)
	d.Comment = req.text()
	return msg
}

func (r *release) stageName() string {
	if r.status.Stage == nil {
		return "no stage yet"
	}
	return fmt.Sprintf("stage %d of %d (%d%%)", r.status.Stage.Number, r.status.Stage.Of, r.status.Stage.Percent)
}
