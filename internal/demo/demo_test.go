package demo

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/shepherd-release/shepherd/record"
	"github.com/shepherd-release/shepherd/spec"
)

func TestDemoSpecs(t *testing.T) {
	good, bad, err := Specs(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if good.Version != GoodVersion || good.PreviousVersion != StableVersion || bad.Version != BadVersion || bad.PreviousVersion != GoodVersion {
		t.Fatalf("demo versions %s→%s and %s→%s", good.PreviousVersion, good.Version, bad.PreviousVersion, bad.Version)
	}
	if good.Service != Service || bad.Service != Service {
		t.Errorf("demo service %q/%q, want %q", good.Service, bad.Service, Service)
	}
	if _, ok := Profiles()[BadVersion]; !ok {
		t.Errorf("no fleet profile makes %s bad", BadVersion)
	}
	good, bad, err = Specs(7*time.Second, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []spec.Release{good, bad} {
		for i, s := range r.Stages {
			if s.Soak.D() != 7*time.Second {
				t.Errorf("%s stage %d soak %s, want 7s", r.Version, i+1, s.Soak)
			}
		}
		if r.Analysis.Interval.D() != 2*time.Second {
			t.Errorf("%s interval %s, want 2s", r.Version, r.Analysis.Interval)
		}
	}
}

func ptr(v float64) *float64 { return &v }

// rolledBack is the decision log of a release whose error-rate failed at stage 1.
func rolledBack(t0 time.Time) record.Status {
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	fail := record.Measurement{Check: "error-rate", Stage: 1, Value: ptr(0.2), Max: ptr(0.01), Verdict: record.Fail, Reason: "0.2 > max 0.01"}
	pass := record.Measurement{Check: "p99-latency", Stage: 1, Value: ptr(0.05), Max: ptr(0.5), Verdict: record.Pass}
	nodata := record.Measurement{Check: "error-rate", Stage: 1, Error: "no data", Verdict: record.Inconclusive}
	return record.Status{
		Service: "checkout", Version: "v3", PreviousVersion: "v2", Phase: record.PhaseRolledBack,
		Reason: "analysis failed: error-rate failed 1 time(s) in a row (0.2 > max 0.01)", TrafficRestoredAfter: 30 * time.Millisecond,
		Stages: []record.StagePlan{{Number: 1, Percent: 10, Soak: 20 * time.Second, StartedAt: at(-10), Outcome: "rolled back"}, {Number: 2, Percent: 100, Soak: 20 * time.Second}},
		Decisions: []record.Decision{
			{Time: at(-500), Kind: record.KindStep, Message: "deployed v3"},
			{Time: at(-10), Kind: record.KindTransition, Stage: 1, Phase: record.PhaseProgressing, Message: "stage 1/2: shifting 10% of traffic to v3"},
			{Time: at(0), Kind: record.KindStep, Stage: 1, Phase: record.PhaseProgressing, Message: "traffic on v3 is 10%"},
			{Time: at(5000), Kind: record.KindAnalysis, Stage: 1, Measurements: []record.Measurement{nodata, pass}},
			{Time: at(10000), Kind: record.KindAnalysis, Stage: 1, Measurements: []record.Measurement{fail, pass}},
			{Time: at(10001), Kind: record.KindTransition, Stage: 1, Phase: record.PhaseRollingBack, Message: "rolling back"},
			{Time: at(10040), Kind: record.KindRollback, Stage: 1, Phase: record.PhaseRollingBack, Message: "rollback step \"traffic to stable\" done"},
			{Time: at(10200), Kind: record.KindTransition, Stage: 1, Phase: record.PhaseRolledBack, Message: "analysis failed"},
		},
	}
}

func TestFillTimings(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	r := Release{Result: rolledBack(t0)}
	r.fillTimings()
	if !r.BreachOnset.Equal(t0) {
		t.Errorf("breach onset %s, want the traffic decision %s", r.BreachOnset, t0)
	}
	if got := r.BreachToDecision(); got != 10001*time.Millisecond {
		t.Errorf("breach → decision %s, want 10.001s", got)
	}
	if got := r.BreachToRollback(); got != 10200*time.Millisecond {
		t.Errorf("breach → rolled back %s, want 10.2s", got)
	}
	if r.FailedCheck == nil || r.FailedCheck.Check != "error-rate" || *r.FailedCheck.Value != 0.2 {
		t.Errorf("failed check %+v, want error-rate 0.2", r.FailedCheck)
	}

	ok := Release{Result: record.Status{Phase: record.PhaseSucceeded, Decisions: []record.Decision{
		{Time: t0, Kind: record.KindStep, Stage: 1, Message: "traffic on v2 is 10%"},
	}}}
	ok.fillTimings()
	if ok.BreachToRollback() != 0 || ok.FailedCheck != nil || !ok.RolledBackAt.IsZero() {
		t.Errorf("a promoted release has rollback timings: %+v", ok)
	}
}

func TestCheckDemo(t *testing.T) {
	t0 := time.Now()
	bad := Release{Result: rolledBack(t0), Spec: spec.Release{Version: "v3"}}
	bad.fillTimings()
	good := Release{Result: record.Status{Phase: record.PhaseSucceeded}, Spec: spec.Release{Version: "v2"}}
	if err := Check([]Release{good, bad}); err != nil {
		t.Errorf("Check(as intended) = %v", err)
	}
	if err := Check([]Release{bad, good}); err == nil {
		t.Error("Check accepts a good release that rolled back and a bad one that succeeded")
	}
	other := bad
	other.FailedCheck = &record.Measurement{Check: "p99-latency"}
	if err := Check([]Release{good, other}); err == nil || !strings.Contains(err.Error(), "not on a failed error-rate") {
		t.Errorf("Check(latency rollback) = %v", err)
	}
	if err := Check([]Release{good}); err == nil {
		t.Error("Check accepts one release")
	}
}

func TestRenderDemoSummary(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	checks := []spec.Check{{Name: "error-rate"}, {Name: "p99-latency"}}
	bad := Release{Result: rolledBack(t0), Spec: spec.Release{Version: "v3",
		Stages:   []spec.Stage{{Percent: 10}, {Percent: 100}},
		Analysis: spec.Analysis{Interval: spec.Duration(5 * time.Second), Checks: checks}}}
	bad.fillTimings()
	var b bytes.Buffer
	RenderSummary(&b, &Stack{ScrapeInterval: time.Second}, []Release{bad})
	out := b.String()
	for _, want := range []string{
		"checkout v2 → v3: RolledBack",
		"no data 0.2✗", "0.05 0.05", "not reached",
		"+10s  error-rate = 0.2 (0.2 > max 0.01)",
		"30ms after the decision",
		"+10.2s after breach onset",
		"analysis every 5s, Prometheus scrapes every 1s",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
}
