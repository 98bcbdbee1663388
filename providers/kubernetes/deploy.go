package kubernetes

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/shepherd-release/shepherd/spec"
)

// Deploy creates (or, on a repeat, converges) the canary Deployment "<deployment>-canary" beside the
// stable one: the stable pod template with the configured images rendered over data, the canary labels,
// and annotations naming the release; in gateway mode also the canary Service. It then waits until the
// canary is available (gateway mode: as many ready replicas as stable; replicas mode: none yet, its
// traffic share is its replica count). A canary left by another release is not touched: ErrPermanent.
func (t *Target) Deploy(ctx context.Context, d spec.TemplateData) error {
	images, err := t.images(d)
	if err != nil {
		return err
	}
	deps := t.kube.AppsV1().Deployments(t.cfg.Namespace)
	cctx, cancel := t.call(ctx)
	existing, err := deps.Get(cctx, t.cfg.CanaryName(), metav1.GetOptions{})
	cancel()
	switch {
	case apierrors.IsNotFound(err):
		existing = nil
	case err != nil:
		return apiError("get canary Deployment", err)
	default:
		if err := t.ownCanary(existing, d); err != nil {
			return err
		}
	}
	stable, _, _, err := t.claim(ctx, d, true)
	if err != nil {
		return err
	}
	want, err := t.canaryFor(stable, images, d)
	if err != nil {
		return err
	}
	if existing == nil {
		if err := t.createCanary(ctx, want, d); err != nil {
			return err
		}
	} else {
		_, err := readModifyWrite(ctx, t, "Deployment", t.canaryRef(), d,
			func(ctx context.Context) (*appsv1.Deployment, error) {
				return deps.Get(ctx, t.cfg.CanaryName(), metav1.GetOptions{})
			},
			func(dep *appsv1.Deployment) (bool, error) {
				if err := t.ownCanary(dep, d); err != nil {
					return false, err
				}
				if equality.Semantic.DeepEqual(dep.Spec.Template, want.Spec.Template) &&
					dep.Annotations[AnnotationVersion] == d.Version {
					return false, nil
				}
				dep.Spec.Template = want.Spec.Template
				maps.Copy(dep.Annotations, want.Annotations)
				return true, nil
			},
			func(ctx context.Context, dep *appsv1.Deployment) (*appsv1.Deployment, error) {
				return deps.Update(ctx, dep, metav1.UpdateOptions{})
			})
		if err != nil {
			return err
		}
	}
	if t.cfg.Traffic.Mode == ModeGateway {
		if err := t.ensureCanaryService(ctx, want, d); err != nil {
			return err
		}
	}
	_, err = t.waitAvailable(ctx, t.cfg.CanaryName())
	return err
}

// createCanary creates the canary and then re-reads the fencing anchor: a create racing a newer step
// that removed the canary (a rollback) would otherwise bring it back, so it deletes what it created and
// reports the write stale.
func (t *Target) createCanary(ctx context.Context, want *appsv1.Deployment, d spec.TemplateData) error {
	deps := t.kube.AppsV1().Deployments(t.cfg.Namespace)
	cctx, cancel := t.call(ctx)
	created, err := deps.Create(cctx, want, metav1.CreateOptions{})
	cancel()
	if apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("kubernetes target: create Deployment %s: created concurrently by someone else; retrying", t.canaryRef())
	}
	if err != nil {
		return apiError("create Deployment "+t.canaryRef(), err)
	}
	cctx, cancel = t.call(ctx)
	stable, err := deps.Get(cctx, t.cfg.Deployment, metav1.GetOptions{})
	cancel()
	if err != nil {
		return apiError("get Deployment "+t.stableRef(), err)
	}
	tok := tokenOf(stable)
	if tok.release == d.ReleaseID && tok.seq <= d.Seq {
		return nil
	}
	cctx, cancel = t.call(ctx)
	defer cancel()
	_ = deps.Delete(cctx, created.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{
		UID: &created.UID, ResourceVersion: &created.ResourceVersion}})
	return fmt.Errorf("kubernetes target: Deployment %s was taken by step %d of release %s while this %s step %d created the canary; removed it again: %w",
		t.stableRef(), tok.seq, tok.release, d.Step, d.Seq, ErrStaleWrite)
}

