package workflows

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/shepherd-release/shepherd/activities"
	"github.com/shepherd-release/shepherd/record"
	"github.com/shepherd-release/shepherd/spec"
)

// historiesDir holds histories of real releases, recorded from a dev server by the end-to-end tests:
// go test ./e2e/ -count=1 -record
const historiesDir = "../testdata/histories"

// TestReplayRecordedHistories replays every committed history against the workflow code as registered
// by the worker. A failure means a change alters the commands a running release already issued: guard it
// with workflow.GetVersion (or, if the history is obsolete on purpose, re-record).
func TestReplayRecordedHistories(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(historiesDir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no histories in %s: record them with `go test ./e2e/ -count=1 -record`", historiesDir)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".json"), func(t *testing.T) {
			r := worker.NewWorkflowReplayer()
			RegisterWorkflows(r)
			if err := replayFile(t, r, f); err != nil {
				t.Fatalf("%s does not replay: %v", f, err)
			}
		})
	}
}

// TestReplayCatchesReorderedCommands shows the replay test has teeth: the same history replayed against
// a Release that issues its commands in another order fails with a nondeterminism error.
func TestReplayCatchesReorderedCommands(t *testing.T) {
	f := filepath.Join(historiesDir, "good-release.json")
	if _, err := os.Stat(f); err != nil {
		t.Fatalf("%v: record the histories with `go test ./e2e/ -count=1 -record`", err)
	}
	// The control: unaltered, the history replays.
	r := worker.NewWorkflowReplayer()
	RegisterWorkflows(r)
	if err := replayFile(t, r, f); err != nil {
		t.Fatalf("the unaltered workflow does not replay %s: %v", f, err)
	}

	for name, altered := range map[string]func(workflow.Context, spec.Release) (record.Result, error){
		"deploy before preflight": releaseDeployFirst,
		"timer first":             releaseTimerFirst,
	} {
		t.Run(name, func(t *testing.T) {
			r := worker.NewWorkflowReplayer()
			r.RegisterWorkflowWithOptions(altered, workflow.RegisterOptions{Name: ReleaseWorkflow})
			err := replayFile(t, r, f)
			if err == nil {
				t.Fatal("replay of a reordered workflow succeeded; want a nondeterminism error")
			}
			if !strings.Contains(err.Error(), "[TMPRL1100]") {
				t.Fatalf("want a nondeterminism error ([TMPRL1100]), got: %v", err)
			}
			t.Logf("caught: %v", err)
		})
	}
}

// releaseDeployFirst is Release after a careless edit: it publishes the same search attributes, then
// schedules Deploy before Preflight.
func releaseDeployFirst(ctx workflow.Context, in spec.Release) (record.Result, error) {
	s := in.WithDefaults()
	if err := workflow.UpsertTypedSearchAttributes(ctx,
		AttrService.ValueSet(s.Service), AttrEnvironment.ValueSet(s.Environment), AttrVersion.ValueSet(s.Version),
		AttrPhase.ValueSet(string(record.PhaseValidating)), AttrTrafficPercent.ValueSet(0)); err != nil {
		return record.Result{}, err
	}
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute})
	for _, name := range []string{ActivityDeploy, ActivityPreflight} {
		var res activities.StepResult
		if err := workflow.ExecuteActivity(ctx, name, activities.StepInput{Step: name, Target: s.Target}).Get(ctx, &res); err != nil {
			return record.Result{}, err
		}
	}
	return record.Result{}, nil
}

// releaseTimerFirst is Release with a durable timer added in front of it.
func releaseTimerFirst(ctx workflow.Context, in spec.Release) (record.Result, error) {
	if err := workflow.Sleep(ctx, time.Second); err != nil {
		return record.Result{}, err
	}
	return Release(ctx, in)
}

// replayFile replays a history file under the workflow ID and run ID it was recorded with. The ID
// matters: Release refuses to run under any ID but release:<service>:<environment>, and the replayer's
// default ID would make every replay take the "wrong workflow ID" path. The history does not store the
// ID, so it is derived from the spec in the start event, as the workflow itself derives it.
func replayFile(t *testing.T, r worker.WorkflowReplayer, path string) error {
	t.Helper()
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	h, err := client.HistoryFromJSON(fh, client.HistoryJSONOptions{})
	if err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	if len(h.Events) == 0 {
		t.Fatalf("%s holds no events", path)
	}
	started := h.Events[0].GetWorkflowExecutionStartedEventAttributes()
	if started == nil {
		t.Fatalf("%s does not begin with WorkflowExecutionStarted", path)
	}
	var in spec.Release
	if err := converter.GetDefaultDataConverter().FromPayloads(started.GetInput(), &in); err != nil {
		t.Fatalf("%s: decoding the release spec: %v", path, err)
	}
	d := in.WithDefaults()
	exec := workflow.Execution{ID: spec.WorkflowID(d.Service, d.Environment), RunID: started.GetOriginalExecutionRunId()}
	logger := sdklog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))
	return r.ReplayWorkflowHistoryWithOptions(logger, h, worker.ReplayWorkflowHistoryOptions{OriginalExecution: exec})
}
