package kubernetes_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/shepherd-release/shepherd/internal/testenv"
	"github.com/shepherd-release/shepherd/providers/kubernetes"
	"github.com/shepherd-release/shepherd/spec"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.StopKube(code != 0)
	os.Exit(code)
}

const (
	releaseA = "release:checkout:production/run-a"
	releaseB = "release:checkout:production/run-b"
	waitFor  = time.Minute
)

// cluster is one test's KubeApp (testenv.NewKubeApp) and the target's configuration for it, running as
// the user bound to deploy/kubernetes's Role.
type cluster struct {
	*testenv.KubeApp
	t   *testing.T
	ns  string
	cfg kubernetes.Config
}

func newCluster(t *testing.T, mode string, replicas int32) *cluster {
	t.Helper()
	app := testenv.NewKubeApp(t, replicas, mode == kubernetes.ModeGateway)
	c := &cluster{KubeApp: app, t: t, ns: app.Namespace}
	c.cfg = kubernetes.Config{
		Kubeconfig: app.Kubeconfig("shepherd"), Namespace: c.ns, Deployment: "checkout",
		Images:  map[string]string{"app": "registry.example.com/checkout:{{.Version}}"},
		Traffic: kubernetes.Traffic{Mode: mode},
	}
	if mode == kubernetes.ModeGateway {
		c.cfg.CanaryLabels = map[string]string{"track": "canary"}
		c.cfg.Traffic.Gateway = &kubernetes.Gateway{HTTPRoute: "checkout", StableService: "checkout", Port: 80}
	}
	return c
}

func (c *cluster) target(cfg kubernetes.Config) *kubernetes.Target {
	tg, err := kubernetes.New(cfg)
	require.NoError(c.t, err)
	return tg
}

func data(release, step string, seq int64, percent int) spec.TemplateData {
	return spec.TemplateData{Service: "checkout", Environment: "production", Version: "v2", PreviousVersion: "v1",
		ReleaseID: release, Step: step, Seq: seq, Percent: percent}
}

func (c *cluster) route() *gwv1.HTTPRoute {
	r, err := c.Gateway.GatewayV1().HTTPRoutes(c.ns).Get(context.Background(), "checkout", metav1.GetOptions{})
	require.NoError(c.t, err)
	return r
}

// resourceVersions identifies the written state of every object the target writes, to prove a repeat
// wrote nothing: the resourceVersion of the route and the canary Service (nothing else writes them here);
// for Deployments, whose status the controller keeps updating, the generation (every spec write) and
// the annotations (every write of the target changes its token or the spec).
func (c *cluster) resourceVersions() map[string]string {
	out := map[string]string{}
	for _, n := range []string{"checkout", "checkout-canary"} {
		if d := c.Deployment(n); d != nil {
			out["deployment/"+n] = fmt.Sprintf("generation %d, annotations %v", d.Generation, d.Annotations)
		}
	}
	if c.cfg.Traffic.Mode == kubernetes.ModeGateway {
		out["httproute/checkout"] = c.route().ResourceVersion
		if s, err := c.Admin.CoreV1().Services(c.ns).Get(context.Background(), "checkout-canary", metav1.GetOptions{}); err == nil {
			out["service/checkout-canary"] = s.ResourceVersion
		}
	}
	return out
}

// backendWatch samples, continuously while a step runs, whether every backend with traffic has ready
// pods; it records every sample where one had not. A sample during which the route (or, in replicas
// mode, the stable Deployment) changed is dropped: its reads would mix two moments.
type backendWatch struct {
	stop       chan struct{}
	done       chan struct{}
	mu         sync.Mutex
	violations []string
	samples    int
}

func (c *cluster) watchBackends() *backendWatch {
	w := &backendWatch{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			select {
			case <-w.stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			if v := c.servingProblem(); v != "" {
				w.mu.Lock()
				w.violations = append(w.violations, v)
				w.mu.Unlock()
			}
			w.mu.Lock()
			w.samples++
			w.mu.Unlock()
		}
	}()
	return w
}

func (w *backendWatch) check(t *testing.T) {
	close(w.stop)
	<-w.done
	assert.Empty(t, w.violations, "moments without ready backends")
	assert.Positive(t, w.samples, "the watch sampled while the step ran")
}

