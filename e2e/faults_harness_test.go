//go:build faults

package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/shepherd-release/shepherd/internal/devstack"
)

// The fault suite's stack: the production-shaped cluster (devstack.Cluster: PostgreSQL, the schema by
// temporal-sql-tool, the Temporal server binary, namespaces and search attributes by the Temporal CLI)
// and, per test, two `shepherd worker` processes with separate state directories (as on two hosts).
// Run it with `make test-faults` (go test -tags faults -run '^TestFault' ./e2e/).
//
// Tests that stop the server or the database run one at a time, before the others (they do not call
// t.Parallel); the rest run in parallel, each in its own namespace.

var (
	clusterOnce   sync.Once
	clusterShared *stack
)

// sharedCluster returns the fault suite's stack, starting it on first use. Without the binaries it
// skips the test, or fails it under SHEPHERD_REQUIRE_E2E=1.
func sharedCluster(t *testing.T) *stack {
	t.Helper()
	clusterOnce.Do(func() { clusterShared = setupCluster() })
	s := clusterShared
	switch {
	case s.skip != "":
		if os.Getenv(envRequireE2E) == "1" {
			t.Fatalf("%s (%s=1 requires the fault suite to run)", s.skip, envRequireE2E)
		}
		t.Skip(s.skip)
	case s.err != nil:
		t.Fatalf("fault-suite cluster: %v", s.err)
	}
	return s
}

func setupCluster() *stack {
	s := &stack{}
	bins, err := devstack.FindClusterBinaries()
	if err != nil {
		s.skip = fmt.Sprintf("the production-shaped stack's binaries are missing (make tools builds them; PostgreSQL: apt-get install postgresql): %v", err)
		return s
	}
	s.temporal = bins.CLI
	// Under /tmp rather than the test's temporary directory: the user postgres must reach the data
	// directory when the tests run as root, and t.TempDir's parents are 0700.
	if s.dir, err = os.MkdirTemp("", "shepherd-faults-"); err != nil {
		s.err = err
		return s
	}
	atExit = append(atExit, func(failed bool) {
		if failed && s.cluster != nil {
			fmt.Fprintf(os.Stderr, "--- tail of the Temporal server log ---\n%s\n--- tail of the PostgreSQL log ---\n%s\n",
				fileTail(s.cluster.ServerLog, 40), fileTail(s.cluster.PostgresLog, 20))
		}
		if s.admin != nil {
			s.admin.Close()
		}
		s.cluster.Stop()
		_ = os.RemoveAll(s.dir)
	})
	if s.err = os.Chmod(s.dir, 0o755); s.err != nil {
		return s
	}
	s.configFile = filepath.Join(s.dir, "temporal.toml")
	if s.err = os.WriteFile(s.configFile, nil, 0o644); s.err != nil {
		return s
	}
	built := make(chan error, 1)
	s.shepherd = filepath.Join(s.dir, "shepherd")
	go func() { built <- buildShepherd(s.shepherd) }()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	began := time.Now()
	s.cluster, err = devstack.StartCluster(ctx, devstack.ClusterOptions{Binaries: bins, Dir: filepath.Join(s.dir, "cluster")})
	if err != nil {
		<-built
		s.err = err
		return s
	}
	fmt.Fprintf(os.Stderr, "fault suite: cluster up at %s in %s\n", s.cluster.Address, time.Since(began).Round(100*time.Millisecond))
	s.addr = s.cluster.Address
	if err := <-built; err != nil {
		s.err = err
		return s
	}
	s.admin, s.err = client.DialContext(ctx, client.Options{HostPort: s.addr, Logger: quietLogger()})
	return s
}

// newClusterRig is a fencing rig (fleet controller behind a holding proxy, two workers) on the cluster.
func newClusterRig(t *testing.T, svc string) *fenceRig {
	t.Helper()
	return newFenceRigOn(t, sharedCluster(t).env(t, svc), svc)
}

// ---------------------------------------------------------------------------------------------------
// Faults of the cluster

// temporalDown stops the Temporal server for d, then starts it again and waits until it answers.
func (e *tenv) temporalDown(d time.Duration) {
	t := e.t
	t.Helper()
	began := time.Now()
	e.cluster.StopTemporal()
	time.Sleep(d)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := e.cluster.StartTemporal(ctx); err != nil {
		t.Fatalf("starting the Temporal server again: %v", err)
	}
	t.Logf("Temporal server down and back up in %s", time.Since(began).Round(100*time.Millisecond))
}

