package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const paperworkSpec = `service: checkout
version: v2
previousVersion: v1
target: demo-fleet
stages:
  - {percent: 10, soak: 5m}
  - {percent: 100, soak: 5m, approval: true, approvalTimeout: 1h}
`

// writePaperworkSpec writes a spec and points $SHEPHERD_CONFIG at examples/shepherd.yaml, whose
// providers the specs here name.
func writePaperworkSpec(t *testing.T, content string) string {
	t.Helper()
	t.Setenv("SHEPHERD_CONFIG", "../../examples/shepherd.yaml")
	path := filepath.Join(t.TempDir(), "release.yaml")
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func runPaperwork(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Main(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestPlanCommand(t *testing.T) {
	path := writePaperworkSpec(t, paperworkSpec)
	code, out, errOut := runPaperwork(t, "plan", "-f", path) // starts now
	if code != ExitOK || !strings.HasPrefix(out, "# Release plan: checkout v2 to production\n") {
		t.Fatalf("exit %d, stdout starts %.60q, stderr: %s", code, out, errOut)
	}

	code, out, errOut = runPaperwork(t, "plan", "-f", path, "--start", "2026-03-02T09:00:00+01:00")
	if code != ExitOK {
		t.Fatalf("exit %d, stderr: %s", code, errOut)
	}
	for _, want := range []string{
		"# Release plan: checkout v2 to production\n",
		"## Risk assessment",
		// times in the zone of --start; stage 2 waits for approval
		"| Stage 2 | 100% | 5m | 2026-03-02 09:05 +0100 (T+5m) + approval wait |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("plan output lacks %q", want)
		}
	}
}

func TestRunbookCommandWritesFile(t *testing.T) {
	path := writePaperworkSpec(t, paperworkSpec)
	dest := filepath.Join(t.TempDir(), "runbook.md")
	code, out, errOut := runPaperwork(t, "runbook", "-f", path, "--out", dest)
	if code != ExitOK {
		t.Fatalf("exit %d, stderr: %s", code, errOut)
	}
	if !strings.Contains(out, dest) {
		t.Errorf("stdout does not name the file written: %q", out)
	}
	doc, err := os.ReadFile(dest)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"# Runbook: checkout v2 in production\n",
		"shepherd approve checkout --env production --stage 2",
		`curl -sS -X POST -H 'Content-Type: application/json' http://127.0.0.1:9300/v1/services/checkout/traffic -d '{"version":"v2","percent":0}'`,
	} {
		if !strings.Contains(string(doc), want) {
			t.Errorf("runbook lacks %q", want)
		}
	}
}

func TestPaperworkUsageErrors(t *testing.T) {
	invalid := writePaperworkSpec(t, "service: checkout\nversion: v2\ntarget: demo-fleet\nstages: [{percent: 50}]\n")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"invalid spec", []string{"plan", "-f", invalid}, "the last stage must be 100"},
		{"invalid spec for runbook", []string{"runbook", "-f", invalid}, "the last stage must be 100"},
		{"unknown key", []string{"plan", "-f", writePaperworkSpec(t, paperworkSpec+"colour: blue\n")}, "unknown key"},
		{"no spec", []string{"runbook"}, "no spec file given"},
		{"bad start", []string{"plan", "-f", writePaperworkSpec(t, paperworkSpec), "--start", "tomorrow"}, "RFC 3339"},
		{"unknown target", []string{"plan", "-f", writePaperworkSpec(t, strings.Replace(paperworkSpec, "demo-fleet", "k8s-prod", 1))},
			`target: this worker has no target named "k8s-prod": it has "checkout-staging", "demo-fleet"`},
		{"no configuration", []string{"runbook", "-f", writePaperworkSpec(t, paperworkSpec), "--config", ""}, "no worker configuration"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runPaperwork(t, tc.args...)
			if code != ExitUsage {
				t.Errorf("exit %d, want %d (stderr: %s)", code, ExitUsage, errOut)
			}
			if !strings.Contains(errOut, tc.want) {
				t.Errorf("stderr %q lacks %q", errOut, tc.want)
			}
			if out != "" {
				t.Errorf("wrote to stdout on error: %q", out)
			}
		})
	}
}

func TestPaperworkHelpTeaches(t *testing.T) {
	for _, name := range []string{"plan", "runbook"} {
		code, out, _ := runPaperwork(t, name, "--help")
		if code != ExitOK || !strings.Contains(out, "Examples:") || !strings.Contains(out, "shepherd "+name+" -f") {
			t.Errorf("%s --help: exit %d, no examples in %q", name, code, out)
		}
	}
}
