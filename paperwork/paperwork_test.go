package paperwork

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shepherd-release/shepherd/examples"
	"github.com/shepherd-release/shepherd/spec"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// start is the planned start of every golden plan.
var start = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

func ptr(v float64) *float64 { return &v }

// richSpec uses every section: exec target with env and dir, an approval gate with a timeout, prechecks of
// every kind including a sign-off, flags over HTTP, two notification channels, a baseline check and a tag.
func richSpec() spec.Release {
	return spec.Release{
		Service:         "payments",
		Environment:     "production",
		Version:         "v3.1.0",
		PreviousVersion: "v3.0.2",
		Description:     "payments v3.1.0: new ledger writer | CHG-42",
		Target: spec.Target{Type: spec.TargetExec, Exec: &spec.ExecTarget{
			Deploy:   "kubectl -n {{.Environment}} apply -f deploy/{{.Service}}-{{.Version}}.yaml",
			Health:   "kubectl -n {{.Environment}} rollout status deploy/{{.Service}}-{{.Version}} --timeout=2m",
			Traffic:  "./set-weight.sh '{{.Service}}' {{.Version}} {{.Percent}}",
			Promote:  "./promote.sh {{.Service}} {{.Version}}",
			Rollback: "kubectl -n {{.Environment}} delete deploy/{{.Service}}-{{.Version}} --ignore-not-found",
			Timeout:  spec.Duration(3 * time.Minute),
			Dir:      "/srv/deploy",
			Env:      map[string]string{"KUBECONFIG": "/etc/shepherd/kubeconfig", "CLUSTER": "eu-1", "MESH": "istio"},
		}},
		Stages: []spec.Stage{
			{Percent: 5, Soak: spec.Duration(10 * time.Minute)},
			{Percent: 25, Soak: spec.Duration(20 * time.Minute), Approval: true,
				ApprovalTimeout: spec.Duration(2 * time.Hour), OnApprovalTimeout: spec.OnTimeoutAbort},
			{Percent: 100, Soak: spec.Duration(30 * time.Minute)},
		},
		Analysis: spec.Analysis{
			Interval:     spec.Duration(time.Minute),
			FailureLimit: 2,
			Prometheus:   &spec.Prometheus{Address: "https://prometheus.internal:9090", BearerTokenEnv: "PROM_TOKEN"},
			Checks: []spec.Check{
				{Name: "error-rate", Query: `sum(rate(http_requests_total{service="{{.Service}}",version="{{.Version}}",code=~"5..|429"}[2m]))`, Max: ptr(0.005)},
				{Name: "p99-latency", Query: `histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{service="{{.Service}}",version="{{.Version}}"}[2m])))`,
					Max: ptr(0.3), Baseline: &spec.Baseline{MaxRelativeIncrease: 0.1}},
			},
		},
		Prechecks: []spec.Precheck{
			{Name: "artifact", HTTP: &spec.HTTPPrecheck{URL: "https://registry.internal/v2/{{.Service}}/manifests/{{.Version}}",
				HeaderEnv: map[string]string{"Authorization": "REGISTRY_AUTH"}}},
			{Name: "migrations", Exec: &spec.ExecPrecheck{Command: "./migrations-applied.sh {{.Version}}", Expect: "ok"}},
			{Name: "capacity", Prometheus: &spec.PrometheusPrecheck{Query: `cluster:cpu_free:ratio{env="{{.Environment}}"}`, Min: ptr(0.3)}},
			{Name: "qa", Signoff: &spec.Signoff{Role: "qa", Timeout: spec.Duration(4 * time.Hour)}},
		},
		Flags: &spec.Flags{
			Names: []string{"ledger-v2", "async-capture"},
			Provider: spec.FlagProvider{Type: "http", URL: "https://flags.internal/api/flags/{{.Flag}}",
				BodyTemplate: `{"rollout": {{.Percent}}, "enabled": {{.Enabled}}}`,
				Headers:      map[string]string{"X-Release": "{{.Service}}", "X-Actor": "shepherd"},
				HeaderEnv:    map[string]string{"Authorization": "FLAGS_TOKEN"}},
		},
		Notifications: []spec.Notification{
			{Type: "slack", URLEnv: "SLACK_RELEASES_URL"},
			{Type: "webhook", URL: "https://hooks.internal/oncall", Events: []string{"approvalNeeded", "rolledBack", "rollbackFailed"},
				Templates: map[string]string{"rolledBack": "rolled back: {{.Message}}", "approvalNeeded": "approve: {{.ApproveCommand}}"}},
		},
		Tag: &spec.Tag{Repo: "/srv/git/payments", Push: true},
	}
}