// ownCanary refuses a canary that is not this release's: left by another release, or not Shepherd's.
func (t *Target) ownCanary(dep *appsv1.Deployment, d spec.TemplateData) error {
	tok := tokenOf(dep)
	switch {
	case dep.Labels[LabelRole] != RoleCanary || tok.release == "":
		return fmt.Errorf("kubernetes target: Deployment %s exists and is not a Shepherd canary; rename or delete it: %w",
			t.canaryRef(), ErrPermanent)
	case tok.release != d.ReleaseID:
		return fmt.Errorf("kubernetes target: Deployment %s is the canary of release %s (version %s); roll that release back or delete the canary first: %w",
			t.canaryRef(), tok.release, dep.Annotations[AnnotationVersion], ErrPermanent)
	}
	return fenced("Deployment", t.canaryRef(), tok, d)
}

// canaryFor builds the canary Deployment from the stable one.
func (t *Target) canaryFor(stable *appsv1.Deployment, images map[string]string, d spec.TemplateData) (*appsv1.Deployment, error) {
	tmpl := *stable.Spec.Template.DeepCopy()
	for name, img := range images {
		found := false
		for i := range tmpl.Spec.Containers {
			if tmpl.Spec.Containers[i].Name == name {
				tmpl.Spec.Containers[i].Image, found = img, true
			}
		}
		if !found {
			return nil, fmt.Errorf("kubernetes target: Deployment %s has no container %q (named in images): %w",
				t.stableRef(), name, ErrPermanent)
		}
	}
	podLabels := t.canaryPodLabels(tmpl.Labels, d)
	tmpl.Labels = podLabels
	if tmpl.Annotations == nil {
		tmpl.Annotations = map[string]string{}
	}
	tmpl.Annotations[AnnotationVersion] = d.Version
	sel := stable.Spec.Selector.DeepCopy()
	if sel == nil {
		sel = &metav1.LabelSelector{}
	}
	if sel.MatchLabels == nil {
		sel.MatchLabels = map[string]string{}
	}
	maps.Copy(sel.MatchLabels, t.cfg.CanaryLabels)
	sel.MatchLabels[LabelRole] = RoleCanary

	total := replicasOf(stable)
	replicas := total
	if t.cfg.Traffic.Mode == ModeReplicas {
		replicas = 0
	}
	labels := maps.Clone(stable.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	labels[LabelRole] = RoleCanary
	labels[LabelService] = d.Service
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{
			Name: t.cfg.CanaryName(), Namespace: t.cfg.Namespace, Labels: labels,
			Annotations: map[string]string{AnnotationVersion: d.Version, AnnotationReplicas: strconv.Itoa(int(total))},
		},
		Spec: appsv1.DeploymentSpec{
			Replicas:                ptr.To(replicas),
			Selector:                sel,
			Template:                tmpl,
			Strategy:                stable.Spec.Strategy,
			MinReadySeconds:         stable.Spec.MinReadySeconds,
			ProgressDeadlineSeconds: stable.Spec.ProgressDeadlineSeconds,
			RevisionHistoryLimit:    ptr.To[int32](1),
		},
	}
	stamp(dep, d)
	return dep, nil
}

// canaryPodLabels are the stable pod labels with the canary labels over them.
func (t *Target) canaryPodLabels(stable map[string]string, d spec.TemplateData) map[string]string {
	l := maps.Clone(stable)
	if l == nil {
		l = map[string]string{}
	}
	maps.Copy(l, t.cfg.CanaryLabels)
	l[LabelRole] = RoleCanary
	l[LabelService] = d.Service
	return l
}