// freeze stops the worker with SIGSTOP (as a VM pause or a long GC stall would); thaw resumes it. A
// frozen worker is resumed at cleanup, so the harness can stop it.
func (w *workerProc) freeze(t *testing.T) {
	t.Helper()
	if err := syscall.Kill(w.pid(), syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(w.pid(), syscall.SIGCONT) })
}

func (w *workerProc) thaw(t *testing.T) {
	t.Helper()
	if err := syscall.Kill(w.pid(), syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
}

func (w *workerProc) alive() bool {
	select {
	case <-w.done:
		return false
	default:
		return true
	}
}

// ---------------------------------------------------------------------------------------------------
// A target that flaps or goes away

// gate sits between the rig's holding proxy (the workers' target "fleet") and the fleet controller. It
// forwards requests, except that a rule can fail chosen writes, as a flapping target does.
type gate struct {
	t        *testing.T
	addr     string
	upstream string
	client   *http.Client

	mu   sync.Mutex
	ln   net.Listener
	srv  *http.Server
	rule func(w proxiedWrite, n int) gateAction
	// counts numbers the writes each rule key has seen (action and seq).
	counts map[string]int
	log    []string
}

// gateAction is what the gate does with one write.
type gateAction int

const (
	forward gateAction = iota
	// failBefore answers 503 without forwarding: the target was unavailable.
	failBefore
	// failAfter forwards the write and then answers 502: it landed, but its answer was lost.
	failAfter
)

// newGate puts a gate in front of the rig's fleet controller: the rig's holding proxy, which the
// workers' target "fleet" names (their configuration is fixed once they run), forwards to the gate.
func newGate(t *testing.T, r *fenceRig) *gate {
	t.Helper()
	g := &gate{t: t, upstream: r.proxy.upstreamURL(), client: &http.Client{Timeout: time.Minute}, counts: map[string]int{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g.addr = ln.Addr().String()
	g.serve(ln)
	t.Cleanup(g.down)
	r.proxy.setUpstream("http://" + g.addr)
	return g
}

func (g *gate) serve(ln net.Listener) {
	g.ln, g.srv = ln, &http.Server{Handler: g, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = g.srv.Serve(ln) }()
}

// setRule makes rule decide every write from now on; n counts the writes with the same action and seq
// (1 for the first attempt).
func (g *gate) setRule(rule func(w proxiedWrite, n int) gateAction) {
	g.mu.Lock()
	g.rule = rule
	g.mu.Unlock()
}

// down closes the gate's port.
func (g *gate) down() {
	g.mu.Lock()
	srv := g.srv
	g.srv = nil
	g.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

func (g *gate) seen() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return strings.Join(g.log, "\n  ")
}

func (g *gate) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	w := readWrite(r, body)
	act := forward
	if r.Method == http.MethodPost {
		g.mu.Lock()
		key := fmt.Sprintf("%s/%d", w.Action, w.Seq)
		g.counts[key]++
		if g.rule != nil {
			act = g.rule(w, g.counts[key])
		}
		g.log = append(g.log, fmt.Sprintf("%s attempt %d: %v", w, g.counts[key], act))
		g.mu.Unlock()
	}
	if act == failBefore {
		http.Error(rw, `{"error": "gate: target unavailable"}`, http.StatusServiceUnavailable)
		return
	}
	req, err := http.NewRequestWithContext(r.Context(), r.Method, g.upstream+r.URL.RequestURI(), strings.NewReader(string(body)))
	if err != nil {
		http.Error(rw, err.Error(), http.StatusBadGateway)
		return
	}
	req.Header.Set("Content-Type", r.Header.Get("Content-Type"))
	resp, err := g.client.Do(req)
	if err != nil {
		http.Error(rw, `{"error": "gate: `+err.Error()+`"}`, http.StatusBadGateway)
		return
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if act == failAfter {
		http.Error(rw, `{"error": "gate: answer lost"}`, http.StatusBadGateway)
		return
	}
	rw.Header().Set("Content-Type", "application/json")
	rw.WriteHeader(resp.StatusCode)
	_, _ = rw.Write(data)
}

func (a gateAction) String() string {
	return [...]string{"forward", "503 before forwarding", "forwarded, then 502"}[a]
}
