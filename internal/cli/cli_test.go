package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := Main(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestValidateExample(t *testing.T) {
	code, out, _ := run(t, "validate", "-f", "../../examples/release-exec.yaml")
	require.Equal(t, ExitOK, code)
	assert.Contains(t, out, "is valid: workflow ID release:checkout:staging")
	assert.Contains(t, out, "| 2 | 50% | 5s | required (10m0s, then abort) |")

	code, out, _ = run(t, "validate", "-f", "../../examples/release-exec.yaml", "-o", "json")
	require.Equal(t, ExitOK, code)
	var spec map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &spec))
	assert.Equal(t, "staging", spec["environment"])
}

// With --config, validate checks the names against the worker configuration, as a worker's preflight.
func TestValidateAgainstAWorkerConfiguration(t *testing.T) {
	code, _, errOut := run(t, "validate", "-f", "../../examples/release-exec.yaml", "--config", "../../examples/shepherd.yaml")
	require.Equal(t, ExitOK, code, errOut)
	path := filepath.Join(t.TempDir(), "other.yaml")
	require.NoError(t, os.WriteFile(path, []byte("service: checkout\nversion: v2\ntarget: checkout-prod\nanalysis: {source: thanos}\n"), 0o644))
	code, _, errOut = run(t, "validate", "-f", path, "--config", "../../examples/shepherd.yaml")
	assert.Equal(t, ExitUsage, code)
	assert.Contains(t, errOut, `target: this worker has no target named "checkout-prod": it has "checkout-staging", "demo-fleet"`)
	assert.Contains(t, errOut, `analysis.source: this worker has no metrics source named "thanos": it has "prometheus"`)
}

func TestInvalidSpecIsAUsageError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.yaml")
	require.NoError(t, os.WriteFile(path, []byte("service: checkout\nversion: v2\ntarget: {type: kubernetes}\nstages: [{percent: 50}]\n"), 0o644))
	code, _, errOut := run(t, "validate", "-f", path)
	assert.Equal(t, ExitUsage, code)
	assert.Contains(t, errOut, `target: a spec no longer describes its target`)
	assert.Contains(t, errOut, "stages[0].percent: the last stage must be 100, got 50")
	assert.Contains(t, errOut, "hint: docs/spec.md lists every key")

	code, _, errOut = run(t, "validate")
	assert.Equal(t, ExitUsage, code)
	assert.Contains(t, errOut, "no spec file given")
}

func TestServiceArgumentIsRequired(t *testing.T) {
	code, _, errOut := run(t, "status")
	assert.Equal(t, ExitUsage, code)
	assert.Contains(t, errOut, "name the service")
}

func TestUnreachableServerGivesAHint(t *testing.T) {
	t.Setenv("TEMPORAL_ADDRESS", "127.0.0.1:1")
	code, _, errOut := run(t, "status", "checkout")
	assert.Equal(t, ExitError, code)
	assert.Contains(t, errOut, "hint:")
}

func TestConfigCommand(t *testing.T) {
	code, out, errOut := run(t, "config", "--config", "../../examples/shepherd.yaml")
	require.Equal(t, ExitOK, code, errOut)
	assert.Contains(t, out, "examples/shepherd.yaml is valid.")
	assert.Contains(t, out, "checkout-staging  exec")
	assert.Contains(t, out, "prometheus        prometheus  PromQL instant queries against http://127.0.0.1:9090")

	code, out, _ = run(t, "config", "--config", "../../examples/shepherd.yaml", "-o", "json")
	require.Equal(t, ExitOK, code)
	var rep map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &rep))
	assert.Contains(t, rep["providers"], "targets")

	bad := filepath.Join(t.TempDir(), "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("metrics: {p: {type: prometheus, bearerTokenEnv: SHEPHERD_TEST_UNSET_VAR}}\n"), 0o600))
	code, _, errOut = run(t, "config", "--config", bad)
	assert.Equal(t, ExitUsage, code)
	assert.Contains(t, errOut, "metrics.p: environment variable SHEPHERD_TEST_UNSET_VAR (bearerTokenEnv) is not set")
	code, _, errOut = run(t, "config", "--config", bad, "--no-secrets")
	assert.Equal(t, ExitOK, code, errOut)
}

func TestUnknownFlagIsAUsageErrorWithTheUsageLine(t *testing.T) {
	code, _, stderr := run(t, "start", "--bogus")
	if code != ExitUsage {
		t.Errorf("exit %d, want %d (usage)", code, ExitUsage)
	}
	for _, want := range []string{"unknown flag: --bogus", "usage: shepherd start -f release.yaml [--wait]", "shepherd start --help"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
}

func TestStartHelpListsItsExitCodes(t *testing.T) {
	code, stdout, _ := run(t, "start", "--help")
	if code != ExitOK {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"Exit codes:", "2  invalid spec or usage", "3  with --wait: rolled back", "5  refused: another release"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("start --help lacks %q", want)
		}
	}
}

// Spec errors say where (file, line and column of the key), one problem a line, and point to the docs once.
func TestSpecErrorsSayWhere(t *testing.T) {
	dir := t.TempDir()
	write := func(name, doc string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(doc), 0o644))
		return p
	}
	misspelt := write("misspelt.yaml", "service: checkout\nversion: v2\ntarget: checkout-staging\nstages:\n  - {percent: 50, soak: 5s, aproval: true}\n  - percent: 100\n")
	code, _, stderr := run(t, "validate", "-f", misspelt)
	assert.Equal(t, ExitUsage, code)
	assert.Equal(t, "error: "+misspelt+`: line 5, column 29: unknown key "aproval" in stages[0]; did you mean "approval"? (docs/spec.md)`+"\n", stderr)

	invalid := write("invalid.yaml", "service: checkout\nversion: v2\ntarget: checkout-staging\nstages:\n  - percent: 50\n  - percent: 40\n")
	code, _, stderr = run(t, "validate", "-f", invalid)
	assert.Equal(t, ExitUsage, code)
	assert.Equal(t, "error: "+invalid+": invalid release spec (2 problems):\n"+
		"  line 6, column 5: stages[1].percent: must be greater than stages[0].percent (50)\n"+
		"  line 6, column 5: stages[1].percent: the last stage must be 100, got 40\n"+
		"hint: docs/spec.md lists every key\n", stderr)
}
