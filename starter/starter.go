// Package starter starts and steers releases through a Temporal client: start (one active release per
// service and environment), the approve/abort/pause/resume updates, the status query and listing.
// The CLI is a thin shell over it, so tests and other programs get the same behaviour.
package starter

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/shepherd-release/shepherd/activities"
	"github.com/shepherd-release/shepherd/approvals"
	"github.com/shepherd-release/shepherd/record"
	"github.com/shepherd-release/shepherd/spec"
	"github.com/shepherd-release/shepherd/workflows"
)

// ErrNoRelease is wrapped by the errors that found no release of a service in an environment, or no
// active one, so a caller can look for it elsewhere.
var ErrNoRelease = errors.New("no such release")

type noRelease struct{ msg string }

func (e noRelease) Error() string { return e.msg }
func (e noRelease) Unwrap() error { return ErrNoRelease }

// ErrAlreadyActive is returned (wrapped) when the service already has an active release in the environment.
var ErrAlreadyActive = errors.New("a release is already active")

// Started identifies a started release.
type Started struct {
	WorkflowID string
	RunID      string
	Spec       spec.Release
}

// Start validates s exactly as the workflow will, and starts it. A second release of the same service and
// environment is refused with an error naming the active one.
func Start(ctx context.Context, c client.Client, s spec.Release) (Started, error) {
	if err := s.CheckSize(); err != nil {
		return Started{}, err
	}
	d := s.WithDefaults()
	if err := activities.ValidateSpec(d); err != nil {
		return Started{}, err
	}
	id := spec.WorkflowID(d.Service, d.Environment)
	opts := client.StartWorkflowOptions{
		ID:                       id,
		TaskQueue:                workflows.TaskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		// Without this the SDK quietly hands back the running release as if it were the new one.
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		WorkflowIDReusePolicy:                    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		StaticSummary:                            fmt.Sprintf("Release %s %s → %s", d.Service, d.Environment, d.Version),
		StaticDetails:                            PlanMarkdown(d),
		TypedSearchAttributes: temporal.NewSearchAttributes(
			workflows.AttrService.ValueSet(d.Service),
			workflows.AttrEnvironment.ValueSet(d.Environment),
			workflows.AttrVersion.ValueSet(d.Version),
			workflows.AttrPhase.ValueSet(string(record.PhaseValidating)),
			workflows.AttrTrafficPercent.ValueSet(0),
		),
	}
	run, err := c.ExecuteWorkflow(ctx, opts, workflows.ReleaseWorkflow, s)
	if err != nil {
		var started *serviceerror.WorkflowExecutionAlreadyStarted
		if errors.As(err, &started) {
			return Started{}, activeError(ctx, c, d, started.RunId)
		}
		return Started{}, fmt.Errorf("starting the release workflow %s: %w", id, err)
	}
	return Started{WorkflowID: id, RunID: run.GetRunID(), Spec: d}, nil
}

// activeError describes the release that blocks a new one.
func activeError(ctx context.Context, c client.Client, d spec.Release, runID string) error {
	id := spec.WorkflowID(d.Service, d.Environment)
	what := fmt.Sprintf("run %s", runID)
	if st, err := Status(ctx, c, d.Service, d.Environment, ""); err == nil {
		what = fmt.Sprintf("version %s, %s", st.Version, describePhase(st))
	}
	return fmt.Errorf("%w for %s in %s (workflow %s, %s); wait for it to end, or abort it: shepherd abort %s --env %s --reason REASON",
		ErrAlreadyActive, d.Service, d.Environment, id, what, d.Service, d.Environment)
}

func describePhase(st record.Status) string {
	if st.Stage == nil {
		return "phase " + string(st.Phase)
	}
	return fmt.Sprintf("phase %s at stage %d/%d (%d%%)", st.Phase, st.Stage.Number, st.Stage.Of, st.Stage.Percent)
}

// Status asks a release for its status: the latest run of the service's release in env when runID is empty.
// It works for running and ended releases alike (a worker must be up to answer queries).
func Status(ctx context.Context, c client.Client, service, env, runID string) (record.Status, error) {
	var st record.Status
	id := spec.WorkflowID(service, env)
	v, err := c.QueryWorkflow(ctx, id, runID, workflows.StatusQuery)
	if err != nil {
		var nf *serviceerror.NotFound
		if errors.As(err, &nf) {
			return st, noRelease{fmt.Sprintf("no release of %s in %s found (workflow %s); list releases with: shepherd list", service, env, id)}
		}
		return st, fmt.Errorf("querying release %s: %w (is a shepherd worker running? queries need one)", id, err)
	}
	if err := v.Get(&st); err != nil {
		return st, fmt.Errorf("decoding the status of %s: %w", id, err)
	}
	return st, nil
}