// minimalSpec has only what a spec must give; everything else is a default.
func minimalSpec() spec.Release {
	return spec.Release{Service: "checkout", Version: "v2", Target: spec.Target{Type: spec.TargetLocal}}
}

func exampleSpec(t *testing.T) spec.Release {
	t.Helper()
	data, err := examples.FS.ReadFile("release.yaml")
	if err != nil {
		t.Skipf("examples/release.yaml is not there: %v", err)
	}
	r, err := spec.Parse(data)
	if err != nil {
		t.Fatalf("examples/release.yaml: %v", err)
	}
	return r
}

// golden compares got with testdata/name.golden, or rewrites the file with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (create it with go test ./paperwork -update)", err)
	}
	if bytes.Equal(got, want) {
		return
	}
	gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
	for i := 0; i < max(len(gl), len(wl)); i++ {
		var g, w string
		if i < len(gl) {
			g = gl[i]
		}
		if i < len(wl) {
			w = wl[i]
		}
		if g != w {
			t.Fatalf("%s differs from the output at line %d (if the change is intended: go test ./paperwork -update)\n got: %s\nwant: %s",
				path, i+1, g, w)
		}
	}
	t.Fatalf("%s differs from the output", path)
}

func TestGolden(t *testing.T) {
	specs := []struct {
		name string
		spec func(*testing.T) spec.Release
	}{
		{"example", exampleSpec},
		{"rich", func(*testing.T) spec.Release { return richSpec() }},
		{"minimal", func(*testing.T) spec.Release { return minimalSpec() }},
	}
	for _, s := range specs {
		t.Run(s.name, func(t *testing.T) {
			r := s.spec(t)
			plan, err := Plan(r, start)
			if err != nil {
				t.Fatalf("Plan: %v", err)
			}
			golden(t, s.name+"-plan", plan)
			rb, err := Runbook(r)
			if err != nil {
				t.Fatalf("Runbook: %v", err)
			}
			golden(t, s.name+"-runbook", rb)
		})
	}
}

// TestDeterministic generates each document many times: maps in the spec (exec env, headers, templates)
// must not leak their iteration order into the output.
func TestDeterministic(t *testing.T) {
	r := richSpec()
	for k := range 20 {
		r.Target.Exec.Env[string(rune('A'+k))+"_VAR"] = "x"
	}
	first, err := Plan(r, start)
	if err != nil {
		t.Fatal(err)
	}
	firstRB, err := Runbook(r)
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		if p, _ := Plan(r, start); !bytes.Equal(p, first) {
			t.Fatal("Plan gave different output for the same spec")
		}
		if rb, _ := Runbook(r); !bytes.Equal(rb, firstRB) {
			t.Fatal("Runbook gave different output for the same spec")
		}
	}
}

func TestInvalidSpecIsAnError(t *testing.T) {
	r := minimalSpec()
	r.Stages = []spec.Stage{{Percent: 50}} // the last stage must be 100
	var verr *spec.ValidationError
	if _, err := Plan(r, start); !errors.As(err, &verr) {
		t.Errorf("Plan: got %v, want a *spec.ValidationError", err)
	}
	if _, err := Runbook(r); !errors.As(err, &verr) {
		t.Errorf("Runbook: got %v, want a *spec.ValidationError", err)
	}
	r = richSpec()
	r.Notifications[0].Type = "pager" // only the provider's own validation catches this
	if _, err := Plan(r, start); err == nil || !strings.Contains(err.Error(), "notifications[0]") {
		t.Errorf("Plan with an unknown notifier: got %v, want a notifications[0] problem", err)
	}
}

