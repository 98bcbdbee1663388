package exec

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shepherd-release/shepherd/activities"
	"github.com/shepherd-release/shepherd/spec"
)

var data = spec.TemplateData{Service: "checkout", Environment: "prod", Version: "v2", PreviousVersion: "v1",
	Percent: 25, Stage: 3, ReleaseID: "release:checkout:prod/run"}

func target(dir string, cmds spec.ExecTarget) spec.Target {
	cmds.Dir = dir
	return spec.Target{Type: "exec", Exec: &cmds}
}

func TestCommandsSeeTemplatesAndEnvironment(t *testing.T) {
	dir := t.TempDir()
	cfg := target(dir, spec.ExecTarget{
		Traffic: `echo "{{.Service}} {{.Version}} {{.Percent}} {{.Stage}}|$SHEPHERD_SERVICE $SHEPHERD_ENVIRONMENT $SHEPHERD_VERSION ` +
			`$SHEPHERD_PREVIOUS_VERSION $SHEPHERD_PERCENT $SHEPHERD_STAGE $SHEPHERD_RELEASE_ID $EXTRA" > out`,
		Env: map[string]string{"EXTRA": "yes"},
	})
	require.NoError(t, Target{}.SetTraffic(context.Background(), cfg, data))
	out, err := os.ReadFile(filepath.Join(dir, "out"))
	require.NoError(t, err)
	assert.Equal(t, "checkout v2 25 3|checkout prod v2 v1 25 3 release:checkout:prod/run yes\n", string(out))
}

func TestFailureCarriesExitCodeAndOutputTail(t *testing.T) {
	cfg := target(t.TempDir(), spec.ExecTarget{Deploy: `echo "$(seq 1 2000)"; echo "image v2 not found" >&2; exit 7`})
	err := Target{}.Deploy(context.Background(), cfg, data)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "deploy command exited with code 7")
	assert.True(t, strings.HasSuffix(err.Error(), "image v2 not found"), err.Error())
	assert.Less(t, len(err.Error()), 2200, "only the tail of the output goes into the error")
	assert.False(t, errors.Is(err, activities.ErrPermanent), "a failing command may succeed on retry")
}

func TestTimeoutKillsTheWholeCommand(t *testing.T) {
	dir := t.TempDir()
	// The background child would write "late" 1 s in, well after the 300 ms timeout; the test waits past
	// that moment, so a child that survived the timeout is caught.
	cfg := target(dir, spec.ExecTarget{Promote: `(sleep 1; touch late) & sleep 5`, Timeout: spec.Duration(300 * time.Millisecond)})
	start := time.Now()
	err := Target{}.Promote(context.Background(), cfg, data)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "promote command timed out after 300ms")
	assert.Less(t, time.Since(start), 4*time.Second)
	time.Sleep(time.Until(start.Add(1500 * time.Millisecond)))
	_, statErr := os.Stat(filepath.Join(dir, "late"))
	assert.True(t, os.IsNotExist(statErr), "the command's children die with it")
}

func TestCancellationStopsTheCommand(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	err := Target{}.Rollback(ctx, target(t.TempDir(), spec.ExecTarget{Rollback: "sleep 10"}), data)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "rollback command cancelled")
}

func TestHealthWithoutCommandIsHealthy(t *testing.T) {
	assert.NoError(t, Target{}.Health(context.Background(), target(t.TempDir(), spec.ExecTarget{}), data))
}

func TestPreflightFindsPermanentProblems(t *testing.T) {
	ok := spec.ExecTarget{Deploy: "d {{.Version}}", Traffic: "t", Promote: "p", Rollback: "r"}
	assert.NoError(t, Target{}.Preflight(context.Background(), target(t.TempDir(), ok), data))

	bad := ok
	bad.Deploy = "d {{.Nope}}"
	err := Target{}.Preflight(context.Background(), target(t.TempDir(), bad), data)
	require.Error(t, err)
	assert.True(t, errors.Is(err, activities.ErrPermanent))
	assert.Contains(t, err.Error(), "target.exec.deploy: template does not render")

	err = Target{}.Preflight(context.Background(), target("/does/not/exist", ok), data)
	assert.ErrorContains(t, err, `target.exec.dir "/does/not/exist" is not a directory`)
	assert.True(t, errors.Is(err, activities.ErrPermanent))

	err = Target{Shell: "no-such-shell"}.Preflight(context.Background(), target(t.TempDir(), ok), data)
	assert.ErrorContains(t, err, `shell "no-such-shell" not found`)
}
