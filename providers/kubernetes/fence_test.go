package kubernetes

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	gwfake "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned/fake"

	"github.com/shepherd-release/shepherd/spec"
)

// conflictingTarget is a Target over a fake API server whose Deployment updates answer Conflict the
// first `conflicts` times (as when someone else wrote the object between our read and our write).
func conflictingTarget(t *testing.T, conflicts int) (*Target, *int) {
	t.Helper()
	cs := fake.NewClientset(&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "checkout", Namespace: "shop"}})
	updates := 0
	cs.PrependReactor("update", "deployments", func(k8stesting.Action) (bool, runtime.Object, error) {
		updates++
		if updates <= conflicts {
			return true, nil, apierrors.NewConflict(schema.GroupResource{Group: "apps", Resource: "deployments"}, "checkout",
				assert.AnError)
		}
		return false, nil, nil
	})
	cfg := gatewayConfig().WithDefaults()
	return newTarget(cfg, cs, gwfake.NewClientset()), &updates
}

func TestConflictsAreRetriedBoundedly(t *testing.T) {
	d := spec.TemplateData{ReleaseID: "r/1", Step: "deploy", Seq: 2}

	tg, updates := conflictingTarget(t, maxConflicts-1)
	_, owned, _, err := tg.claim(context.Background(), d, true)
	require.NoError(t, err, "a write that conflicts a few times is re-read and re-applied")
	assert.True(t, owned)
	assert.Equal(t, maxConflicts, *updates)
	dep, err := tg.kube.AppsV1().Deployments("shop").Get(context.Background(), "checkout", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "2", dep.Annotations[AnnotationSeq])

	tg, updates = conflictingTarget(t, 100)
	_, _, _, err = tg.claim(context.Background(), d, true)
	require.Error(t, err)
	assert.Contains(t, err.Error(), fmt.Sprintf("still conflicting after %d attempts", maxConflicts))
	assert.NotErrorIs(t, err, ErrPermanent, "a retry of the step may succeed")
	assert.Equal(t, maxConflicts, *updates)
}