// ensureCanaryService creates or converges the canary Service: the stable Service's ports, selecting the
// canary's pods.
func (t *Target) ensureCanaryService(ctx context.Context, canary *appsv1.Deployment, d spec.TemplateData) error {
	g := t.cfg.Traffic.Gateway
	svcs := t.kube.CoreV1().Services(t.cfg.Namespace)
	cctx, cancel := t.call(ctx)
	stableSvc, err := svcs.Get(cctx, g.StableService, metav1.GetOptions{})
	cancel()
	if err != nil {
		return apiError("get Service "+t.cfg.Namespace+"/"+g.StableService, err)
	}
	ports := make([]corev1.ServicePort, len(stableSvc.Spec.Ports))
	for i, p := range stableSvc.Spec.Ports {
		ports[i] = corev1.ServicePort{Name: p.Name, Protocol: p.Protocol, Port: p.Port, TargetPort: p.TargetPort, AppProtocol: p.AppProtocol}
	}
	selector := maps.Clone(canary.Spec.Selector.MatchLabels)
	want := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{
			Name: g.CanaryService, Namespace: t.cfg.Namespace,
			Labels:      map[string]string{LabelRole: RoleCanary, LabelService: d.Service},
			Annotations: map[string]string{AnnotationVersion: d.Version},
		},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, Ports: ports, Selector: selector},
	}
	stamp(want, d)
	name := t.cfg.Namespace + "/" + g.CanaryService
	cctx, cancel = t.call(ctx)
	_, err = svcs.Create(cctx, want, metav1.CreateOptions{})
	cancel()
	if err == nil {
		return nil
	}
	if !apierrors.IsAlreadyExists(err) {
		return apiError("create Service "+name, err)
	}
	_, err = readModifyWrite(ctx, t, "Service", name, d,
		func(ctx context.Context) (*corev1.Service, error) {
			return svcs.Get(ctx, g.CanaryService, metav1.GetOptions{})
		},
		func(s *corev1.Service) (bool, error) {
			if s.Labels[LabelRole] != RoleCanary {
				return false, fmt.Errorf("kubernetes target: Service %s exists and is not a Shepherd canary Service; "+
					"set traffic.gateway.canaryService to a free name: %w", name, ErrPermanent)
			}
			if equality.Semantic.DeepEqual(s.Spec.Selector, selector) && portsEqual(s.Spec.Ports, ports) &&
				s.Annotations[AnnotationVersion] == d.Version {
				return false, nil
			}
			s.Spec.Selector, s.Spec.Ports = selector, ports
			s.Labels[LabelService] = d.Service
			if s.Annotations == nil {
				s.Annotations = map[string]string{}
			}
			s.Annotations[AnnotationVersion] = d.Version
			return true, nil
		},
		func(ctx context.Context, s *corev1.Service) (*corev1.Service, error) {
			return svcs.Update(ctx, s, metav1.UpdateOptions{})
		})
	return err
}

func portsEqual(have, want []corev1.ServicePort) bool {
	if len(have) != len(want) {
		return false
	}
	for i := range have {
		h, w := have[i], want[i]
		if h.Name != w.Name || h.Port != w.Port || h.TargetPort != w.TargetPort || (w.Protocol != "" && h.Protocol != w.Protocol) {
			return false
		}
	}
	return true
}

