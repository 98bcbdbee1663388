package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// SectionWorker is the key of the worker tuning section.
const SectionWorker = "worker"

// Worker tunes how one worker process takes and runs tasks: the Temporal SDK's pollers, execution slots
// and sticky workflow cache. Every key is optional; an absent key takes its default from DefaultTuning,
// whose values and costs docs/operations.md ("Worker tuning") gives with the measurements behind them.
type Worker struct {
	// WorkflowTaskPollers is how many long polls the worker keeps open for workflow tasks (split
	// between the task queue and the worker's sticky queue). At least 2: the SDK refuses 1.
	WorkflowTaskPollers *int `json:"workflowTaskPollers,omitempty"`
	// ActivityTaskPollers is how many long polls the worker keeps open for activity tasks.
	ActivityTaskPollers *int `json:"activityTaskPollers,omitempty"`
	// MaxConcurrentWorkflowTasks bounds the workflow tasks the worker runs at once.
	MaxConcurrentWorkflowTasks *int `json:"maxConcurrentWorkflowTasks,omitempty"`
	// MaxConcurrentActivities bounds the activities the worker runs at once. A soaking stage's
	// analysis is one activity for the whole soak, so this bounds the soaking releases a worker carries
	// together with the steps (deploys, traffic shifts, rollbacks) in flight.
	MaxConcurrentActivities *int `json:"maxConcurrentActivities,omitempty"`
	// MaxConcurrentLocalActivities bounds the local activities (the change-freeze clock reads) at once.
	MaxConcurrentLocalActivities *int `json:"maxConcurrentLocalActivities,omitempty"`
	// StickyCacheSize is how many workflows the process keeps in memory between their tasks; a workflow
	// evicted from it replays its history on its next task. The cache belongs to the process (the SDK
	// shares it among every worker in it), so one process can run only one size.
	StickyCacheSize *int `json:"stickyCacheSize,omitempty"`
}

// Tuning is the worker section with every value resolved. A zero field means its DefaultTuning value.
type Tuning struct {
	WorkflowTaskPollers          int `json:"workflowTaskPollers"`
	ActivityTaskPollers          int `json:"activityTaskPollers"`
	MaxConcurrentWorkflowTasks   int `json:"maxConcurrentWorkflowTasks"`
	MaxConcurrentActivities      int `json:"maxConcurrentActivities"`
	MaxConcurrentLocalActivities int `json:"maxConcurrentLocalActivities"`
	StickyCacheSize              int `json:"stickyCacheSize"`
}

// DefaultTuning is what a worker runs with when its configuration has no worker section. It departs
// from the Temporal SDK's defaults only where `shepherd bench --scale` measured a difference
// (docs/BENCHMARKS.md, docs/operations.md#worker): a soaking release holds an activity slot for its whole
// soak, and with the SDK's 1000 slots one worker carrying 1,000 releases had none left for an abort's
// rollback step. Twice the pollers and a tenth of the workflow-task slots measured no different, so
// those stay the SDK's.
var DefaultTuning = Tuning{
	WorkflowTaskPollers:          2,
	ActivityTaskPollers:          2,
	MaxConcurrentWorkflowTasks:   1000,
	MaxConcurrentActivities:      2000,
	MaxConcurrentLocalActivities: 1000,
	StickyCacheSize:              10000,
}

// tuningBounds are the accepted range of each key, by key, in the order of the section.
var tuningBounds = []struct {
	key      string
	min, max int
	get      func(*Worker) *int
	set      func(*Tuning) *int
}{
	{"workflowTaskPollers", 2, 64, func(w *Worker) *int { return w.WorkflowTaskPollers }, func(t *Tuning) *int { return &t.WorkflowTaskPollers }},
	{"activityTaskPollers", 1, 64, func(w *Worker) *int { return w.ActivityTaskPollers }, func(t *Tuning) *int { return &t.ActivityTaskPollers }},
	{"maxConcurrentWorkflowTasks", 1, 10_000, func(w *Worker) *int { return w.MaxConcurrentWorkflowTasks }, func(t *Tuning) *int { return &t.MaxConcurrentWorkflowTasks }},
	{"maxConcurrentActivities", 1, 100_000, func(w *Worker) *int { return w.MaxConcurrentActivities }, func(t *Tuning) *int { return &t.MaxConcurrentActivities }},
	{"maxConcurrentLocalActivities", 1, 10_000, func(w *Worker) *int { return w.MaxConcurrentLocalActivities }, func(t *Tuning) *int { return &t.MaxConcurrentLocalActivities }},
	{"stickyCacheSize", 1, 1_000_000, func(w *Worker) *int { return w.StickyCacheSize }, func(t *Tuning) *int { return &t.StickyCacheSize }},
}

