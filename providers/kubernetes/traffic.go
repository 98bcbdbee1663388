package kubernetes

import (
	"context"
	"fmt"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/shepherd-release/shepherd/spec"
)

// SetTraffic sends data.Percent % of the traffic to the canary. In gateway mode it sets the HTTPRoute's
// weights (stable 100-p, canary p) in every rule that routes to the stable Service. In replicas mode it
// scales canary and stable so that canary ≈ p % of the pods, always growing one side and waiting for its
// pods to be ready before shrinking the other, so capacity never drops. A repeat of the same step writes
// nothing. Percent 0 when this release no longer owns the Deployment (another release took it over, or
// this one never deployed) is a no-op: nothing of this release is left to steer.
func (t *Target) SetTraffic(ctx context.Context, d spec.TemplateData) error {
	if d.Percent < 0 || d.Percent > 100 {
		return fmt.Errorf("kubernetes target: traffic percent %d out of [0, 100]: %w", d.Percent, ErrPermanent)
	}
	stable, owned, _, err := t.claim(ctx, d, false)
	if err != nil {
		return err
	}
	if !owned {
		if d.Percent == 0 {
			return nil
		}
		return t.notOwned(stable, d)
	}
	if t.cfg.Traffic.Mode == ModeGateway {
		canary, err := t.canary(ctx, d, d.Percent > 0)
		if err != nil {
			return err
		}
		// Without a canary (a deploy that failed before creating it), 0 % is the route without its
		// backendRef rather than a weight-0 reference to a Service that does not exist.
		return t.setWeights(ctx, d, d.Percent, canary != nil)
	}
	canary, err := t.canary(ctx, d, d.Percent > 0)
	if err != nil || canary == nil {
		return err
	}
	return t.setReplicas(ctx, d, canary, d.Percent)
}

// notOwned is the error of a step that finds the fencing anchor held by another release.
func (t *Target) notOwned(stable *appsv1.Deployment, d spec.TemplateData) error {
	tok := tokenOf(stable)
	if tok.release == "" {
		return fmt.Errorf("kubernetes target: Deployment %s carries no release: %s step %d ran before deploy: %w",
			t.stableRef(), d.Step, d.Seq, ErrPermanent)
	}
	return fmt.Errorf("kubernetes target: Deployment %s was taken over by release %s (step %d); this %s step %d of %s is stale: %w",
		t.stableRef(), tok.release, tok.seq, d.Step, d.Seq, d.ReleaseID, ErrStaleWrite)
}

// canary reads this release's canary Deployment; nil when it does not exist and need is false.
func (t *Target) canary(ctx context.Context, d spec.TemplateData, need bool) (*appsv1.Deployment, error) {
	cctx, cancel := t.call(ctx)
	dep, err := t.kube.AppsV1().Deployments(t.cfg.Namespace).Get(cctx, t.cfg.CanaryName(), metav1.GetOptions{})
	cancel()
	if apierrors.IsNotFound(err) && !need {
		return nil, nil
	}
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("kubernetes target: canary Deployment %s does not exist (deleted by hand, or removed by a later step): %w",
			t.canaryRef(), ErrPermanent)
	}
	if err != nil {
		return nil, apiError("get canary Deployment "+t.canaryRef(), err)
	}
	if err := t.ownCanary(dep, d); err != nil {
		return nil, err
	}
	return dep, nil
}

// setWeights writes the route's weights: stable 100-percent and canary percent when keepCanary, else
// the canary's backendRef is removed (stable alone).
func (t *Target) setWeights(ctx context.Context, d spec.TemplateData, percent int, keepCanary bool) error {
	g := t.cfg.Traffic.Gateway
	routes := t.gw.GatewayV1().HTTPRoutes(t.cfg.Namespace)
	name := t.cfg.Namespace + "/" + g.HTTPRoute
	_, err := readModifyWrite(ctx, t, "HTTPRoute", name, d,
		func(ctx context.Context) (*gwv1.HTTPRoute, error) {
			return routes.Get(ctx, g.HTTPRoute, metav1.GetOptions{})
		},
		func(r *gwv1.HTTPRoute) (bool, error) {
			changed, n := Weights(r, t.cfg.Namespace, *g, percent, keepCanary)
			if n == 0 {
				return false, fmt.Errorf("kubernetes target: HTTPRoute %s: spec.rules[*].backendRefs: no reference to Service %s port %d: %w",
					name, g.StableService, g.Port, ErrPermanent)
			}
			return changed, nil
		},
		func(ctx context.Context, r *gwv1.HTTPRoute) (*gwv1.HTTPRoute, error) {
			return routes.Update(ctx, r, metav1.UpdateOptions{})
		})
	return err
}