// servingProblem returns "" when the traffic has ready pods behind it. Gateway mode: every backendRef
// with a weight > 0 has a Deployment with ready pods. Replicas mode: stable + canary have ready pods.
func (c *cluster) servingProblem() string {
	ctx := context.Background()
	ready := func(name string) int32 {
		d, err := c.Admin.AppsV1().Deployments(c.ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return 0
		}
		return d.Status.ReadyReplicas
	}
	if c.cfg.Traffic.Mode == kubernetes.ModeReplicas {
		// The canary is read between two reads of stable that must agree (same resourceVersion), so the
		// sample is one moment; a sample during which stable changed is dropped.
		get := func(name string) (*appsv1.Deployment, error) {
			return c.Admin.AppsV1().Deployments(c.ns).Get(ctx, name, metav1.GetOptions{})
		}
		before, err := get("checkout")
		if err != nil {
			return err.Error()
		}
		canaryReady := ready("checkout-canary")
		after, err := get("checkout")
		if err != nil || after.ResourceVersion != before.ResourceVersion {
			return ""
		}
		if before.Status.ReadyReplicas+canaryReady == 0 {
			return fmt.Sprintf("%s: no ready pod in stable (%+v) or canary", time.Now().Format("15:04:05.000"), before.Status)
		}
		return ""
	}
	r, err := c.Gateway.GatewayV1().HTTPRoutes(c.ns).Get(ctx, "checkout", metav1.GetOptions{})
	if err != nil {
		return err.Error()
	}
	problem := c.routeProblem(r, ready)
	if again, err := c.Gateway.GatewayV1().HTTPRoutes(c.ns).Get(ctx, "checkout", metav1.GetOptions{}); err != nil ||
		again.ResourceVersion != r.ResourceVersion {
		return "" // the route changed while sampling: not a consistent sample
	}
	return problem
}

func (c *cluster) routeProblem(r *gwv1.HTTPRoute, ready func(string) int32) string {
	ctx := context.Background()
	total := int32(0)
	for _, b := range r.Spec.Rules[0].BackendRefs {
		w := ptr.Deref(b.Weight, 1)
		total += w
		if w == 0 {
			continue
		}
		dep := string(b.Name) // Services are named like their Deployments here
		if _, err := c.Admin.CoreV1().Services(c.ns).Get(ctx, string(b.Name), metav1.GetOptions{}); err != nil {
			return "route sends traffic to missing Service " + string(b.Name)
		}
		if ready(dep) == 0 {
			return "route sends traffic to " + string(b.Name) + " without ready pods"
		}
	}
	if total == 0 {
		return "every weight is 0"
	}
	return ""
}

