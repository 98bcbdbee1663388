package workflows

// The committed histories (testdata/histories, recorded by `make histories` from the end-to-end tests named
// in brackets) and the paths production runs that each covers:
//
//	analysis-pass                 stage watches that pass (WatchStage on a real Prometheus), an exec
//	                              precheck and a sign-off gate (approve --role), feature flags (flagd
//	                              file), webhook notifications, promotion [TestAnalysisPassesWithSignoffFlagsNotifications]
//	analysis-inconclusive-resume  a watch that ends inconclusive (no data) at the limit, Paused, resume,
//	                              a fresh watch that passes, promotion [TestAnalysisInconclusivePausesThenResumes]
//	analysis-failure              an analysis failure and its rollback, whose "remove canary" step fails
//	                              once and succeeds on its retry; analysisFailed and rolledBack
//	                              notifications [TestAnalysisFailureRollsBackThroughAFailingStep]
//	approval-timeout              an approval timeout that proceeds, then one that aborts and rolls back
//	                              [TestApprovalTimeouts]
//	rollback-stuck-retry          a rollback step refused with an error no retry fixes (local target,
//	                              409): RollbackStuck, rollbackStuck notification, retry, RolledBack
//	                              [TestRollbackStuckThenRetried]
//	good-release                  stages without analysis, promotion [TestGoodRelease]
//	abort                         abort signal (Temporal CLI) mid-soak, rollback [TestAbortMidSoakWithTemporalSignal]
//	approval                      approval gates by update and signal, rejected approvals [TestApprovalGates]
//	temporal-cli                  start, query, approve with the Temporal CLI [TestTemporalCLIStartQueryList]
//	crash-mid-soak                worker killed mid-soak, another finishes the release [TestWorkerKilledMidSoak]
//	crash-mid-activity            worker killed mid-step, the step retried on another [TestWorkerKilledMidActivity]
//
//	crash-mid-watch               worker killed while a stage's watch runs, the watch resumed from its
//	                              heartbeat on another worker [TestWorkerKilledMidWatchResumes]
//
// Older generations, never re-recorded, prove the GetVersion gates keep releases started by older code
// replaying: pre-watch-analysis/ holds the first eleven as recorded before changeWatchAnalysis (timer +
// Measure rounds; rolled-back releases completing), pre-safe-boundaries/ six recorded before
// changeSafeBoundaries.

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
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

// historiesDir holds histories of real releases, recorded from a dev server by the end-to-end tests
// (`make histories`). Its subdirectory preSafeBoundaries holds histories recorded by the code before
// changeSafeBoundaries; they are never re-recorded: they prove the GetVersion gate keeps releases started
// by that code replaying.
const (
	historiesDir      = "../testdata/histories"
	preSafeBoundaries = "pre-safe-boundaries"
	preWatchAnalysis  = "pre-watch-analysis"
)

// generations says which version markers the histories of each directory must have ("" is historiesDir
// itself, today's generation): a history recorded by today's code in an older generation's directory
// would leave that generation's path untested.
var generations = map[string]map[string]bool{
	preSafeBoundaries: {changeSafeBoundaries: false, changeWatchAnalysis: false},
	preWatchAnalysis:  {changeSafeBoundaries: true, changeWatchAnalysis: false},
	"":                {changeSafeBoundaries: true, changeWatchAnalysis: true, changeFailedOnRollback: true},
}

// historyFiles lists every committed history: those in historiesDir and in its subdirectories.
func historyFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	for _, pattern := range []string{"*.json", "*/*.json"} {
		m, err := filepath.Glob(filepath.Join(historiesDir, pattern))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	return files
}

// historyName is a history's path relative to historiesDir without ".json", e.g.
// "pre-safe-boundaries/abort": the subtest's name.
func historyName(t *testing.T, path string) string {
	t.Helper()
	rel, err := filepath.Rel(historiesDir, path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSuffix(filepath.ToSlash(rel), ".json")
}

// TestReplayRecordedHistories replays every committed history against the workflow code as registered
// by the worker. A failure means a change alters the commands a running release already issued: guard it
// with workflow.GetVersion (or, if the history is obsolete on purpose, re-record).
func TestReplayRecordedHistories(t *testing.T) {
	files := historyFiles(t)
	if len(files) == 0 {
		t.Fatalf("no histories in %s: record them with `make histories`", historiesDir)
	}
	for _, f := range files {
		t.Run(historyName(t, f), func(t *testing.T) {
			dir := filepath.ToSlash(filepath.Dir(historyName(t, f)))
			if dir == "." {
				dir = ""
			}
			want, ok := generations[dir]
			if !ok {
				t.Fatalf("%s: no generation is declared for directory %q", f, dir)
			}
			got := versionMarkers(t, f)
			for change, present := range want {
				// A release that did not roll back never reaches the failed-on-rollback gate.
				if change == changeFailedOnRollback && !got[change] {
					continue
				}
				if got[change] != present {
					t.Fatalf("%s: version marker %q present: %v; want %v (generation %q)", f, change, got[change], present, dir)
				}
			}
			r := worker.NewWorkflowReplayer()
			RegisterWorkflows(r)
			if err := replayFile(t, r, f); err != nil {
				t.Fatalf("%s does not replay: %v", f, err)
			}
		})
	}
}

// versionMarkers lists the changes whose version markers the history holds.
func versionMarkers(t *testing.T, path string) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, e := range decodeHistory(t, b).Events {
		if name, ok := strings.CutPrefix(safeBoundariesEvent(e), "Version marker "); ok {
			out[strings.Trim(name, `"`)] = true
		}
	}
	return out
}