// Weights sets the weights of route in place: in every rule with a backendRef to the stable Service (at
// g.Port, in namespace ns), stable gets 100-percent and the canary Service percent (its backendRef added
// after the stable one if missing), or, when keepCanary is false, the canary's backendRef is removed and
// stable gets 100. It returns whether anything changed and how many rules route to stable.
func Weights(route *gwv1.HTTPRoute, ns string, g Gateway, percent int, keepCanary bool) (changed bool, rules int) {
	for ri := range route.Spec.Rules {
		refs := route.Spec.Rules[ri].BackendRefs
		stableAt, canaryAt := -1, -1
		for i, ref := range refs {
			switch {
			case refersTo(ref.BackendRef, ns, g.StableService, g.Port):
				stableAt = i
			case refersTo(ref.BackendRef, ns, g.CanaryService, g.Port):
				canaryAt = i
			}
		}
		if stableAt < 0 {
			continue
		}
		rules++
		stableWeight := int32(100 - percent)
		if !keepCanary {
			stableWeight = 100
		}
		if w := refs[stableAt].Weight; w == nil || *w != stableWeight {
			refs[stableAt].Weight, changed = ptr.To(stableWeight), true
		}
		switch {
		case keepCanary && canaryAt >= 0:
			if w := refs[canaryAt].Weight; w == nil || *w != int32(percent) {
				refs[canaryAt].Weight, changed = ptr.To(int32(percent)), true
			}
		case keepCanary:
			c := gwv1.HTTPBackendRef{BackendRef: gwv1.BackendRef{
				BackendObjectReference: gwv1.BackendObjectReference{
					Name: gwv1.ObjectName(g.CanaryService), Port: ptr.To(gwv1.PortNumber(g.Port)),
				},
				Weight: ptr.To(int32(percent)),
			}}
			c.Namespace = refs[stableAt].Namespace
			refs = append(refs[:stableAt+1], append([]gwv1.HTTPBackendRef{c}, refs[stableAt+1:]...)...)
			changed = true
		case canaryAt >= 0:
			refs = append(refs[:canaryAt], refs[canaryAt+1:]...)
			changed = true
		}
		route.Spec.Rules[ri].BackendRefs = refs
	}
	return changed, rules
}

// refersTo reports whether ref points at Service name (port port) in namespace ns.
func refersTo(ref gwv1.BackendRef, ns, name string, port int32) bool {
	if string(ref.Name) != name {
		return false
	}
	if ref.Group != nil && *ref.Group != "" && *ref.Group != "core" {
		return false
	}
	if ref.Kind != nil && *ref.Kind != "Service" {
		return false
	}
	if ref.Namespace != nil && string(*ref.Namespace) != ns {
		return false
	}
	return ref.Port == nil || int32(*ref.Port) == port
}

// Split is the replica counts of replicas mode for percent % of total pods on the canary: the canary
// gets ceil(total × percent / 100) (at least 1 above 0 %), stable the rest, so canary + stable = total.
func Split(total int32, percent int) (canary, stable int32) {
	if percent <= 0 || total <= 0 {
		return 0, max(total, 0)
	}
	canary = int32((int64(total)*int64(percent) + 99) / 100)
	canary = max(canary, 1)
	return canary, total - canary
}

// setReplicas scales canary and stable to the split for percent, growing first and shrinking second.
func (t *Target) setReplicas(ctx context.Context, d spec.TemplateData, canary *appsv1.Deployment, percent int) error {
	total, err := strconv.ParseInt(canary.Annotations[AnnotationReplicas], 10, 32)
	if err != nil {
		return fmt.Errorf("kubernetes target: canary Deployment %s: annotation %s %q: %v: %w", t.canaryRef(), AnnotationReplicas,
			canary.Annotations[AnnotationReplicas], err, ErrPermanent)
	}
	wantCanary, wantStable := Split(int32(total), percent)
	first, second := t.cfg.CanaryName(), t.cfg.Deployment
	firstN, secondN := wantCanary, wantStable
	if wantCanary < replicasOf(canary) {
		first, second, firstN, secondN = second, first, secondN, firstN
	}
	if err := t.scale(ctx, d, first, firstN); err != nil {
		return err
	}
	if _, err := t.waitAvailable(ctx, first); err != nil {
		return err
	}
	return t.scale(ctx, d, second, secondN)
}

// scale sets a Deployment's replicas (a fenced read-modify-write of the Deployment; RBAC needs only
// deployments update, not the scale subresource).
func (t *Target) scale(ctx context.Context, d spec.TemplateData, name string, n int32) error {
	deps := t.kube.AppsV1().Deployments(t.cfg.Namespace)
	_, err := readModifyWrite(ctx, t, "Deployment", t.cfg.Namespace+"/"+name, d,
		func(ctx context.Context) (*appsv1.Deployment, error) { return deps.Get(ctx, name, metav1.GetOptions{}) },
		func(dep *appsv1.Deployment) (bool, error) {
			if replicasOf(dep) == n {
				return false, nil
			}
			dep.Spec.Replicas = ptr.To(n)
			return true, nil
		},
		func(ctx context.Context, dep *appsv1.Deployment) (*appsv1.Deployment, error) {
			return deps.Update(ctx, dep, metav1.UpdateOptions{})
		})
	return err
}
