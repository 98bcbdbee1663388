package devstack

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"
)

// KubeVersion is the Kubernetes version `make tools` builds (scripts/kube-tools.sh) and tests run on.
const KubeVersion = "v1.37.2"

// KubeBinaries are the programs of the local control plane, found in one directory.
var KubeBinaries = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"}

// EnvKubeBin names the directory holding KubeBinaries and kube-assets/, overriding CacheBin().
const EnvKubeBin = "SHEPHERD_KUBE_BIN"

// FakeNode is the one Node the cluster has: kwok marks its pods Running and Ready without containers.
const FakeNode = "kwok-node-0"

// FindKube returns the directory with the control plane's binaries and assets: $SHEPHERD_KUBE_BIN, else
// CacheBin() (where `make tools` builds them).
func FindKube() (string, error) {
	dir := os.Getenv(EnvKubeBin)
	if dir == "" {
		dir = CacheBin()
	}
	var missing []string
	for _, b := range KubeBinaries {
		if !isExecutable(filepath.Join(dir, b)) {
			missing = append(missing, b)
		}
	}
	for _, a := range []string{"kube-assets/kwok.yaml", "kube-assets/gateway-api-crds"} {
		if _, err := os.Stat(filepath.Join(dir, a)); err != nil {
			missing = append(missing, a)
		}
	}
	if len(missing) > 0 {
		return "", fmt.Errorf("kubernetes control plane not found in %s (missing %s); build it with: make tools",
			dir, strings.Join(missing, ", "))
	}
	return dir, nil
}

// KubeOptions configure StartKube.
type KubeOptions struct {
	// BinDir holds the binaries and kube-assets/; default FindKube().
	BinDir string
	// Dir receives etcd's data, certificates, kubeconfigs and logs; required.
	Dir string
	// Users are extra users besides "admin" (group system:masters), authenticated by token and
	// authorized by RBAC alone; Kube.Kubeconfig writes a kubeconfig for each.
	Users []string
}

// Kube is a running control plane without containers: etcd, kube-apiserver (token auth, RBAC),
// kube-controller-manager, kube-scheduler and kwok with one fake Node, the Gateway API CRDs installed.
type Kube struct {
	// URL is the API server's https URL on 127.0.0.1.
	URL string
	// AdminKubeconfig is a kubeconfig for the "admin" user (system:masters).
	AdminKubeconfig string
	// Dir holds the logs (<component>.log).
	Dir    string
	tokens map[string]string
	procs  []*kubeProc
}

type kubeProc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
	log  string
}

