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

	"github.com/shepherd-release/shepherd/providers"
	"github.com/shepherd-release/shepherd/spec"
)

var data = spec.TemplateData{Service: "checkout", Environment: "prod", Version: "v2", PreviousVersion: "v1",
	Percent: 25, Stage: 3, ReleaseID: "release:checkout:prod/run"}

// target builds a target running cmds in dir; required commands not given are "true".
func target(t *testing.T, dir string, cmds Config) *Target {
	t.Helper()
	cmds.Dir = dir
	for _, c := range []*string{&cmds.Deploy, &cmds.Traffic, &cmds.Promote, &cmds.Rollback} {
		if *c == "" {
			*c = "true"
		}
	}
	tg, err := New(cmds)
	require.NoError(t, err)
	return tg
}

func TestCommandsSeeTemplatesAndEnvironment(t *testing.T) {
	dir := t.TempDir()
	tg := target(t, dir, Config{
		Traffic: `echo "{{.Service}} {{.Version}} {{.Percent}} {{.Stage}}|$SHEPHERD_SERVICE $SHEPHERD_ENVIRONMENT $SHEPHERD_VERSION ` +
			`$SHEPHERD_PREVIOUS_VERSION $SHEPHERD_PERCENT $SHEPHERD_STAGE $SHEPHERD_RELEASE_ID $EXTRA" > out`,
		Env: map[string]string{"EXTRA": "yes"},
	})
	require.NoError(t, tg.SetTraffic(context.Background(), data))
	out, err := os.ReadFile(filepath.Join(dir, "out"))
	require.NoError(t, err)
	assert.Equal(t, "checkout v2 25 3|checkout prod v2 v1 25 3 release:checkout:prod/run yes\n", string(out))
}

func TestFailureCarriesExitCodeAndOutputTail(t *testing.T) {
	tg := target(t, t.TempDir(), Config{Deploy: `echo "$(seq 1 2000)"; echo "image v2 not found" >&2; exit 7`})
	err := tg.Deploy(context.Background(), data)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "deploy command exited with code 7")
	assert.True(t, strings.HasSuffix(err.Error(), "image v2 not found"), err.Error())
	assert.Less(t, len(err.Error()), 2200, "only the tail of the output goes into the error")
	assert.False(t, errors.Is(err, providers.ErrPermanent), "a failing command may succeed on retry")
}

func TestTimeoutKillsTheWholeCommand(t *testing.T) {
	dir := t.TempDir()
	// A child that survived the kill would write "late" 1 s after it started; the test waits past that,
	// so it fails when children survive.
	tg := target(t, dir, Config{Promote: `(sleep 1; touch late) & sleep 5`, Timeout: spec.Duration(300 * time.Millisecond)})
	start := time.Now()
	err := tg.Promote(context.Background(), data)
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
	err := target(t, t.TempDir(), Config{Rollback: "sleep 10"}).Rollback(ctx, data)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "rollback command cancelled")
}

func TestHealthWithoutCommandIsHealthy(t *testing.T) {
	assert.NoError(t, target(t, t.TempDir(), Config{}).Health(context.Background(), data))
}

func TestPreflightFindsPermanentProblems(t *testing.T) {
	ok := Config{Deploy: "d {{.Version}}", Traffic: "t", Promote: "p", Rollback: "r"}
	assert.NoError(t, target(t, t.TempDir(), ok).Preflight(context.Background(), data))

	bad := ok
	bad.Deploy = "d {{.Nope}}"
	err := target(t, t.TempDir(), bad).Preflight(context.Background(), data)
	require.Error(t, err)
	assert.True(t, errors.Is(err, providers.ErrPermanent))
	assert.Contains(t, err.Error(), "deploy: template does not render")

	err = target(t, "/does/not/exist", ok).Preflight(context.Background(), data)
	assert.ErrorContains(t, err, `dir "/does/not/exist" is not a directory`)
	assert.True(t, errors.Is(err, providers.ErrPermanent))

	sh := ok
	sh.Shell = "no-such-shell"
	err = target(t, t.TempDir(), sh).Preflight(context.Background(), data)
	assert.ErrorContains(t, err, `shell "no-such-shell" not found`)
}

func TestNewChecksTheConfiguration(t *testing.T) {
	_, err := New(Config{Deploy: "d {{.Version", Traffic: " "})
	require.Error(t, err)
	assert.True(t, errors.Is(err, providers.ErrPermanent))
	for _, want := range []string{"traffic is required", "promote is required", "rollback is required", "deploy: template does not parse"} {
		assert.Contains(t, err.Error(), want)
	}
	tg, err := New(Config{Deploy: "d", Traffic: "t {{.Percent}}", Promote: "p", Rollback: "r", Timeout: spec.Duration(time.Minute)})
	require.NoError(t, err)
	d := tg.Describe()
	assert.Equal(t, time.Minute, d.StepTimeout)
	assert.Equal(t, "`t {{.Percent}}`", d.Steps["traffic"])
	assert.NotEmpty(t, d.ManualRollback)
}
