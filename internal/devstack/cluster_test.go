package devstack

import (
	"context"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/shepherd-release/shepherd/worker"
)

func TestServerConfigUsesEveryPort(t *testing.T) {
	c := &Cluster{Dir: "/x", opts: ClusterOptions{LogLevel: "warn"}}
	c.ports = clusterPorts{101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111}
	dir := t.TempDir()
	c.Dir = dir
	if err := os.MkdirAll(dir+"/config/dynamicconfig", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := c.writeServerConfig(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(dir + "/config/shepherd.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(b)
	for _, want := range []string{"127.0.0.1:101", "grpcPort: 102", "httpPort: 103", "membershipPort: 104",
		"grpcPort: 105", "membershipPort: 106", "grpcPort: 107", "membershipPort: 108", "grpcPort: 109",
		"membershipPort: 110", "127.0.0.1:111", "numHistoryShards: 4", dir + "/config/dynamicconfig/shepherd.yaml"} {
		if !strings.Contains(cfg, want) {
			t.Errorf("server config lacks %q:\n%s", want, cfg)
		}
	}
}

// TestCluster starts the production-shaped stack, restarts the server and the database under a live
// client, and requires that Stop leaves no process behind.
func TestCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL and the Temporal server; -short runs server-free tests only")
	}
	bins, err := FindClusterBinaries()
	if err != nil {
		if os.Getenv("SHEPHERD_REQUIRE_E2E") == "1" {
			t.Fatalf("%v (SHEPHERD_REQUIRE_E2E=1 requires it)", err)
		}
		t.Skip(err)
	}
	dir, err := os.MkdirTemp("", "shepherd-cluster-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	// The user postgres must reach the data directory when the test runs as root.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	began := time.Now()
	c, err := StartCluster(ctx, ClusterOptions{Binaries: bins, Dir: dir, Namespace: "releases"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	t.Logf("cluster up in %s at %s", time.Since(began).Round(100*time.Millisecond), c.Address)
	cl, err := client.DialContext(ctx, client.Options{HostPort: c.Address, Namespace: "releases", Logger: nopLogger{}})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := worker.CheckNamespace(ctx, cl, "releases"); err != nil {
		t.Fatalf("namespace after start: %v", err)
	}

	began = time.Now()
	if err := c.RestartTemporal(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("server restarted in %s", time.Since(began).Round(100*time.Millisecond))
	began = time.Now()
	if err := c.RestartPostgres(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("PostgreSQL restarted in %s", time.Since(began).Round(100*time.Millisecond))
	// The namespace survived both (it lives in PostgreSQL); the server reconnected to the database.
	eventuallyNil(t, time.Minute, func() error { return worker.CheckNamespace(ctx, cl, "releases") })

	pids := []int{c.server.cmd.Process.Pid, c.postgres.cmd.Process.Pid}
	c.Stop()
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); err == nil {
			t.Errorf("process %d still running after Stop", pid)
		}
	}
	if _, err := client.DialContext(ctx, client.Options{HostPort: c.Address, Logger: nopLogger{}}); err == nil {
		t.Error("the frontend still answers after Stop")
	}
}

func eventuallyNil(t *testing.T, limit time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %v", limit, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}
