package devstack

import (
	"path/filepath"

	"context"
	"fmt"
	"k8s.io/client-go/tools/clientcmd"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	gateway "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"

	kubetarget "github.com/shepherd-release/shepherd/providers/kubernetes"
)

// KubeApp describes the objects an operator has before a first release with the kubernetes target, as
// `shepherd dev --kube` and the tests set them up.
type KubeApp struct {
	// Namespace is created.
	Namespace string
	// Replicas of the stable Deployment "checkout" (containers "app" at
	// registry.example.com/checkout:v1 and "proxy"; pods labelled StableLabels).
	Replicas int32
	// Route adds the Service "checkout" (selecting StableLabels, port 80) and the HTTPRoute "checkout" to it.
	Route bool
	// User is bound to a Role with Rules in the namespace, when both are set.
	User  string
	Rules []rbacv1.PolicyRule
}

// StableLabels are the stable pods' labels of a KubeApp.
var StableLabels = map[string]string{"app": "checkout", "track": "stable"}

// CreateKubeApp creates app's objects through the given clients. It does not wait for the pods.
func CreateKubeApp(ctx context.Context, cs kubernetes.Interface, gw gateway.Interface, app KubeApp) error {
	ns := app.Namespace
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("namespace %s: %w", ns, err)
	}
	if app.User != "" && len(app.Rules) > 0 {
		if _, err := cs.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: app.User}, Rules: app.Rules},
			metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("role: %w", err)
		}
		if _, err := cs.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: app.User},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: app.User},
			Subjects:   []rbacv1.Subject{{Kind: "User", APIGroup: "rbac.authorization.k8s.io", Name: app.User}},
		}, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("role binding: %w", err)
		}
	}
	if _, err := cs.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "checkout", Labels: map[string]string{"app": "checkout"}},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(app.Replicas),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "checkout"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: StableLabels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{
					{Name: "app", Image: "registry.example.com/checkout:v1"},
					{Name: "proxy", Image: "registry.example.com/proxy:1.0"},
				}},
			},
		},
	}, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("deployment: %w", err)
	}
	if !app.Route {
		return nil
	}
	if err := CreateService(ctx, cs, ns, "checkout", StableLabels); err != nil {
		return err
	}
	return CreateRoute(ctx, gw, ns, "checkout", "checkout")
}

// CreateService creates a Service with port 80 (target 8080) selecting selector.
func CreateService(ctx context.Context, cs kubernetes.Interface, ns, name string, selector map[string]string) error {
	_, err := cs.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.ServiceSpec{Selector: selector, Ports: []corev1.ServicePort{
			{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080), Protocol: corev1.ProtocolTCP}}},
	}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("service %s: %w", name, err)
	}
	return nil
}

// CreateRoute creates an HTTPRoute with one rule to Service backend, port 80, attached to a Gateway
// "shop-gateway" (which need not exist: no Gateway controller runs here).
func CreateRoute(ctx context.Context, gw gateway.Interface, ns, name, backend string) error {
	_, err := gw.GatewayV1().HTTPRoutes(ns).Create(ctx, &gwv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: gwv1.HTTPRouteSpec{
			CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Name: "shop-gateway"}}},
			Rules: []gwv1.HTTPRouteRule{{BackendRefs: []gwv1.HTTPBackendRef{{BackendRef: gwv1.BackendRef{
				BackendObjectReference: gwv1.BackendObjectReference{Name: gwv1.ObjectName(backend), Port: ptr.To(gwv1.PortNumber(80))},
			}}}}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("httproute %s: %w", name, err)
	}
	return nil
}

// The demo of `shepherd dev --kube`: the namespace it sets up, the worker's target for it, and a release.
const (
	KubeDemoNamespace = "shop"
	KubeDemoTarget    = "checkout-kube"
	KubeDemoSpec      = `# A release of shop/checkout on the local control plane of "shepherd dev --kube" (docs/targets.md).
service: checkout
environment: dev          # examples/shepherd.yaml accepts unsigned approvals in dev
version: v2
previousVersion: v1
target: checkout-kube
stages:
  - {percent: 25, soak: 30s}
  - {percent: 50, soak: 30s, approval: true}
  - {percent: 100, soak: 30s}
analysis: {disabled: true}   # the fake node's pods run no containers: nothing to measure
`
)

// SeedKubeDemo sets up KubeDemoNamespace in k (a Deployment, Service and HTTPRoute "checkout", and the
// kubernetes target's Role bound to the user "shepherd") and returns the worker-configuration settings of
// a kubernetes target releasing it, with that user's kubeconfig written into dir.
func SeedKubeDemo(ctx context.Context, k *Kube, dir string) (map[string]any, error) {
	rc, err := clientcmd.BuildConfigFromFlags("", k.AdminKubeconfig)
	if err != nil {
		return nil, err
	}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, err
	}
	gw, err := gateway.NewForConfig(rc)
	if err != nil {
		return nil, err
	}
	cfg := kubetarget.Config{Traffic: kubetarget.Traffic{Mode: kubetarget.ModeGateway}}
	if err := CreateKubeApp(ctx, cs, gw, KubeApp{Namespace: KubeDemoNamespace, Replicas: 3, Route: true, User: "shepherd",
		Rules: PolicyRules(cfg.Permissions())}); err != nil {
		return nil, err
	}
	kubeconfig := filepath.Join(dir, "shepherd.kubeconfig")
	if err := k.Kubeconfig(kubeconfig, "shepherd"); err != nil {
		return nil, err
	}
	return map[string]any{
		"type": "kubernetes", "kubeconfig": kubeconfig, "namespace": KubeDemoNamespace, "deployment": "checkout",
		"images":       map[string]string{"app": "registry.example.com/checkout:{{.Version}}"},
		"canaryLabels": map[string]string{"track": "canary"},
		"traffic": map[string]any{"mode": "gateway",
			"gateway": map[string]any{"httpRoute": "checkout", "stableService": "checkout", "port": 80}},
	}, nil
}

// PolicyRules turns the target's permissions into Role rules, one per resource.
func PolicyRules(perms []kubetarget.Permission) []rbacv1.PolicyRule {
	var rules []rbacv1.PolicyRule
	at := map[string]int{}
	for _, p := range perms {
		key := p.Group + "/" + p.Resource
		i, ok := at[key]
		if !ok {
			i = len(rules)
			at[key] = i
			rules = append(rules, rbacv1.PolicyRule{APIGroups: []string{p.Group}, Resources: []string{p.Resource}})
		}
		rules[i].Verbs = append(rules[i].Verbs, p.Verb)
	}
	return rules
}
