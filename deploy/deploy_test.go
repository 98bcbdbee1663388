// Package deploy holds no code: its tests check the operational artifacts (Prometheus rules and
// configuration, Grafana dashboards, docker-compose.yml, Dockerfile) against each other and against the
// documented metrics, so a renamed metric or a broken rule fails `go test ./deploy/` instead of paging
// nobody in production.
package deploy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/shepherd-release/shepherd/internal/observe"
)

// repoRoot is the module root; go test runs in the package directory.
const repoRoot = ".."

func repoPath(parts ...string) string { return filepath.Join(append([]string{repoRoot}, parts...)...) }

// promtool finds the promtool binary: $SHEPHERD_PROMTOOL, then $HOME/.cache/shepherd/bin/promtool, then
// PATH. Without one the test is skipped, or fails when SHEPHERD_REQUIRE_E2E=1 (CI).
func promtool(t *testing.T) string {
	t.Helper()
	var tried []string
	if p := os.Getenv("SHEPHERD_PROMTOOL"); p != "" {
		if isExecutable(p) {
			return p
		}
		tried = append(tried, p+" (SHEPHERD_PROMTOOL)")
	}
	if home, err := os.UserHomeDir(); err == nil {
		p := filepath.Join(home, ".cache", "shepherd", "bin", "promtool")
		if isExecutable(p) {
			return p
		}
		tried = append(tried, p)
	}
	if p, err := exec.LookPath("promtool"); err == nil {
		return p
	}
	tried = append(tried, "promtool on PATH")
	msg := "promtool not found (tried " + strings.Join(tried, ", ") + "); `make tools` builds it"
	if os.Getenv("SHEPHERD_REQUIRE_E2E") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

func runPromtool(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(promtool(t), args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

func TestPromtoolCheckRules(t *testing.T) {
	out := runPromtool(t, "check", "rules", repoPath("deploy", "prometheus", "alerts.yml"))
	if !strings.Contains(out, "SUCCESS") {
		t.Fatalf("promtool check rules did not report success:\n%s", out)
	}
}

func TestPromtoolTestRules(t *testing.T) {
	out := runPromtool(t, "test", "rules", repoPath("deploy", "prometheus", "alerts_test.yml"))
	if !strings.Contains(out, "SUCCESS") {
		t.Fatalf("promtool test rules did not report success:\n%s", out)
	}
}

func TestPromtoolCheckConfig(t *testing.T) {
	// The demo fleet's file_sd file only exists inside the running stack: a warning, not an error.
	out := runPromtool(t, "check", "config", repoPath("deploy", "prometheus", "prometheus.yml"))
	if !strings.Contains(out, "is valid prometheus config file syntax") {
		t.Fatalf("promtool check config:\n%s", out)
	}
}

// --- alert rules ------------------------------------------------------------------------------------

type ruleFile struct {
	Groups []struct {
		Name  string `json:"name"`
		Rules []struct {
			Alert       string            `json:"alert"`
			Record      string            `json:"record"`
			Expr        string            `json:"expr"`
			Labels      map[string]string `json:"labels"`
			Annotations map[string]string `json:"annotations"`
		} `json:"rules"`
	} `json:"groups"`
}

type ruleTestFile struct {
	Tests []struct {
		Name          string `json:"name"`
		AlertRuleTest []struct {
			Alertname string            `json:"alertname"`
			ExpAlerts []json.RawMessage `json:"exp_alerts"`
		} `json:"alert_rule_test"`
	} `json:"tests"`
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func loadRules(t *testing.T) ruleFile {
	t.Helper()
	var rf ruleFile
	readYAML(t, repoPath("deploy", "prometheus", "alerts.yml"), &rf)
	if len(rf.Groups) == 0 {
		t.Fatal("alerts.yml has no rule groups")
	}
	return rf
}

// The alerts the brief asks for, by what they watch; renaming one is fine, losing one is not.
var requiredAlerts = []string{
	"ServiceErrorRateHigh", "ServiceLatencyP99High", "ShepherdReleaseAwaitingApprovalTooLong",
	"ShepherdReleasePausedTooLong", "ShepherdRollbackFailed", "ShepherdRollbackStuck", "ShepherdWorkerDown", "ShepherdNoWorkers",
	"ShepherdWorkerNotPolling",
}

func TestEveryAlertIsTestedFiringAndNotFiring(t *testing.T) {
	rf := loadRules(t)
	var tf ruleTestFile
	readYAML(t, repoPath("deploy", "prometheus", "alerts_test.yml"), &tf)

	firing, quiet := map[string]int{}, map[string]int{}
	for _, tc := range tf.Tests {
		for _, at := range tc.AlertRuleTest {
			if len(at.ExpAlerts) > 0 {
				firing[at.Alertname]++
			} else {
				quiet[at.Alertname]++
			}
		}
	}
	var alerts []string
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			alerts = append(alerts, r.Alert)
			if firing[r.Alert] == 0 {
				t.Errorf("alert %s has no test case where it fires", r.Alert)
			}
			if quiet[r.Alert] == 0 {
				t.Errorf("alert %s has no test case where it must not fire", r.Alert)
			}
		}
	}
	for name := range firing {
		if !slices.Contains(alerts, name) {
			t.Errorf("alerts_test.yml tests %s, which alerts.yml does not define", name)
		}
	}
	for _, name := range requiredAlerts {
		if !slices.Contains(alerts, name) {
			t.Errorf("alerts.yml lacks the %s alert", name)
		}
	}
}

func TestAlertsAreActionable(t *testing.T) {
	rf := loadRules(t)
	anchors := markdownAnchors(t, repoPath("docs", "runbooks.md"))
	const runbooks = "https://github.com/shepherd-release/shepherd/blob/main/docs/runbooks.md#"
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			if s := r.Labels["severity"]; s != "warning" && s != "critical" {
				t.Errorf("%s: severity %q, want warning or critical", r.Alert, s)
			}
			for _, a := range []string{"summary", "description", "runbook_url"} {
				if strings.TrimSpace(r.Annotations[a]) == "" {
					t.Errorf("%s: annotation %s is missing", r.Alert, a)
				}
			}
			url := r.Annotations["runbook_url"]
			anchor, ok := strings.CutPrefix(url, runbooks)
			switch {
			case !ok:
				t.Errorf("%s: runbook_url %q does not point into docs/runbooks.md", r.Alert, url)
			case !anchors[anchor]:
				t.Errorf("%s: runbook_url anchor #%s is not a heading of docs/runbooks.md", r.Alert, anchor)
			}
		}
	}
}