// Pollers counts the workers polling Shepherd's task queue for workflow tasks now. With none, a started
// release makes no progress (and status queries fail) until a worker starts.
func Pollers(ctx context.Context, c client.Client) (int, error) {
	resp, err := c.DescribeTaskQueue(ctx, workflows.TaskQueue, enumspb.TASK_QUEUE_TYPE_WORKFLOW)
	if err != nil {
		return 0, fmt.Errorf("describing task queue %q: %w", workflows.TaskQueue, err)
	}
	return len(resp.GetPollers()), nil
}

// PendingClaim is the claim a person signs to approve (or resume) the release of service in env as it
// is now, valid for validFor: the workflow, its current run, the gate (for resume, the paused stage) and
// the action. It fails when there is nothing to approve or resume.
func PendingClaim(ctx context.Context, c client.Client, service, env, action string, validFor time.Duration) (approvals.Claim, error) {
	st, err := Status(ctx, c, service, env, "")
	if err != nil {
		return approvals.Claim{}, err
	}
	gate := st.Gate
	if action == workflows.Resume {
		if st.Phase != record.PhasePaused || st.Stage == nil {
			return approvals.Claim{}, fmt.Errorf("the release of %s in %s is %s, not Paused; nothing to resume", service, env, st.Phase)
		}
		gate = fmt.Sprintf("resume:stage:%d", st.Stage.Number)
	} else if gate == "" {
		return approvals.Claim{}, fmt.Errorf("the release of %s in %s is %s and waits at no approval gate", service, env, st.Phase)
	}
	wf, run, _ := strings.Cut(st.ReleaseID, "/")
	return approvals.Claim{WorkflowID: wf, RunID: run, Gate: gate, Action: action,
		Expires: time.Now().Add(validFor).UTC().Truncate(time.Second)}, nil
}

// Control sends approve, abort, pause or resume as an update and returns the workflow's answer; a
// request that makes no sense now comes back as an error saying why, and changes nothing.
func Control(ctx context.Context, c client.Client, service, env, name string, req workflows.ControlRequest) (workflows.ControlResponse, error) {
	var resp workflows.ControlResponse
	switch name {
	case workflows.Approve, workflows.Abort, workflows.Pause, workflows.Resume, workflows.Retry, workflows.Acknowledge:
	default:
		return resp, fmt.Errorf("unknown control %q: want approve, abort, pause, resume, retry or acknowledge", name)
	}
	id := spec.WorkflowID(service, env)
	h, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID:   id,
		UpdateName:   name,
		Args:         []any{req},
		WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	if err != nil {
		return resp, controlError(name, service, env, err)
	}
	if err := h.Get(ctx, &resp); err != nil {
		return resp, controlError(name, service, env, err)
	}
	return resp, nil
}

// ErrRejected wraps the reason the workflow gave for refusing a control request.
var ErrRejected = errors.New("rejected")

func controlError(name, service, env string, err error) error {
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return noRelease{fmt.Sprintf("%s: no active release of %s in %s", name, service, env)}
	}
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return fmt.Errorf("%s %w: %s", name, ErrRejected, appErr.Message())
	}
	msg := err.Error()
	if strings.Contains(msg, "workflow execution already completed") {
		return noRelease{fmt.Sprintf("%s: the release of %s in %s has already ended", name, service, env)}
	}
	return fmt.Errorf("%s for %s in %s: %w", name, service, env, err)
}

// Wait blocks until the release ends and returns its final record.
func Wait(ctx context.Context, c client.Client, service, env, runID string) (record.Result, error) {
	var res record.Result
	err := c.GetWorkflow(ctx, spec.WorkflowID(service, env), runID).Get(ctx, &res)
	if err == nil {
		return res, nil
	}
	// Rolled-back-by-cancellation and failed rollbacks carry the record as details.
	var canceled *temporal.CanceledError
	if errors.As(err, &canceled) && canceled.HasDetails() && canceled.Details(&res) == nil {
		return res, nil
	}
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) && appErr.HasDetails() && appErr.Details(&res) == nil {
		return res, nil
	}
	return res, err
}

