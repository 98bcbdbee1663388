package exec

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shepherd-release/shepherd/config"
	"github.com/shepherd-release/shepherd/spec"
)

// The shipped exec example (examples/shepherd.yaml's checkout-staging, which release-exec.yaml names)
// quotes every value with shq, so even a version that got past validation (a worker running older
// validation, a spec edited in history) runs no shell code: proven with a real sh.
func TestExampleCommandsDoNotRunInjectedShell(t *testing.T) {
	src, err := os.ReadFile("../../examples/shepherd.yaml")
	require.NoError(t, err)
	dir := t.TempDir()
	log, marker := filepath.Join(dir, "demo.log"), filepath.Join(dir, "pwned")
	c, err := config.Parse([]byte(strings.ReplaceAll(string(src), "/tmp/shepherd-exec-demo.log", log)))
	require.NoError(t, err)
	settings, err := config.Decode[Config](c.Targets["checkout-staging"])
	require.NoError(t, err)
	tgt, err := New(settings)
	require.NoError(t, err)
	d := spec.TemplateData{
		Service: "checkout", Environment: "staging", Percent: 10, Stage: 1,
		Version:         `v2$(touch${IFS}` + marker + `)`,
		PreviousVersion: `v1"; touch ` + marker + `; echo "`,
	}
	ctx := context.Background()
	for _, step := range []func() error{
		func() error { return tgt.Deploy(ctx, d) },
		func() error { return tgt.Health(ctx, d) },
		func() error { return tgt.SetTraffic(ctx, d) },
		func() error { return tgt.Promote(ctx, d) },
		func() error { return tgt.Rollback(ctx, d) },
	} {
		require.NoError(t, step())
	}
	_, statErr := os.Stat(marker)
	assert.True(t, os.IsNotExist(statErr), "an injected command ran")
	out, err := os.ReadFile(log)
	require.NoError(t, err)
	assert.Contains(t, string(out), "deploy "+d.Version+" beside "+d.PreviousVersion+"\n")
}