func riskOf(t *testing.T, r spec.Release, mode string) Risk {
	t.Helper()
	for _, k := range Risks(r) {
		if k.Mode == mode {
			return k
		}
	}
	t.Fatalf("no risk %q", mode)
	return Risk{}
}

func TestApproverUnavailableRatedHigherWithoutTimeout(t *testing.T) {
	withTimeout := richSpec()
	noTimeout := richSpec()
	noTimeout.Stages[1].ApprovalTimeout = 0
	noTimeout.Stages[1].OnApprovalTimeout = ""
	noGates := richSpec()
	noGates.Stages[1] = spec.Stage{Percent: 25, Soak: noGates.Stages[1].Soak}
	noGates.Prechecks = noGates.Prechecks[:3]

	a := riskOf(t, withTimeout, RiskApproverUnavailable)
	b := riskOf(t, noTimeout, RiskApproverUnavailable)
	c := riskOf(t, noGates, RiskApproverUnavailable)
	if b.Rating() <= a.Rating() {
		t.Errorf("gate without timeout rated %s, with timeout %s: want higher without", b.Rating(), a.Rating())
	}
	if b.Rating() != High || !strings.Contains(b.Why, "no timeout") {
		t.Errorf("gate without timeout: rating %s, why %q", b.Rating(), b.Why)
	}
	if c.Rating() != Low || a.Likelihood <= c.Likelihood {
		t.Errorf("no gates rated %s (likelihood %s), a gate with timeout %s (%s)", c.Rating(), c.Likelihood, a.Rating(), a.Likelihood)
	}
	// A gate nobody hears about is as bad as one without a timeout.
	silent := richSpec()
	silent.Notifications = silent.Notifications[1:]
	silent.Notifications[0].Events = []string{"rollbackFailed"}
	if s := riskOf(t, silent, RiskApproverUnavailable); s.Likelihood != High {
		t.Errorf("no channel receives approvalNeeded: likelihood %s, want High", s.Likelihood)
	}
	plan, err := Plan(noTimeout, start)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(plan), "| "+RiskApproverUnavailable+" | High | Medium | **High** |") {
		t.Errorf("the plan's matrix does not rate %q High for a gate without timeout", RiskApproverUnavailable)
	}
}

func TestSLOBreachImpactFollowsAnalysis(t *testing.T) {
	on := minimalSpec()
	off := minimalSpec()
	off.Analysis.Disabled = true
	wide := minimalSpec()
	wide.Stages = []spec.Stage{{Percent: 50}, {Percent: 100}}
	if got := riskOf(t, on, RiskSLOBreach).Impact; got != Low {
		t.Errorf("1%% first stage, 30s detection: impact %s, want Low", got)
	}
	if got := riskOf(t, wide, RiskSLOBreach).Impact; got != High {
		t.Errorf("50%% first stage: impact %s, want High", got)
	}
	if got := riskOf(t, off, RiskSLOBreach).Impact; got != High {
		t.Errorf("analysis disabled: impact %s, want High", got)
	}
	if got := riskOf(t, off, RiskMetricsUnavailable); got.Rating() != Low {
		t.Errorf("analysis disabled: metrics risk %s, want Low", got.Rating())
	}
}

func TestDeployRiskWithoutHealthCommand(t *testing.T) {
	r := richSpec()
	with := riskOf(t, r, RiskDeployFails)
	r.Target.Exec.Health = ""
	without := riskOf(t, r, RiskDeployFails)
	if without.Impact <= with.Impact {
		t.Errorf("no health command: impact %s, with one %s; want higher without", without.Impact, with.Impact)
	}
}

