// Package workflows holds the Release workflow: deterministic code that drives one release from
// validation through staged canary to promotion, or to a compensating rollback. It does no I/O; the
// activities package does.
package workflows

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/shepherd-release/shepherd/activities"
	"github.com/shepherd-release/shepherd/record"
	"github.com/shepherd-release/shepherd/spec"
)

// Workflow error types, for clients that match on them.
const (
	// ErrTypeInvalidSpec: the spec failed validation or was started under the wrong workflow ID.
	ErrTypeInvalidSpec = "InvalidSpec"
	// ErrTypeRollbackFailed: the rollback did not finish (a person acknowledged finishing it by hand, or
	// a release started by older code gave up after its retries).
	ErrTypeRollbackFailed = "RollbackFailed"
	// ErrTypeRolledBack: the release was rolled back (failed analysis, an abort, a failed step, an
	// approval that timed out) and the rollback finished: the stable version serves all traffic.
	ErrTypeRolledBack = "ReleaseRolledBack"
)

// Release is the Release workflow. Only a promoted release completes: it returns the final record (phase
// Succeeded). Every other ending closes the workflow as failed, so the Temporal web UI and `temporal
// workflow list` tell promoted from not promoted at a glance, with a non-retryable ApplicationError that
// carries the final record as details: type ReleaseRolledBack (phase RolledBack), RollbackFailed (the
// rollback did not finish), InvalidSpec or PrecheckFailed (rejected before any change). A release whose
// workflow was cancelled rolls back and closes as cancelled, with the record as the cancellation's
// details. (Releases that rolled back before the failed-on-rollback change completed with the record.)
func Release(ctx workflow.Context, in spec.Release) (record.Result, error) {
	r := newRelease(ctx, in)
	if err := r.registerHandlers(ctx); err != nil {
		return r.status, err
	}
	res, err := r.run(ctx)
	// Let update handlers in flight answer before the workflow closes.
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	_ = workflow.Await(dctx, func() bool { return workflow.AllHandlersFinished(dctx) })
	return res, err
}

// Versioning. A change to the commands a release issues must not change what an already running release
// does on replay: the new behaviour is gated by workflow.GetVersion, and the committed histories of both
// the old and the new code replay in TestReplayRecordedHistories. Every check of r.safe below is such a
// gate (docs/architecture.md, "Changing the workflow").
const (
	// changeSafeBoundaries resolves the spec once (a recorded side effect), waits for a cancelled step
	// before compensating, holds pauses at every boundary, rejects abort while promoting, and parks a
	// failing rollback in RollbackStuck instead of giving up.
	changeSafeBoundaries = "safe-boundaries"
	// changeFailedOnRollback closes a rolled-back release as a failed workflow (ErrTypeRolledBack) instead
	// of a completed one. The gate is taken when the release ends, so a release running during the
	// upgrade closes the new way.
	changeFailedOnRollback = "failed-on-rollback"
)

// resolvedSpec is the spec as the release runs it: defaults applied and validation done once, when the
// release starts. It is recorded in history, so a later change of a default or of a validation rule does
// not change what a running release does.
type resolvedSpec struct {
	Spec spec.Release `json:"spec"`
	// Invalid is the validation error, "" when the spec is valid.
	Invalid string `json:"invalid,omitempty"`
	// WorkflowID is the ID a release of this service and environment must run under.
	WorkflowID string `json:"workflowID"`
	// StartGate is what a signed start must name (spec.Release.StartGate of the input as given).
	StartGate string `json:"startGate,omitempty"`
}

func resolve(in spec.Release) resolvedSpec {
	s := in.WithDefaults()
	rs := resolvedSpec{Spec: s, WorkflowID: spec.WorkflowID(s.Service, s.Environment), StartGate: in.StartGate()}
	if err := activities.ValidateSpec(s); err != nil {
		rs.Invalid = err.Error()
	}
	return rs
}