// Health returns nil when the canary Deployment of this release is available: its controller has seen
// its latest spec, every wanted replica is updated, ready and available, no old pod is left; and, when
// healthURL is configured, that URL answers 2xx. It changes nothing.
func (t *Target) Health(ctx context.Context, d spec.TemplateData) error {
	cctx, cancel := t.call(ctx)
	dep, err := t.kube.AppsV1().Deployments(t.cfg.Namespace).Get(cctx, t.cfg.CanaryName(), metav1.GetOptions{})
	cancel()
	if err != nil {
		return apiError("get canary Deployment "+t.canaryRef(), err)
	}
	if tok := tokenOf(dep); tok.release != d.ReleaseID {
		return fmt.Errorf("kubernetes target: Deployment %s is not this release's canary (release %q): %w",
			t.canaryRef(), tok.release, ErrPermanent)
	}
	if done, why, err := rolledOut(dep); err != nil {
		return err
	} else if !done {
		return fmt.Errorf("kubernetes target: canary Deployment %s is not available: %s", t.canaryRef(), why)
	}
	if t.cfg.HealthURL == "" {
		return nil
	}
	u, err := render(t.cfg.HealthURL, d)
	if err != nil {
		return fmt.Errorf("kubernetes target: healthURL: %v: %w", err, ErrPermanent)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("kubernetes target: healthURL %q: %v: %w", u, err, ErrPermanent)
	}
	resp, err := t.http.Do(req)
	if err != nil {
		return fmt.Errorf("kubernetes target: health probe %s: %w", u, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("kubernetes target: health probe %s answered %s", u, resp.Status)
	}
	return nil
}

// rolledOut reports whether a Deployment has finished rolling out its latest spec with every replica
// ready and available, and says what is missing if not. A rollout past its progress deadline is an
// error wrapping ErrPermanent: waiting longer will not fix it.
func rolledOut(dep *appsv1.Deployment) (bool, string, error) {
	want := replicasOf(dep)
	s := dep.Status
	for _, c := range s.Conditions {
		if c.Type == appsv1.DeploymentProgressing && c.Status == corev1.ConditionFalse && c.Reason == "ProgressDeadlineExceeded" &&
			s.ObservedGeneration >= dep.Generation {
			return false, "", fmt.Errorf("kubernetes target: Deployment %s/%s exceeded its progress deadline: %s: %w",
				dep.Namespace, dep.Name, c.Message, ErrPermanent)
		}
	}
	switch {
	case s.ObservedGeneration < dep.Generation:
		return false, fmt.Sprintf("generation %d not yet observed (observed %d)", dep.Generation, s.ObservedGeneration), nil
	case s.UpdatedReplicas != want:
		return false, fmt.Sprintf("%d of %d replicas updated", s.UpdatedReplicas, want), nil
	case s.Replicas != want:
		return false, fmt.Sprintf("%d replicas exist, %d wanted (old ones still terminating)", s.Replicas, want), nil
	case s.ReadyReplicas != want || s.AvailableReplicas != want:
		return false, fmt.Sprintf("%d ready and %d available of %d", s.ReadyReplicas, s.AvailableReplicas, want), nil
	}
	if want > 0 {
		for _, c := range s.Conditions {
			if c.Type == appsv1.DeploymentAvailable && c.Status != corev1.ConditionTrue {
				return false, "condition Available is " + string(c.Status) + ": " + c.Message, nil
			}
		}
	}
	return true, "", nil
}

// waitAvailable polls a Deployment until rolledOut, for at most the rollout timeout.
func (t *Target) waitAvailable(ctx context.Context, name string) (*appsv1.Deployment, error) {
	ctx, cancel := context.WithTimeout(ctx, t.cfg.RolloutTimeout.D())
	defer cancel()
	deps := t.kube.AppsV1().Deployments(t.cfg.Namespace)
	why := "not read yet"
	for {
		cctx, ccancel := t.call(ctx)
		dep, err := deps.Get(cctx, name, metav1.GetOptions{})
		ccancel()
		if err == nil {
			var done bool
			if done, why, err = rolledOut(dep); err != nil {
				return nil, err
			} else if done {
				return dep, nil
			}
		} else if apierrors.IsNotFound(err) || apierrors.IsForbidden(err) {
			return nil, apiError("get Deployment "+t.cfg.Namespace+"/"+name, err)
		} else {
			why = err.Error()
		}
		if err := sleep(ctx, pollEvery); err != nil {
			return nil, fmt.Errorf("kubernetes target: Deployment %s/%s not rolled out within %s: %s", t.cfg.Namespace, name,
				t.cfg.RolloutTimeout, why)
		}
	}
}

// images renders the configured image templates over data.
func (t *Target) images(d spec.TemplateData) (map[string]string, error) {
	out := make(map[string]string, len(t.cfg.Images))
	for name, tmpl := range t.cfg.Images {
		img, err := render(tmpl, d)
		if err != nil {
			return nil, fmt.Errorf("kubernetes target: images.%s: %v: %w", name, err, ErrPermanent)
		}
		out[name] = img
	}
	return out, nil
}

func replicasOf(dep *appsv1.Deployment) int32 {
	if dep.Spec.Replicas == nil {
		return 1
	}
	return *dep.Spec.Replicas
}

func (t *Target) stableRef() string { return t.cfg.Namespace + "/" + t.cfg.Deployment }
func (t *Target) canaryRef() string { return t.cfg.Namespace + "/" + t.cfg.CanaryName() }
