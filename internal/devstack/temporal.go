// Package devstack starts the local pieces Shepherd runs on: a Temporal dev server (SQLite, web UI) with
// every search attribute registered. `shepherd dev`, the demo and the end-to-end tests share it.
package devstack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/shepherd-release/shepherd/workflows"
)

// TemporalVersion is the Temporal CLI version Shepherd pins and tests with.
const TemporalVersion = "1.5.1"

// FindTemporal returns the Temporal CLI to use: $SHEPHERD_TEMPORAL, else the project cache
// ($XDG_CACHE_HOME or ~/.cache)/shepherd/bin/temporal, else `temporal` on PATH.
func FindTemporal() (string, error) {
	return findBinary("temporal", "SHEPHERD_TEMPORAL")
}

// CacheBin is where the Makefile builds pinned tools, outside the clone so later runs reuse them.
func CacheBin() string {
	base := os.Getenv("XDG_CACHE_HOME")
	if base == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return filepath.Join(os.TempDir(), "shepherd-cache", "bin")
		}
		base = filepath.Join(home, ".cache")
	}
	return filepath.Join(base, "shepherd", "bin")
}

func findBinary(name, env string) (string, error) {
	if p := os.Getenv(env); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s=%s: %w", env, p, err)
		}
		return p, nil
	}
	if p := filepath.Join(CacheBin(), name); isExecutable(p) {
		return p, nil
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("%s not found (looked at $%s, %s, PATH); build it with: make tools", name, env, CacheBin())
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// TemporalOptions configure a dev server.
type TemporalOptions struct {
	// Binary is the Temporal CLI; default FindTemporal().
	Binary string
	// DBFile persists the server's state; empty keeps it in memory.
	DBFile string
	// Port is the frontend gRPC port; 0 picks a free one.
	Port int
	// UIPort is the web UI port; 0 picks a free one; -1 disables the UI.
	UIPort int
	// LogFile receives the server's output; default discarded.
	LogFile string
	// Namespace to create; default "default".
	Namespace string
}

// Temporal is a running dev server.
type Temporal struct {
	Address string
	UIURL   string
	cmd     *exec.Cmd
	done    chan error
}

// StartTemporal starts `temporal server start-dev` with every release search attribute registered and
// waits until it answers.
func StartTemporal(ctx context.Context, o TemporalOptions) (*Temporal, error) {
	var err error
	if o.Binary == "" {
		if o.Binary, err = FindTemporal(); err != nil {
			return nil, err
		}
	}
	if o.Port == 0 {
		if o.Port, err = FreePort(); err != nil {
			return nil, err
		}
	}
	args := []string{"server", "start-dev", "--ip", "127.0.0.1", "--port", strconv.Itoa(o.Port), "--log-level", "error"}
	if o.Namespace != "" && o.Namespace != client.DefaultNamespace {
		args = append(args, "--namespace", o.Namespace)
	}
	t := &Temporal{Address: "127.0.0.1:" + strconv.Itoa(o.Port), done: make(chan error, 1)}
	switch {
	case o.UIPort < 0:
		args = append(args, "--headless")
	default:
		if o.UIPort == 0 {
			if o.UIPort, err = FreePort(); err != nil {
				return nil, err
			}
		}
		args = append(args, "--ui-port", strconv.Itoa(o.UIPort))
		t.UIURL = "http://localhost:" + strconv.Itoa(o.UIPort)
	}
	if o.DBFile != "" {
		if err := os.MkdirAll(filepath.Dir(o.DBFile), 0o755); err != nil {
			return nil, err
		}
		args = append(args, "--db-filename", o.DBFile)
	}
	for _, sa := range workflows.SearchAttributes {
		args = append(args, "--search-attribute", sa.Name+"="+sa.Type)
	}
	cmd := exec.Command(o.Binary, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if o.LogFile != "" {
		f, err := os.Create(o.LogFile)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		cmd.Stdout, cmd.Stderr = f, f
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", o.Binary, err)
	}
	t.cmd = cmd
	go func() { t.done <- cmd.Wait() }()
	if err := t.waitReady(ctx, 60*time.Second); err != nil {
		t.Stop()
		hint := ""
		if o.LogFile != "" {
			hint = " (server log: " + o.LogFile + ")"
		}
		return nil, fmt.Errorf("temporal dev server on %s did not come up: %w%s", t.Address, err, hint)
	}
	return t, nil
}

func (t *Temporal) waitReady(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		select {
		case err := <-t.done:
			t.done <- err
			return fmt.Errorf("server exited: %v", err)
		default:
		}
		c, err := client.DialContext(ctx, client.Options{HostPort: t.Address, Logger: nopLogger{}})
		if err == nil {
			_, err = c.CheckHealth(ctx, &client.CheckHealthRequest{})
			c.Close()
			if err == nil {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Stop ends the server (SIGTERM, then SIGKILL after 10 s) and waits for it.
func (t *Temporal) Stop() {
	if t == nil || t.cmd == nil || t.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-t.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-t.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-t.cmd.Process.Pid, syscall.SIGKILL)
		<-t.done
	}
}

// FreePort asks the kernel for a free loopback port.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	addr, ok := l.Addr().(*net.TCPAddr)
	if !ok {
		return 0, errors.New("not a TCP address")
	}
	return addr.Port, nil
}

type nopLogger struct{}

func (nopLogger) Debug(string, ...any) {}
func (nopLogger) Info(string, ...any)  {}
func (nopLogger) Warn(string, ...any)  {}
func (nopLogger) Error(string, ...any) {}
