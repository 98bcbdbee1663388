package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	gateway "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"
	"sigs.k8s.io/yaml"

	"github.com/shepherd-release/shepherd/internal/devstack"
)

// KubeUsers are the users every test cluster has besides "admin": tests bind Roles to them with RBAC.
var KubeUsers = []string{"shepherd", "limited"}

var kube struct {
	once sync.Once
	k    *devstack.Kube
	dir  string
	err  error
}

// Kube returns the test binary's shared Kubernetes control plane (devstack.StartKube: etcd,
// kube-apiserver, controller-manager, scheduler, kwok with one fake Node, Gateway API CRDs), starting it
// on first use. Tests share it and keep apart by namespace. Call StopKube from TestMain after m.Run.
// Without the binaries it skips the test, or fails it when SHEPHERD_REQUIRE_E2E=1; -short skips it.
func Kube(t testing.TB) *devstack.Kube {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a Kubernetes control plane; skipped in -short mode")
	}
	if _, err := devstack.FindKube(); err != nil {
		msg := err.Error() + fmt.Sprintf(" (or set %s to a directory holding them)", devstack.EnvKubeBin)
		if os.Getenv(EnvRequireE2E) == "1" {
			t.Fatalf("%s (%s=1 requires end-to-end tests to run)", msg, EnvRequireE2E)
		}
		t.Skip(msg)
	}
	kube.once.Do(func() {
		kube.dir, kube.err = os.MkdirTemp("", "shepherd-kube-")
		if kube.err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		kube.k, kube.err = devstack.StartKube(ctx, devstack.KubeOptions{Dir: kube.dir, Users: KubeUsers})
	})
	if kube.err != nil {
		t.Fatalf("starting the Kubernetes control plane (logs in %s): %v", kube.dir, kube.err)
	}
	return kube.k
}

// StopKube stops the shared control plane if it was started and removes its directory. When keepLogs is
// true (the tests failed) the directory is kept and its path printed.
func StopKube(keepLogs bool) {
	if kube.k != nil {
		kube.k.Stop()
	}
	if kube.dir == "" {
		return
	}
	if keepLogs {
		fmt.Fprintf(os.Stderr, "Kubernetes control plane logs kept in %s\n", kube.dir)
		return
	}
	_ = os.RemoveAll(kube.dir)
}

// KubeApp is one test's namespace in the shared control plane with a devstack.KubeApp in it. The
// namespace is deleted at cleanup unless the test failed.
type KubeApp struct {
	Kube      *devstack.Kube
	Namespace string
	Admin     kubernetes.Interface
	Gateway   gateway.Interface
	t         testing.TB
}

// NewKubeApp creates a devstack.KubeApp in a namespace of its own with replicas stable pods (ready when it
// returns), deploy/kubernetes's Role bound to the user "shepherd" and, when withRoute, the Service and
// HTTPRoute.
func NewKubeApp(t testing.TB, replicas int32, withRoute bool) *KubeApp {
	t.Helper()
	k := Kube(t)
	rc, err := clientcmd.BuildConfigFromFlags("", k.AdminKubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	rc.QPS, rc.Burst = 100, 200 // tests poll; client-go's default of 5 per second would slow them down
	a := &KubeApp{Kube: k, Admin: kubernetes.NewForConfigOrDie(rc), Gateway: gateway.NewForConfigOrDie(rc), t: t}
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	a.Namespace = "t-" + hex.EncodeToString(b)
	ctx := context.Background()
	t.Cleanup(func() {
		if !t.Failed() {
			_ = a.Admin.CoreV1().Namespaces().Delete(context.Background(), a.Namespace, metav1.DeleteOptions{})
		}
	})
	if err := devstack.CreateKubeApp(ctx, a.Admin, a.Gateway, devstack.KubeApp{Namespace: a.Namespace, Replicas: replicas,
		Route: withRoute, User: "shepherd", Rules: KubeRole(t).Rules}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		d, err := a.Admin.AppsV1().Deployments(a.Namespace).Get(ctx, "checkout", metav1.GetOptions{})
		if err == nil && d.Status.ReadyReplicas == replicas {
			return a
		}
		if time.Now().After(deadline) {
			t.Fatalf("stable Deployment not ready within a minute: %v %+v", err, d.Status)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (a *KubeApp) must(_ any, err error) {
	a.t.Helper()
	if err != nil {
		a.t.Fatal(err)
	}
}

// Bind grants user the rules in the namespace (a Role and a RoleBinding named after the user).
func (a *KubeApp) Bind(user string, rules []rbacv1.PolicyRule) {
	a.t.Helper()
	ctx := context.Background()
	a.must(a.Admin.RbacV1().Roles(a.Namespace).Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: user}, Rules: rules},
		metav1.CreateOptions{}))
	a.must(a.Admin.RbacV1().RoleBindings(a.Namespace).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: user},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: user},
		Subjects:   []rbacv1.Subject{{Kind: "User", APIGroup: "rbac.authorization.k8s.io", Name: user}},
	}, metav1.CreateOptions{}))
}

