package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shepherd-release/shepherd/record"
)

// fakePrometheus answers instant queries from a table: the first key contained in the query wins; a
// missing key answers an empty vector (no data).
func fakePrometheus(t *testing.T, values map[string]string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/query" {
			http.NotFound(w, r)
			return
		}
		q := r.FormValue("query")
		result := "[]"
		for key, v := range values {
			if strings.Contains(q, key) {
				result = fmt.Sprintf(`[{"metric":{},"value":[1700000000,%q]}]`, v)
				break
			}
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"status":"success","data":{"resultType":"vector","result":%s}}`, result)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// writeSpec writes a spec naming the metrics source "prom", and a worker configuration (in
// $SHEPHERD_CONFIG) where "prom" is the Prometheus at promURL.
func writeSpec(t *testing.T, promURL string) string {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "shepherd.yaml")
	if err := os.WriteFile(cfg, []byte(`targets: {checkout: {type: local}}
metrics: {prom: {type: prometheus, address: "`+promURL+`", timeout: 2s}}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SHEPHERD_CONFIG", cfg)
	p := filepath.Join(dir, "release.yaml")
	doc := `service: checkout
version: v2
previousVersion: v1
target: checkout
analysis:
  source: prom
  checks:
    - name: error-rate
      query: errors{version="{{.Version}}",percent="{{.Percent}}"}
      max: 0.01
    - name: p99-latency
      query: latency{version="{{.Version}}"}
      max: 0.5
      baseline: {maxRelativeIncrease: 0.2}
`
	if err := os.WriteFile(p, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestAnalyzeCommand(t *testing.T) {
	for _, tc := range []struct {
		name     string
		values   map[string]string
		args     []string
		wantCode int
		wantOut  []string
		wantErr  string
	}{
		{
			name:     "all pass",
			values:   map[string]string{`errors{version="v2"`: "0.001", `latency{version="v2"}`: "0.11", `latency{version="v1"}`: "0.1"},
			wantCode: ExitOK,
			wantOut:  []string{"error-rate", "0.001", "<= 0.01", "Pass", `errors{version="v2",percent="0"}`, "within 20% of baseline 0.1"},
		},
		{
			name:     "error rate above max fails",
			values:   map[string]string{`errors{version="v2"`: "0.2", `latency{version="v2"}`: "0.11", `latency{version="v1"}`: "0.1"},
			wantCode: ExitRolledBack,
			wantOut:  []string{"0.2 > max 0.01", "Fail"},
			wantErr:  "1 of 2 checks failed: error-rate",
		},
		{
			name:     "latency beyond the baseline margin fails",
			values:   map[string]string{`errors{version="v2"`: "0", `latency{version="v2"}`: "0.13", `latency{version="v1"}`: "0.1"},
			wantCode: ExitRolledBack,
			wantOut:  []string{"0.13 > baseline 0.1 + 20% = 0.12"},
			wantErr:  "p99-latency",
		},
		{
			name:     "no data is inconclusive, never a pass",
			values:   map[string]string{`errors{version="v2"`: "0"},
			wantCode: ExitInconclusive,
			wantOut:  []string{"no data", "Inconclusive", "query returned no series"},
			wantErr:  "1 of 2 checks inconclusive: p99-latency",
		},
		{
			name:     "failure wins over inconclusive",
			values:   map[string]string{`errors{version="v2"`: "0.5"},
			wantCode: ExitRolledBack,
		},
		{
			name:     "version and percent flags fill the templates",
			values:   map[string]string{`errors{version="v9",percent="25"}`: "0", `latency{version="v9"}`: "0.1", `latency{version="v1"}`: "0.1"},
			args:     []string{"--version", "v9", "--percent", "25"},
			wantCode: ExitOK,
			wantOut:  []string{"checkout v9 in production at 25%"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := writeSpec(t, fakePrometheus(t, tc.values))
			var out, errb bytes.Buffer
			code := Main(context.Background(), append([]string{"analyze", "-f", file}, tc.args...), &out, &errb)
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.wantCode, out.String(), errb.String())
			}
			for _, w := range tc.wantOut {
				if !strings.Contains(out.String(), w) {
					t.Errorf("stdout lacks %q:\n%s", w, out.String())
				}
			}
			if tc.wantErr != "" && !strings.Contains(errb.String(), tc.wantErr) {
				t.Errorf("stderr lacks %q:\n%s", tc.wantErr, errb.String())
			}
		})
	}
}

func TestAnalyzeJSON(t *testing.T) {
	file := writeSpec(t, fakePrometheus(t, map[string]string{
		`errors{version="v2"`: "0.2", `latency{version="v2"}`: "0.1", `latency{version="v1"}`: "0.1",
	}))
	var out, errb bytes.Buffer
	if code := Main(context.Background(), []string{"analyze", "-f", file, "-o", "json"}, &out, &errb); code != ExitRolledBack {
		t.Fatalf("exit %d, want %d: %s", code, ExitRolledBack, errb.String())
	}
	var rep AnalyzeReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("stdout is not one JSON report: %v\n%s", err, out.String())
	}
	if rep.Verdict != record.Fail || len(rep.Checks) != 2 {
		t.Fatalf("report verdict %s with %d checks, want Fail with 2", rep.Verdict, len(rep.Checks))
	}
	m := rep.Checks[0]
	if m.Check != "error-rate" || m.Verdict != record.Fail || m.Value == nil || *m.Value != 0.2 || m.Query == "" {
		t.Errorf("error-rate measurement = %+v", m)
	}
	if b := rep.Checks[1]; b.Baseline == nil || *b.Baseline != 0.1 || b.Verdict != record.Pass {
		t.Errorf("p99-latency measurement = %+v, want a passing one with baseline 0.1", b)
	}
}

func TestAnalyzeUsageErrors(t *testing.T) {
	dir := t.TempDir()
	disabled := filepath.Join(dir, "disabled.yaml")
	doc := "service: checkout\nversion: v2\ntarget: checkout\nanalysis: {disabled: true}\nstages: [{percent: 100, soak: 1s}]\n"
	if err := os.WriteFile(disabled, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"analyze"}, "no spec file given"},
		{[]string{"analyze", "-f", disabled}, "analysis is disabled"},
		{[]string{"analyze", "-f", writeSpec(t, "http://127.0.0.1:1"), "--percent", "101"}, "--percent 101"},
	} {
		var out, errb bytes.Buffer
		if code := Main(context.Background(), tc.args, &out, &errb); code != ExitUsage || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", tc.args, code, errb.String(), ExitUsage, tc.want)
		}
	}
}

func TestAnalyzeUnreachablePrometheusIsInconclusive(t *testing.T) {
	file := writeSpec(t, "http://127.0.0.1:1") // nothing listens on port 1
	var out, errb bytes.Buffer
	if code := Main(context.Background(), []string{"analyze", "-f", file}, &out, &errb); code != ExitInconclusive {
		t.Fatalf("exit %d, want %d\n%s%s", code, ExitInconclusive, out.String(), errb.String())
	}
	if !strings.Contains(out.String(), "cannot reach Prometheus") {
		t.Errorf("output does not say Prometheus is unreachable:\n%s", out.String())
	}
}
