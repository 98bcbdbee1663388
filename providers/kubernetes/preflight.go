package kubernetes

import (
	"context"
	"fmt"
	"strings"

	authv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/shepherd-release/shepherd/spec"
)

// Permission is one API permission the target's steps need in its namespace.
type Permission struct {
	Group, Resource, Verb string
	// Why says which steps need it.
	Why string
}

func (p Permission) String() string {
	r := p.Resource
	if p.Group != "" {
		r += "." + p.Group
	}
	return p.Verb + " " + r
}

// Permissions lists what the steps need in the configured mode: deploy/manifests in deploy/kubernetes
// grant exactly these (a test checks it).
func (c Config) Permissions() []Permission {
	ps := []Permission{
		{"apps", "deployments", "get", "every step reads the stable and canary Deployments"},
		{"apps", "deployments", "create", "deploy creates the canary"},
		{"apps", "deployments", "update", "every step records its fencing token; promote sets the image; replicas mode scales"},
		{"apps", "deployments", "delete", "promote and rollback remove the canary"},
	}
	if c.Traffic.Mode == ModeGateway {
		ps = append(ps,
			Permission{"", "services", "get", "deploy copies the stable Service's ports"},
			Permission{"", "services", "create", "deploy creates the canary Service"},
			Permission{"", "services", "update", "a repeated deploy converges the canary Service"},
			Permission{"", "services", "delete", "promote and rollback remove the canary Service"},
			Permission{"gateway.networking.k8s.io", "httproutes", "get", "traffic steps read the route"},
			Permission{"gateway.networking.k8s.io", "httproutes", "update", "traffic steps set the weights"},
		)
	}
	return ps
}