// Kubeconfig writes a kubeconfig for user into the test's temporary directory.
func (a *KubeApp) Kubeconfig(user string) string {
	a.t.Helper()
	p := filepath.Join(a.t.TempDir(), user+".kubeconfig")
	if err := a.Kube.Kubeconfig(p, user); err != nil {
		a.t.Fatal(err)
	}
	return p
}

// CreateService creates a Service with port 80 (target 8080) selecting selector.
func (a *KubeApp) CreateService(name string, selector map[string]string) {
	a.t.Helper()
	if err := devstack.CreateService(context.Background(), a.Admin, a.Namespace, name, selector); err != nil {
		a.t.Fatal(err)
	}
}

// CreateRoute creates an HTTPRoute with one rule to Service backend, port 80.
func (a *KubeApp) CreateRoute(name, backend string) {
	a.t.Helper()
	if err := devstack.CreateRoute(context.Background(), a.Gateway, a.Namespace, name, backend); err != nil {
		a.t.Fatal(err)
	}
}

// Deployment returns a Deployment of the namespace, or nil when it does not exist.
func (a *KubeApp) Deployment(name string) *appsv1.Deployment {
	a.t.Helper()
	d, err := a.Admin.AppsV1().Deployments(a.Namespace).Get(context.Background(), name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		a.t.Fatal(err)
	}
	return d
}

// Weights is the first rule of HTTPRoute "checkout" as "name=weight" pairs.
func (a *KubeApp) Weights() []string {
	a.t.Helper()
	r, err := a.Gateway.GatewayV1().HTTPRoutes(a.Namespace).Get(context.Background(), "checkout", metav1.GetOptions{})
	if err != nil {
		a.t.Fatal(err)
	}
	var out []string
	for _, b := range r.Spec.Rules[0].BackendRefs {
		w := "unset"
		if b.Weight != nil {
			w = strconv.Itoa(int(*b.Weight))
		}
		out = append(out, string(b.Name)+"="+w)
	}
	return out
}

// Image is the image of a container in a Deployment's pod template.
func Image(d *appsv1.Deployment, container string) string {
	for _, c := range d.Spec.Template.Spec.Containers {
		if c.Name == container {
			return c.Image
		}
	}
	return ""
}

// KubeRole reads the Role shipped in deploy/kubernetes/rbac.yaml.
func KubeRole(t testing.TB) rbacv1.Role {
	t.Helper()
	root, err := ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "deploy", "kubernetes", "rbac.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for doc := range strings.SplitSeq(string(b), "\n---") {
		var role rbacv1.Role
		if err := yaml.Unmarshal([]byte(doc), &role); err != nil {
			t.Fatal(err)
		}
		if role.Kind == "Role" {
			return role
		}
	}
	t.Fatal("no Role in deploy/kubernetes/rbac.yaml")
	return rbacv1.Role{}
}

// ModuleRoot is the directory of the go.mod above the working directory.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}
