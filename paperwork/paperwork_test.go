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

	"github.com/shepherd-release/shepherd/config"
	"github.com/shepherd-release/shepherd/examples"
	"github.com/shepherd-release/shepherd/spec"
	"github.com/shepherd-release/shepherd/worker"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// start is the planned start of every golden plan.
var start = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

func ptr(v float64) *float64 { return &v }

// richConfig is the worker configuration richSpec names from: exec target with env and dir, a Prometheus
// source with a credential, http and exec prechecks, flags over HTTP, two notification channels, a git
// repository.
const richConfig = `
targets:
  payments-prod:
    type: exec
    deploy: kubectl -n {{.Environment}} apply -f deploy/{{.Service}}-{{.Version}}.yaml
    health: kubectl -n {{.Environment}} rollout status deploy/{{.Service}}-{{.Version}} --timeout=2m
    traffic: ./set-weight.sh '{{.Service}}' {{.Version}} {{.Percent}}
    promote: ./promote.sh {{.Service}} {{.Version}}
    rollback: kubectl -n {{.Environment}} delete deploy/{{.Service}}-{{.Version}} --ignore-not-found
    timeout: 3m
    dir: /srv/deploy
    env: {KUBECONFIG: /etc/shepherd/kubeconfig, CLUSTER: eu-1, MESH: istio}
metrics:
  prometheus: {type: prometheus, address: "https://prometheus.internal:9090", bearerTokenEnv: PROM_TOKEN}
prechecks:
  artifact: {type: http, url: "https://registry.internal/v2/{{.Service}}/manifests/{{.Version}}", headerEnv: {Authorization: REGISTRY_AUTH}}
  migrations: {type: exec, command: "./migrations-applied.sh {{.Version}}", expect: ok}
flags:
  flags-api:
    type: http
    url: "https://flags.internal/api/flags/{{.Flag}}"
    bodyTemplate: '{"rollout": {{.Percent}}, "enabled": {{.Enabled}}}'
    headers: {X-Release: "{{.Service}}", X-Actor: shepherd}
    headerEnv: {Authorization: FLAGS_TOKEN}
notifications:
  releases-slack: {type: slack, urlEnv: SLACK_RELEASES_URL}
  oncall:
    type: webhook
    url: "https://hooks.internal/oncall?token=secret"
    events: [approvalNeeded, rolledBack, rollbackStuck, rollbackFailed]
    templates: {rolledBack: "rolled back: {{.Message}}", approvalNeeded: "approve: {{.ApproveCommand}}"}
repositories:
  payments: {type: git, repo: /srv/git/payments, push: true}
`

// workerOf builds the providers of a configuration as `shepherd plan --config` does (no secrets read).
func workerOf(t *testing.T, yaml string) Worker {
	t.Helper()
	c, err := config.Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	p, err := worker.Build(c, worker.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return p.Descriptions
}

// richSpec uses every section: an approval gate with a timeout, prechecks of every kind including a
// sign-off, flags, two notification channels, a baseline check and a tag.
func richSpec() spec.Release {
	return spec.Release{
		Service:         "payments",
		Environment:     "production",
		Version:         "v3.1.0",
		PreviousVersion: "v3.0.2",
		Description:     "payments v3.1.0: new ledger writer | CHG-42",
		Target:          "payments-prod",
		Stages: []spec.Stage{
			{Percent: 5, Soak: spec.Duration(10 * time.Minute)},
			{Percent: 25, Soak: spec.Duration(20 * time.Minute), Approval: true,
				ApprovalTimeout: spec.Duration(2 * time.Hour), OnApprovalTimeout: spec.OnTimeoutAbort},
			{Percent: 100, Soak: spec.Duration(30 * time.Minute)},
		},
		Analysis: spec.Analysis{
			Interval:     spec.Duration(time.Minute),
			FailureLimit: 2,
			Source:       "prometheus",
			Checks: []spec.Check{
				{Name: "error-rate", Query: `sum(rate(http_requests_total{service="{{.Service}}",version="{{.Version}}",code=~"5..|429"}[2m]))`, Max: ptr(0.005)},
				{Name: "p99-latency", Query: `histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{service="{{.Service}}",version="{{.Version}}"}[2m])))`,
					Max: ptr(0.3), Baseline: &spec.Baseline{MaxRelativeIncrease: 0.1}},
			},
		},
		Prechecks: []spec.Precheck{
			{Name: "artifact", Check: "artifact"},
			{Name: "migrations", Check: "migrations"},
			{Name: "capacity", Metric: &spec.MetricPrecheck{Query: `cluster:cpu_free:ratio{env="{{.Environment}}"}`, Min: ptr(0.3)}},
			{Name: "qa", Signoff: &spec.Signoff{Role: "qa", Timeout: spec.Duration(4 * time.Hour)}},
		},
		Flags:         &spec.Flags{Names: []string{"ledger-v2", "async-capture"}, Provider: "flags-api"},
		Notifications: []string{"releases-slack", "oncall"},
		Tag:           &spec.Tag{Repo: "payments"},
	}
}

// minimalConfig is the worker configuration minimalSpec names from.
const minimalConfig = `
targets: {checkout: {type: local}}
metrics: {prometheus: {type: prometheus}}
`

// minimalSpec has only what a spec must give; everything else is a default.
func minimalSpec() spec.Release {
	return spec.Release{Service: "checkout", Version: "v2", Target: "checkout"}
}

// exampleWorker is examples/shepherd.yaml.
func exampleWorker(t *testing.T) Worker {
	t.Helper()
	data, err := examples.FS.ReadFile(examples.WorkerConfig)
	if err != nil {
		t.Fatal(err)
	}
	return workerOf(t, string(data))
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
		name   string
		spec   func(*testing.T) spec.Release
		worker func(*testing.T) Worker
	}{
		{"example", exampleSpec, exampleWorker},
		{"rich", func(*testing.T) spec.Release { return richSpec() }, func(t *testing.T) Worker { return workerOf(t, richConfig) }},
		{"minimal", func(*testing.T) spec.Release { return minimalSpec() }, func(t *testing.T) Worker { return workerOf(t, minimalConfig) }},
	}
	for _, s := range specs {
		t.Run(s.name, func(t *testing.T) {
			r, w := s.spec(t), s.worker(t)
			plan, err := Plan(r, w, start)
			if err != nil {
				t.Fatalf("Plan: %v", err)
			}
			golden(t, s.name+"-plan", plan)
			rb, err := Runbook(r, w)
			if err != nil {
				t.Fatalf("Runbook: %v", err)
			}
			golden(t, s.name+"-runbook", rb)
		})
	}
}