// TestReplayCatchesReorderedCommands shows the replay test has teeth: the same history replayed against
// a Release that issues its commands in another order fails with a nondeterminism error. It runs over a
// history of each generation: one recorded with changeSafeBoundaries (whose first commands are a version
// marker and a side effect) and one recorded before it.
func TestReplayCatchesReorderedCommands(t *testing.T) {
	for _, name := range []string{"good-release", preSafeBoundaries + "/good-release"} {
		t.Run(name, func(t *testing.T) {
			f := filepath.Join(historiesDir, filepath.FromSlash(name)+".json")
			if _, err := os.Stat(f); err != nil {
				t.Fatalf("%v: record the histories with `make histories`", err)
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

// replayFile replays a history file under the workflow ID and run ID it was recorded with.
func replayFile(t *testing.T, r worker.WorkflowReplayer, path string) error {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return replayJSON(t, r, path, b)
}

// replayJSON replays a history given as `temporal workflow show --output json` prints it, under the
// workflow ID and run ID it was recorded with. The ID matters: Release refuses to run under any ID but
// release:<service>:<environment>, and the replayer's default ID would make every replay take the "wrong
// workflow ID" path. The history does not store the ID, so it is derived from the spec in the start
// event, as the workflow itself derives it.
func replayJSON(t *testing.T, r worker.WorkflowReplayer, name string, b []byte) error {
	t.Helper()
	h, err := client.HistoryFromJSON(bytes.NewReader(b), client.HistoryJSONOptions{})
	if err != nil {
		t.Fatalf("reading %s: %v", name, err)
	}
	if len(h.Events) == 0 {
		t.Fatalf("%s holds no events", name)
	}
	started := h.Events[0].GetWorkflowExecutionStartedEventAttributes()
	if started == nil {
		t.Fatalf("%s does not begin with WorkflowExecutionStarted", name)
	}
	var in spec.Release
	if err := converter.GetDefaultDataConverter().FromPayloads(started.GetInput(), &in); err != nil {
		t.Fatalf("%s: decoding the release spec: %v", name, err)
	}
	d := in.WithDefaults()
	exec := workflow.Execution{ID: spec.WorkflowID(d.Service, d.Environment), RunID: started.GetOriginalExecutionRunId()}
	logger := sdklog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))
	return r.ReplayWorkflowHistoryWithOptions(logger, h, worker.ReplayWorkflowHistoryOptions{OriginalExecution: exec})
}

// history is a history in the JSON form `temporal workflow show --output json` prints, edited as plain
// JSON so that what is not edited stays as recorded.
type history struct {
	Events []map[string]any `json:"events"`
}

func decodeHistory(t *testing.T, raw []byte) history {
	t.Helper()
	var h history
	if err := json.Unmarshal(raw, &h); err != nil {
		t.Fatal(err)
	}
	return h
}

// safeBoundariesEvent names e if changeSafeBoundaries made it, else returns "".
func safeBoundariesEvent(e map[string]any) string {
	if m, ok := e["markerRecordedEventAttributes"].(map[string]any); ok {
		switch m["markerName"] {
		case "Version":
			// The safe-boundaries change and every later one: a release older than it has none of them.
			id := m["details"].(map[string]any)["change-id"].(map[string]any)["payloads"].([]any)[0].(map[string]any)["data"].(string)
			b, _ := base64.StdEncoding.DecodeString(id)
			return "Version marker " + string(b)
		case "SideEffect":
			return "SideEffect marker"
		case "LocalActivity":
			return "LocalActivity marker"
		}
	}
	if u, ok := e["upsertWorkflowSearchAttributesEventAttributes"].(map[string]any); ok {
		fields := u["searchAttributes"].(map[string]any)["indexedFields"].(map[string]any)
		if _, ok := fields["TemporalChangeVersion"]; ok && len(fields) == 1 {
			return "TemporalChangeVersion"
		}
	}
	return ""
}
