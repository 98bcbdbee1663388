package kubernetes

import (
	"context"
	"fmt"
	"strconv"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/shepherd-release/shepherd/spec"
)

// Promote makes data.Version the stable version, in an order that never leaves the service without
// ready backends: the stable Deployment takes the new images (in replicas mode also its full replica
// count back) and the step waits for its rollout to finish while the canary still serves its share;
// then all traffic goes to stable (the route's canary backendRef removed); then, after the scale-down
// delay, the canary (and its Service) are removed. A repeat after a crash picks up where it stopped.
func (t *Target) Promote(ctx context.Context, d spec.TemplateData) error {
	stable, owned, repeat, err := t.claim(ctx, d, false)
	if err != nil {
		return err
	}
	if !owned {
		return t.notOwned(stable, d)
	}
	canary, err := t.canary(ctx, d, !repeat)
	if err != nil {
		return err
	}
	images, err := t.images(d)
	if err != nil {
		return err
	}
	total := int32(-1)
	if canary != nil && t.cfg.Traffic.Mode == ModeReplicas {
		n, err := strconv.ParseInt(canary.Annotations[AnnotationReplicas], 10, 32)
		if err != nil {
			return fmt.Errorf("kubernetes target: canary Deployment %s: annotation %s: %v: %w", t.canaryRef(), AnnotationReplicas, err, ErrPermanent)
		}
		total = int32(n)
	}
	deps := t.kube.AppsV1().Deployments(t.cfg.Namespace)
	_, err = readModifyWrite(ctx, t, "Deployment", t.stableRef(), d,
		func(ctx context.Context) (*appsv1.Deployment, error) {
			return deps.Get(ctx, t.cfg.Deployment, metav1.GetOptions{})
		},
		func(dep *appsv1.Deployment) (bool, error) {
			changed := false
			for name, img := range images {
				found := false
				for i := range dep.Spec.Template.Spec.Containers {
					c := &dep.Spec.Template.Spec.Containers[i]
					if c.Name == name {
						found = true
						if c.Image != img {
							c.Image, changed = img, true
						}
					}
				}
				if !found {
					return false, fmt.Errorf("kubernetes target: Deployment %s has no container %q (named in images): %w",
						t.stableRef(), name, ErrPermanent)
				}
			}
			if total >= 0 && replicasOf(dep) != total {
				dep.Spec.Replicas, changed = ptr.To(total), true
			}
			if dep.Spec.Template.Annotations[AnnotationVersion] != d.Version {
				if dep.Spec.Template.Annotations == nil {
					dep.Spec.Template.Annotations = map[string]string{}
				}
				dep.Spec.Template.Annotations[AnnotationVersion] = d.Version
				changed = true
			}
			if changed || dep.Annotations[AnnotationVersion] != d.Version {
				if dep.Annotations == nil {
					dep.Annotations = map[string]string{}
				}
				dep.Annotations[AnnotationVersion] = d.Version
				changed = true
			}
			return changed, nil
		},
		func(ctx context.Context, dep *appsv1.Deployment) (*appsv1.Deployment, error) {
			return deps.Update(ctx, dep, metav1.UpdateOptions{})
		})
	if err != nil {
		return err
	}
	if _, err := t.waitAvailable(ctx, t.cfg.Deployment); err != nil {
		return err
	}
	return t.retireCanary(ctx, d)
}

// Rollback removes this release's canary: traffic back to stable first (the route's canary backendRef
// removed; in replicas mode stable scaled back to its full count and ready), then, after the scale-down
// delay, the canary Service and Deployment. It is a no-op when this release no longer owns the Deployment
// (another release took it over) or never deployed: nothing of it is left.
func (t *Target) Rollback(ctx context.Context, d spec.TemplateData) error {
	_, owned, _, err := t.claim(ctx, d, false)
	if err != nil || !owned {
		return err
	}
	canary, err := t.canary(ctx, d, false)
	if err != nil {
		return err
	}
	if t.cfg.Traffic.Mode == ModeReplicas && canary != nil {
		if err := t.setReplicas(ctx, d, canary, 0); err != nil {
			return err
		}
	}
	return t.retireCanary(ctx, d)
}

// retireCanary takes the canary out of the route, waits out the scale-down delay (counted from the first
// attempt of this step, recorded on the canary, so a retry waits only what is left) and deletes the
// canary Service and Deployment, each delete conditioned on the resourceVersion just checked.
func (t *Target) retireCanary(ctx context.Context, d spec.TemplateData) error {
	if t.cfg.Traffic.Mode == ModeGateway {
		if err := t.setWeights(ctx, d, 0, false); err != nil {
			return err
		}
	}
	canary, err := t.canary(ctx, d, false)
	if err != nil {
		return err
	}
	if canary != nil && t.cfg.ScaleDownDelay > 0 {
		if err := t.scaleDownDelay(ctx, d); err != nil {
			return err
		}
	}
	if t.cfg.Traffic.Mode == ModeGateway {
		if err := t.deleteCanaryService(ctx, d); err != nil {
			return err
		}
	}
	return t.deleteCanary(ctx, d)
}