// TestDeterministic generates each document many times: maps in the configuration (exec env, headers,
// templates) must not leak their iteration order into the output.
func TestDeterministic(t *testing.T) {
	r := richSpec()
	var env []string
	for k := range 20 {
		env = append(env, string(rune('A'+k))+"_VAR: x")
	}
	w := workerOf(t, strings.Replace(richConfig, "MESH: istio}", "MESH: istio, "+strings.Join(env, ", ")+"}", 1))
	first, err := Plan(r, w, start)
	if err != nil {
		t.Fatal(err)
	}
	firstRB, err := Runbook(r, w)
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		if p, _ := Plan(r, w, start); !bytes.Equal(p, first) {
			t.Fatal("Plan gave different output for the same spec")
		}
		if rb, _ := Runbook(r, w); !bytes.Equal(rb, firstRB) {
			t.Fatal("Runbook gave different output for the same spec")
		}
	}
}

func TestInvalidSpecIsAnError(t *testing.T) {
	r := minimalSpec()
	r.Stages = []spec.Stage{{Percent: 50}} // the last stage must be 100
	var verr *spec.ValidationError
	w := workerOf(t, minimalConfig)
	if _, err := Plan(r, w, start); !errors.As(err, &verr) {
		t.Errorf("Plan: got %v, want a *spec.ValidationError", err)
	}
	if _, err := Runbook(r, w); !errors.As(err, &verr) {
		t.Errorf("Runbook: got %v, want a *spec.ValidationError", err)
	}
	r = richSpec()
	r.Notifications[0] = "pager" // only the worker configuration can tell
	if _, err := Plan(r, workerOf(t, richConfig), start); err == nil ||
		!strings.Contains(err.Error(), `notifications[0]: this worker has no notification channel named "pager": it has "oncall", "releases-slack"`) {
		t.Errorf("Plan with an unknown channel: got %v, want a notifications[0] problem", err)
	}
}

