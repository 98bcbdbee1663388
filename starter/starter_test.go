package starter

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/mocks"
	"go.temporal.io/sdk/temporal"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/shepherd-release/shepherd/record"
	"github.com/shepherd-release/shepherd/spec"
	"github.com/shepherd-release/shepherd/workflows"
)

// execSpec is a valid spec naming an exec target of the worker configuration; tests change what they need.
func execSpec(t *testing.T) spec.Release {
	t.Helper()
	r, err := spec.Parse([]byte(`
service: checkout
environment: staging
version: v2
previousVersion: v1
target: checkout-staging
stages: [{percent: 50, soak: 1m}, {percent: 100, soak: 1m}]
analysis: {disabled: true}
`))
	require.NoError(t, err)
	return r
}

// A spec built in Go (not read from a file) is held to the same size bound before it is sent.
func TestStartRefusesAnOversizedSpec(t *testing.T) {
	c := mocks.NewClient(t) // no ExecuteWorkflow expected: the spec never reaches the server
	s := execSpec(t)
	s.Description = strings.Repeat("x", spec.MaxSpecBytes)
	_, err := Start(context.Background(), c, s)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "larger than the limit of 1048576 bytes")
}

func TestStartRefusesAnInvalidSpecWithoutCallingTemporal(t *testing.T) {
	c := mocks.NewClient(t)
	s := execSpec(t)
	s.Version = `v2$(id)`
	_, err := Start(context.Background(), c, s)
	var verr *spec.ValidationError
	require.ErrorAs(t, err, &verr)
	assert.Equal(t, "version", verr.Problems[0].Path)
}

// Start sends the workflow exactly once per service and environment: the ID, the conflict policy and the
// error on an already-running release are what make "one active release" hold.
func TestStartOptions(t *testing.T) {
	c := mocks.NewClient(t)
	run := mocks.NewWorkflowRun(t)
	run.On("GetRunID").Return("run-1")
	var got client.StartWorkflowOptions
	var sent spec.Release
	c.On("ExecuteWorkflow", mock.Anything, mock.Anything, workflows.ReleaseWorkflow, mock.Anything).
		Run(func(args mock.Arguments) {
			got = args.Get(1).(client.StartWorkflowOptions)
			sent = args.Get(3).(spec.Release)
		}).Return(run, nil)

	s := execSpec(t)
	st, err := Start(context.Background(), c, s)
	require.NoError(t, err)
	assert.Equal(t, Started{WorkflowID: "release:checkout:staging", RunID: "run-1", Spec: s.WithDefaults()}, st)
	assert.Equal(t, "release:checkout:staging", got.ID)
	assert.Equal(t, workflows.TaskQueue, got.TaskQueue)
	assert.Equal(t, enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL, got.WorkflowIDConflictPolicy)
	assert.True(t, got.WorkflowExecutionErrorWhenAlreadyStarted)
	assert.Equal(t, "Release checkout staging → v2", got.StaticSummary)
	assert.Contains(t, got.StaticDetails, "| 1 | 50% | 1m0s |")
	assert.Equal(t, 5, got.TypedSearchAttributes.Size())
	// The spec is sent as written: the workflow applies the defaults itself, so it validates what it ran.
	assert.Equal(t, s.Environment, sent.Environment)
	assert.Empty(t, sent.Analysis.Interval)
}

func TestStartNamesTheActiveRelease(t *testing.T) {
	c := mocks.NewClient(t)
	c.On("ExecuteWorkflow", mock.Anything, mock.Anything, workflows.ReleaseWorkflow, mock.Anything).
		Return(nil, serviceerror.NewWorkflowExecutionAlreadyStarted("running", "", "run-0"))
	status := &mocks.Value{}
	t.Cleanup(func() { status.AssertExpectations(t) })
	status.On("Get", mock.Anything).Return(func(p any) error {
		*(p.(*record.Status)) = record.Status{Version: "v1.9", Phase: record.PhaseProgressing,
			Stage: &record.StageStatus{Number: 2, Of: 3, Percent: 50}}
		return nil
	})
	c.On("QueryWorkflow", mock.Anything, "release:checkout:staging", "", workflows.StatusQuery).Return(status, nil)

	_, err := Start(context.Background(), c, execSpec(t))
	require.ErrorIs(t, err, ErrAlreadyActive)
	assert.Contains(t, err.Error(), "version v1.9, phase Progressing at stage 2/3 (50%)")
	assert.Contains(t, err.Error(), "shepherd abort checkout --env staging --reason REASON")
}

func TestStatusOfAnUnknownRelease(t *testing.T) {
	c := mocks.NewClient(t)
	c.On("QueryWorkflow", mock.Anything, "release:checkout:staging", "", workflows.StatusQuery).
		Return(nil, serviceerror.NewNotFound("workflow not found"))
	_, err := Status(context.Background(), c, "checkout", "staging", "")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no release of checkout in staging found")
}

