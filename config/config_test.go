package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shepherd-release/shepherd/config"
	"github.com/shepherd-release/shepherd/spec"
)

const sample = `
targets:
  checkout-staging:
    type: exec
    deploy: ./deploy.sh {{shq .Version}}
metrics:
  prod-prometheus: {type: prometheus, address: "http://prometheus:9090"}
notifications:
  releases-slack: {type: slack, url: {env: SLACK_URL}}
reports: {dir: /var/lib/shepherd/reports}
`

func TestParseSplitsTypeFromSettings(t *testing.T) {
	c, err := config.Parse([]byte(sample))
	if err != nil {
		t.Fatal(err)
	}
	tg := c.Targets["checkout-staging"]
	if tg.Type != "exec" || string(tg.Settings) != `{"deploy":"./deploy.sh {{shq .Version}}"}` {
		t.Errorf("target = %q %s", tg.Type, tg.Settings)
	}
	if c.Reports.Dir != "/var/lib/shepherd/reports" {
		t.Errorf("reports.dir = %q", c.Reports.Dir)
	}
	type prom struct {
		Address string `json:"address"`
	}
	p, err := config.Decode[prom](c.Metrics["prod-prometheus"])
	if err != nil || p.Address != "http://prometheus:9090" {
		t.Errorf("Decode = %+v, %v", p, err)
	}
}

func TestParseRejectsWithFieldPaths(t *testing.T) {
	for name, tc := range map[string]struct{ doc, want string }{
		"unknown section": {"target: {}", `unknown key "target"`},
		"missing type":    {"metrics: {prom: {address: x}}", "metrics.prom.type: required"},
		"bad name":        {"targets: {Prod_1: {type: exec}}", "targets.Prod_1: the name must be"},
		"not a mapping":   {"targets: {a: [1]}", "want a mapping"},
		"a list":          {"- a", "want a mapping of sections"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := config.Parse([]byte(tc.doc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
	_, err := config.Parse([]byte("metrics: {a: {}, B: {type: x}}"))
	var verr *config.ValidationError
	if !errors.As(err, &verr) || len(verr.Problems) != 2 {
		t.Fatalf("want every problem at once, got %v", err)
	}
}

func TestDecodeRejectsUnknownKeys(t *testing.T) {
	c, err := config.Parse([]byte("metrics: {p: {type: prometheus, adress: x}}"))
	if err != nil {
		t.Fatal(err)
	}
	type prom struct {
		Address string        `json:"address"`
		Timeout spec.Duration `json:"timeout"`
	}
	if _, err := config.Decode[prom](c.Metrics["p"]); err == nil || !strings.Contains(err.Error(), `unknown key "adress" for type "prometheus"`) {
		t.Errorf("error = %v", err)
	}
	c, _ = config.Parse([]byte("metrics: {p: {type: prometheus, address: [1]}}"))
	if _, err := config.Decode[prom](c.Metrics["p"]); err == nil || !strings.Contains(err.Error(), "address: want string") {
		t.Errorf("error = %v", err)
	}
}

func TestLoadBoundsTheFileBeforeReading(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, []byte("targets: {}\n"+strings.Repeat("#", config.MaxBytes)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := config.Load(big); err == nil || !strings.Contains(err.Error(), "the limit is") {
		t.Errorf("big file: %v", err)
	}
	// A file that never ends is bounded too.
	if _, err := config.Load("/dev/zero"); err == nil {
		t.Error("/dev/zero must be refused")
	}
	ok := filepath.Join(dir, "ok.yaml")
	if err := os.WriteFile(ok, []byte(sample), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := config.Load(ok); err != nil {
		t.Errorf("Load: %v", err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("targets: {x: {}}"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := config.Load(bad); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("the error should name the file: %v", err)
	}
}

// No provider may send the worker's own Temporal credentials to its endpoint, however the source is named.
func TestTemporalCredentialsCannotBeASource(t *testing.T) {
	_, err := config.Parse([]byte(`
metrics:
  prom: {type: prometheus, address: "https://evil.example", bearerTokenEnv: TEMPORAL_API_KEY}
  web: {type: web, url: "https://evil.example/x", secretHeaders: {Authorization: {env: temporal_tls_client_key_data}}}
notifications:
  hook: {type: webhook, urlEnv: TEMPORAL_ADDRESS}
flags:
  svc: {type: http, url: "https://flags/{{.Flag}}", headerEnv: {X-Key: TEMPORAL_API_KEY}}
targets:
  ok: {type: exec, deploy: d, traffic: t, promote: p, rollback: r, env: {TEMPORAL_NAMESPACE_HINT: fine, X: TEMPORAL_IS_A_VALUE_HERE}}
`))
	var verr *config.ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("want a ValidationError, got %v", err)
	}
	var paths []string
	for _, p := range verr.Problems {
		paths = append(paths, p.Path)
	}
	want := []string{"flags.svc.headerEnv.X-Key", "metrics.prom.bearerTokenEnv", "metrics.web.secretHeaders.Authorization.env", "notifications.hook.urlEnv"}
	if strings.Join(paths, " ") != strings.Join(want, " ") {
		t.Errorf("problems at %v, want %v (%v)", paths, want, err)
	}
}

func TestAlertWebhookIsOffUnlessGivenAndChecked(t *testing.T) {
	c, err := config.Parse([]byte(sample))
	if err != nil || c.Alerts != nil {
		t.Fatalf("a configuration without alerts: %+v, %v; want no webhook", c.Alerts, err)
	}
	c, err = config.Parse([]byte("alerts: {webhook: {tokenFile: /etc/shepherd/am-token}}"))
	if err != nil {
		t.Fatal(err)
	}
	w := c.Alerts.Webhook.WithDefaults()
	if w.Path != "/alerts/abort" || w.ServiceLabel != "service" || w.EnvironmentLabel != "environment" {
		t.Errorf("defaults: %+v", w)
	}
	for name, tc := range map[string]struct{ doc, want string }{
		"no token":       {"alerts: {webhook: {}}", "alerts.webhook: a bearer token is required"},
		"two tokens":     {"alerts: {webhook: {tokenFile: /t, tokenEnv: T}}", "give one of tokenFile and tokenEnv"},
		"temporal token": {"alerts: {webhook: {tokenEnv: TEMPORAL_API_KEY}}", "names the worker's own Temporal credential"},
		"reserved path":  {"alerts: {webhook: {tokenEnv: T, path: /metrics}}", "alerts.webhook.path"},
		"relative path":  {"alerts: {webhook: {tokenEnv: T, path: abort}}", "alerts.webhook.path"},
		"bad label":      {"alerts: {webhook: {tokenEnv: T, serviceLabel: app-name}}", "alerts.webhook.serviceLabel"},
		"same labels":    {"alerts: {webhook: {tokenEnv: T, serviceLabel: env, environmentLabel: env}}", "they must differ"},
		"unknown key":    {"alerts: {webhook: {tokenEnv: T, token: s3cret}}", `unknown key "token"`},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := config.Parse([]byte(tc.doc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("the error repeats the value of an unknown key: %v", err)
			}
		})
	}
}
