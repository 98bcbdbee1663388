package exec

import (
	"context"
	"errors"
	"fmt"
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
	cfg := target(t, dir, Config{
		Traffic: `echo "{{.Service}} {{.Version}} {{.Percent}} {{.Stage}}|$SHEPHERD_SERVICE $SHEPHERD_ENVIRONMENT $SHEPHERD_VERSION ` +
			`$SHEPHERD_PREVIOUS_VERSION $SHEPHERD_PERCENT $SHEPHERD_STAGE $SHEPHERD_RELEASE_ID $EXTRA" > out`,
		Env: map[string]string{"EXTRA": "yes"},
	})
	require.NoError(t, cfg.SetTraffic(context.Background(), data))
	out, err := os.ReadFile(filepath.Join(dir, "out"))
	require.NoError(t, err)
	assert.Equal(t, "checkout v2 25 3|checkout prod v2 v1 25 3 release:checkout:prod/run yes\n", string(out))
}

func TestFailureCarriesExitCodeAndOutputTail(t *testing.T) {
	cfg := target(t, t.TempDir(), Config{Deploy: `echo "$(seq 1 2000)"; echo "image v2 not found" >&2; exit 7`})
	err := cfg.Deploy(context.Background(), data)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "deploy command exited with code 7")
	assert.True(t, strings.HasSuffix(err.Error(), "image v2 not found"), err.Error())
	assert.Less(t, len(err.Error()), 2200, "only the tail of the output goes into the error")
	assert.False(t, errors.Is(err, providers.ErrPermanent), "a failing command may succeed on retry")
}

func TestTimeoutKillsTheWholeCommand(t *testing.T) {
	dir := t.TempDir()
	// The background child notes that it runs, then writes "late" 0.5 s after the timeout kills the
	// command, unless it died with it. It does not hold the output pipe, so a survivor does not delay
	// the return either: only the file tells.
	cfg := target(t, dir, Config{Promote: `(touch started; sleep 0.7; touch late) >/dev/null 2>&1 & exec sleep 5`,
		Timeout: spec.Duration(200 * time.Millisecond)})
	start := time.Now()
	err := cfg.Promote(context.Background(), data)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "promote command timed out after 200ms")
	assert.Less(t, time.Since(start), 4*time.Second)
	_, statErr := os.Stat(filepath.Join(dir, "started"))
	require.NoError(t, statErr, "the background child never ran, so this test proves nothing")
	// Wait past the moment a surviving child would write, with a margin.
	time.Sleep(time.Until(start.Add(1500 * time.Millisecond)))
	_, statErr = os.Stat(filepath.Join(dir, "late"))
	assert.True(t, os.IsNotExist(statErr), "a child of the command survived the timeout and wrote %q", "late")
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

func TestCommandsSeeTheFencingToken(t *testing.T) {
	dir := t.TempDir()
	cfg := target(t, dir, Config{Traffic: `echo "{{.Step}} {{.Seq}}|$SHEPHERD_STEP $SHEPHERD_STEP_SEQ $SHEPHERD_RELEASE_ID" > out`})
	d := data
	d.Step, d.Seq = "rollback-traffic", 42
	require.NoError(t, cfg.SetTraffic(context.Background(), d))
	out, err := os.ReadFile(filepath.Join(dir, "out"))
	require.NoError(t, err)
	assert.Equal(t, "rollback-traffic 42|rollback-traffic 42 release:checkout:prod/run\n", string(out))
}

func TestStaleExitCodeIsErrStaleWrite(t *testing.T) {
	d := data
	d.Step, d.Seq = "traffic", 3
	cfg := target(t, t.TempDir(), Config{Traffic: `echo "newest is seq 4" >&2; exit 79`})
	err := cfg.SetTraffic(context.Background(), d)
	require.Error(t, err)
	assert.ErrorIs(t, err, providers.ErrStaleWrite)
	for _, want := range []string{`refused step "traffic" (seq 3)`, "release:checkout:prod/run", "exit code 79", "newest is seq 4"} {
		assert.Contains(t, err.Error(), want)
	}
	// Any other failure is not stale.
	cfg = target(t, t.TempDir(), Config{Traffic: `exit 75`})
	err = cfg.SetTraffic(context.Background(), d)
	require.Error(t, err)
	assert.NotErrorIs(t, err, providers.ErrStaleWrite)
}