// release is the workflow's state; handlers and the status query read it.
type release struct {
	spec spec.Release
	// invalid is the validation error recorded when the release started ("" when valid); wantID the
	// workflow ID the release must run under, resolved at the same time.
	invalid, wantID string
	// safe is true for releases started by code with the safe-boundaries change (changeSafeBoundaries).
	safe   bool
	logger log.Logger
	status record.Status

	// seq is the fencing sequence number of the last target step started (spec.TemplateData.Seq).
	seq int64
	// targetTimeout and metricsTimeout are the target's and the metrics source's own bounds, as the
	// preflight reported them (0: none).
	targetTimeout, metricsTimeout time.Duration
	// shiftingTo is the traffic percent of a shift in flight, -1 when none.
	shiftingTo int
	// stuckReq is the retry or acknowledge that ends a RollbackStuck wait; stuckCtl says which.
	stuckReq *ControlRequest
	stuckCtl string
	// rejections counts rejected signals per stage (0: before the first stage).
	rejections map[int]int

	// fwdCtx carries every forward step; abort cancels it so a running step or wait stops at once.
	fwdCtx     workflow.Context
	cancelFwd  workflow.CancelFunc
	abortReq   *ControlRequest
	paused     bool
	pauseCause string
	// gate is the approval gate the release waits at, nil when none.
	gate *gate
	// startGate is what a signed start names; starter who started the release, and fourEyes whether
	// that person is barred from approving it.
	startGate string
	starter   givenApproval
	fourEyes  bool
	// verify is true for releases whose approvals are verified (changeVerifiedApprovals).
	verify bool
	// watch is true for releases whose stages are watched by one activity each (changeWatchAnalysis).
	watch  bool
	saga   saga
	checks *record.Streaks
	// signoffRole is the role a pending sign-off gate waits for ("" when none is pending).
	signoffRole string
	// notifications counts notifications still being delivered.
	notifications  int
	rollbackFailed bool

	// published* is what the search attributes last said, to upsert only changes.
	published        bool
	publishedPhase   record.Phase
	publishedTraffic int
}

func newRelease(ctx workflow.Context, in spec.Release) *release {
	info := workflow.GetInfo(ctx)
	var rs resolvedSpec
	safe := workflow.GetVersion(ctx, changeSafeBoundaries, workflow.DefaultVersion, 1) >= 1
	if safe {
		enc := workflow.SideEffect(ctx, func(workflow.Context) any { return resolve(in) })
		if err := enc.Get(&rs); err != nil {
			rs = resolvedSpec{Spec: in.WithDefaults(), Invalid: "reading the resolved spec: " + err.Error()}
		}
	} else {
		// Releases started before this change were started by older code, whose specs carried their
		// target inline; they replay as they ran (on a worker with named providers their steps then fail
		// with UnknownTarget and the rollback waits for a person: drain releases before upgrading).
		rs = resolve(in.AcceptLegacy())
	}
	s := rs.Spec
	if rs.WorkflowID == "" {
		rs.WorkflowID = spec.WorkflowID(s.Service, s.Environment)
	}
	r := &release{spec: s, invalid: rs.Invalid, wantID: rs.WorkflowID, startGate: rs.StartGate, safe: safe, shiftingTo: -1, rejections: map[int]int{}}
	r.status = record.Status{
		ReleaseID:       info.WorkflowExecution.ID + "/" + info.WorkflowExecution.RunID,
		WorkflowID:      info.WorkflowExecution.ID,
		Service:         s.Service,
		Environment:     s.Environment,
		Version:         s.Version,
		PreviousVersion: s.PreviousVersion,
		Phase:           record.PhaseValidating,
		StartedAt:       workflow.Now(ctx),
		Decisions:       []record.Decision{},
	}
	for i, st := range s.Stages {
		r.status.Stages = append(r.status.Stages, record.StagePlan{
			Number: i + 1, Percent: st.Percent, Soak: st.Soak.D(), Approval: st.Approval,
		})
		if st.Approval {
			r.status.Stages[i].ApprovalTimeout = st.ApprovalTimeout.D()
			r.status.Stages[i].OnApprovalTimeout = st.OnApprovalTimeout
		}
	}
	r.logger = log.With(workflow.GetLogger(ctx), "releaseID", r.status.ReleaseID, "service", s.Service,
		"environment", s.Environment, "version", s.Version)
	r.fwdCtx, r.cancelFwd = workflow.WithCancel(ctx)
	r.verify = workflow.GetVersion(ctx, changeVerifiedApprovals, workflow.DefaultVersion, 1) >= 1
	r.watch = workflow.GetVersion(ctx, changeWatchAnalysis, workflow.DefaultVersion, 1) >= 1
	r.checks = record.NewStreaks(s.Analysis.FailureLimit, s.Analysis.InconclusiveLimit)
	return r
}

