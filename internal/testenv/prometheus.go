// Package testenv starts the real services that integration and end-to-end tests run against, and skips
// (or, in CI, fails) a test when a service's binary is not installed. Only tests import it.
package testenv

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Environment variables read by this package.
const (
	// EnvPrometheus names the prometheus binary to use, overriding the search.
	EnvPrometheus = "SHEPHERD_PROMETHEUS"
	// EnvRequireE2E set to "1" turns "binary not found" from a skip into a failure; CI sets it so that
	// end-to-end tests cannot silently stop running.
	EnvRequireE2E = "SHEPHERD_REQUIRE_E2E"
)

// Bounds on waiting for the server; generous because a 2-core CI machine may be busy compiling.
const (
	readyTimeout = 60 * time.Second
	stopTimeout  = 10 * time.Second
	pollInterval = 100 * time.Millisecond
	logTailLines = 40
)

// PrometheusBinary returns the path of the prometheus binary: $SHEPHERD_PROMETHEUS, else
// $HOME/.cache/shepherd/bin/prometheus (where `make tools` installs it), else prometheus on PATH. When
// none exists it skips the test, or fails it when SHEPHERD_REQUIRE_E2E=1.
func PrometheusBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv(EnvPrometheus); p != "" {
		if err := checkExecutable(p); err != nil {
			t.Fatalf("%s=%s: %v; point it at a prometheus binary or unset it", EnvPrometheus, p, err)
		}
		return p
	}
	var tried []string
	if home, err := os.UserHomeDir(); err == nil {
		p := filepath.Join(home, ".cache", "shepherd", "bin", "prometheus")
		if checkExecutable(p) == nil {
			return p
		}
		tried = append(tried, p)
	}
	if p, err := exec.LookPath("prometheus"); err == nil {
		return p
	}
	tried = append(tried, "prometheus on $PATH")
	msg := fmt.Sprintf("prometheus binary not found (tried %s); run `make tools` to build it into "+
		"$HOME/.cache/shepherd/bin, or set %s to its path", strings.Join(tried, ", "), EnvPrometheus)
	if os.Getenv(EnvRequireE2E) == "1" {
		t.Fatalf("%s (%s=1 requires end-to-end tests to run)", msg, EnvRequireE2E)
	}
	t.Skip(msg)
	return ""
}

func checkExecutable(p string) error {
	fi, err := os.Stat(p)
	switch {
	case err != nil:
		return err
	case fi.IsDir():
		return errors.New("is a directory")
	case fi.Mode().Perm()&0o111 == 0:
		return errors.New("is not executable")
	}
	return nil
}

// PrometheusOptions configures StartPrometheus.
type PrometheusOptions struct {
	// ScrapeInterval is the global scrape and evaluation interval; default 1s. The scrape timeout equals it.
	ScrapeInterval time.Duration
	// Targets are host:port addresses scraped at /metrics (static_configs).
	Targets []string
	// FileSD is the path of a file_sd_configs file (JSON or YAML target groups) that Prometheus watches,
	// so a test can add or move targets while Prometheus runs. It need not exist yet.
	FileSD string
}

