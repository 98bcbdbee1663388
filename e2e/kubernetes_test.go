package e2e

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shepherd-release/shepherd/internal/cli"
	"github.com/shepherd-release/shepherd/internal/testenv"
	"github.com/shepherd-release/shepherd/providers/kubernetes"
	"github.com/shepherd-release/shepherd/record"
	"github.com/shepherd-release/shepherd/spec"
	"github.com/shepherd-release/shepherd/workflows"
)

// kubeRelease declares the worker's target "kube" — the KubeApp's Deployment "checkout" on the kubernetes
// target in gateway mode, as the user bound to deploy/kubernetes's Role — and returns a release of v2 on
// it with analysis off (pods run no containers: there is nothing to measure).
func kubeRelease(e *tenv, service string, app *testenv.KubeApp, delay time.Duration, stages ...spec.Stage) spec.Release {
	cfg := kubernetes.Config{
		Kubeconfig: app.Kubeconfig("shepherd"), Namespace: app.Namespace, Deployment: "checkout",
		Images:       map[string]string{"app": "registry.example.com/checkout:{{.Version}}"},
		CanaryLabels: map[string]string{"track": "canary"},
		Traffic: kubernetes.Traffic{Mode: kubernetes.ModeGateway,
			Gateway: &kubernetes.Gateway{HTTPRoute: "checkout", StableService: "checkout", Port: 80}},
		ScaleDownDelay: spec.Duration(delay),
	}
	raw, err := json.Marshal(cfg)
	if err != nil {
		panic(err)
	}
	settings := map[string]any{}
	if err := json.Unmarshal(raw, &settings); err != nil {
		panic(err)
	}
	settings["type"] = "kubernetes"
	e.provide("targets", "kube", settings)
	return spec.Release{
		Service: service, Version: "v2", PreviousVersion: "v1",
		Target:   "kube",
		Stages:   stages,
		Analysis: spec.Analysis{Disabled: true},
	}
}

// wantPromoted fails the test unless the stable Deployment runs v2 (rolled out), the canary and its
// Service are gone, and the route sends everything to stable.
func wantPromoted(t *testing.T, app *testenv.KubeApp) {
	t.Helper()
	stable := app.Deployment("checkout")
	if img := testenv.Image(stable, "app"); img != "registry.example.com/checkout:v2" {
		t.Errorf("stable runs %s, want v2", img)
	}
	if s := stable.Status; s.UpdatedReplicas != *stable.Spec.Replicas || s.ReadyReplicas != *stable.Spec.Replicas {
		t.Errorf("stable not rolled out: %+v", s)
	}
	wantNoCanary(t, app)
}

func wantNoCanary(t *testing.T, app *testenv.KubeApp) {
	t.Helper()
	if app.Deployment("checkout-canary") != nil {
		t.Error("the canary Deployment is still there")
	}
	if w := app.Weights(); !slices.Equal(w, []string{"checkout=100"}) {
		t.Errorf("route weights %v, want all on stable", w)
	}
}

// TestKubernetesReleasePromoted: `shepherd start` releases a Deployment on a real control plane through
// two stages to promotion.
func TestKubernetesReleasePromoted(t *testing.T) {
	const svc = "e2e-kube-promote"
	t.Parallel()
	app := testenv.NewKubeApp(t, 2, true)
	e, id, _ := newReleaseEnv(t, svc)

	f := writeJSON(t, "release.json", kubeRelease(e, svc, app, 0, stage(25, time.Second), stage(100, time.Second)))
	wantExit(t, e.shepherdCLI("start", "-f", f), cli.ExitOK)
	res := e.waitResult(svc, releaseTimeout)
	if res.Phase != record.PhaseSucceeded {
		t.Fatalf("result: %s", describe(res))
	}
	wantPromoted(t, app)
	stable := app.Deployment("checkout")
	if got := stable.Annotations[kubernetes.AnnotationRelease]; !strings.HasPrefix(got, id+"/") {
		t.Errorf("stable Deployment's release annotation %q, want this release (%s/<run>)", got, id)
	}
}