func riskOf(t *testing.T, r spec.Release, w Worker, mode string) Risk {
	t.Helper()
	for _, k := range Risks(r, w) {
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

	w := workerOf(t, richConfig)
	a := riskOf(t, withTimeout, w, RiskApproverUnavailable)
	b := riskOf(t, noTimeout, w, RiskApproverUnavailable)
	c := riskOf(t, noGates, w, RiskApproverUnavailable)
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
	silentWorker := workerOf(t, strings.Replace(richConfig, "events: [approvalNeeded, rolledBack, rollbackStuck, rollbackFailed]", "events: [rollbackFailed]", 1))
	if s := riskOf(t, silent, silentWorker, RiskApproverUnavailable); s.Likelihood != High {
		t.Errorf("no channel receives approvalNeeded: likelihood %s, want High", s.Likelihood)
	}
	plan, err := Plan(noTimeout, w, start)
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
	w := workerOf(t, minimalConfig)
	if got := riskOf(t, on, w, RiskSLOBreach).Impact; got != Low {
		t.Errorf("1%% first stage, 30s detection: impact %s, want Low", got)
	}
	if got := riskOf(t, wide, w, RiskSLOBreach).Impact; got != High {
		t.Errorf("50%% first stage: impact %s, want High", got)
	}
	if got := riskOf(t, off, w, RiskSLOBreach).Impact; got != High {
		t.Errorf("analysis disabled: impact %s, want High", got)
	}
	if got := riskOf(t, off, w, RiskMetricsUnavailable); got.Rating() != Low {
		t.Errorf("analysis disabled: metrics risk %s, want Low", got.Rating())
	}
}

func TestDeployRiskWithoutHealthCommand(t *testing.T) {
	r := richSpec()
	with := riskOf(t, r, workerOf(t, richConfig), RiskDeployFails)
	noHealth := strings.Replace(richConfig, "    health: kubectl -n {{.Environment}} rollout status deploy/{{.Service}}-{{.Version}} --timeout=2m\n", "", 1)
	without := riskOf(t, r, workerOf(t, noHealth), RiskDeployFails)
	if without.Impact <= with.Impact {
		t.Errorf("no health command: impact %s, with one %s; want higher without", without.Impact, with.Impact)
	}
}

func TestRunbookRendersExecRollback(t *testing.T) {
	rb, err := Runbook(richSpec(), workerOf(t, richConfig))
	if err != nil {
		t.Fatal(err)
	}
	s := string(rb)
	for _, want := range []string{
		// traffic to 0 first, with the compensation's stage, the template rendered and its quotes escaped
		`SHEPHERD_PERCENT=0 SHEPHERD_STAGE=1 SHEPHERD_RELEASE_ID=release:payments:production/RUN_ID SHEPHERD_STEP=manual-rollback SHEPHERD_STEP_SEQ="$(date +%s)" sh -c './set-weight.sh '\''payments'\'' v3.1.0 0'`,
		`SHEPHERD_PERCENT=0 SHEPHERD_STAGE=0 SHEPHERD_RELEASE_ID=release:payments:production/RUN_ID SHEPHERD_STEP=manual-rollback SHEPHERD_STEP_SEQ="$(date +%s)" sh -c 'kubectl -n production delete deploy/payments-v3.1.0 --ignore-not-found'`,
		"SHEPHERD_SERVICE=payments SHEPHERD_ENVIRONMENT=production SHEPHERD_VERSION=v3.1.0",
		"cd /srv/deploy",
		"export CLUSTER=eu-1\nexport KUBECONFIG=/etc/shepherd/kubeconfig\nexport MESH=istio",
		// flags off between traffic and removal, as the provider would send it
		`curl -sS -X PUT -H 'Content-Type: application/json' -H 'X-Actor: shepherd' -H 'X-Release: payments' -H "Authorization: ${FLAGS_TOKEN}" https://flags.internal/api/flags/ledger-v2 -d '{"rollout": 0, "enabled": false}'`,
		// gated stage and sign-off
		`shepherd approve payments --env production --stage 2 --comment 'COMMENT'`,
		`temporal workflow update execute --workflow-id release:payments:production --name approve --input '{"by":"you","stage":2,"comment":"COMMENT"}'`,
		`shepherd approve payments --env production --role qa`,
		`temporal workflow signal --workflow-id release:payments:production --name abort --input '{"by":"you","reason":"REASON"}'`,
		// diagnosis
		"temporal operator search-attribute create --name ReleaseTrafficPercent --type Int",
		"the workers have the bearer token in $PROM_TOKEN",
		"shepherd analyze -f release.yaml --config shepherd.yaml --version v3.1.0",
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
	r.Flags = &spec.Flags{Names: []string{"new-cart", `odd"name`}, Provider: "flagd"}
	rb, err := Runbook(r, workerOf(t, `
targets: {checkout: {type: local, controller: "http://fleet.test:9300/"}}
metrics: {prometheus: {type: prometheus}}
flags: {flagd: {type: flagd-file, path: /etc/flagd/flags.json}}
`))
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
	plan, err := Plan(richSpec(), workerOf(t, richConfig), start)
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
		// communication: a secret URL is not printed
		"posted to a webhook on hooks.internal",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("plan lacks %q", want)
		}
	}
	if strings.Contains(s, "/oncall") || strings.Contains(s, "token=secret") {
		t.Error("the plan prints a webhook URL's path or query, where webhook secrets live")
	}
	// Seconds appear only when needed.
	sec, err := Plan(minimalSpec(), workerOf(t, minimalConfig), start.Add(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(sec), "2026-03-02 09:15:30 UTC (T+15m)") {
		t.Error("a start with seconds is not shown to the second")
	}
}

func TestPlanWarnsWithoutNotifications(t *testing.T) {
	plan, err := Plan(minimalSpec(), workerOf(t, minimalConfig), start)
	if err != nil {
		t.Fatal(err)
	}
	s := string(plan)
	if !strings.Contains(s, "> **Warning:** Notifications: none configured.") {
		t.Error("no warning about missing notification channels")
	}
	if r := riskOf(t, minimalSpec(), workerOf(t, minimalConfig), RiskNobodyTold); r.Rating() != High {
		t.Errorf("no channels: %s rated %s, want High", RiskNobodyTold, r.Rating())
	}
	rich, err := Plan(richSpec(), workerOf(t, richConfig), start)
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