func TestGatewayReleasePromoted(t *testing.T) {
	t.Parallel()
	c := newCluster(t, kubernetes.ModeGateway, 2)
	tg := c.target(c.cfg)
	ctx := context.Background()

	require.NoError(t, tg.Preflight(ctx, data(releaseA, "preflight", 1, 0)))
	require.NoError(t, tg.Deploy(ctx, data(releaseA, "deploy", 2, 0)))
	canary := c.Deployment("checkout-canary")
	require.NotNil(t, canary)
	assert.Equal(t, "registry.example.com/checkout:v2", testenv.Image(canary, "app"))
	assert.Equal(t, "registry.example.com/proxy:1.0", testenv.Image(canary, "proxy"), "containers not named in images keep theirs")
	assert.Equal(t, map[string]string{"app": "checkout", "track": "canary", kubernetes.LabelRole: "canary", kubernetes.LabelService: "checkout"},
		canary.Spec.Template.Labels)
	assert.Equal(t, releaseA, canary.Annotations[kubernetes.AnnotationRelease])
	assert.Equal(t, "2", canary.Annotations[kubernetes.AnnotationSeq])
	assert.Equal(t, "v2", canary.Annotations[kubernetes.AnnotationVersion])
	assert.EqualValues(t, 2, canary.Status.ReadyReplicas, "deploy waits until the canary is available")
	svc, err := c.Admin.CoreV1().Services(c.ns).Get(ctx, "checkout-canary", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "canary", svc.Spec.Selector["track"])
	assert.Equal(t, []string{"checkout=1"}, c.Weights(), "deploy does not touch the route (1 is the CRD's default)")
	before := c.resourceVersions()
	require.NoError(t, tg.Deploy(ctx, data(releaseA, "deploy", 2, 0)), "a repeated deploy (a retry) finds its work done")
	assert.Equal(t, before, c.resourceVersions(), "a repeated deploy writes nothing")
	require.NoError(t, tg.Health(ctx, data(releaseA, "health", 3, 0)))

	require.NoError(t, tg.SetTraffic(ctx, data(releaseA, "traffic", 4, 5)))
	assert.Equal(t, []string{"checkout=95", "checkout-canary=5"}, c.Weights())
	require.NoError(t, tg.SetTraffic(ctx, data(releaseA, "traffic", 5, 25)))
	assert.Equal(t, []string{"checkout=75", "checkout-canary=25"}, c.Weights())

	// A repeat of a step (a retry after a crash) writes nothing at all.
	before = c.resourceVersions()
	require.NoError(t, tg.SetTraffic(ctx, data(releaseA, "traffic", 5, 25)))
	assert.Equal(t, before, c.resourceVersions(), "repeating traffic 25 %% changed an object")

	w := c.watchBackends()
	require.NoError(t, tg.Promote(ctx, data(releaseA, "promote", 6, 100)))
	w.check(t)
	stable := c.Deployment("checkout")
	assert.Equal(t, "registry.example.com/checkout:v2", testenv.Image(stable, "app"))
	assert.Equal(t, "registry.example.com/proxy:1.0", testenv.Image(stable, "proxy"))
	assert.EqualValues(t, 2, stable.Status.UpdatedReplicas)
	assert.EqualValues(t, 2, stable.Status.ReadyReplicas)
	assert.Equal(t, "v2", stable.Annotations[kubernetes.AnnotationVersion])
	assert.Equal(t, "6", stable.Annotations[kubernetes.AnnotationSeq])
	assert.Nil(t, c.Deployment("checkout-canary"), "canary removed")
	_, err = c.Admin.CoreV1().Services(c.ns).Get(ctx, "checkout-canary", metav1.GetOptions{})
	assert.True(t, apierrors.IsNotFound(err), "canary Service removed")
	assert.Equal(t, []string{"checkout=100"}, c.Weights())

	before = c.resourceVersions()
	require.NoError(t, tg.Promote(ctx, data(releaseA, "promote", 6, 100)), "a repeated promote finds its work done")
	err = tg.Rollback(ctx, data(releaseA, "remove-canary", 5, 0))
	require.ErrorIs(t, err, kubernetes.ErrStaleWrite, "a rollback step older than the promote is refused")
	assert.Equal(t, before, c.resourceVersions())
}

func TestGatewayRollbackAfterScaleDownDelay(t *testing.T) {
	t.Parallel()
	c := newCluster(t, kubernetes.ModeGateway, 2)
	cfg := c.cfg
	cfg.ScaleDownDelay = spec.Duration(2 * time.Second)
	tg := c.target(cfg)
	ctx := context.Background()
	require.NoError(t, tg.Deploy(ctx, data(releaseA, "deploy", 2, 0)))
	require.NoError(t, tg.SetTraffic(ctx, data(releaseA, "traffic", 3, 25)))

	// The workflow's rollback: traffic to 0 first, then remove-canary.
	require.NoError(t, tg.SetTraffic(ctx, data(releaseA, "rollback-traffic", 4, 0)))
	assert.Equal(t, []string{"checkout=100", "checkout-canary=0"}, c.Weights())
	w := c.watchBackends()
	start := time.Now()
	require.NoError(t, tg.Rollback(ctx, data(releaseA, "remove-canary", 5, 0)))
	w.check(t)
	assert.GreaterOrEqual(t, time.Since(start), 2*time.Second, "the canary is kept for the scale-down delay")
	assert.Equal(t, []string{"checkout=100"}, c.Weights())
	assert.Nil(t, c.Deployment("checkout-canary"))
	_, err := c.Admin.CoreV1().Services(c.ns).Get(ctx, "checkout-canary", metav1.GetOptions{})
	assert.True(t, apierrors.IsNotFound(err))
	assert.Equal(t, "registry.example.com/checkout:v1", testenv.Image(c.Deployment("checkout"), "app"), "stable untouched")

	// Rollback alone (no traffic step before it) also takes the weights back first.
	require.NoError(t, tg.Deploy(ctx, data(releaseB, "deploy", 2, 0)))
	require.NoError(t, tg.SetTraffic(ctx, data(releaseB, "traffic", 3, 50)))
	w = c.watchBackends()
	require.NoError(t, tg.Rollback(ctx, data(releaseB, "remove-canary", 4, 0)))
	w.check(t)
	assert.Equal(t, []string{"checkout=100"}, c.Weights())
	assert.Nil(t, c.Deployment("checkout-canary"))
	require.NoError(t, tg.Rollback(ctx, data(releaseB, "remove-canary", 4, 0)), "a repeated rollback is a no-op")
}