// Preflight checks, without changing anything, that a release can run: every permission the steps need
// (SelfSubjectAccessReview), the stable Deployment and the containers named in images, no canary left
// by another release, and in gateway mode the stable Service (its port, and that its selector does not
// select canary pods), the canary Service name free or Shepherd's, and the HTTPRoute referencing the
// stable Service. It reports every problem found, with field paths, in a *ProblemsError.
func (t *Target) Preflight(ctx context.Context, d spec.TemplateData) error {
	var p problems
	ns := t.cfg.Namespace
	for _, perm := range t.cfg.Permissions() {
		allowed, reason, err := t.can(ctx, perm)
		if err != nil {
			return apiError("SelfSubjectAccessReview "+perm.String(), err)
		}
		if !allowed {
			msg := fmt.Sprintf("not allowed to %s in namespace %s (%s)", perm, ns, perm.Why)
			if reason != "" {
				msg += ": " + reason
			}
			p.add("rbac", "%s; grant deploy/kubernetes/rbac.yaml's Role", msg)
		}
	}
	if len(p) > 0 {
		// Without the permissions the reads below would only repeat the same finding.
		return p.err("kubernetes target preflight")
	}

	images, err := t.images(d)
	if err != nil {
		return err
	}
	cctx, cancel := t.call(ctx)
	stable, err := t.kube.AppsV1().Deployments(ns).Get(cctx, t.cfg.Deployment, metav1.GetOptions{})
	cancel()
	stablePath := "Deployment " + t.stableRef()
	switch {
	case apierrors.IsNotFound(err):
		stable = nil
		p.add(stablePath, "not found (deployment)")
	case err != nil:
		return apiError("get "+stablePath, err)
	default:
		for name := range images {
			found := false
			for _, c := range stable.Spec.Template.Spec.Containers {
				found = found || c.Name == name
			}
			if !found {
				var have []string
				for _, c := range stable.Spec.Template.Spec.Containers {
					have = append(have, c.Name)
				}
				p.add(stablePath+": spec.template.spec.containers", "no container %q (images.%s); it has %s", name, name, strings.Join(have, ", "))
			}
		}
		if t.cfg.Traffic.Mode == ModeReplicas && replicasOf(stable) < 1 {
			p.add(stablePath+": spec.replicas", "is 0: replicas mode splits traffic by replica counts")
		}
		if tok := tokenOf(stable); tok.release == d.ReleaseID && tok.seq > d.Seq {
			p.add(stablePath+": metadata.annotations."+AnnotationSeq, "carries step %d of this release, newer than this preflight (%d)", tok.seq, d.Seq)
		}
	}

	cctx, cancel = t.call(ctx)
	canary, err := t.kube.AppsV1().Deployments(ns).Get(cctx, t.cfg.CanaryName(), metav1.GetOptions{})
	cancel()
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return apiError("get Deployment "+t.canaryRef(), err)
	default:
		if err := t.ownCanary(canary, d); err != nil {
			p.add("Deployment "+t.canaryRef(), "%s", strings.TrimSuffix(strings.TrimPrefix(err.Error(), "kubernetes target: "), ": "+ErrPermanent.Error()))
		}
	}

	if g := t.cfg.Traffic.Gateway; t.cfg.Traffic.Mode == ModeGateway {
		svcPath := "Service " + ns + "/" + g.StableService
		cctx, cancel = t.call(ctx)
		svc, err := t.kube.CoreV1().Services(ns).Get(cctx, g.StableService, metav1.GetOptions{})
		cancel()
		switch {
		case apierrors.IsNotFound(err):
			p.add(svcPath, "not found (traffic.gateway.stableService)")
		case err != nil:
			return apiError("get "+svcPath, err)
		default:
			hasPort := false
			for _, sp := range svc.Spec.Ports {
				hasPort = hasPort || sp.Port == g.Port
			}
			if !hasPort {
				p.add(svcPath+": spec.ports", "no port %d (traffic.gateway.port)", g.Port)
			}
			if stable != nil {
				sel := labels.SelectorFromSet(svc.Spec.Selector)
				switch {
				case len(svc.Spec.Selector) == 0:
					p.add(svcPath+": spec.selector", "empty: the stable Service must select the stable pods by labels")
				case sel.Matches(labels.Set(t.canaryPodLabels(stable.Spec.Template.Labels, d))):
					p.add(svcPath+": spec.selector", "%s also selects the canary's pods, so weights would not hold; give the stable pods "+
						"and this selector a label that canaryLabels overrides (e.g. track: stable / canaryLabels {track: canary})", sel)
				}
			}
		}
		cctx, cancel = t.call(ctx)
		csvc, err := t.kube.CoreV1().Services(ns).Get(cctx, g.CanaryService, metav1.GetOptions{})
		cancel()
		switch {
		case apierrors.IsNotFound(err):
		case err != nil:
			return apiError("get Service "+ns+"/"+g.CanaryService, err)
		case csvc.Labels[LabelRole] != RoleCanary:
			p.add("Service "+ns+"/"+g.CanaryService, "exists and is not a Shepherd canary Service (traffic.gateway.canaryService)")
		}
		routePath := "HTTPRoute " + ns + "/" + g.HTTPRoute
		cctx, cancel = t.call(ctx)
		route, err := t.gw.GatewayV1().HTTPRoutes(ns).Get(cctx, g.HTTPRoute, metav1.GetOptions{})
		cancel()
		switch {
		case apierrors.IsNotFound(err):
			p.add(routePath, "not found (traffic.gateway.httpRoute); is the Gateway API installed?")
		case err != nil:
			return apiError("get "+routePath, err)
		default:
			if _, n := Weights(route.DeepCopy(), ns, *g, 0, true); n == 0 {
				p.add(routePath+": spec.rules[*].backendRefs", "no backendRef to Service %s port %d (traffic.gateway.stableService, port)",
					g.StableService, g.Port)
			}
		}
	}
	return p.err("kubernetes target preflight")
}

// can asks the API server whether the target's identity may do perm in the namespace.
func (t *Target) can(ctx context.Context, perm Permission) (bool, string, error) {
	review := &authv1.SelfSubjectAccessReview{Spec: authv1.SelfSubjectAccessReviewSpec{
		ResourceAttributes: &authv1.ResourceAttributes{
			Namespace: t.cfg.Namespace, Group: perm.Group, Resource: perm.Resource, Verb: perm.Verb,
		},
	}}
	cctx, cancel := t.call(ctx)
	defer cancel()
	out, err := t.kube.AuthorizationV1().SelfSubjectAccessReviews().Create(cctx, review, metav1.CreateOptions{})
	if err != nil {
		return false, "", err
	}
	return out.Status.Allowed, out.Status.Reason, nil
}