func TestRunbookRendersExecRollback(t *testing.T) {
	rb, err := Runbook(richSpec())
	if err != nil {
		t.Fatal(err)
	}
	s := string(rb)
	for _, want := range []string{
		// traffic to 0 first, with the compensation's stage, the template rendered and its quotes escaped
		`SHEPHERD_PERCENT=0 SHEPHERD_STAGE=1 sh -c './set-weight.sh '\''payments'\'' v3.1.0 0'`,
		`SHEPHERD_PERCENT=0 SHEPHERD_STAGE=0 sh -c 'kubectl -n production delete deploy/payments-v3.1.0 --ignore-not-found'`,
		"export SHEPHERD_SERVICE=payments \\\n       SHEPHERD_ENVIRONMENT=production \\\n       SHEPHERD_VERSION=v3.1.0",
		"SHEPHERD_RELEASE_ID=release:payments:production/RUN_ID",
		"cd /srv/deploy",
		"export CLUSTER=eu-1   # target.exec.env\nexport KUBECONFIG=/etc/shepherd/kubeconfig   # target.exec.env\nexport MESH=istio",
		// flags off between traffic and removal, as the provider would send it
		`curl -sS -X PUT -H 'Content-Type: application/json' -H 'X-Actor: shepherd' -H 'X-Release: payments' -H "Authorization: ${FLAGS_TOKEN}" https://flags.internal/api/flags/ledger-v2 -d '{"rollout": 0, "enabled": false}'`,
		// gated stage and sign-off
		`shepherd approve payments --env production --stage 2 --comment 'COMMENT'`,
		`temporal workflow update execute --workflow-id release:payments:production --name approve --input '{"by":"you","stage":2,"comment":"COMMENT"}'`,
		`shepherd approve payments --env production --role qa`,
		`temporal workflow signal --workflow-id release:payments:production --name abort --input '{"by":"you","reason":"REASON"}'`,
		// diagnosis
		"temporal operator search-attribute create --name ReleaseTrafficPercent --type Int",
		`curl -sS -H "Authorization: Bearer ${PROM_TOKEN}" https://prometheus.internal:9090/api/v1/query --data-urlencode 'query=up'`,
		"temporal task-queue describe --task-queue shepherd",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("runbook lacks %q", want)
		}
	}
	traffic := strings.Index(s, "# 1. traffic to stable first")
	flagsOff := strings.Index(s, "# 2. feature flags off")
	remove := strings.Index(s, "# 3. remove the canary")
	if traffic < 0 || !(traffic < flagsOff && flagsOff < remove) {
		t.Errorf("by-hand rollback order: traffic at %d, flags at %d, removal at %d; want them in that order", traffic, flagsOff, remove)
	}
}

func TestRunbookLocalTargetCurls(t *testing.T) {
	r := minimalSpec()
	r.Target.Local = &spec.LocalTarget{Controller: "http://fleet.test:9300/"}
	r.Flags = &spec.Flags{Names: []string{"new-cart", `odd"name`}, Provider: spec.FlagProvider{Type: "flagd-file", Path: "/etc/flagd/flags.json"}}
	rb, err := Runbook(r)
	if err != nil {
		t.Fatal(err)
	}
	s := string(rb)
	for _, want := range []string{
		`curl -sS -X POST -H 'Content-Type: application/json' http://fleet.test:9300/v1/services/checkout/traffic -d '{"version":"v2","percent":0}'`,
		`curl -sS -X POST -H 'Content-Type: application/json' http://fleet.test:9300/v1/services/checkout/rollback -d '{"version":"v2"}'`,
		"temporal workflow start --task-queue shepherd --type Release --workflow-id release:checkout:production --input-file release.json",
		"No stage of this release needs approval",
		// flagd file flags off as the provider writes them: defaultVariant off, targeting removed
		`jq '.flags["new-cart"].defaultVariant = "off" | del(.flags["new-cart"].targeting) | ` +
			`.flags["odd\"name"].defaultVariant = "off" | del(.flags["odd\"name"].targeting)' ` +
			`/etc/flagd/flags.json > /etc/flagd/flags.json.tmp && mv /etc/flagd/flags.json.tmp /etc/flagd/flags.json`,
		"# 3. remove the canary",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("runbook lacks %q", want)
		}
	}
	if strings.Contains(s, "sh -c") {
		t.Error("a local-target runbook shows exec commands")
	}
}

