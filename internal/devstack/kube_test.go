package devstack_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"

	"github.com/shepherd-release/shepherd/internal/devstack"
	"github.com/shepherd-release/shepherd/internal/testenv"
)

// TestStartKube: the control plane comes up, and a Deployment's pods become Ready on the fake node.
func TestStartKube(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Kubernetes control plane")
	}
	if _, err := devstack.FindKube(); err != nil {
		if os.Getenv(testenv.EnvRequireE2E) == "1" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	k, err := devstack.StartKube(ctx, devstack.KubeOptions{Dir: t.TempDir(), Users: []string{"someone"}})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Stop()
	t.Logf("control plane ready in %s", time.Since(start).Round(10*time.Millisecond))
	rc, err := clientcmd.BuildConfigFromFlags("", k.AdminKubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cs := kubernetes.NewForConfigOrDie(rc)
	v, err := cs.Discovery().ServerVersion()
	if err != nil || v.GitVersion != devstack.KubeVersion {
		t.Fatalf("server version %v, %v; want %s", v, err, devstack.KubeVersion)
	}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](3),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "web:1"}}},
			},
		},
	}
	start = time.Now()
	if _, err := cs.AppsV1().Deployments("default").Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for {
		d, err := cs.AppsV1().Deployments("default").Get(ctx, "web", metav1.GetOptions{})
		if err == nil && d.Status.ReadyReplicas == 3 && d.Status.AvailableReplicas == 3 {
			break
		}
		if time.Since(start) > 30*time.Second {
			pods, _ := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
			var s string
			for _, p := range pods.Items {
				s += fmt.Sprintf("%s node=%q phase=%s conditions=%v\n", p.Name, p.Spec.NodeName, p.Status.Phase, p.Status.Conditions)
			}
			t.Fatalf("Deployment not ready after 30s: %+v, %v\npods:\n%s\n%s", d.Status, err, s, k.Logs(15))
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("3 pods ready in %s", time.Since(start).Round(10*time.Millisecond))
}
