package devstack

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestPrometheusConfig(t *testing.T) {
	var cfg struct {
		Global        map[string]string `json:"global"`
		ScrapeConfigs []struct {
			JobName       string `json:"job_name"`
			StaticConfigs []struct {
				Targets []string `json:"targets"`
			} `json:"static_configs"`
			FileSDConfigs []struct {
				Files           []string `json:"files"`
				RefreshInterval string   `json:"refresh_interval"`
			} `json:"file_sd_configs"`
		} `json:"scrape_configs"`
	}
	b := PrometheusConfig(PrometheusOptions{ScrapeInterval: 1500 * time.Millisecond, FileSD: "/x/sd.json", StaticTargets: []string{"127.0.0.1:1"}})
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatalf("config is not JSON (YAML): %v\n%s", err, b)
	}
	if cfg.Global["scrape_interval"] != "1500ms" {
		t.Errorf("scrape_interval %q, want 1500ms (Prometheus takes no fractional seconds)", cfg.Global["scrape_interval"])
	}
	if len(cfg.ScrapeConfigs) != 1 {
		t.Fatalf("scrape configs: %+v", cfg.ScrapeConfigs)
	}
	sc := cfg.ScrapeConfigs[0]
	if len(sc.StaticConfigs) != 1 || sc.StaticConfigs[0].Targets[0] != "127.0.0.1:1" {
		t.Errorf("static targets: %+v", sc.StaticConfigs)
	}
	if len(sc.FileSDConfigs) != 1 || sc.FileSDConfigs[0].Files[0] != "/x/sd.json" {
		t.Fatalf("file_sd: %+v", sc.FileSDConfigs)
	}
	// A short re-read would keep Prometheus's discovery back-off at its 5 s maximum.
	if got := sc.FileSDConfigs[0].RefreshInterval; got != "600000ms" {
		t.Errorf("file_sd refresh_interval %q, want the 10m fallback", got)
	}
	if b := PrometheusConfig(PrometheusOptions{}); strings.Contains(string(b), "scrape_configs") {
		t.Errorf("no targets, yet scrape configs:\n%s", b)
	}
}

// TestStartPrometheusScrapesFileSDTargetsPromptly starts a real Prometheus, adds a target to its
// file_sd file while it runs (as the fleet does when it deploys a canary) and requires the target's
// metric to be queryable within a few seconds.
func TestStartPrometheusScrapesFileSDTargetsPromptly(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Prometheus server; -short (make test-unit) runs server-free tests only")
	}
	bin, err := FindPrometheus()
	if err != nil {
		if os.Getenv("SHEPHERD_REQUIRE_E2E") == "1" {
			t.Fatalf("%v (SHEPHERD_REQUIRE_E2E=1 requires it)", err)
		}
		t.Skip(err)
	}
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "# TYPE shepherd_probe gauge\nshepherd_probe 42")
	}))
	defer target.Close()
	sd := filepath.Join(t.TempDir(), "sd", "file_sd.json") // its directory does not exist yet
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := StartPrometheus(ctx, PrometheusOptions{Binary: bin, FileSD: sd})
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			p.Stop()
		}
	}()
	if _, err := os.Stat(filepath.Dir(sd)); err != nil {
		t.Fatalf("file_sd directory not created for Prometheus to watch: %v", err)
	}
	time.Sleep(6 * time.Second) // past Prometheus's discovery back-off, as a fleet idle between releases
	group := fmt.Sprintf(`[{"targets":[%q],"labels":{"version":"v9"}}]`, strings.TrimPrefix(target.URL, "http://"))
	if err := os.WriteFile(sd+".tmp", []byte(group), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(sd+".tmp", sd); err != nil {
		t.Fatal(err)
	}
	added := time.Now()
	for {
		if v := queryValue(t, p.URL, `shepherd_probe{version="v9"}`); v == "42" {
			break
		}
		if time.Since(added) > 4*time.Second {
			t.Fatalf("target added to file_sd not scraped within 4s (log %s):\n%s", p.LogFile, tailFile(p.LogFile, 20))
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("new file_sd target queryable after %s", time.Since(added).Round(10*time.Millisecond))

	dir := filepath.Dir(p.LogFile)
	p.Stop()
	stopped = true
	if _, err := http.Get(p.URL + "/-/ready"); err == nil {
		t.Error("Prometheus still answers after Stop")
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("temporary data directory %s left behind (stat: %v)", dir, err)
	}
}

func queryValue(t *testing.T, base, q string) string {
	t.Helper()
	resp, err := http.Get(base + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	var r struct {
		Data struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if json.NewDecoder(resp.Body).Decode(&r) != nil || len(r.Data.Result) != 1 {
		return ""
	}
	s, _ := r.Data.Result[0].Value[1].(string)
	return s
}

func TestStartPrometheusFailsClearly(t *testing.T) {
	ctx := context.Background()
	if _, err := StartPrometheus(ctx, PrometheusOptions{Binary: "/nonexistent/prometheus"}); err == nil ||
		!strings.Contains(err.Error(), "/nonexistent/prometheus") {
		t.Errorf("missing binary: err = %v", err)
	}
	if _, err := StartPrometheus(ctx, PrometheusOptions{Binary: "/bin/true", ScrapeInterval: time.Millisecond}); err == nil ||
		!strings.Contains(err.Error(), "too short") {
		t.Errorf("1ms scrape interval: err = %v", err)
	}
	t.Setenv("SHEPHERD_PROMETHEUS", "/nonexistent/prometheus")
	if _, err := FindPrometheus(); err == nil || !strings.Contains(err.Error(), "SHEPHERD_PROMETHEUS") {
		t.Errorf("FindPrometheus with a bad $SHEPHERD_PROMETHEUS: err = %v", err)
	}
}