// errAnalysisFailed ends the forward path when checks failed beyond the failure limit.
type errAnalysisFailed struct{ reason string }

func (e errAnalysisFailed) Error() string { return e.reason }

// errApprovalTimedOut ends the forward path when an approval gate timed out with action abort.
type errApprovalTimedOut struct{ reason string }

func (e errApprovalTimedOut) Error() string { return e.reason }

func (r *release) run(ctx workflow.Context) (record.Result, error) {
	r.decide(ctx, record.KindTransition, "", "release %s of %s to %s started", r.spec.Version, r.spec.Service, r.spec.Environment)
	if err := r.validate(ctx); err != nil {
		r.finish(ctx, record.PhaseFailed, err.Error())
		return r.status, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeInvalidSpec, nil)
	}
	if r.verify {
		if err := r.verifyStart(ctx); err != nil {
			r.finish(ctx, record.PhaseFailed, err.Error())
			return r.status, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeInvalidSpec, nil)
		}
	}
	r.publish(ctx)
	r.notify(ctx, eventStarted, fmt.Sprintf("%d stages, at least %s of soak", len(r.spec.Stages), r.spec.TotalSoak()), nil)

	err := r.forward(r.fwdCtx)
	if err == nil {
		r.finish(ctx, record.PhaseSucceeded, fmt.Sprintf("%s %s promoted in %s", r.spec.Service, r.spec.Version, r.spec.Environment))
		r.afterwards(ctx, nil)
		return r.status, nil
	}
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) && appErr.Type() == activities.ErrTypeInvalidSpec && r.abortReq == nil && ctx.Err() == nil {
		// The worker lacks a provider the spec names; the preflight found it before anything changed.
		r.finish(ctx, record.PhaseFailed, "rejected before any change: "+appErr.Message())
		r.afterwards(ctx, nil)
		return r.status, temporal.NewNonRetryableApplicationError(r.status.Reason, ErrTypeInvalidSpec, nil, r.status)
	}
	var pf errPrecheckFailed
	if errors.As(err, &pf) && r.abortReq == nil && ctx.Err() == nil {
		r.finish(ctx, record.PhaseFailed, "rejected before any change: "+pf.reason)
		r.afterwards(ctx, nil)
		return r.status, temporal.NewNonRetryableApplicationError(r.status.Reason, ErrTypePrecheckFailed, nil, r.status)
	}

	cancelled := ctx.Err() != nil
	reason := r.rollbackReason(err, cancelled)
	var evidence []record.Measurement
	var af errAnalysisFailed
	if errors.As(err, &af) {
		evidence = r.status.Latest
		r.notify(ctx, eventAnalysisFailed, reason, evidence)
	}
	rbErr := r.rollback(ctx, reason)
	switch {
	case rbErr != nil:
		msg := fmt.Sprintf("rollback not finished after %s: %v; finish it by hand (see docs/runbooks.md)", reason, rbErr)
		var ack errRollbackAcknowledged
		if errors.As(rbErr, &ack) {
			msg = fmt.Sprintf("rollback after %s did not finish: %s; %s", reason, ack.failure, ack.describe())
		}
		r.rollbackFailed = true
		r.finish(ctx, record.PhaseFailed, msg)
		r.afterwards(ctx, evidence)
		return r.status, temporal.NewNonRetryableApplicationError(msg, ErrTypeRollbackFailed, rbErr, r.status)
	case cancelled:
		r.finish(ctx, record.PhaseRolledBack, reason)
		r.afterwards(ctx, evidence)
		return r.status, temporal.NewCanceledError(r.status)
	default:
		r.finish(ctx, record.PhaseRolledBack, reason)
		r.afterwards(ctx, evidence)
		return r.status, r.rolledBack(ctx)
	}
}

