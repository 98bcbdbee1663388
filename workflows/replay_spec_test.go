package workflows

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/worker"

	"github.com/shepherd-release/shepherd/spec"
)

// TestReplayRunsOnTheSpecResolvedAtStart: a release runs on its spec as resolved when it started (defaults
// applied, validated), recorded in history as a side effect, and never resolves it again. So a later
// change of a default cannot change what a running release does on replay.
//
// The test simulates such a change the other way round, which has the same effect on replay: it keeps the
// code and edits the recorded start input so that a default now applies where the release had an
// explicit value, one that would change the commands the release issues:
//   - analysis-pass soaked stage 1 for 3 s. Without stages[0].soak, the default (15 min) would keep stage
//     1 soaking, scheduling another analysis timer where the history shifts traffic to stage 2.
//   - analysis-inconclusive-resume paused after 2 inconclusive rounds. Without analysis.inconclusiveLimit,
//     the default (3) would measure a third time where the history pauses (a search attribute update).
//
// Each altered history must still replay: the workflow reads the resolved spec from the SideEffect
// marker, not from the start input.
//
// Not every default is such a probe: without analysis.interval (default 10 s, longer than these soaks)
// the history still replays even on the legacy path, because a replay does not compare timer durations
// and the soak loop counts the workflow time that passed between the recorded timer firings, so the
// rounds come out the same.
//
// The control shows the test has teeth. Releases started before changeSafeBoundaries take the legacy
// path, which resolves the start input afresh on every replay. Removing the events of that change (the
// version marker, the TemporalChangeVersion search attribute it sets, and its two SideEffect markers: the
// resolved spec and the post-mortem decision) sends the
// replay down that path. The unaltered history without those events still replays, so removing them
// changes nothing else; the altered history without them fails with a nondeterminism error. The only
// difference between the two replays of the altered history is the recorded resolved spec, which is what
// keeps the altered release replaying.
func TestReplayRunsOnTheSpecResolvedAtStart(t *testing.T) {
	for _, c := range []struct {
		history, name string
		alter         func(in map[string]any)
	}{
		{"analysis-pass", "stages[0].soak left to its default", func(in map[string]any) {
			delete(in["stages"].([]any)[0].(map[string]any), "soak")
		}},
		{"analysis-inconclusive-resume", "analysis.inconclusiveLimit left to its default", func(in map[string]any) {
			delete(in["analysis"].(map[string]any), "inconclusiveLimit")
		}},
	} {
		t.Run(c.history+"/"+c.name, func(t *testing.T) {
			// The generation before changeWatchAnalysis: stripped of its version markers, a history of today's
			// generation (WatchStage) cannot replay on the legacy path, so the control would prove nothing.
			f := filepath.Join(historiesDir, preWatchAnalysis, c.history+".json")
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatalf("%v: record the histories with `make histories`", err)
			}
			altered := alterStartInput(t, raw, c.alter)
			// The alteration matters: resolved afresh, the altered input is not the spec the release ran on.
			recorded := recordedResolvedSpec(t, raw)
			if fresh := resolve(startInput(t, altered)); reflect.DeepEqual(fresh.Spec, recorded) {
				t.Fatal("the altered start input resolves to the recorded spec; the alteration proves nothing")
			}

			if err := replayJSON(t, newReplayer(), c.name, altered); err != nil {
				t.Fatalf("the altered history does not replay: the release re-resolved its spec: %v", err)
			}

			// The control, on the legacy path.
			if err := replayJSON(t, newReplayer(), "unaltered, legacy", withoutSafeBoundaries(t, raw)); err != nil {
				t.Fatalf("the unaltered history without the safe-boundaries events does not replay, so the control "+
					"below proves nothing: %v", err)
			}
			err = replayJSON(t, newReplayer(), "altered, legacy", withoutSafeBoundaries(t, altered))
			if err == nil || !strings.Contains(err.Error(), "[TMPRL1100]") {
				t.Fatalf("on the legacy path (spec resolved from the start input on replay), the altered history "+
					"should fail with a nondeterminism error ([TMPRL1100]); got %v", err)
			}
			t.Logf("legacy path caught: %v", err)
		})
	}
}

func newReplayer() worker.WorkflowReplayer {
	r := worker.NewWorkflowReplayer()
	RegisterWorkflows(r)
	return r
}

