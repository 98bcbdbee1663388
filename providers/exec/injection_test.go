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

// The shipped exec example quotes every value with shq, so even a version that got past validation (a
// worker running older validation, a spec edited in history) runs no shell code: proven with a real sh.
func TestExampleCommandsDoNotRunInjectedShell(t *testing.T) {
	src, err := os.ReadFile("../../examples/release-exec.yaml")
	require.NoError(t, err)
	dir := t.TempDir()
	log, marker := filepath.Join(dir, "demo.log"), filepath.Join(dir, "pwned")
	r, err := spec.Parse([]byte(strings.ReplaceAll(string(src), "/tmp/shepherd-exec-demo.log", log)))
	require.NoError(t, err)
	cfg := r.WithDefaults().Target
	d := spec.TemplateData{
		Service: "checkout", Environment: "staging", Percent: 10, Stage: 1,
		Version:         `v2$(touch${IFS}` + marker + `)`,
		PreviousVersion: `v1"; touch ` + marker + `; echo "`,
	}
	ctx := context.Background()
	var tgt Target
	for _, step := range []func() error{
		func() error { return tgt.Deploy(ctx, cfg, d) },
		func() error { return tgt.Health(ctx, cfg, d) },
		func() error { return tgt.SetTraffic(ctx, cfg, d) },
		func() error { return tgt.Promote(ctx, cfg, d) },
		func() error { return tgt.Rollback(ctx, cfg, d) },
	} {
		require.NoError(t, step())
	}
	_, statErr := os.Stat(marker)
	assert.True(t, os.IsNotExist(statErr), "an injected command ran")
	out, err := os.ReadFile(log)
	require.NoError(t, err)
	assert.Contains(t, string(out), "deploy "+d.Version+" beside "+d.PreviousVersion+"\n")
}