// rolledBack is the error a rolled-back release closes with: a failed workflow whose error names the
// reason and carries the record (nil, a completed workflow, for releases that ended before this change).
func (r *release) rolledBack(ctx workflow.Context) error {
	if workflow.GetVersion(ctx, changeFailedOnRollback, workflow.DefaultVersion, 1) < 1 {
		return nil
	}
	return temporal.NewNonRetryableApplicationError("release rolled back: "+r.status.Reason, ErrTypeRolledBack, nil, r.status)
}

// validate runs the spec validation (the same as the CLI's and the starter's) and checks the workflow ID
// that enforces one active release per service and environment.
func (r *release) validate(ctx workflow.Context) error {
	if r.invalid != "" {
		return errors.New(r.invalid)
	}
	want := r.wantID
	if got := workflow.GetInfo(ctx).WorkflowExecution.ID; got != want {
		return fmt.Errorf("workflow ID %q: a release of %s in %s must run as workflow ID %q, which keeps "+
			"one active release per service and environment (temporal workflow start --workflow-id %q ...)",
			got, r.spec.Service, r.spec.Environment, want, want)
	}
	return nil
}

// forward is the happy path: preflight, deploy, stages, promote. Any error leads to a rollback.
func (r *release) forward(ctx workflow.Context) error {
	if err := r.preflight(ctx); err != nil {
		return err
	}
	r.decide(ctx, record.KindCheck, "", "preflight passed: target %s is ready", r.spec.Target)
	if err := r.runPrechecks(ctx); err != nil {
		return err
	}

	r.setPhase(ctx, record.PhaseDeploying, "deploying %s beside the stable version at 0%% traffic", r.spec.Version)
	// The canary's removal is registered before deploy runs: a deploy aborted half-way still gets cleaned up.
	r.saga.push(compensation{name: "remove canary", activity: ActivityRollback, input: func() any { return r.stepInput("remove-canary", 0) }})
	if err := r.execStep(ctx, ActivityDeploy, "deploy", "Deploy "+r.spec.Version+" beside stable at 0%", 0); err != nil {
		return err
	}
	r.decide(ctx, record.KindStep, "", "deployed %s", r.spec.Version)
	if err := r.execStep(ctx, ActivityHealth, "health", "Health check "+r.spec.Version, 0); err != nil {
		return err
	}
	r.decide(ctx, record.KindCheck, "", "%s is healthy", r.spec.Version)
	if err := r.setFlags(ctx, 0, "created off at deploy"); err != nil {
		return err
	}

	for i := range r.spec.Stages {
		if err := r.runStage(ctx, i); err != nil {
			return err
		}
	}

	if err := r.holdIfPaused(ctx); err != nil {
		return err
	}
	if err := r.holdForFreeze(ctx, "freeze:promote", "promotion"); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil { // aborted or cancelled in the same instant the last stage passed
		return err
	}
	r.setPhase(ctx, record.PhasePromoting, "all stages passed; promoting %s", r.spec.Version)
	// Promotion is the point of no return: abort is refused from here on, and neither an abort that raced
	// it nor a cancellation of the workflow stops the promote step half-way.
	pctx := ctx
	if r.safe {
		pctx, _ = workflow.NewDisconnectedContext(ctx)
	}
	if err := r.execStep(pctx, ActivityPromote, "promote", "Promote "+r.spec.Version+" to stable", 0); err != nil {
		return err
	}
	r.saga.clear()
	r.decide(ctx, record.KindStep, "", "promoted %s to stable", r.spec.Version)
	if r.safe && ctx.Err() != nil {
		r.decide(ctx, record.KindNotice, "", "the workflow was cancelled during promotion; the promotion stands (past the point of no return)")
	}
	if err := r.setFlags(pctx, 100, "fully on at promote"); err != nil {
		// The version is stable already; flags lagging behind is reported, not rolled back.
		r.decide(ctx, record.KindNotice, "", "turning flags fully on failed after promotion: %s", describeError(err))
	}
	return nil
}

