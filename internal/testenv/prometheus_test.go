package testenv

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// fakeTB records Skip and Fatal instead of acting on them; like the real ones they end the goroutine.
type fakeTB struct {
	testing.TB
	skipped, fatal string
}

func (f *fakeTB) Helper()                   {}
func (f *fakeTB) Skip(args ...any)          { f.skipped = fmt.Sprint(args...); runtime.Goexit() }
func (f *fakeTB) Skipf(s string, a ...any)  { f.skipped = fmt.Sprintf(s, a...); runtime.Goexit() }
func (f *fakeTB) Fatal(args ...any)         { f.fatal = fmt.Sprint(args...); runtime.Goexit() }
func (f *fakeTB) Fatalf(s string, a ...any) { f.fatal = fmt.Sprintf(s, a...); runtime.Goexit() }

// binary runs PrometheusBinary against a fakeTB in its own goroutine, so Goexit ends only that goroutine.
func binary(t *testing.T) (string, *fakeTB) {
	tb := &fakeTB{TB: t}
	var path string
	done := make(chan struct{})
	go func() {
		defer close(done)
		path = PrometheusBinary(tb)
	}()
	<-done
	return path, tb
}

func writeExecutable(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"), mode); err != nil {
		t.Fatal(err)
	}
}

func TestPrometheusBinary(t *testing.T) {
	// isolate clears every place PrometheusBinary looks and returns a fresh home and PATH directory.
	isolate := func(t *testing.T) (home, pathDir string) {
		home, pathDir = t.TempDir(), t.TempDir()
		t.Setenv("HOME", home)
		t.Setenv("PATH", pathDir)
		t.Setenv(EnvPrometheus, "")
		t.Setenv(EnvRequireE2E, "")
		return home, pathDir
	}
	t.Run("env var wins", func(t *testing.T) {
		home, _ := isolate(t)
		writeExecutable(t, filepath.Join(home, ".cache", "shepherd", "bin", "prometheus"), 0o755)
		p := filepath.Join(t.TempDir(), "my-prometheus")
		writeExecutable(t, p, 0o755)
		t.Setenv(EnvPrometheus, p)
		if got, tb := binary(t); got != p {
			t.Errorf("PrometheusBinary = %q (skip %q, fatal %q), want %q", got, tb.skipped, tb.fatal, p)
		}
	})
	t.Run("env var naming a non-executable fails", func(t *testing.T) {
		isolate(t)
		p := filepath.Join(t.TempDir(), "prometheus")
		writeExecutable(t, p, 0o644)
		t.Setenv(EnvPrometheus, p)
		_, tb := binary(t)
		if !strings.Contains(tb.fatal, EnvPrometheus+"="+p) || !strings.Contains(tb.fatal, "not executable") {
			t.Errorf("fatal = %q, want one naming %s and saying it is not executable", tb.fatal, EnvPrometheus)
		}
	})
	t.Run("cache dir", func(t *testing.T) {
		home, pathDir := isolate(t)
		want := filepath.Join(home, ".cache", "shepherd", "bin", "prometheus")
		writeExecutable(t, want, 0o755)
		writeExecutable(t, filepath.Join(pathDir, "prometheus"), 0o755)
		if got, tb := binary(t); got != want {
			t.Errorf("PrometheusBinary = %q (skip %q, fatal %q), want %q", got, tb.skipped, tb.fatal, want)
		}
	})
	t.Run("PATH", func(t *testing.T) {
		_, pathDir := isolate(t)
		want := filepath.Join(pathDir, "prometheus")
		writeExecutable(t, want, 0o755)
		if got, tb := binary(t); got != want {
			t.Errorf("PrometheusBinary = %q (skip %q, fatal %q), want %q", got, tb.skipped, tb.fatal, want)
		}
	})
	t.Run("missing skips with how to build it", func(t *testing.T) {
		isolate(t)
		_, tb := binary(t)
		if tb.fatal != "" || !strings.Contains(tb.skipped, "make tools") {
			t.Errorf("skip %q, fatal %q; want a skip mentioning make tools", tb.skipped, tb.fatal)
		}
	})
	t.Run("missing fails when e2e is required", func(t *testing.T) {
		isolate(t)
		t.Setenv(EnvRequireE2E, "1")
		_, tb := binary(t)
		if tb.skipped != "" || !strings.Contains(tb.fatal, "make tools") || !strings.Contains(tb.fatal, EnvRequireE2E) {
			t.Errorf("skip %q, fatal %q; want a failure mentioning make tools and %s", tb.skipped, tb.fatal,
				EnvRequireE2E)
		}
	})
}

// probeTarget serves one gauge testenv_probe{origin="<origin>"} in the text exposition format.
func probeTarget(t *testing.T, origin string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		fmt.Fprintf(w, "# TYPE testenv_probe gauge\ntestenv_probe{origin=%q} 1\n", origin)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// origins returns the origin labels of the testenv_probe series Prometheus at base holds now.
func origins(base string) ([]string, error) {
	resp, err := http.Get(base + "/api/v1/query?query=" + url.QueryEscape("testenv_probe"))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, err
	}
	if body.Status != "success" {
		return nil, fmt.Errorf("query status %q", body.Status)
	}
	var out []string
	for _, r := range body.Data.Result {
		out = append(out, r.Metric["origin"])
	}
	return out, nil
}

func TestStartPrometheus(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Prometheus server; -short (make test-unit) runs server-free tests only")
	}
	var base string
	t.Run("scrapes static and file_sd targets", func(t *testing.T) {
		sdFile := filepath.Join(t.TempDir(), "targets.json")
		sd := fmt.Sprintf(`[{"targets":[%q]}]`, probeTarget(t, "file_sd"))
		if err := os.WriteFile(sdFile, []byte(sd), 0o600); err != nil {
			t.Fatal(err)
		}
		base = StartPrometheus(t, PrometheusOptions{Targets: []string{probeTarget(t, "static")}, FileSD: sdFile})
		if !strings.HasPrefix(base, "http://127.0.0.1:") {
			t.Fatalf("base URL = %q, want a loopback URL", base)
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			got, err := origins(base)
			if err == nil && len(got) == 2 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("after 30s Prometheus holds testenv_probe for origins %v (err %v), want static and file_sd",
					got, err)
			}
			time.Sleep(200 * time.Millisecond) // scrapes happen every second; poll a few times per scrape
		}
	})
	if base == "" {
		return // skipped: no binary
	}
	// The subtest's cleanup has run: Prometheus must be gone.
	client := &http.Client{Timeout: time.Second}
	if resp, err := client.Get(base + "/-/ready"); err == nil {
		resp.Body.Close()
		t.Errorf("Prometheus at %s still answers (%s) after the test's cleanup", base, resp.Status)
	}
}