// markdownAnchors returns the GitHub anchors of a Markdown file's headings.
func markdownAnchors(t *testing.T, path string) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	drop := regexp.MustCompile(`[^\p{L}\p{N}\- ]`)
	for line := range strings.Lines(string(b)) {
		if h, ok := strings.CutPrefix(line, "#"); ok {
			h = strings.TrimLeft(h, "#")
			a := strings.ReplaceAll(drop.ReplaceAllString(strings.ToLower(strings.TrimSpace(h)), ""), " ", "-")
			out[a] = true
		}
	}
	return out
}

// --- metric names -----------------------------------------------------------------------------------

// documentedMetrics reads the metric names from the tables of docs/metrics.md whose first column is
// "Metric": the first cell of each row, in backticks.
func documentedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(repoPath("docs", "metrics.md"))
	if err != nil {
		t.Fatal(err)
	}
	cell := regexp.MustCompile("^\\|\\s*`([a-zA-Z_:][a-zA-Z0-9_:]*)`\\s*\\|")
	out := map[string]bool{}
	inMetricTable := false
	for line := range strings.Lines(string(b)) {
		line = strings.TrimSpace(line)
		switch {
		case !strings.HasPrefix(line, "|"):
			inMetricTable = false
		case strings.HasPrefix(line, "| Metric |"):
			inMetricTable = true
		case inMetricTable:
			if m := cell.FindStringSubmatch(line); m != nil {
				out[m[1]] = true
			}
		}
	}
	if len(out) == 0 {
		t.Fatal("docs/metrics.md lists no metrics in its tables")
	}
	return out
}

// isDocumented accepts a histogram's _bucket/_sum/_count series by its documented base name.
func isDocumented(docs map[string]bool, name string) bool {
	if docs[name] {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && docs[base] {
			return true
		}
	}
	return false
}

func TestMetricsDocMatchesEngine(t *testing.T) {
	docs := documentedMetrics(t)
	for _, name := range observe.MetricNames {
		if !docs[name] {
			t.Errorf("engine metric %s is not documented in docs/metrics.md", name)
		}
	}
	for name := range docs {
		if strings.HasPrefix(name, "shepherd_") && !slices.Contains(observe.MetricNames, name) {
			t.Errorf("docs/metrics.md documents %s, which observe.EngineMetrics does not define", name)
		}
	}
}

