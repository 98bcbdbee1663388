package examples_test

import (
	"encoding/json"
	"io/fs"
	"testing"

	"github.com/shepherd-release/shepherd/config"
	"github.com/shepherd-release/shepherd/examples"
	"github.com/shepherd-release/shepherd/spec"
	"github.com/shepherd-release/shepherd/worker"
)

// TestExamplesAreValid keeps every example spec parseable and valid as the workflow would see it.
func TestExamplesAreValid(t *testing.T) {
	names, err := examples.Specs()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := fs.ReadFile(examples.FS, examples.WorkerConfig)
	if err != nil {
		t.Fatal(err)
	}
	c, err := config.Parse(cfg)
	if err != nil {
		t.Fatalf("%s: %v", examples.WorkerConfig, err)
	}
	p, err := worker.Build(c, worker.BuildOptions{CheckSecrets: true})
	if err != nil {
		t.Fatalf("%s: %v", examples.WorkerConfig, err)
	}
	acts := p.Activities()
	for _, want := range []string{examples.DemoGood, examples.DemoBad, "release.yaml"} {
		found := false
		for _, n := range names {
			found = found || n == want
		}
		if !found {
			t.Errorf("%s is not embedded (have %v)", want, names)
		}
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			data, err := fs.ReadFile(examples.FS, name)
			if err != nil {
				t.Fatal(err)
			}
			r, err := spec.Parse(data)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			if err := r.WithDefaults().Validate(); err != nil {
				t.Fatalf("validate: %v", err)
			}
			if err := acts.CheckUses(r.WithDefaults().Uses()); err != nil {
				t.Fatalf("names what %s lacks: %v", examples.WorkerConfig, err)
			}
		})
	}
}

// TestDemoSpecsDifferOnlyInVersions: the demo's point is that the same checks promote one version and
// roll back the other.
func TestDemoSpecsDifferOnlyInVersions(t *testing.T) {
	read := func(name string) spec.Release {
		data, err := fs.ReadFile(examples.FS, name)
		if err != nil {
			t.Fatal(err)
		}
		r, err := spec.Parse(data)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	good, bad := read(examples.DemoGood), read(examples.DemoBad)
	if good.Version == bad.Version || bad.PreviousVersion != good.Version {
		t.Fatalf("bad release %s (from %s) should follow the good one %s", bad.Version, bad.PreviousVersion, good.Version)
	}
	if good.Target != "demo-fleet" || bad.Target != "demo-fleet" {
		t.Errorf("demo specs must use the demo-fleet target, got %q and %q", good.Target, bad.Target)
	}
	bad.Version, bad.PreviousVersion, bad.Description = good.Version, good.PreviousVersion, good.Description
	gj, bj := mustJSON(t, good), mustJSON(t, bad)
	if gj != bj {
		t.Errorf("demo specs differ beyond version and description:\n%s\n%s", gj, bj)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