func TestStaleWritesAreRefused(t *testing.T) {
	t.Parallel()
	c := newCluster(t, kubernetes.ModeGateway, 1)
	tg := c.target(c.cfg)
	ctx := context.Background()
	require.NoError(t, tg.Deploy(ctx, data(releaseA, "deploy", 2, 0)))
	require.NoError(t, tg.SetTraffic(ctx, data(releaseA, "traffic", 4, 25)))

	// A late traffic step of an earlier attempt (Seq 3) after Seq 4 was applied.
	before := c.resourceVersions()
	err := tg.SetTraffic(ctx, data(releaseA, "traffic", 3, 5))
	require.ErrorIs(t, err, kubernetes.ErrStaleWrite)
	assert.Contains(t, err.Error(), "step 4")
	assert.Equal(t, []string{"checkout=75", "checkout-canary=25"}, c.Weights())
	assert.Equal(t, before, c.resourceVersions(), "a refused step writes nothing")

	// The rollback removes the canary; a deploy attempt that was partitioned away comes back late: it
	// must not bring the canary back.
	require.NoError(t, tg.SetTraffic(ctx, data(releaseA, "rollback-traffic", 5, 0)))
	require.NoError(t, tg.Rollback(ctx, data(releaseA, "remove-canary", 6, 0)))
	require.Nil(t, c.Deployment("checkout-canary"))
	err = tg.Deploy(ctx, data(releaseA, "deploy", 2, 0))
	require.ErrorIs(t, err, kubernetes.ErrStaleWrite)
	assert.Nil(t, c.Deployment("checkout-canary"), "a stale deploy does not recreate the canary")
	require.ErrorIs(t, tg.Promote(ctx, data(releaseA, "promote", 5, 100)), kubernetes.ErrStaleWrite)
	assert.Equal(t, "registry.example.com/checkout:v1", testenv.Image(c.Deployment("checkout"), "app"))

	// Release B takes the Deployment over; A's late steps are refused or find nothing of theirs.
	require.NoError(t, tg.Deploy(ctx, data(releaseB, "deploy", 2, 0)))
	require.NoError(t, tg.SetTraffic(ctx, data(releaseB, "traffic", 3, 5)))
	err = tg.SetTraffic(ctx, data(releaseA, "traffic", 7, 50))
	require.ErrorIs(t, err, kubernetes.ErrStaleWrite)
	assert.Contains(t, err.Error(), "taken over by release "+releaseB)
	require.NoError(t, tg.Rollback(ctx, data(releaseA, "remove-canary", 8, 0)), "nothing of A is left to remove")
	assert.NotNil(t, c.Deployment("checkout-canary"), "B's canary is not A's to remove")
	assert.Equal(t, []string{"checkout=95", "checkout-canary=5"}, c.Weights())
	err = tg.Deploy(ctx, data(releaseA, "deploy", 9, 0))
	require.ErrorIs(t, err, kubernetes.ErrPermanent, "another release's canary is never adopted")
	assert.NotErrorIs(t, err, kubernetes.ErrStaleWrite)
	assert.Contains(t, err.Error(), "is the canary of release "+releaseB)
}

