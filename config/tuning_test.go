package config_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/shepherd-release/shepherd/config"
)

func TestWorkerSectionDefaultsAndOverrides(t *testing.T) {
	c, err := config.Parse([]byte("targets: {}"))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Worker.Tuning(); got != config.DefaultTuning {
		t.Errorf("no section: %+v, want the defaults %+v", got, config.DefaultTuning)
	}
	c, err = config.Parse([]byte("worker: {workflowTaskPollers: 8, maxConcurrentActivities: 5000, stickyCacheSize: 2000}"))
	if err != nil {
		t.Fatal(err)
	}
	want := config.DefaultTuning
	want.WorkflowTaskPollers, want.MaxConcurrentActivities, want.StickyCacheSize = 8, 5000, 2000
	if got := c.Worker.Tuning(); got != want {
		t.Errorf("tuning = %+v, want %+v", got, want)
	}
	if got := (config.Tuning{ActivityTaskPollers: 3}).WithDefaults(); got.ActivityTaskPollers != 3 || got.StickyCacheSize != config.DefaultTuning.StickyCacheSize {
		t.Errorf("WithDefaults = %+v", got)
	}
}

func TestWorkerSectionRejectsWithFieldPaths(t *testing.T) {
	for name, tc := range map[string]struct{ doc, want string }{
		"one poller":      {"worker: {workflowTaskPollers: 1}", "worker.workflowTaskPollers: must be between 2 and 64, got 1"},
		"zero given":      {"worker: {maxConcurrentActivities: 0}", "worker.maxConcurrentActivities: must be between 1 and 100000, got 0"},
		"huge cache":      {"worker: {stickyCacheSize: 5000000}", "worker.stickyCacheSize: must be between 1 and 1000000"},
		"unknown key":     {"worker: {pollers: 4}", `worker: unknown key "pollers" (the keys are workflowTaskPollers, activityTaskPollers,`},
		"not a number":    {"worker: {activityTaskPollers: many}", "worker.activityTaskPollers: want a whole number, got string"},
		"a fraction":      {"worker: {activityTaskPollers: 2.5}", "worker.activityTaskPollers: want a whole number"},
		"not a mapping":   {"worker: [1]", "worker: want a mapping of workflowTaskPollers"},
		"pollers > slots": {"worker: {activityTaskPollers: 8, maxConcurrentActivities: 4}", "worker.activityTaskPollers: 8 pollers need as many activity slots; maxConcurrentActivities is 4"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := config.Parse([]byte(tc.doc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
	// Every problem at once, like the rest of the file.
	_, err := config.Parse([]byte("worker: {workflowTaskPollers: 0, maxConcurrentWorkflowTasks: 0}\nmetrics: {p: {}}"))
	var verr *config.ValidationError
	if !errors.As(err, &verr) || len(verr.Problems) != 3 {
		t.Fatalf("want three problems, got %v", err)
	}
}

func TestTuningBoundsCoverEveryKey(t *testing.T) {
	b := config.TuningBounds()
	if len(b) != 6 || b["workflowTaskPollers"][0] != 2 {
		t.Errorf("bounds = %v", b)
	}
	for k, r := range b {
		if !strings.Contains(config.DefaultTuning.String(), k+"=") {
			t.Errorf("String() lacks %s", k)
		}
		_ = r
	}
}