// StartKube starts the control plane on free loopback ports, waits until the API server is ready, the
// fake Node is Ready and the CRDs are established. About 5 s on 2 cores. Stop ends it.
func StartKube(ctx context.Context, o KubeOptions) (k *Kube, err error) {
	if o.Dir == "" {
		return nil, errors.New("devstack: KubeOptions.Dir is required")
	}
	if o.BinDir == "" {
		if o.BinDir, err = FindKube(); err != nil {
			return nil, err
		}
	}
	ports := make([]int, 3)
	for i := range ports {
		if ports[i], err = FreePort(); err != nil {
			return nil, err
		}
	}
	etcdPort, peerPort, apiPort := ports[0], ports[1], ports[2]
	k = &Kube{URL: "https://127.0.0.1:" + strconv.Itoa(apiPort), Dir: o.Dir, tokens: map[string]string{}}
	defer func() {
		if err != nil {
			k.Stop()
		}
	}()
	if err := os.MkdirAll(filepath.Join(o.Dir, "certs"), 0o755); err != nil {
		return nil, err
	}
	// Static token authentication: one token per user; admin is in system:masters.
	var tokens bytes.Buffer
	for i, u := range append([]string{"admin"}, o.Users...) {
		tok := randomHex(16)
		k.tokens[u] = tok
		groups := ""
		if u == "admin" {
			groups = `,"system:masters"`
		}
		fmt.Fprintf(&tokens, "%s,%s,%d%s\n", tok, u, 1000+i, groups)
	}
	tokenFile := filepath.Join(o.Dir, "tokens.csv")
	if err := os.WriteFile(tokenFile, tokens.Bytes(), 0o600); err != nil {
		return nil, err
	}
	saKey := filepath.Join(o.Dir, "sa.key")
	if err := writeRSAKey(saKey); err != nil {
		return nil, err
	}
	k.AdminKubeconfig = filepath.Join(o.Dir, "admin.kubeconfig")
	if err := k.writeKubeconfig(k.AdminKubeconfig, "admin"); err != nil {
		return nil, err
	}
	bin := func(name string) string { return filepath.Join(o.BinDir, name) }

	etcdURL := "http://127.0.0.1:" + strconv.Itoa(etcdPort)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(peerPort)
	if err := k.start("etcd", bin("etcd"), "--data-dir", filepath.Join(o.Dir, "etcd"), "--name", "default",
		"--listen-client-urls", etcdURL, "--advertise-client-urls", etcdURL,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL, "--initial-cluster", "default="+peerURL,
		"--log-level", "warn", "--unsafe-no-fsync"); err != nil {
		return nil, err
	}
	if err := k.start("kube-apiserver", bin("kube-apiserver"), "--etcd-servers", etcdURL,
		"--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1", "--secure-port", strconv.Itoa(apiPort),
		"--cert-dir", filepath.Join(o.Dir, "certs"), "--token-auth-file", tokenFile, "--authorization-mode", "RBAC",
		"--service-account-issuer", "https://kubernetes.default.svc", "--service-account-key-file", saKey,
		"--service-account-signing-key-file", saKey, "--service-cluster-ip-range", "10.96.0.0/16",
		"--endpoint-reconciler-type", "none", "--enable-priority-and-fairness=false", "--profiling=false"); err != nil {
		return nil, err
	}
	rc, err := clientcmd.BuildConfigFromFlags("", k.AdminKubeconfig)
	if err != nil {
		return nil, err
	}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, err
	}
	if err := k.waitReady(ctx, cs); err != nil {
		return nil, err
	}
	if err := k.start("kube-controller-manager", bin("kube-controller-manager"), "--kubeconfig", k.AdminKubeconfig,
		"--bind-address", "127.0.0.1", "--secure-port", "0", "--leader-elect=false",
		"--service-account-private-key-file", saKey, "--use-service-account-credentials=false",
		"--controllers", "*,-nodeipam,-nodelifecycle,-persistentvolume-binder,-attachdetach,-persistentvolume-expander,-ttl",
		"--concurrent-deployment-syncs", "10", "--concurrent-replicaset-syncs", "10"); err != nil {
		return nil, err
	}
	if err := k.start("kube-scheduler", bin("kube-scheduler"), "--kubeconfig", k.AdminKubeconfig,
		"--bind-address", "127.0.0.1", "--secure-port", "0", "--leader-elect=false"); err != nil {
		return nil, err
	}
	if err := k.start("kwok", bin("kwok"), "--kubeconfig", k.AdminKubeconfig,
		"--config", filepath.Join(o.BinDir, "kube-assets", "kwok.yaml"),
		"--manage-nodes-with-annotation-selector", "kwok.x-k8s.io/node=fake",
		"--node-ip", "10.0.0.1", "--cidr", "10.0.0.0/24", "--server-address", ""); err != nil {
		return nil, err
	}
	if err := createFakeNode(ctx, cs); err != nil {
		return nil, err
	}
	if err := installCRDs(ctx, rc, filepath.Join(o.BinDir, "kube-assets", "gateway-api-crds")); err != nil {
		return nil, err
	}
	if err := waitNodeReady(ctx, cs); err != nil {
		return nil, err
	}
	return k, untaintNode(ctx, cs)
}

// untaintNode removes the not-ready taint the API server puts on a new Node: the node lifecycle
// controller, which would remove it, is off (under load it could evict the fake node's pods).
func untaintNode(ctx context.Context, cs kubernetes.Interface) error {
	for range 10 {
		n, err := cs.CoreV1().Nodes().Get(ctx, FakeNode, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if len(n.Spec.Taints) == 0 {
			return nil
		}
		n.Spec.Taints = nil
		if _, err = cs.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{}); err == nil {
			return nil
		} else if !apierrors.IsConflict(err) {
			return err
		}
	}
	return fmt.Errorf("node %s: could not remove its taints", FakeNode)
}

// Kubeconfig writes a kubeconfig for user (one of KubeOptions.Users, or "admin") to path.
func (k *Kube) Kubeconfig(path, user string) error {
	if _, ok := k.tokens[user]; !ok {
		return fmt.Errorf("devstack: no user %q in this cluster", user)
	}
	return k.writeKubeconfig(path, user)
}