var (
	promqlStrings   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|` + "`[^`]*`")
	promqlMatchers  = regexp.MustCompile(`\{[^{}]*\}`)
	promqlRanges    = regexp.MustCompile(`\[[^\]]*\]`)
	promqlVars      = regexp.MustCompile(`\$\{[^}]*\}|\$\w+`)
	promqlGrouping  = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)`)
	promqlIdent     = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	promqlKeywords  = []string{"and", "or", "unless", "offset", "bool", "by", "without", "on", "ignoring", "group_left", "group_right", "inf", "nan", "atan2"}
	grafanaLabelVal = regexp.MustCompile(`^\s*label_values\((.*),\s*[a-zA-Z_]\w*\s*\)\s*$`)
)

// metricNames returns the metric names a PromQL expression selects. It is a tokenizer, not a parser
// (the syntax itself is checked by promtool): strings, label matchers, ranges, Grafana variables and
// grouping clauses are removed, then every identifier that is not a keyword, a function call or part
// of a number or duration is a metric name.
func metricNames(expr string) []string {
	if m := grafanaLabelVal.FindStringSubmatch(expr); m != nil {
		expr = m[1]
	}
	expr = promqlStrings.ReplaceAllString(expr, `""`)
	expr = promqlVars.ReplaceAllString(expr, "")
	expr = promqlMatchers.ReplaceAllString(expr, " ")
	expr = promqlRanges.ReplaceAllString(expr, " ")
	expr = promqlGrouping.ReplaceAllString(expr, " ")
	var out []string
	for _, loc := range promqlIdent.FindAllStringIndex(expr, -1) {
		name := expr[loc[0]:loc[1]]
		if loc[0] > 0 && strings.ContainsAny(expr[loc[0]-1:loc[0]], "0123456789.") {
			continue // 5m, 1e9, 0.5
		}
		if strings.HasPrefix(strings.TrimLeft(expr[loc[1]:], " \t\n"), "(") {
			continue // function or aggregation
		}
		if slices.Contains(promqlKeywords, strings.ToLower(name)) || slices.Contains(out, name) {
			continue
		}
		out = append(out, name)
	}
	return out
}

func TestMetricNamesTokenizer(t *testing.T) {
	tests := []struct {
		expr string
		want []string
	}{
		{`up{job="shepherd-worker"} == 0`, []string{"up"}},
		{`histogram_quantile(0.99, sum by (service, version, le) (rate(http_request_duration_seconds_bucket[5m]))) > 0.5`,
			[]string{"http_request_duration_seconds_bucket"}},
		{`sum(rate(http_requests_total{code=~"5.."}[$__rate_interval])) / sum(rate(http_requests_total[5m]))`,
			[]string{"http_requests_total"}},
		{`x > 0 unless on (instance) y offset 30m or absent(z{a="b"})`, []string{"x", "y", "z"}},
		{`time() - min by (service) (a_b{phase="Paused"}) > 2 * 3600`, []string{"a_b"}},
		{`sum(x) without (instance) / ignoring(le) group_left(version) y`, []string{"x", "y"}},
		{`label_values(http_requests_total{service="$service"}, version)`, []string{"http_requests_total"}},
		{`1e9 * 5`, nil},
	}
	for _, tt := range tests {
		if got := metricNames(tt.expr); !slices.Equal(got, tt.want) {
			t.Errorf("metricNames(%q) = %q, want %q", tt.expr, got, tt.want)
		}
	}
}

func TestAlertMetricsAreDocumented(t *testing.T) {
	docs := documentedMetrics(t)
	for _, g := range loadRules(t).Groups {
		for _, r := range g.Rules {
			for _, name := range metricNames(r.Expr) {
				if !isDocumented(docs, name) {
					t.Errorf("alert %s uses %s, which docs/metrics.md does not list", r.Alert, name)
				}
			}
		}
	}
}

// --- Grafana dashboards -----------------------------------------------------------------------------

var dashboards = []string{"shepherd.json", "service-slo.json"}

type gridPos struct{ H, W, X, Y int }

type panel struct {
	ID         int             `json:"id"`
	Type       string          `json:"type"`
	Title      string          `json:"title"`
	Datasource json.RawMessage `json:"datasource"`
	GridPos    gridPos         `json:"gridPos"`
	Targets    []struct {
		Expr       string          `json:"expr"`
		RefID      string          `json:"refId"`
		Datasource json.RawMessage `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"`
}

type dashboard struct {
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name  string          `json:"name"`
			Type  string          `json:"type"`
			Query json.RawMessage `json:"query"`
		} `json:"list"`
	} `json:"templating"`
	Annotations struct {
		List []struct {
			Name string `json:"name"`
			Expr string `json:"expr"`
		} `json:"list"`
	} `json:"annotations"`
}

// query is one PromQL expression found in a dashboard, with where it was found.
type query struct{ where, expr string }

func loadDashboard(t *testing.T, name string) (dashboard, []query) {
	t.Helper()
	b, err := os.ReadFile(repoPath("deploy", "grafana", name))
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	var d dashboard
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("%s does not parse as a dashboard: %v", name, err)
	}
	var qs []query
	for _, a := range d.Annotations.List {
		if a.Expr != "" {
			qs = append(qs, query{"annotation " + a.Name, a.Expr})
		}
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct {
			Query string `json:"query"`
		}
		var s string
		if json.Unmarshal(v.Query, &q) == nil && q.Query != "" {
			s = q.Query
		} else if json.Unmarshal(v.Query, &s) != nil || s == "" {
			t.Errorf("%s: variable %s has no query", name, v.Name)
		}
		qs = append(qs, query{"variable " + v.Name, s})
	}
	for _, p := range flatten(d.Panels) {
		for _, tg := range p.Targets {
			qs = append(qs, query{fmt.Sprintf("panel %q", p.Title), tg.Expr})
		}
	}
	return d, qs
}

