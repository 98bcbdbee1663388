package kubernetes

import (
	"context"
	"fmt"
	"strconv"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/shepherd-release/shepherd/spec"
)

// Annotations and labels the target writes. The fencing token is AnnotationRelease + AnnotationSeq.
const (
	annotationPrefix = "shepherd.dev/"
	// AnnotationRelease names the release that last wrote the object (workflow ID / run ID).
	AnnotationRelease = annotationPrefix + "release"
	// AnnotationSeq is the fencing sequence number (spec.TemplateData.Seq) of the step that last wrote it.
	AnnotationSeq = annotationPrefix + "step-seq"
	// AnnotationStep is that step's name, for people reading the object.
	AnnotationStep = annotationPrefix + "step"
	// AnnotationVersion is the version the canary (or, after promote, the stable Deployment) runs.
	AnnotationVersion = annotationPrefix + "version"
	// AnnotationReplicas, on the canary in replicas mode, is the stable Deployment's replica count when
	// the canary was deployed: the capacity that canary + stable keep at every traffic step.
	AnnotationReplicas = annotationPrefix + "replicas"
	// AnnotationRemoveAfter, on the canary, is when its scale-down delay ends (RFC 3339).
	AnnotationRemoveAfter = annotationPrefix + "remove-after"
	// LabelRole is "canary" on the canary Deployment, its pods and the canary Service.
	LabelRole = annotationPrefix + "role"
	// LabelService is the released service's name, on the same objects.
	LabelService = annotationPrefix + "service"
	// RoleCanary is the value of LabelRole.
	RoleCanary = "canary"
)

// token is the fencing token found on an object.
type token struct {
	release string
	seq     int64
}

func tokenOf(o metav1.Object) token {
	a := o.GetAnnotations()
	seq, _ := strconv.ParseInt(a[AnnotationSeq], 10, 64)
	return token{release: a[AnnotationRelease], seq: seq}
}

// fenced says whether data may write an object carrying tok: an older step of the same release may not
// (ErrStaleWrite). Other releases' tokens are decided by the caller.
func fenced(kind, name string, tok token, d spec.TemplateData) error {
	if tok.release == d.ReleaseID && tok.seq > d.Seq {
		return fmt.Errorf("kubernetes target: %s %s carries step %d of this release, newer than this %s step %d: %w",
			kind, name, tok.seq, d.Step, d.Seq, ErrStaleWrite)
	}
	return nil
}

// stamp writes data's fencing token onto an object about to be written.
func stamp(o metav1.Object, d spec.TemplateData) {
	a := o.GetAnnotations()
	if a == nil {
		a = map[string]string{}
	}
	a[AnnotationRelease] = d.ReleaseID
	a[AnnotationSeq] = strconv.FormatInt(d.Seq, 10)
	a[AnnotationStep] = d.Step
	o.SetAnnotations(a)
}

// object is what readModifyWrite needs of a typed API object.
type object interface {
	metav1.Object
	comparable
}

// readModifyWrite reads an object, lets mutate change it, and updates it with the resourceVersion it was
// read at, re-reading and re-applying on a Conflict up to maxConflicts times. mutate returns false when
// the object is already as wanted: nothing is written (an idempotent repeat). A written object carries
// data's fencing token; an object carrying a newer token of the same release refuses the write.
func readModifyWrite[T object](ctx context.Context, t *Target, kind, name string, d spec.TemplateData,
	get func(context.Context) (T, error), mutate func(T) (bool, error), update func(context.Context, T) (T, error),
) (T, error) {
	var zero T
	conflicts := 0
	for range maxConflicts {
		cctx, cancel := t.call(ctx)
		obj, err := get(cctx)
		cancel()
		if err != nil {
			return zero, apiError("get "+kind+" "+name, err)
		}
		if err := fenced(kind, name, tokenOf(obj), d); err != nil {
			return zero, err
		}
		changed, err := mutate(obj)
		if err != nil || !changed {
			return obj, err
		}
		stamp(obj, d)
		cctx, cancel = t.call(ctx)
		out, err := update(cctx, obj)
		cancel()
		if apierrors.IsConflict(err) {
			conflicts++
			if err := sleep(ctx, time.Duration(conflicts)*conflictBackoff); err != nil {
				return zero, err
			}
			continue
		}
		if err != nil {
			return zero, apiError("update "+kind+" "+name, err)
		}
		return out, nil
	}
	return zero, fmt.Errorf("kubernetes target: update %s %s: still conflicting after %d attempts (someone else keeps writing it)",
		kind, name, maxConflicts)
}

// claim fences a step on the stable Deployment, the anchor of the release's fencing token: it outlives
// the canary, so a late step is refused even after the canary was removed. When the Deployment carries
// this release's token, an older Seq is refused (ErrStaleWrite), the same Seq is a repeat of this step
// (repeat is true and nothing is written) and a newer Seq is recorded. When it carries another release's
// token (or none), takeover (the deploy step) records this release's; otherwise owned is false and
// nothing is written.
func (t *Target) claim(ctx context.Context, d spec.TemplateData, takeover bool) (stable *appsv1.Deployment, owned, repeat bool, err error) {
	deps := t.kube.AppsV1().Deployments(t.cfg.Namespace)
	name := t.cfg.Namespace + "/" + t.cfg.Deployment
	stable, err = readModifyWrite(ctx, t, "Deployment", name, d,
		func(ctx context.Context) (*appsv1.Deployment, error) {
			return deps.Get(ctx, t.cfg.Deployment, metav1.GetOptions{})
		},
		func(dep *appsv1.Deployment) (bool, error) {
			tok := tokenOf(dep)
			owned = tok.release == d.ReleaseID || takeover
			repeat = tok.release == d.ReleaseID && tok.seq == d.Seq
			return owned && !repeat, nil
		},
		func(ctx context.Context, dep *appsv1.Deployment) (*appsv1.Deployment, error) {
			return deps.Update(ctx, dep, metav1.UpdateOptions{})
		})
	return stable, owned, repeat, err
}