func (k *Kube) writeKubeconfig(path, user string) error {
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: %s
    insecure-skip-tls-verify: true
users:
- name: %s
  user:
    token: %s
contexts:
- name: local
  context: {cluster: local, user: %s}
current-context: local
`, k.URL, user, k.tokens[user], user)
	return os.WriteFile(path, []byte(cfg), 0o600)
}

func (k *Kube) start(name, bin string, args ...string) error {
	p := &kubeProc{name: name, done: make(chan struct{}), log: filepath.Join(k.Dir, name+".log")}
	f, err := os.Create(p.log)
	if err != nil {
		return err
	}
	defer f.Close()
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", name, err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	k.procs = append(k.procs, p)
	return nil
}

// Stop ends the components in reverse order of start: kwok, scheduler, controller-manager, API server,
// and etcd last (an API server whose storage is gone ignores SIGTERM for a long time).
func (k *Kube) Stop() {
	if k == nil {
		return
	}
	for i := len(k.procs) - 1; i >= 0; i-- {
		p := k.procs[i]
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
	}
	k.procs = nil
}

// Logs returns the last n lines of each component's log, for a failed test.
func (k *Kube) Logs(n int) string {
	var b strings.Builder
	for _, p := range k.procs {
		fmt.Fprintf(&b, "--- %s (%s) ---\n%s\n", p.name, p.log, tailFile(p.log, n))
	}
	return b.String()
}

func (k *Kube) exited() error {
	for _, p := range k.procs {
		select {
		case <-p.done:
			return fmt.Errorf("%s exited: %v\n%s", p.name, p.err, tailFile(p.log, 20))
		default:
		}
	}
	return nil
}

// poll runs fn every 100 ms until it returns true, an error, a component exits, or limit passes.
func (k *Kube) poll(ctx context.Context, what string, limit time.Duration, fn func(context.Context) (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	var last error
	for {
		if err := k.exited(); err != nil {
			return err
		}
		ok, err := fn(ctx)
		if ok && err == nil {
			return nil
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: not within %s (last error: %v)", what, limit, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (k *Kube) waitReady(ctx context.Context, cs kubernetes.Interface) error {
	return k.poll(ctx, "kube-apiserver /readyz", time.Minute, func(ctx context.Context) (bool, error) {
		b, err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		return err == nil && string(b) == "ok", err
	})
}

func createFakeNode(ctx context.Context, cs kubernetes.Interface) error {
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:        FakeNode,
			Annotations: map[string]string{"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
			Labels:      map[string]string{"kubernetes.io/hostname": FakeNode, "kubernetes.io/os": "linux", "type": "kwok"},
		},
		Status: corev1.NodeStatus{
			Allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("64"), corev1.ResourceMemory: resource.MustParse("256Gi"),
				corev1.ResourcePods: resource.MustParse("500")},
			Capacity: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("64"), corev1.ResourceMemory: resource.MustParse("256Gi"),
				corev1.ResourcePods: resource.MustParse("500")},
		},
	}
	_, err := cs.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

func waitNodeReady(ctx context.Context, cs kubernetes.Interface) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		n, err := cs.CoreV1().Nodes().Get(ctx, FakeNode, metav1.GetOptions{})
		if err == nil {
			for _, c := range n.Status.Conditions {
				if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
					return nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("node %s not Ready within a minute (is kwok running? last error: %v)", FakeNode, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// installCRDs creates every CustomResourceDefinition in the YAML files of dir and waits until each is
// Established. Other kinds in those files are skipped.
func installCRDs(ctx context.Context, rc *rest.Config, dir string) error {
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		return err
	}
	crds := dyn.Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"})
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return err
	}
	sort.Strings(files)
	var names []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		for _, doc := range splitYAML(b) {
			var obj map[string]any
			if err := yaml.Unmarshal(doc, &obj); err != nil {
				return fmt.Errorf("%s: %w", f, err)
			}
			u := &unstructured.Unstructured{Object: obj}
			if u.GetKind() != "CustomResourceDefinition" {
				continue
			}
			if _, err := crds.Create(ctx, u, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
				return fmt.Errorf("creating CRD %s: %w", u.GetName(), err)
			}
			names = append(names, u.GetName())
		}
	}
	deadline := time.Now().Add(time.Minute)
	for _, name := range names {
		for {
			u, err := crds.Get(ctx, name, metav1.GetOptions{})
			if err == nil && established(u) {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("CRD %s not Established within a minute (%v)", name, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return nil
}

func established(u *unstructured.Unstructured) bool {
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == "Established" && m["status"] == "True" {
			return true
		}
	}
	return false
}

func splitYAML(b []byte) [][]byte {
	var docs [][]byte
	for _, d := range bytes.Split(b, []byte("\n---")) {
		if len(bytes.TrimSpace(d)) > 0 {
			docs = append(docs, d)
		}
	}
	return docs
}

func writeRSAKey(path string) error {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	b := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	return os.WriteFile(path, b, 0o600)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = io.ReadFull(rand.Reader, b)
	return hex.EncodeToString(b)
}