func flatten(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, flatten(p.Panels)...)
	}
	return out
}

func usesDatasourceVar(raw json.RawMessage) bool {
	var ds struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	}
	return json.Unmarshal(raw, &ds) == nil && ds.Type == "prometheus" &&
		(ds.UID == "${datasource}" || ds.UID == "$datasource")
}

func TestGrafanaDashboards(t *testing.T) {
	docs := documentedMetrics(t)
	uids := map[string]string{}
	for _, name := range dashboards {
		t.Run(name, func(t *testing.T) {
			d, qs := loadDashboard(t, name)
			if d.UID == "" || d.Title == "" || d.SchemaVersion == 0 {
				t.Errorf("uid %q, title %q, schemaVersion %d: all are required", d.UID, d.Title, d.SchemaVersion)
			}
			if other, dup := uids[d.UID]; dup {
				t.Errorf("uid %q is also used by %s", d.UID, other)
			}
			uids[d.UID] = name

			hasDSVar := false
			for _, v := range d.Templating.List {
				if v.Type == "datasource" && string(v.Query) == `"prometheus"` {
					hasDSVar = true
				}
			}
			if !hasDSVar {
				t.Error("no datasource variable of type prometheus")
			}

			ids := map[int]bool{}
			cells := map[[2]int]string{}
			panels := 0
			for _, p := range flatten(d.Panels) {
				if ids[p.ID] {
					t.Errorf("panel %q reuses id %d", p.Title, p.ID)
				}
				ids[p.ID] = true
				if p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X+p.GridPos.W > 24 {
					t.Errorf("panel %q: bad gridPos %+v", p.Title, p.GridPos)
				}
				for x := p.GridPos.X; x < p.GridPos.X+p.GridPos.W; x++ {
					for y := p.GridPos.Y; y < p.GridPos.Y+p.GridPos.H; y++ {
						if other, taken := cells[[2]int{x, y}]; taken {
							t.Fatalf("panel %q overlaps panel %q", p.Title, other)
						}
						cells[[2]int{x, y}] = p.Title
					}
				}
				if p.Type == "row" || p.Type == "text" {
					continue
				}
				panels++
				if p.Title == "" {
					t.Errorf("panel %d has no title", p.ID)
				}
				if !usesDatasourceVar(p.Datasource) {
					t.Errorf("panel %q: datasource %s, want the ${datasource} variable", p.Title, p.Datasource)
				}
				if len(p.Targets) == 0 {
					t.Errorf("panel %q has no query", p.Title)
				}
				for _, tg := range p.Targets {
					if strings.TrimSpace(tg.Expr) == "" || tg.RefID == "" {
						t.Errorf("panel %q has a target without expr or refId", p.Title)
					}
					if len(tg.Datasource) > 0 && !usesDatasourceVar(tg.Datasource) {
						t.Errorf("panel %q: target datasource %s, want the ${datasource} variable", p.Title, tg.Datasource)
					}
				}
			}
			if panels == 0 {
				t.Error("dashboard has no panels")
			}
			for _, q := range qs {
				names := metricNames(q.expr)
				if len(names) == 0 && !strings.Contains(q.expr, "time()") {
					t.Errorf("%s: found no metric in %q", q.where, q.expr)
				}
				for _, n := range names {
					if !isDocumented(docs, n) {
						t.Errorf("%s uses %s, which docs/metrics.md does not list", q.where, n)
					}
				}
			}
		})
	}
}

// grafanaVars replaces Grafana's variables by values PromQL accepts, so promtool can parse the query.
var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "6h")

// TestGrafanaQueriesParse runs every dashboard query through promtool's PromQL parser.
func TestGrafanaQueriesParse(t *testing.T) {
	bin := promtool(t)
	for _, name := range dashboards {
		_, qs := loadDashboard(t, name)
		for _, q := range qs {
			expr := q.expr
			if m := grafanaLabelVal.FindStringSubmatch(expr); m != nil {
				expr = m[1]
			}
			expr = promqlVars.ReplaceAllString(grafanaVars.Replace(expr), "x")
			out, err := exec.Command(bin, "--experimental", "promql", "format", expr).CombinedOutput()
			if err != nil {
				var ee *exec.ExitError
				if !errors.As(err, &ee) {
					t.Fatal(err)
				}
				t.Errorf("%s, %s: %s\n%s", name, q.where, bytes.TrimSpace(out), q.expr)
			}
		}
	}
}