// Summary is one line of `shepherd list`.
type Summary struct {
	Service        string    `json:"service"`
	Environment    string    `json:"environment"`
	Version        string    `json:"version"`
	Phase          string    `json:"phase"`
	TrafficPercent int64     `json:"trafficPercent"`
	Status         string    `json:"status"`
	WorkflowID     string    `json:"workflowID"`
	RunID          string    `json:"runID"`
	StartedAt      time.Time `json:"startedAt"`
	ClosedAt       time.Time `json:"closedAt,omitempty"`
}

// List returns releases matching a visibility query (ANDed with the Release workflow type), newest first.
func List(ctx context.Context, c client.Client, query string, limit int) ([]Summary, error) {
	q := fmt.Sprintf("WorkflowType = '%s'", workflows.ReleaseWorkflow)
	if strings.TrimSpace(query) != "" {
		q += " AND (" + query + ")"
	}
	var out []Summary
	var token []byte
	for {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: q, PageSize: int32(min(limit, 1000)), NextPageToken: token})
		if err != nil {
			return nil, fmt.Errorf("listing releases (%s): %w", q, err)
		}
		for _, e := range resp.Executions {
			fields := e.GetSearchAttributes().GetIndexedFields()
			s := Summary{
				WorkflowID: e.GetExecution().GetWorkflowId(),
				RunID:      e.GetExecution().GetRunId(),
				Status:     strings.TrimPrefix(e.GetStatus().String(), "WorkflowExecutionStatus"),
				StartedAt:  e.GetStartTime().AsTime(),
			}
			if e.GetCloseTime() != nil {
				s.ClosedAt = e.GetCloseTime().AsTime()
			}
			decode(fields, workflows.AttrService.GetName(), &s.Service)
			decode(fields, workflows.AttrEnvironment.GetName(), &s.Environment)
			decode(fields, workflows.AttrVersion.GetName(), &s.Version)
			decode(fields, workflows.AttrPhase.GetName(), &s.Phase)
			decode(fields, workflows.AttrTrafficPercent.GetName(), &s.TrafficPercent)
			out = append(out, s)
			if len(out) >= limit {
				return out, nil
			}
		}
		token = resp.NextPageToken
		if len(token) == 0 {
			return out, nil
		}
	}
}

// decode reads one search attribute; a missing or odd one leaves v as it was (listing shows it empty).
func decode(fields map[string]*commonpb.Payload, name string, v any) {
	if p, ok := fields[name]; ok {
		_ = converter.GetDefaultDataConverter().FromPayload(p, v)
	}
}

// PlanMarkdown is the release plan shown as the workflow's static details in the UI.
func PlanMarkdown(d spec.Release) string {
	var b strings.Builder
	fmt.Fprintf(&b, "**%s** %s: %s → **%s** on target `%s`\n\n", d.Service, d.Environment,
		orUnknown(d.PreviousVersion), d.Version, d.Target)
	if d.Description != "" {
		b.WriteString(d.Description + "\n\n")
	}
	b.WriteString("| Stage | Traffic | Soak | Approval |\n|---|---|---|---|\n")
	for i, s := range d.Stages {
		approval := ""
		if s.Approval {
			approval = "required"
			if s.ApprovalTimeout > 0 {
				approval += fmt.Sprintf(" (%s, then %s)", s.ApprovalTimeout, s.OnApprovalTimeout)
			}
		}
		fmt.Fprintf(&b, "| %d | %d%% | %s | %s |\n", i+1, s.Percent, s.Soak, approval)
	}
	if d.Analysis.Disabled {
		b.WriteString("\nAnalysis: **disabled** (stages pass on soak time alone)\n")
	} else {
		fmt.Fprintf(&b, "\nAnalysis every %s (rollback after %d failed, pause after %d inconclusive in a row):\n\n",
			d.Analysis.Interval, d.Analysis.FailureLimit, d.Analysis.InconclusiveLimit)
		for _, c := range d.Analysis.Checks {
			fmt.Fprintf(&b, "- %s: %s\n", c.Name, c.PassCondition())
		}
	}
	return b.String()
}

func orUnknown(s string) string {
	if s == "" {
		return "(current stable)"
	}
	return s
}
