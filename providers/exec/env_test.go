package exec

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shepherd-release/shepherd/spec"
)

const workerKey = "tmprl-worker-api-key-0123456789"

// A command sees PATH, HOME, its declared env and SHEPHERD_*, never the worker's own environment.
func TestCommandGetsAMinimalEnvironment(t *testing.T) {
	t.Setenv("TEMPORAL_API_KEY", workerKey)
	t.Setenv("SOME_WORKER_SETTING", "worker-only")
	out := filepath.Join(t.TempDir(), "env")
	cfg := target(t, t.TempDir(), Config{Deploy: "env > " + out, Env: map[string]string{"APP_REGION": "eu-1"}})
	require.NoError(t, cfg.Deploy(context.Background(), spec.TemplateData{Version: "v2"}))
	b, err := os.ReadFile(out)
	require.NoError(t, err)
	env := string(b)
	assert.NotContains(t, env, workerKey)
	assert.NotContains(t, env, "TEMPORAL_API_KEY")
	assert.NotContains(t, env, "SOME_WORKER_SETTING")
	assert.Contains(t, env, "PATH=")
	assert.Contains(t, env, "APP_REGION=eu-1")
	assert.Contains(t, env, "SHEPHERD_VERSION=v2")
}

// A failed command's output becomes the step's error (and so the rollback reason, the report and the
// notifications): it is bounded and a secret in it is masked.
func TestFailedCommandOutputIsBoundedAndRedacted(t *testing.T) {
	t.Setenv("TEMPORAL_API_KEY", workerKey)
	secretFile := filepath.Join(t.TempDir(), "leak")
	require.NoError(t, os.WriteFile(secretFile, []byte(workerKey), 0o600))
	cfg := target(t, t.TempDir(), Config{Deploy: "head -c 100000 /dev/zero | tr '\\0' x; echo; cat " + secretFile + "; exit 3"})
	err := cfg.Deploy(context.Background(), spec.TemplateData{Version: "v2"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "deploy command exited with code 3")
	assert.NotContains(t, err.Error(), workerKey)
	assert.Contains(t, err.Error(), "[redacted]")
	assert.Less(t, len(err.Error()), 2200)
	assert.False(t, strings.Contains(err.Error(), strings.Repeat("x", 3000)))
}