// rollbackReason names why the forward path ended, with its evidence.
func (r *release) rollbackReason(err error, cancelled bool) string {
	var af errAnalysisFailed
	var at errApprovalTimedOut
	switch {
	case r.abortReq != nil:
		msg := "aborted by " + r.abortReq.By
		if r.abortReq.Reason != "" {
			msg += ": " + r.abortReq.Reason
		}
		return msg
	case cancelled:
		return "workflow cancelled"
	case errors.As(err, &af):
		return af.reason
	case errors.As(err, &at):
		return at.reason
	default:
		return "step failed: " + describeError(err)
	}
}

// describeError unwraps Temporal's activity error envelope to the message a person needs.
func describeError(err error) string {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return appErr.Message()
	}
	var timeoutErr *temporal.TimeoutError
	if errors.As(err, &timeoutErr) {
		return "timed out (" + timeoutErr.TimeoutType().String() + "): " + err.Error()
	}
	return err.Error()
}

// finish records the terminal phase.
func (r *release) finish(ctx workflow.Context, phase record.Phase, reason string) {
	r.status.Reason = reason
	r.status.EndedAt = workflow.Now(ctx)
	r.setPhase(ctx, phase, "%s", reason)
}

// setPhase moves the release to phase, logs the transition and publishes it.
func (r *release) setPhase(ctx workflow.Context, phase record.Phase, format string, args ...any) {
	r.status.Phase = phase
	r.decide(ctx, record.KindTransition, "", format, args...)
	r.publish(ctx)
}

// decide appends to the decision log (and the workflow log).
func (r *release) decide(ctx workflow.Context, kind record.DecisionKind, by string, format string, args ...any) *record.Decision {
	d := record.Decision{
		Time:    workflow.Now(ctx),
		Kind:    kind,
		Phase:   r.status.Phase,
		By:      by,
		Message: fmt.Sprintf(format, args...),
	}
	if r.status.Stage != nil {
		d.Stage = r.status.Stage.Number
	}
	r.status.Decisions = append(r.status.Decisions, d)
	r.logger.Info("Decision", "kind", string(kind), "phase", string(d.Phase), "stage", d.Stage, "by", by, "message", d.Message)
	return &r.status.Decisions[len(r.status.Decisions)-1]
}

// data is the template data for a step.
func (r *release) data(percent int) spec.TemplateData {
	stage := 0
	if r.status.Stage != nil {
		stage = r.status.Stage.Number
	}
	return spec.TemplateData{
		Service:         r.spec.Service,
		Environment:     r.spec.Environment,
		Version:         r.spec.Version,
		PreviousVersion: r.spec.PreviousVersion,
		Percent:         percent,
		Stage:           stage,
		ReleaseID:       r.status.ReleaseID,
	}
}

// human rounds a duration for people to read: 8m20s, 4.2s, 120ms (not 8m20.753509527s).
func human(d time.Duration) time.Duration {
	switch {
	case d >= 10*time.Second:
		return d.Round(time.Second)
	case d >= time.Second:
		return d.Round(100 * time.Millisecond)
	default:
		return d.Round(time.Millisecond)
	}
}

// elapsed is the wall time between two workflow timestamps, never negative.
func elapsed(from, to time.Time) time.Duration {
	if to.Before(from) {
		return 0
	}
	return to.Sub(from)
}
