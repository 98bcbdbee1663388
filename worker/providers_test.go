package worker

import (
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/shepherd-release/shepherd/approvals"
	"github.com/shepherd-release/shepherd/config"
)

// TestEveryTypeBuilds builds one provider of every registered type from a minimal configuration, so a
// table entry whose constructor does not fit its interface fails here rather than at a worker's start.
func TestEveryTypeBuilds(t *testing.T) {
	t.Setenv("SHEPHERD_TEST_HOOK", "https://hooks.example/x")
	cfg, err := config.Parse([]byte(`
metrics:
  prom: {type: prometheus, address: "http://127.0.0.1:9090"}
  slo: {type: web, url: "https://slo.internal/v?q={{.Query}}", jsonPath: value}
prechecks:
  artifact: {type: http, url: "https://registry.internal/v2/x/manifests/{{.Version}}"}
  migrations: {type: exec, command: "true"}
flags:
  file: {type: flagd-file, path: /tmp/flags.json}
  svc: {type: http, url: "http://flags.internal/api/{{.Flag}}"}
notifications:
  chat: {type: slack, urlEnv: SHEPHERD_TEST_HOOK}
  events: {type: webhook, url: "https://events.internal/shepherd"}
repositories:
  checkout: {type: git, repo: /srv/git/checkout}
reports: {dir: /tmp/reports}
`))
	if err != nil {
		t.Fatal(err)
	}
	p, err := Build(cfg, BuildOptions{CheckSecrets: true})
	if err != nil {
		t.Fatal(err)
	}
	for section, n := range map[string]int{
		config.SectionMetrics: len(p.Metrics), config.SectionPrechecks: len(p.Prechecks), config.SectionFlags: len(p.Flags),
		config.SectionNotifications: len(p.Notifications), config.SectionRepositories: len(p.Repositories),
	} {
		if n != 2 && !(section == config.SectionRepositories && n == 1) {
			t.Errorf("%s: built %d providers", section, n)
		}
	}
	for _, typ := range [][2]string{{"metrics", "prometheus"}, {"metrics", "web"}, {"notifications", "slack"}} {
		found := false
		for _, d := range p.Descriptions[typ[0]] {
			found = found || (d.Type == typ[1] && d.Summary != "")
		}
		if !found {
			t.Errorf("no description of a %s %s: %+v", typ[0], typ[1], p.Descriptions[typ[0]])
		}
	}
	if p.ReportDir != "/tmp/reports" {
		t.Errorf("ReportDir = %q", p.ReportDir)
	}
}

func TestBuildReportsEveryProblemWithItsPath(t *testing.T) {
	cfg, err := config.Parse([]byte(`
metrics:
  prom: {type: prometheus, address: "localhost:9090"}
  typo: {type: prometheus, adress: "http://x"}
  k8s: {type: datadog}
  secret: {type: prometheus, bearerTokenEnv: SHEPHERD_TEST_UNSET_TOKEN}
notifications:
  chat: {type: slack}
`))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Build(cfg, BuildOptions{CheckSecrets: true})
	if err == nil {
		t.Fatal("Build accepted a broken configuration")
	}
	for _, want := range []string{
		`metrics.prom: address "localhost:9090" must be an http:// or https:// URL`,
		`metrics.typo: unknown key "adress" for type "prometheus"`,
		`metrics.k8s.type: unknown type "datadog": this worker knows ["prometheus" "web"]`,
		`metrics.secret: environment variable SHEPHERD_TEST_UNSET_TOKEN (bearerTokenEnv) is not set`,
		`notifications.chat: `,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q:\n%v", want, err)
		}
	}
	// Paperwork builds without reading secrets.
	cfg.Metrics = map[string]config.Provider{"secret": cfg.Metrics["secret"]}
	cfg.Notifications = nil
	if _, err := Build(cfg, BuildOptions{}); err != nil {
		t.Errorf("without CheckSecrets: %v", err)
	}
}

// The approval policy comes from the worker configuration: trust anchors from an allowed_signers file,
// roles, where unsigned approvals and four eyes apply, and freeze windows ready to evaluate.
func TestBuildApprovals(t *testing.T) {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	signers := filepath.Join(t.TempDir(), "allowed_signers")
	if err := os.WriteFile(signers, []byte("alice@example.com "+string(ssh.MarshalAuthorizedKey(key))), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse([]byte(`
approvals:
  allowedSigners: ` + signers + `
  roles: {sre: [alice@example.com]}
  unsignedEnvironments: [staging]
  fourEyesEnvironments: [production]
  breakGlassRoles: [sre]
  freezes:
    - {name: weekend, environments: [production], weekly: "Fri 16:00-Mon 08:00", timeZone: UTC}
`))
	if err != nil {
		t.Fatal(err)
	}
	p, err := Build(cfg, BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pol := p.Activities().Approvals
	if pol == nil || pol.Verifier == nil {
		t.Fatal("no policy or no verifier built")
	}
	if !pol.FourEyes("production") || pol.FourEyes("staging") || !pol.AllowsUnsigned("staging") || pol.AllowsUnsigned("production") {
		t.Errorf("environments: %+v", pol)
	}
	saturday := time.Date(2026, 3, 7, 12, 0, 0, 0, time.UTC)
	if st := approvals.FreezeAt(pol.Freezes, "production", saturday); !st.Frozen || st.Name != "weekend" {
		t.Errorf("Saturday noon in production: %+v, want the weekend freeze", st)
	}

	// Without an approvals section the policy is strict: no unsigned approval counts, anywhere.
	none, err := Build(config.Config{}, BuildOptions{})
	if err != nil || none.Approvals == nil || none.Approvals.AllowsUnsigned("staging") || none.Approvals.Verifier != nil {
		t.Errorf("no section: %+v, %v", none.Approvals, err)
	}

	for doc, want := range map[string]string{
		"approvals: {allowedSigners: " + signers + ", roles: {qa: [bob@example.com]}}": "approvals.allowedSigners: ",
		"approvals: {allowedSigners: /nonexistent/allowed_signers}":                    "approvals.allowedSigners: open /nonexistent",
		"approvals: {roles: {qa: [alice@example.com]}}":                                "approvals.roles: roles name principals",
		"approvals: {freezes: [{name: x, weekly: someday}]}":                           "approvals.freezes[0].weekly",
		"approvals: {breakGlassRoles: [sre]}":                                          `approvals.breakGlassRoles: role "sre" is not in approvals.roles`,
	} {
		c, err := config.Parse([]byte(doc))
		if err == nil {
			_, err = Build(c, BuildOptions{})
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", doc, err, want)
		}
	}
}