// TestFenceScript runs the example of docs/targets.md (testdata/fence.sh) as target authors would: each
// step's change is one line in a log, and only steps the fence lets through write it.
func TestFenceScript(t *testing.T) {
	script, err := os.ReadFile(filepath.Join("testdata", "fence.sh"))
	require.NoError(t, err)
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "fence.sh"), script, 0o644))
	cmds := Config{
		Deploy:   `. ./fence.sh >> fence.out && [ "$SHEPHERD_VERSION" != bad ] && echo "deploy $SHEPHERD_STEP_SEQ" >> changes`,
		Traffic:  `. ./fence.sh && echo "traffic {{.Percent}} $SHEPHERD_STEP_SEQ" >> changes`,
		Rollback: `. ./fence.sh && echo "rollback $SHEPHERD_STEP_SEQ" >> changes`,
		Env:      map[string]string{"FENCE_DIR": filepath.Join(dir, "fence")},
	}
	cfg := target(t, dir, cmds)
	ctx := context.Background()
	step := func(release, name string, seq int64, percent int) spec.TemplateData {
		d := data
		d.ReleaseID, d.Step, d.Seq, d.Percent = release, name, seq, percent
		return d
	}
	const first, second = "release:checkout:prod/run-1", "release:checkout:prod/run-2"

	require.NoError(t, cfg.Deploy(ctx, step(first, "deploy", 1, 0)))
	require.NoError(t, cfg.Deploy(ctx, step(first, "deploy", 1, 0)), "a retry (same seq) goes through")
	require.NoError(t, cfg.SetTraffic(ctx, step(first, "traffic", 2, 5)))
	require.NoError(t, cfg.SetTraffic(ctx, step(first, "rollback-traffic", 4, 0)))
	err = cfg.SetTraffic(ctx, step(first, "traffic", 3, 25))
	require.ErrorIs(t, err, providers.ErrStaleWrite, "late traffic 25 %% (seq 3) after traffic 0 %% (seq 4)")
	assert.Contains(t, err.Error(), "stale: traffic seq 3 of "+first+"; newest is seq 4")
	require.NoError(t, cfg.Rollback(ctx, step(first, "remove-canary", 5, 0)))
	// The next release starts over at seq 1; the first one's late writes are refused from then on.
	require.NoError(t, cfg.Deploy(ctx, step(second, "deploy", 1, 0)))
	require.ErrorIs(t, cfg.Rollback(ctx, step(first, "remove-canary", 5, 0)), providers.ErrStaleWrite)
	// A third release whose step fails does not take over: the second one carries on.
	bad := step("release:checkout:prod/run-3", "deploy", 1, 0)
	bad.Version = "bad"
	err = cfg.Deploy(ctx, bad)
	require.Error(t, err)
	require.NotErrorIs(t, err, providers.ErrStaleWrite)
	require.NoError(t, cfg.SetTraffic(ctx, step(second, "traffic", 2, 10)), "a failed step of another release locked this one out")
	// Seq 0 (no token) is not fenced.
	require.NoError(t, cfg.SetTraffic(ctx, step("", "", 0, 0)))

	out, err := os.ReadFile(filepath.Join(dir, "changes"))
	require.NoError(t, err)
	assert.Equal(t, "deploy 1\ndeploy 1\ntraffic 5 2\ntraffic 0 4\nrollback 5\ndeploy 1\ntraffic 10 2\ntraffic 0 0\n", string(out))
	said, err := os.ReadFile(filepath.Join(dir, "fence.out"))
	require.NoError(t, err)
	assert.Equal(t, "repeat: deploy seq 1 was taken before; applying it again, idempotently\n", string(said))
}

func TestTargetsDocShowsTheTestedFenceScript(t *testing.T) {
	script, err := os.ReadFile(filepath.Join("testdata", "fence.sh"))
	require.NoError(t, err)
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "targets.md"))
	require.NoError(t, err)
	assert.Contains(t, string(doc), "```sh\n"+string(script)+"```", "docs/targets.md must show testdata/fence.sh verbatim")
	assert.Contains(t, string(doc), fmt.Sprintf("exiting with code **%d**", ExitStaleWrite))
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