func TestPreflightReportsMissingRBACAndObjects(t *testing.T) {
	t.Parallel()
	c := newCluster(t, kubernetes.ModeGateway, 1)
	ctx := context.Background()

	// "limited" may read and create Deployments but neither delete them nor touch routes or services.
	c.Bind("limited", []rbacv1.PolicyRule{{APIGroups: []string{"apps"}, Resources: []string{"deployments"},
		Verbs: []string{"get", "create", "update"}}})
	cfg := c.cfg
	cfg.Kubeconfig = c.Kubeconfig("limited")
	err := c.target(cfg).Preflight(ctx, data(releaseA, "preflight", 1, 0))
	require.ErrorIs(t, err, kubernetes.ErrPermanent)
	var pe *kubernetes.ProblemsError
	require.ErrorAs(t, err, &pe)
	var missing []string
	for _, p := range pe.Problems {
		assert.Equal(t, "rbac", p.Path)
		missing = append(missing, strings.SplitN(strings.TrimPrefix(p.Message, "not allowed to "), " in namespace", 2)[0])
	}
	assert.Equal(t, []string{"delete deployments.apps", "get services", "create services", "update services", "delete services",
		"get httproutes.gateway.networking.k8s.io", "update httproutes.gateway.networking.k8s.io"}, missing)

	// With the shipped Role, object problems are reported with their paths, all at once.
	bad := c.cfg
	bad.Images = map[string]string{"server": "registry.example.com/checkout:{{.Version}}"}
	bad.Traffic.Gateway = &kubernetes.Gateway{HTTPRoute: "other", StableService: "wide", Port: 8080}
	c.CreateService("wide", map[string]string{"app": "checkout"}) // selects canary pods too
	c.CreateRoute("other", "somewhere-else")
	_, err = c.Admin.CoreV1().Services(c.ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "wide-canary", Namespace: c.ns},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	err = c.target(bad).Preflight(ctx, data(releaseA, "preflight", 1, 0))
	require.ErrorAs(t, err, &pe)
	got := map[string]string{}
	for _, p := range pe.Problems {
		got[p.Path] = p.Message
	}
	ns := c.ns
	assert.Contains(t, got["Deployment "+ns+"/checkout: spec.template.spec.containers"], `no container "server" (images.server); it has app, proxy`)
	assert.Contains(t, got["Service "+ns+"/wide: spec.ports"], "no port 8080")
	assert.Contains(t, got["Service "+ns+"/wide: spec.selector"], "also selects the canary's pods")
	assert.Contains(t, got["Service "+ns+"/wide-canary"], "not a Shepherd canary Service")
	assert.Contains(t, got["HTTPRoute "+ns+"/other: spec.rules[*].backendRefs"], "no backendRef to Service wide port 8080")
	assert.Len(t, pe.Problems, 5, "%v", pe.Problems)

	missingCfg := c.cfg
	missingCfg.Deployment = "nope"
	missingCfg.Traffic.Gateway = &kubernetes.Gateway{HTTPRoute: "none", StableService: "none", Port: 80}
	err = c.target(missingCfg).Preflight(ctx, data(releaseA, "preflight", 1, 0))
	require.ErrorAs(t, err, &pe)
	assert.Contains(t, err.Error(), "Deployment "+ns+"/nope: not found")
	assert.Contains(t, err.Error(), "Service "+ns+"/none: not found")
	assert.Contains(t, err.Error(), "HTTPRoute "+ns+"/none: not found")
}

func TestReplicaRatio(t *testing.T) {
	t.Parallel()
	c := newCluster(t, kubernetes.ModeReplicas, 4)
	tg := c.target(c.cfg)
	ctx := context.Background()
	replicas := func() [2]int32 {
		s, k := c.Deployment("checkout"), c.Deployment("checkout-canary")
		out := [2]int32{*s.Spec.Replicas, 0}
		if k != nil {
			out[1] = *k.Spec.Replicas
		}
		return out
	}
	ready := func() [2]int32 {
		s, k := c.Deployment("checkout"), c.Deployment("checkout-canary")
		out := [2]int32{s.Status.ReadyReplicas, 0}
		if k != nil {
			out[1] = k.Status.ReadyReplicas
		}
		return out
	}

	require.NoError(t, tg.Preflight(ctx, data(releaseA, "preflight", 1, 0)))
	require.NoError(t, tg.Deploy(ctx, data(releaseA, "deploy", 2, 0)))
	assert.Equal(t, [2]int32{4, 0}, replicas(), "0 %% is no canary pod")
	assert.Equal(t, "4", c.Deployment("checkout-canary").Annotations[kubernetes.AnnotationReplicas])
	require.NoError(t, tg.Health(ctx, data(releaseA, "health", 3, 0)))

	w := c.watchBackends()
	for i, step := range []struct {
		percent int
		want    [2]int32
	}{{25, [2]int32{3, 1}}, {50, [2]int32{2, 2}}, {10, [2]int32{3, 1}}, {100, [2]int32{0, 4}}} {
		require.NoError(t, tg.SetTraffic(ctx, data(releaseA, "traffic", int64(4+i), step.percent)))
		assert.Equal(t, step.want, replicas(), "%d %%", step.percent)
		// The side that grew is ready before the other shrank: capacity is never below the total.
		r := ready()
		assert.GreaterOrEqual(t, r[0]+r[1], int32(4), "%d %%: ready %v", step.percent, r)
	}
	before := c.resourceVersions()
	require.NoError(t, tg.SetTraffic(ctx, data(releaseA, "traffic", 7, 100)))
	assert.Equal(t, before, c.resourceVersions(), "a repeat writes nothing")

	require.NoError(t, tg.Promote(ctx, data(releaseA, "promote", 8, 100)))
	w.check(t)
	stable := c.Deployment("checkout")
	assert.Equal(t, "registry.example.com/checkout:v2", testenv.Image(stable, "app"))
	assert.EqualValues(t, 4, *stable.Spec.Replicas)
	assert.EqualValues(t, 4, stable.Status.ReadyReplicas)
	assert.Nil(t, c.Deployment("checkout-canary"))
}