func TestPlanTimeline(t *testing.T) {
	plan, err := Plan(richSpec(), start)
	if err != nil {
		t.Fatal(err)
	}
	s := string(plan)
	for _, want := range []string{
		// stage 1 starts after the sign-off; stage 2 after its approval too; the soaks add up to 1h.
		"| Stage 1 | 5% | 10m | 2026-03-02 09:00 UTC (T+0) + sign-off wait | 2026-03-02 09:10 UTC (T+10m) + sign-off wait |",
		"| Stage 2 | 25% | 20m | 2026-03-02 09:10 UTC (T+10m) + sign-off wait + approval wait | 2026-03-02 09:30 UTC (T+30m) + sign-off wait + approval wait |",
		"| Earliest completion | 2026-03-02 10:00 UTC (T+1h) + sign-off wait + approval wait |",
		"approval gate: after 2h without approval, abort",
		// success criteria: thresholds, baseline margins, interval
		"| `p99-latency` | ≤ 0.3, ≤ stable + 10% | at most 10% above stable (`v3.0.2`, same query) |",
		"| `error-rate` | ≤ 0.005 |",
		"every 1m",
		// rollback triggers with the limits
		"one check fails 2 times in a row: `error-rate` > 0.005; `p99-latency` > 0.3 or > stable + 10%",
		"one check is inconclusive 3 times in a row",
		// communication: a secret inline URL is not printed
		"inline URL at `hooks.internal`",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("plan lacks %q", want)
		}
	}
	if strings.Contains(s, "/oncall") {
		t.Error("the plan prints a webhook URL's path, where webhook secrets live")
	}
	// Seconds appear only when needed.
	sec, err := Plan(minimalSpec(), start.Add(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(sec), "2026-03-02 09:15:30 UTC (T+15m)") {
		t.Error("a start with seconds is not shown to the second")
	}
}

func TestPlanWarnsWithoutNotifications(t *testing.T) {
	plan, err := Plan(minimalSpec(), start)
	if err != nil {
		t.Fatal(err)
	}
	s := string(plan)
	if !strings.Contains(s, "> **Warning:** Notifications: none configured.") {
		t.Error("no warning about missing notification channels")
	}
	if r := riskOf(t, minimalSpec(), RiskNobodyTold); r.Rating() != High {
		t.Errorf("no channels: %s rated %s, want High", RiskNobodyTold, r.Rating())
	}
	rich, err := Plan(richSpec(), start)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(rich), "none configured") {
		t.Error("a spec with channels is warned about having none")
	}
}

func TestMarkdownEscaping(t *testing.T) {
	for in, want := range map[string]string{
		"a|b":  "`a\\|b`",
		"a`b":  "``a`b``",
		"`a":   "`` `a ``",
		"x\ny": "`x y`",
	} {
		if got := code(in); got != want {
			t.Errorf("code(%q) = %s, want %s", in, got, want)
		}
	}
	if got := cell("a | b\nc"); got != `a \| b c` {
		t.Errorf("cell: %q", got)
	}
	if got := shq("it's"); got != `'it'\''s'` {
		t.Errorf("shq: %s", got)
	}
	if got := dur(75 * time.Minute); got != "1h15m" {
		t.Errorf("dur: %s", got)
	}
	if got := dur(4 * time.Hour); got != "4h" {
		t.Errorf("dur: %s", got)
	}
	if got := dur(90 * time.Second); got != "1m30s" {
		t.Errorf("dur: %s", got)
	}
}