// StartPrometheus starts a real Prometheus on a free loopback port with a generated configuration and a
// temporary storage directory, waits until it reports ready and returns its base URL
// ("http://127.0.0.1:PORT"). Cleanup stops it (SIGTERM, then kill); when the test failed, the tail of its
// log is written to the test log.
func StartPrometheus(t testing.TB, opts PrometheusOptions) string {
	t.Helper()
	bin := PrometheusBinary(t)
	dir := t.TempDir() // created before Cleanup below, so removed after Prometheus stopped
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, prometheusConfig(opts), 0o600); err != nil {
		t.Fatalf("writing the Prometheus config: %v", err)
	}
	logPath := filepath.Join(dir, "prometheus.log")
	// Prometheus applies discovered targets every 5s by default, which would delay the first scrape of
	// every test by up to 5s. The flag that shortens this is hidden, so drop it if a build rejects it.
	fastDiscovery := "--scrape.discovery-reload-interval=" + promDuration(min(scrapeInterval(opts), time.Second))
	extra := []string{fastDiscovery}
	// A free port can be taken by someone else between our probe and Prometheus's bind; try again then.
	const attempts = 3
	for attempt := 1; ; attempt++ {
		addr := freeLoopbackAddr(t)
		p, err := startPrometheus(bin, addr, cfgPath, filepath.Join(dir, "data"), logPath, extra)
		if err != nil {
			t.Fatalf("starting %s: %v", bin, err)
		}
		base := "http://" + addr
		err = p.waitReady(base)
		if err == nil {
			t.Cleanup(func() {
				p.stop()
				if t.Failed() {
					t.Logf("Prometheus log %s (last %d lines):\n%s", logPath, logTailLines,
						tail(logPath, logTailLines))
				}
			})
			return base
		}
		p.stop()
		logTail := tail(logPath, logTailLines)
		if attempt < attempts && strings.Contains(logTail, "address already in use") {
			continue
		}
		if attempt < attempts && len(extra) > 0 && strings.Contains(logTail, "unknown long flag") {
			extra = nil
			continue
		}
		t.Fatalf("Prometheus (%s) did not become ready at %s: %v\nlast log lines (%s):\n%s", bin, base, err,
			logPath, tail(logPath, logTailLines))
	}
}

// prometheusConfig renders the configuration as JSON, which is valid YAML and needs no quoting rules.
func prometheusConfig(opts PrometheusOptions) []byte {
	iv := promDuration(scrapeInterval(opts))
	job := map[string]any{"job_name": "shepherd-test"}
	if len(opts.Targets) > 0 {
		job["static_configs"] = []any{map[string]any{"targets": opts.Targets}}
	}
	if opts.FileSD != "" {
		job["file_sd_configs"] = []any{map[string]any{"files": []string{opts.FileSD}, "refresh_interval": iv}}
	}
	cfg := map[string]any{
		"global": map[string]any{"scrape_interval": iv, "scrape_timeout": iv, "evaluation_interval": iv},
	}
	if len(opts.Targets) > 0 || opts.FileSD != "" {
		cfg["scrape_configs"] = []any{job}
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		panic(err) // maps of strings always marshal
	}
	return b
}

func scrapeInterval(opts PrometheusOptions) time.Duration {
	if opts.ScrapeInterval <= 0 {
		return time.Second
	}
	return opts.ScrapeInterval
}

// promDuration formats d for Prometheus, whose durations take no fractions ("1.5s" fails) but always
// accept milliseconds.
func promDuration(d time.Duration) string {
	return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
}

// freeLoopbackAddr returns a 127.0.0.1 address whose port was free a moment ago.
func freeLoopbackAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("finding a free loopback port: %v", err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// process is one running Prometheus.
type process struct {
	cmd    *exec.Cmd
	exited chan struct{}
	err    error // Wait's result, valid once exited is closed
}

func startPrometheus(bin, addr, cfgPath, dataDir, logPath string, extra []string) (*process, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	args := append([]string{
		"--config.file=" + cfgPath,
		"--storage.tsdb.path=" + dataDir,
		"--web.listen-address=" + addr,
		"--log.level=info",
	}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	p := &process{cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.exited)
	}()
	return p, nil
}

// waitReady polls /-/ready until it answers 200, the process exits or readyTimeout passes.
func (p *process) waitReady(base string) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(readyTimeout)
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	var last error
	for {
		resp, err := client.Get(base + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Errorf("/-/ready answered %s", resp.Status)
		} else {
			last = err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %s: %w", readyTimeout, last)
		}
		select {
		case <-p.exited:
			return fmt.Errorf("prometheus exited: %v", p.err)
		case <-tick.C:
		}
	}
}

// stop sends SIGTERM, waits up to stopTimeout and then kills. It is safe to call more than once.
func (p *process) stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(stopTimeout):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// tail returns the last n lines of the file at path, or a note saying why it cannot.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read the log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