// scaleDownDelay records when the canary may go (now + delay) unless recorded, then waits for it.
func (t *Target) scaleDownDelay(ctx context.Context, d spec.TemplateData) error {
	deps := t.kube.AppsV1().Deployments(t.cfg.Namespace)
	var until time.Time
	_, err := readModifyWrite(ctx, t, "Deployment", t.canaryRef(), d,
		func(ctx context.Context) (*appsv1.Deployment, error) {
			return deps.Get(ctx, t.cfg.CanaryName(), metav1.GetOptions{})
		},
		func(dep *appsv1.Deployment) (bool, error) {
			if err := t.ownCanary(dep, d); err != nil {
				return false, err
			}
			if at, err := time.Parse(time.RFC3339, dep.Annotations[AnnotationRemoveAfter]); err == nil && tokenOf(dep).seq == d.Seq {
				until = at
				return false, nil
			}
			until = t.now().Add(t.cfg.ScaleDownDelay.D()).Truncate(time.Second).Add(time.Second)
			dep.Annotations[AnnotationRemoveAfter] = until.UTC().Format(time.RFC3339)
			return true, nil
		},
		func(ctx context.Context, dep *appsv1.Deployment) (*appsv1.Deployment, error) {
			return deps.Update(ctx, dep, metav1.UpdateOptions{})
		})
	if err != nil {
		return err
	}
	if wait := until.Sub(t.now()); wait > 0 {
		return sleep(ctx, wait)
	}
	return nil
}

// deleteCanary deletes this release's canary Deployment if it still exists.
func (t *Target) deleteCanary(ctx context.Context, d spec.TemplateData) error {
	deps := t.kube.AppsV1().Deployments(t.cfg.Namespace)
	return t.deleteFenced(ctx, d, "Deployment", t.canaryRef(),
		func(ctx context.Context) (metav1.Object, error) {
			return deps.Get(ctx, t.cfg.CanaryName(), metav1.GetOptions{})
		},
		func(o metav1.Object) error {
			dep := o.(*appsv1.Deployment)
			return t.ownCanary(dep, d)
		},
		func(ctx context.Context, opts metav1.DeleteOptions) error {
			return deps.Delete(ctx, t.cfg.CanaryName(), opts)
		})
}

// deleteCanaryService deletes the canary Service if it still exists and is Shepherd's.
func (t *Target) deleteCanaryService(ctx context.Context, d spec.TemplateData) error {
	g := t.cfg.Traffic.Gateway
	svcs := t.kube.CoreV1().Services(t.cfg.Namespace)
	name := t.cfg.Namespace + "/" + g.CanaryService
	return t.deleteFenced(ctx, d, "Service", name,
		func(ctx context.Context) (metav1.Object, error) {
			return svcs.Get(ctx, g.CanaryService, metav1.GetOptions{})
		},
		func(o metav1.Object) error {
			s := o.(*corev1.Service)
			if s.Labels[LabelRole] != RoleCanary {
				return fmt.Errorf("kubernetes target: Service %s is not a Shepherd canary Service; not deleting it: %w", name, ErrPermanent)
			}
			return nil
		},
		func(ctx context.Context, opts metav1.DeleteOptions) error {
			return svcs.Delete(ctx, g.CanaryService, opts)
		})
}

// deleteFenced reads an object, checks it (check and the fencing token), and deletes it on the condition
// that it is still the object just checked (UID and resourceVersion), re-reading on a Conflict.
func (t *Target) deleteFenced(ctx context.Context, d spec.TemplateData, kind, name string,
	get func(context.Context) (metav1.Object, error), check func(metav1.Object) error,
	del func(context.Context, metav1.DeleteOptions) error,
) error {
	for range maxConflicts {
		cctx, cancel := t.call(ctx)
		o, err := get(cctx)
		cancel()
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return apiError("get "+kind+" "+name, err)
		}
		if o.GetDeletionTimestamp() != nil {
			return nil
		}
		if err := check(o); err != nil {
			return err
		}
		if err := fenced(kind, name, tokenOf(o), d); err != nil {
			return err
		}
		uid, rv := o.GetUID(), o.GetResourceVersion()
		cctx, cancel = t.call(ctx)
		err = del(cctx, metav1.DeleteOptions{
			Preconditions:     &metav1.Preconditions{UID: &uid, ResourceVersion: &rv},
			PropagationPolicy: ptr.To(metav1.DeletePropagationBackground),
		})
		cancel()
		switch {
		case err == nil, apierrors.IsNotFound(err):
			return nil
		case apierrors.IsConflict(err):
			continue
		default:
			return apiError("delete "+kind+" "+name, err)
		}
	}
	return fmt.Errorf("kubernetes target: delete %s %s: still conflicting after %d attempts", kind, name, maxConflicts)
}
