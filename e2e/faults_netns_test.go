//go:build faults && linux

package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shepherd-release/shepherd/fleet"
	"github.com/shepherd-release/shepherd/providers/local"
	"github.com/shepherd-release/shepherd/record"
	"github.com/shepherd-release/shepherd/spec"
	"github.com/shepherd-release/shepherd/workflows"
)

// Workers on separate "hosts": each worker runs in a network namespace of its own that this test
// creates, with nothing in it but its loopback interface. The test process relays two loopback ports
// of each namespace (the Temporal frontend's and the fleet controller's) to the real ones, like a router,
// so a worker reaches the server and the target only through its namespace's loopback. Cutting a worker
// off takes that loopback down inside its namespace: its packets to the server are dropped, as in a
// partition. No address outside loopback is used and nothing outside the test's namespaces changes
// (shared/facts: never touch the host's links or routes); the namespaces are deleted at cleanup.

// TestFaultWorkerPartitionedMidStep: the worker running the 25 % shift is cut off from the network with
// its request held at the target, for longer than the heartbeat timeout. The other worker retries the
// step and the release moves on to 50 %; when the partition heals the cut-off worker's write lands and is
// refused as stale. Same outcome as the freeze.
func TestFaultWorkerPartitionedMidStep(t *testing.T) {
	const svc = "fault-partition"
	t.Parallel()
	if os.Geteuid() != 0 {
		requireOrSkip(t, "network namespaces need root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		requireOrSkip(t, "iproute2 (ip) not found")
	}
	e := sharedCluster(t).env(t, svc)
	r := &fenceRig{t: t, e: e, svc: svc, id: spec.WorkflowID(svc, envName)}
	r.admin = &local.Target{Controller: runFleetController(t, demoServiceBinary(t, e.dir))}
	r.proxy = newHoldingProxy(t, r.admin.Controller)
	if err := r.admin.Bootstrap(t.Context(), svc, "v1"); err != nil {
		t.Fatalf("bootstrapping %s v1 on the fleet: %v", svc, err)
	}
	// Two hosts; the relayed ports are the same in both, so one worker configuration (its target "fleet"
	// at the relayed port, declared before the workers start) and one TEMPORAL_ADDRESS serve both.
	hosts := []*netnsHost{newNetnsHost(t, "a"), newNetnsHost(t, "b")}
	proxyAddr := strings.TrimPrefix(r.proxy.url, "http://")
	temporalPort, targetPort := 0, 0
	for _, h := range hosts {
		temporalPort = h.relay(t, temporalPort, e.addr)
		targetPort = h.relay(t, targetPort, proxyAddr)
	}
	e.provide("targets", "fleet", map[string]any{"type": "local", "controller": "http://127.0.0.1:" + strconv.Itoa(targetPort)})
	for _, h := range hosts {
		w := e.startWorkerWith(t.TempDir(), []string{"ip", "netns", "exec", h.name},
			[]string{"TEMPORAL_ADDRESS=127.0.0.1:" + strconv.Itoa(temporalPort)})
		h.worker = w
		r.workers = append(r.workers, w)
	}
	e.terminateOnCleanup(t, r.id)

	r.proxy.holdFirst(func(w proxiedWrite) bool { return w.Action == "traffic" && w.percent() == 25 })
	r.start(stage(25, time.Second), stage(50, 15*time.Second), stage(100, time.Second))
	held := r.proxy.waitHeld(t)
	cut, other := r.runner(workflows.ActivitySetTraffic)
	var cutHost *netnsHost
	for _, h := range hosts {
		if h.worker == cut {
			cutHost = h
		}
	}
	cutHost.partition(t)
	beat := r.lastHeartbeat(workflows.ActivitySetTraffic)
	t.Logf("cut worker %d (namespace %s) off while it ran traffic 25%% (seq %d); its last heartbeat %s ago", cut.pid(),
		cutHost.name, held.Seq, time.Since(beat).Round(100*time.Millisecond))
	e.waitStatus(svc, "soaking stage 2 at 50% after the retried 25% shift", atStage(record.PhaseProgressing, 2, 50))
	r.wantHeartbeatTimeoutPassed(beat)

	cutHost.heal(t)
	late := r.proxy.deliver(t)
	var refusal fleet.ErrorResponse
	_ = json.Unmarshal([]byte(late.Answer), &refusal)
	if late.Status != http.StatusConflict || refusal.Code != fleet.CodeStaleWrite {
		t.Fatalf("the cut-off worker's traffic 25%% (seq %d), landing after the partition healed: %d %s; want 409 %s",
			held.Seq, late.Status, late.Answer, fleet.CodeStaleWrite)
	}
	if st := r.state(); st.Weight != 50 {
		t.Fatalf("the late traffic 25%% write changed the weight to %d%%, want 50%%", st.Weight)
	}
	res := e.waitResult(svc, releaseTimeout)
	if res.Phase != record.PhaseSucceeded {
		t.Fatalf("result: %s", describe(res))
	}
	if !cut.alive() {
		t.Errorf("the reconnected worker exited: %v", cut.err)
	}
	j := r.journal()
	r.checkJournal(j)
	r.wantOutcomes(j, "traffic", held.Seq, fleet.OutcomeApplied, fleet.OutcomeRefused)
	r.wantRetriedOn(held.Seq, other, cut)
}

func requireOrSkip(t *testing.T, why string) {
	t.Helper()
	if os.Getenv(envRequireE2E) == "1" {
		t.Fatalf("%s (%s=1 requires the fault suite to run)", why, envRequireE2E)
	}
	t.Skip(why)
}

// netnsHost is a network namespace standing for a worker's host.
type netnsHost struct {
	name   string
	worker *workerProc

	mu sync.Mutex
	// closers are the relays' listeners and connections, closed at cleanup.
	closers []io.Closer
}

// newNetnsHost creates the namespace with its loopback up, and deletes it at cleanup.
func newNetnsHost(t *testing.T, suffix string) *netnsHost {
	t.Helper()
	h := &netnsHost{name: fmt.Sprintf("shepherd-%d-%s", os.Getpid(), suffix)}
	ip(t, "netns", "add", h.name)
	t.Cleanup(func() {
		h.mu.Lock()
		for _, c := range h.closers {
			c.Close()
		}
		h.mu.Unlock()
		if out, err := exec.Command("ip", "netns", "del", h.name).CombinedOutput(); err != nil {
			t.Errorf("deleting network namespace %s: %v %s", h.name, err, out)
		}
	})
	ip(t, "netns", "exec", h.name, "ip", "link", "set", "lo", "up")
	return h
}

// partition takes the namespace's loopback down: every packet of its worker is dropped.
func (h *netnsHost) partition(t *testing.T) {
	t.Helper()
	ip(t, "netns", "exec", h.name, "ip", "link", "set", "lo", "down")
}

// heal brings it back up.
func (h *netnsHost) heal(t *testing.T) {
	t.Helper()
	ip(t, "netns", "exec", h.name, "ip", "link", "set", "lo", "up")
}

// relay listens on 127.0.0.1:port inside the namespace (port 0: a free one) and forwards each
// connection to upstream, a loopback address of this host; it returns the port.
func (h *netnsHost) relay(t *testing.T, port int, upstream string) int {
	t.Helper()
	ln, err := listenInNetns(h.name, "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatalf("listening in network namespace %s: %v", h.name, err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", upstream)
			if err != nil {
				c.Close()
				continue
			}
			h.mu.Lock()
			h.closers = append(h.closers, c, u)
			h.mu.Unlock()
			go func() { _, _ = io.Copy(u, c); u.Close() }()
			go func() { _, _ = io.Copy(c, u); c.Close() }()
		}
	}()
	h.mu.Lock()
	h.closers = append(h.closers, ln)
	h.mu.Unlock()
	return ln.Addr().(*net.TCPAddr).Port
}

// listenInNetns opens a listening socket inside the named network namespace: a socket belongs to the
// namespace of the thread that created it, so one locked OS thread enters the namespace, listens, and
// returns to this process's namespace.
func listenInNetns(name, addr string) (net.Listener, error) {
	type result struct {
		ln  net.Listener
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		self, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			ch <- result{err: err}
			runtime.UnlockOSThread()
			return
		}
		defer self.Close()
		target, err := os.Open("/var/run/netns/" + name)
		if err != nil {
			ch <- result{err: err}
			runtime.UnlockOSThread()
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- result{err: err}
			runtime.UnlockOSThread()
			return
		}
		ln, err := net.Listen("tcp", addr)
		if back := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); back != nil {
			// The thread stays locked and is discarded when this goroutine ends.
			ch <- result{ln, err}
			return
		}
		runtime.UnlockOSThread()
		ch <- result{ln, err}
	}()
	r := <-ch
	return r.ln, r.err
}

func ip(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v %s", strings.Join(args, " "), err, out)
	}
}