// recordedResolvedSpec decodes the spec recorded by the SideEffect marker of changeSafeBoundaries.
func recordedResolvedSpec(t *testing.T, raw []byte) spec.Release {
	t.Helper()
	h, err := client.HistoryFromJSON(bytes.NewReader(raw), client.HistoryJSONOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range h.Events {
		if m := e.GetMarkerRecordedEventAttributes(); m != nil && m.GetMarkerName() == "SideEffect" {
			var rs resolvedSpec
			if err := converter.GetDefaultDataConverter().FromPayloads(m.GetDetails()["data"], &rs); err != nil {
				t.Fatalf("decoding the resolved spec: %v", err)
			}
			return rs.Spec
		}
	}
	t.Fatal("the history has no SideEffect marker: was it recorded before changeSafeBoundaries?")
	return spec.Release{}
}

// startInput decodes the spec in a history's start event.
func startInput(t *testing.T, raw []byte) spec.Release {
	t.Helper()
	h, err := client.HistoryFromJSON(bytes.NewReader(raw), client.HistoryJSONOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var in spec.Release
	if err := converter.GetDefaultDataConverter().FromPayloads(h.Events[0].GetWorkflowExecutionStartedEventAttributes().GetInput(), &in); err != nil {
		t.Fatal(err)
	}
	return in
}

func (h history) encode(t *testing.T) []byte {
	t.Helper()
	b, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// alterStartInput returns the history with alter applied to the spec (as JSON) in its start event.
func alterStartInput(t *testing.T, raw []byte, alter func(map[string]any)) []byte {
	t.Helper()
	h := decodeHistory(t, raw)
	attrs := h.Events[0]["workflowExecutionStartedEventAttributes"].(map[string]any)
	payload := attrs["input"].(map[string]any)["payloads"].([]any)[0].(map[string]any)
	data, err := base64.StdEncoding.DecodeString(payload["data"].(string))
	if err != nil {
		t.Fatal(err)
	}
	var in map[string]any
	if err := json.Unmarshal(data, &in); err != nil {
		t.Fatal(err)
	}
	alter(in)
	if data, err = json.Marshal(in); err != nil {
		t.Fatal(err)
	}
	payload["data"] = base64.StdEncoding.EncodeToString(data)
	return h.encode(t)
}

// withoutSafeBoundaries removes the events that changeSafeBoundaries adds to the first workflow task: the
// version marker, the TemporalChangeVersion search attribute that GetVersion sets, and the SideEffect
// marker with the resolved spec. It fails unless it finds exactly those three. The events after them are
// renumbered (with every reference to an event ID), as the replayer wants event IDs without gaps.
func withoutSafeBoundaries(t *testing.T, raw []byte) []byte {
	t.Helper()
	h := decodeHistory(t, raw)
	var kept []map[string]any
	var dropped []string
	for _, e := range h.Events {
		if name := safeBoundariesEvent(e); name != "" {
			dropped = append(dropped, name)
			continue
		}
		kept = append(kept, e)
	}
	// The change adds its version marker and the search attribute it sets, the resolved spec at the start
	// and the post-mortem decision at the end; later changes add their own markers (verified approvals:
	// local activities), which a release older than all of them has none of either.
	if len(dropped) < 4 || dropped[0] != `Version marker "`+changeSafeBoundaries+`"` || !slices.Contains(dropped, "SideEffect marker") {
		t.Fatalf("removed %q: want the safe-boundaries version marker first, and its side effects", dropped)
	}
	t.Logf("removed %q", dropped)
	renumber := map[string]string{}
	for i, e := range kept {
		renumber[e["eventId"].(string)] = strconv.Itoa(i + 1)
	}
	for _, e := range kept {
		renumberEventIDs(e, renumber)
	}
	h.Events = kept
	return h.encode(t)
}

// renumberEventIDs rewrites, in v and everything it holds, the event IDs (eventId, and every field named
// *EventId: scheduledEventId, workflowTaskCompletedEventId, ...) with their new numbers. Activity and timer
// IDs too: the Go SDK names an activity or a timer by the ID of the event that its command will become.
func renumberEventIDs(v any, renumber map[string]string) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if id, ok := x.(string); ok && (k == "eventId" || strings.HasSuffix(k, "EventId") || k == "activityId" || k == "timerId") {
				if n, ok := renumber[id]; ok {
					v[k] = n
				}
				continue
			}
			renumberEventIDs(x, renumber)
		}
	case []any:
		for _, x := range v {
			renumberEventIDs(x, renumber)
		}
	}
}
