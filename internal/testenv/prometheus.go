// Package testenv starts the real services that integration and end-to-end tests run against, and skips
// (or, in CI, fails) a test when a service's binary is not installed. Only tests import it.
package testenv

import (
	"context"

	"errors"
	"fmt"
	"github.com/shepherd-release/shepherd/internal/devstack"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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
	if p := filepath.Join(devstack.CacheBin(), "prometheus"); checkExecutable(p) == nil {
		return p
	} else {
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
	// ScrapeInterval is the global scrape and evaluation interval; default 1s.
	ScrapeInterval time.Duration
	// Targets are host:port addresses scraped at /metrics (static_configs).
	Targets []string
	// FileSD is the path of a file_sd_configs file that Prometheus watches, so a test can add or move
	// targets while Prometheus runs. It need not exist yet.
	FileSD string
}

// StartPrometheus starts a real Prometheus on a free loopback port (devstack.StartPrometheus, as the demo
// and `shepherd bench` do) with its data in the test's temporary directory, and returns its base URL.
// Cleanup stops it; when the test failed, the tail of its log is written to the test log.
func StartPrometheus(t testing.TB, opts PrometheusOptions) string {
	t.Helper()
	bin := PrometheusBinary(t)
	dir := t.TempDir() // created before Cleanup below, so removed after Prometheus stopped
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	p, err := devstack.StartPrometheus(ctx, devstack.PrometheusOptions{
		Binary: bin, ScrapeInterval: opts.ScrapeInterval, FileSD: opts.FileSD, StaticTargets: opts.Targets,
		DataDir: dir,
	})
	if err != nil {
		t.Fatalf("starting Prometheus: %v", err)
	}
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			if b, err := os.ReadFile(p.LogFile); err == nil {
				t.Logf("Prometheus log %s:\n%s", p.LogFile, lastLines(string(b), logTailLines))
			}
		}
	})
	return p.URL
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