func TestControl(t *testing.T) {
	ctx := context.Background()
	t.Run("unknown control is refused before calling Temporal", func(t *testing.T) {
		_, err := Control(ctx, mocks.NewClient(t), "checkout", "staging", "promote-now", workflows.ControlRequest{By: "ana"})
		require.Error(t, err)
		assert.Contains(t, err.Error(), `unknown control "promote-now"`)
	})
	t.Run("sent as an update and answered", func(t *testing.T) {
		c := mocks.NewClient(t)
		h := mocks.NewWorkflowUpdateHandle(t)
		h.On("Get", mock.Anything, mock.Anything).Return(func(_ context.Context, p any) error {
			*(p.(*workflows.ControlResponse)) = workflows.ControlResponse{}
			return nil
		})
		c.On("UpdateWorkflow", mock.Anything, mock.MatchedBy(func(o client.UpdateWorkflowOptions) bool {
			return o.WorkflowID == "release:checkout:staging" && o.UpdateName == workflows.Approve &&
				o.WaitForStage == client.WorkflowUpdateStageCompleted && len(o.Args) == 1
		})).Return(h, nil)
		_, err := Control(ctx, c, "checkout", "staging", workflows.Approve, workflows.ControlRequest{By: "ana"})
		require.NoError(t, err)
	})
	t.Run("rejection carries the workflow's reason", func(t *testing.T) {
		c := mocks.NewClient(t)
		c.On("UpdateWorkflow", mock.Anything, mock.Anything).
			Return(nil, temporal.NewApplicationError("not waiting for approval", "Rejected"))
		_, err := Control(ctx, c, "checkout", "staging", workflows.Approve, workflows.ControlRequest{By: "ana"})
		require.ErrorIs(t, err, ErrRejected)
		assert.Contains(t, err.Error(), "not waiting for approval")
	})
	t.Run("no active release", func(t *testing.T) {
		c := mocks.NewClient(t)
		c.On("UpdateWorkflow", mock.Anything, mock.Anything).Return(nil, serviceerror.NewNotFound("gone"))
		_, err := Control(ctx, c, "checkout", "staging", workflows.Abort, workflows.ControlRequest{By: "ana"})
		require.EqualError(t, err, "abort: no active release of checkout in staging")
	})
}

func TestListQueriesReleasesAndDecodesAttributes(t *testing.T) {
	c := mocks.NewClient(t)
	dc := converter.GetDefaultDataConverter()
	attr := func(v any) *commonpb.Payload {
		p, err := dc.ToPayload(v)
		require.NoError(t, err)
		return p
	}
	started := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	c.On("ListWorkflow", mock.Anything, mock.MatchedBy(func(r *workflowservice.ListWorkflowExecutionsRequest) bool {
		return r.Query == "WorkflowType = 'Release' AND (ReleaseService = 'checkout')" && r.PageSize == 10
	})).Return(&workflowservice.ListWorkflowExecutionsResponse{Executions: []*workflowpb.WorkflowExecutionInfo{{
		Execution: &commonpb.WorkflowExecution{WorkflowId: "release:checkout:staging", RunId: "run-1"},
		Status:    enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING,
		StartTime: timestamppb.New(started),
		SearchAttributes: &commonpb.SearchAttributes{IndexedFields: map[string]*commonpb.Payload{
			workflows.AttrService.GetName():        attr("checkout"),
			workflows.AttrEnvironment.GetName():    attr("staging"),
			workflows.AttrVersion.GetName():        attr("v2"),
			workflows.AttrPhase.GetName():          attr("Progressing"),
			workflows.AttrTrafficPercent.GetName(): attr(25),
		}},
	}}}, nil)
	got, err := List(context.Background(), c, "ReleaseService = 'checkout'", 10)
	require.NoError(t, err)
	assert.Equal(t, []Summary{{Service: "checkout", Environment: "staging", Version: "v2", Phase: "Progressing",
		TrafficPercent: 25, Status: "Running", WorkflowID: "release:checkout:staging", RunID: "run-1",
		StartedAt: started}}, got)
}

// The plan in the web UI renders its list of checks as a list: Markdown needs a blank line before it.
func TestPlanMarkdownListsStartAfterABlankLine(t *testing.T) {
	d := spec.Release{Service: "checkout", Version: "v2", Target: "t"}.WithDefaults()
	md := PlanMarkdown(d)
	i := strings.Index(md, "\n- ")
	if i < 0 {
		t.Fatalf("no list of checks:\n%s", md)
	}
	if !strings.HasSuffix(md[:i], "\n") {
		t.Errorf("the list of checks follows a line without a blank line:\n%s", md)
	}
}