func TestReplicaRatioRollback(t *testing.T) {
	t.Parallel()
	c := newCluster(t, kubernetes.ModeReplicas, 3)
	var healthy atomic.Bool
	probe := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !healthy.Load() || r.URL.Path != "/healthz/v2" {
			http.Error(w, "not yet", http.StatusServiceUnavailable)
		}
	}))
	defer probe.Close()
	cfg := c.cfg
	cfg.HealthURL = probe.URL + "/healthz/{{.Version}}"
	tg := c.target(cfg)
	ctx := context.Background()
	require.NoError(t, tg.Deploy(ctx, data(releaseA, "deploy", 2, 0)))
	err := tg.Health(ctx, data(releaseA, "health", 3, 0))
	require.Error(t, err, "the health URL answers 503")
	assert.NotErrorIs(t, err, kubernetes.ErrPermanent, "an unhealthy canary is asked again")
	assert.Contains(t, err.Error(), "503")
	healthy.Store(true)
	require.NoError(t, tg.Health(ctx, data(releaseA, "health", 3, 0)))
	require.NoError(t, tg.SetTraffic(ctx, data(releaseA, "traffic", 4, 50)))
	assert.EqualValues(t, 2, *c.Deployment("checkout-canary").Spec.Replicas)
	assert.EqualValues(t, 1, *c.Deployment("checkout").Spec.Replicas)
	w := c.watchBackends()
	require.NoError(t, tg.SetTraffic(ctx, data(releaseA, "rollback-traffic", 5, 0)))
	assert.EqualValues(t, 3, c.Deployment("checkout").Status.ReadyReplicas, "stable grew back and is ready")
	assert.EqualValues(t, 0, *c.Deployment("checkout-canary").Spec.Replicas)
	require.NoError(t, tg.Rollback(ctx, data(releaseA, "remove-canary", 6, 0)))
	w.check(t)
	assert.Nil(t, c.Deployment("checkout-canary"))
	assert.Equal(t, "registry.example.com/checkout:v1", testenv.Image(c.Deployment("checkout"), "app"))
}

// TestRacingStepsEndOnTheNewest: a late attempt of a traffic step and the next step race, from two
// workers (two Targets). Whatever the interleaving, the route ends with the newer step's weights, the
// newer step succeeds, and the older one either landed before it or was refused as stale: the
// resourceVersion on every write and the token on every object leave no other outcome.
func TestRacingStepsEndOnTheNewest(t *testing.T) {
	t.Parallel()
	c := newCluster(t, kubernetes.ModeGateway, 1)
	one, other := c.target(c.cfg), c.target(c.cfg)
	ctx := context.Background()
	require.NoError(t, one.Deploy(ctx, data(releaseA, "deploy", 2, 0)))
	refused := 0
	for round := range 10 {
		older, newer := int64(3+2*round), int64(4+2*round)
		var wg sync.WaitGroup
		var errOlder, errNewer error
		wg.Add(2)
		go func() { defer wg.Done(); errOlder = one.SetTraffic(ctx, data(releaseA, "traffic", older, 10+round)) }()
		go func() { defer wg.Done(); errNewer = other.SetTraffic(ctx, data(releaseA, "traffic", newer, 50+round)) }()
		wg.Wait()
		require.NoError(t, errNewer, "round %d", round)
		if errOlder != nil {
			require.ErrorIs(t, errOlder, kubernetes.ErrStaleWrite, "round %d", round)
			refused++
		}
		assert.Equal(t, []string{"checkout=" + fmt.Sprint(100-(50+round)), "checkout-canary=" + fmt.Sprint(50+round)}, c.Weights(),
			"round %d", round)
	}
	t.Logf("the older step was refused in %d of 10 rounds", refused)
}