// TestKubernetesAbortAt25: abort while stage 1 soaks at 25 %: weights back to stable, canary removed,
// stable untouched.
func TestKubernetesAbortAt25(t *testing.T) {
	const svc = "e2e-kube-abort"
	t.Parallel()
	app := testenv.NewKubeApp(t, 2, true)
	e, _, _ := newReleaseEnv(t, svc)

	f := writeJSON(t, "release.json", kubeRelease(e, svc, app, 0, stage(25, 5*time.Minute), stage(100, time.Second)))
	wantExit(t, e.shepherdCLI("start", "-f", f), cli.ExitOK)
	e.waitStatus(svc, "soaking stage 1 at 25%", atStage(record.PhaseProgressing, 1, 25))
	if w := app.Weights(); !slices.Equal(w, []string{"checkout=75", "checkout-canary=25"}) {
		t.Fatalf("route weights at stage 1: %v", w)
	}
	wantExit(t, e.shepherdCLI("abort", svc, "--by", "ci", "--reason", "abort at 25%"), cli.ExitOK)
	res := e.waitResult(svc, 30*time.Second)
	if res.Phase != record.PhaseRolledBack {
		t.Fatalf("result: %s", describe(res))
	}
	wantNoCanary(t, app)
	if img := testenv.Image(app.Deployment("checkout"), "app"); img != "registry.example.com/checkout:v1" {
		t.Errorf("stable runs %s after the rollback, want v1", img)
	}
}

// TestKubernetesWorkerKilledMidPromote: SIGKILL the worker while promote waits out the scale-down delay
// (stable already on v2, route all on stable, canary still there). A new worker retries the promote with
// the same fencing token: it finds the image written and the route switched, waits what is left of the
// delay and removes the canary. The stable Deployment's pod template was written exactly once.
func TestKubernetesWorkerKilledMidPromote(t *testing.T) {
	const svc = "e2e-kube-crash"
	t.Parallel()
	app := testenv.NewKubeApp(t, 2, true)
	e := newEnv(t, svc)
	id := spec.WorkflowID(svc, envName)
	state := t.TempDir()
	f := writeJSON(t, "release.json", kubeRelease(e, svc, app, 8*time.Second, stage(50, time.Second), stage(100, time.Second)))
	first := e.startWorker(state)
	e.terminateOnCleanup(t, id)

	wantExit(t, e.shepherdCLI("start", "-f", f), cli.ExitOK)
	eventually(t, releaseTimeout, "promote to wait out the scale-down delay", func() (bool, string) {
		stable, canary := app.Deployment("checkout"), app.Deployment("checkout-canary")
		w := app.Weights()
		ok := canary != nil && canary.Annotations[kubernetes.AnnotationRemoveAfter] != "" &&
			testenv.Image(stable, "app") == "registry.example.com/checkout:v2" && slices.Equal(w, []string{"checkout=100"})
		return ok, "weights " + strings.Join(w, ",") + ", stable " + testenv.Image(stable, "app")
	})
	first.kill(t)
	if app.Deployment("checkout-canary") == nil {
		t.Fatal("the canary was removed before the worker was killed: the kill was not mid-promote")
	}

	second := e.startWorker(state)
	res := e.waitResult(svc, releaseTimeout)
	if res.Phase != record.PhaseSucceeded {
		t.Fatalf("result: %s", describe(res))
	}
	wantPromoted(t, app)
	// Revision counts pod-template rollouts (the generation also counts the fencing annotations).
	if r := app.Deployment("checkout").Annotations["deployment.kubernetes.io/revision"]; r != "2" {
		t.Errorf("stable Deployment at revision %s, want 2 (v1, then one pod-template write by promote)", r)
	}
	h := e.history(t, id, "")
	if got := activityWorkers(h, workflows.ActivityPromote); len(got) != 1 || got[0] != second.pid() {
		t.Errorf("Promote completed on workers %v, want once on the second worker %d", got, second.pid())
	}
}

// TestKubernetesPreflightRejects: a release whose target names a route that does not exist stops at
// preflight with the object named; its rollback finds nothing of the release and writes nothing.
func TestKubernetesPreflightRejects(t *testing.T) {
	const svc = "e2e-kube-preflight"
	t.Parallel()
	app := testenv.NewKubeApp(t, 1, true)
	e, _, _ := newReleaseEnv(t, svc)

	r := kubeRelease(e, svc, app, 0, stage(100, time.Second))
	e.cfg["targets"]["kube"]["traffic"].(map[string]any)["gateway"].(map[string]any)["httpRoute"] = "missing"
	wantExit(t, e.shepherdCLI("start", "-f", writeJSON(t, "release.json", r)), cli.ExitOK)
	res := e.waitResult(svc, releaseTimeout)
	if res.Phase != record.PhaseRolledBack || !strings.Contains(res.Reason, "HTTPRoute "+app.Namespace+"/missing: not found") {
		t.Fatalf("result: %s", describe(res))
	}
	if app.Deployment("checkout-canary") != nil {
		t.Error("a canary was created although preflight failed")
	}
	stable := app.Deployment("checkout")
	if img := testenv.Image(stable, "app"); img != "registry.example.com/checkout:v1" {
		t.Errorf("stable runs %s, want v1 untouched", img)
	}
	if rel, ok := stable.Annotations[kubernetes.AnnotationRelease]; ok {
		t.Errorf("the stable Deployment was written (release annotation %q)", rel)
	}
}