// TuningBounds describes the accepted range of every key, for documentation: key → [min, max].
func TuningBounds() map[string][2]int {
	out := map[string][2]int{}
	for _, b := range tuningBounds {
		out[b.key] = [2]int{b.min, b.max}
	}
	return out
}

// validate adds a problem for every key out of its bounds, and one when the worker runs more
// workflow-task pollers than it has slots for them (a poller holds a slot while it waits).
func (w *Worker) validate(p *Problems) {
	if w == nil {
		return
	}
	for _, b := range tuningBounds {
		if v := b.get(w); v != nil && (*v < b.min || *v > b.max) {
			p.Add(SectionWorker+"."+b.key, "must be between %d and %d, got %d", b.min, b.max, *v)
		}
	}
	t := w.Tuning()
	if t.WorkflowTaskPollers > t.MaxConcurrentWorkflowTasks {
		p.Add(SectionWorker+".workflowTaskPollers", "%d pollers need as many workflow task slots; maxConcurrentWorkflowTasks is %d",
			t.WorkflowTaskPollers, t.MaxConcurrentWorkflowTasks)
	}
	if t.ActivityTaskPollers > t.MaxConcurrentActivities {
		p.Add(SectionWorker+".activityTaskPollers", "%d pollers need as many activity slots; maxConcurrentActivities is %d",
			t.ActivityTaskPollers, t.MaxConcurrentActivities)
	}
}

// Tuning resolves the section: each key given, else its default. A nil section is DefaultTuning.
func (w *Worker) Tuning() Tuning {
	t := DefaultTuning
	if w == nil {
		return t
	}
	for _, b := range tuningBounds {
		if v := b.get(w); v != nil {
			*b.set(&t) = *v
		}
	}
	return t
}

// WithDefaults fills every zero field from DefaultTuning.
func (t Tuning) WithDefaults() Tuning {
	for _, b := range tuningBounds {
		if v := b.set(&t); *v == 0 {
			*v = *b.set(&DefaultTuning)
		}
	}
	return t
}

// String lists the values as the section's keys, for logs.
func (t Tuning) String() string {
	return fmt.Sprintf("workflowTaskPollers=%d activityTaskPollers=%d maxConcurrentWorkflowTasks=%d maxConcurrentActivities=%d "+
		"maxConcurrentLocalActivities=%d stickyCacheSize=%d", t.WorkflowTaskPollers, t.ActivityTaskPollers,
		t.MaxConcurrentWorkflowTasks, t.MaxConcurrentActivities, t.MaxConcurrentLocalActivities, t.StickyCacheSize)
}

// checkWorkerSection decodes the worker section on its own first, so that a misspelt or mistyped key is
// reported with its field path and the keys there are (the whole file's decoder names only the key).
func checkWorkerSection(js []byte) error {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(js, &top); err != nil {
		return nil // the full decode reports it
	}
	raw, ok := top[SectionWorker]
	if !ok || string(raw) == "null" {
		return nil
	}
	var keys []string
	for _, b := range tuningBounds {
		keys = append(keys, b.key)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var w Worker
	err := dec.Decode(&w)
	var typeErr *json.UnmarshalTypeError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &typeErr) && typeErr.Field != "":
		return fmt.Errorf("%s.%s: want a whole number, got %s", SectionWorker, typeErr.Field, typeErr.Value)
	case strings.Contains(err.Error(), "unknown field "):
		_, f, _ := strings.Cut(err.Error(), "unknown field ")
		return fmt.Errorf("%s: unknown key %s (the keys are %s)", SectionWorker, f, strings.Join(keys, ", "))
	default:
		return fmt.Errorf("%s: want a mapping of %s", SectionWorker, strings.Join(keys, ", "))
	}
}
