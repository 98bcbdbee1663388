package workflows

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/shepherd-release/shepherd/providers/flags"
	"github.com/shepherd-release/shepherd/providers/notify"
	"github.com/shepherd-release/shepherd/providers/precheck"
	"github.com/shepherd-release/shepherd/providers/vcs"
	"github.com/shepherd-release/shepherd/record"
	"github.com/shepherd-release/shepherd/report"
	"github.com/shepherd-release/shepherd/spec"
)

// receiver is a real HTTP endpoint on loopback for the flags (http provider) and webhook notifications.
// Flag changes go into the fake target's call log so their order against traffic shifts is visible.
type receiver struct {
	mu     sync.Mutex
	events []string
	texts  []string
	srv    *httptest.Server
}

func newReceiver(t *testing.T, h *harness) *receiver {
	rc := &receiver{}
	mux := http.NewServeMux()
	mux.HandleFunc("/flags/", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Flag    string `json:"flag"`
			Percent int    `json:"percent"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		_ = h.target.do(r.Context(), fmt.Sprintf("flags %d", body.Percent), spec.TemplateData{})
	})
	mux.HandleFunc("/hook", func(w http.ResponseWriter, r *http.Request) {
		var ev struct {
			Kind string `json:"kind"`
			Text string `json:"text"`
		}
		_ = json.NewDecoder(r.Body).Decode(&ev)
		rc.mu.Lock()
		rc.events = append(rc.events, ev.Kind)
		rc.texts = append(rc.texts, ev.Text)
		rc.mu.Unlock()
	})
	mux.HandleFunc("/broken", func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
	})
	rc.srv = httptest.NewServer(mux)
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) Events() []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]string(nil), rc.events...)
}

// must returns v; a provider constructor refusing a test's configuration is a broken test.
func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// lifecycleSpec names a flag provider and a webhook channel that the worker (h.acts) has, both sending to
// rc.
func lifecycleSpec(h *harness, rc *receiver) spec.Release {
	h.acts.Flags["flags-api"] = must(flags.New(flags.Config{Type: flags.TypeHTTP, URL: rc.srv.URL + "/flags/{{.Flag}}"}))
	h.acts.Notifications["events"] = must(notify.New(notify.Config{Type: notify.TypeWebhook, URL: rc.srv.URL + "/hook"}))
	s := baseSpec()
	s.Flags = &spec.Flags{Names: []string{"new-checkout"}, Provider: "flags-api"}
	s.Notifications = []string{"events"}
	return s
}

func TestFlagsFollowTrafficAndNotificationsTellTheStory(t *testing.T) {
	h := newHarness(t, spec.Release{})
	rc := newReceiver(t, h)
	h.spec = gated(lifecycleSpec(h, rc), 1, 0, "")
	h.at(20*time.Minute, func() { h.signal(Approve, ControlRequest{By: "alice"}) })
	res, err := h.run()
	require.NoError(t, err)
	assert.Equal(t, record.PhaseSucceeded, res.Phase)
	assert.Equal(t, []string{"deploy v2", "health", "flags 0", "traffic 1", "flags 1", "traffic 5", "flags 5",
		"traffic 25", "flags 25", "traffic 50", "flags 50", "traffic 100", "flags 100", "promote", "flags 100"}, h.target.Calls())
	events := rc.Events() // delivered concurrently, so counted rather than ordered
	assert.Equal(t, 1, count(events, "started"))
	assert.Equal(t, 5, count(events, "stageEntered"))
	assert.Equal(t, 1, count(events, "approvalNeeded"))
	assert.Equal(t, 1, count(events, "succeeded"))
	assert.Len(t, events, 8)
	assert.NotContains(t, events, "postMortem")
	for i, e := range events {
		if e == "approvalNeeded" {
			assert.Contains(t, rc.texts[i], "shepherd approve checkout --env production --stage 2")
		}
	}
}

func TestRollbackTurnsFlagsOffAfterTrafficAndNotifiesWithEvidence(t *testing.T) {
	h := newHarness(t, spec.Release{})
	rc := newReceiver(t, h)
	h.spec = lifecycleSpec(h, rc)
	h.spec.Flags.Schedule = []int{0, 10, 20, 50, 100}
	h.metrics.value = func(check string, percent, round int) (float64, error) {
		if check == "p99-latency" && percent == 25 {
			return 1.7, nil
		}
		return healthy(check, percent, round)
	}
	res, err := h.run()
	require.NoError(t, err)
	assert.Equal(t, record.PhaseRolledBack, res.Phase)
	assert.Equal(t, []string{"deploy v2", "health", "flags 0", "traffic 1", "flags 0", "traffic 5", "flags 10",
		"traffic 25", "flags 20", "traffic 0", "flags 0", "rollback"}, h.target.Calls())
	events := rc.Events()
	assert.Contains(t, events, "analysisFailed")
	assert.Contains(t, events, "rolledBack")
	assert.Contains(t, events, "postMortem") // channels are notified concurrently: no order between events
	for i, e := range events {
		if e == "rolledBack" {
			assert.Contains(t, rc.texts[i], "p99-latency")
			assert.Contains(t, rc.texts[i], "1.7")
		}
	}
}

func TestBrokenNotificationChannelNeverBlocksARelease(t *testing.T) {
	h := newHarness(t, spec.Release{})
	rc := newReceiver(t, h)
	h.spec = baseSpec()
	h.acts.Notifications["chat"] = must(notify.New(notify.Config{Type: notify.TypeSlack, URL: rc.srv.URL + "/broken"}))
	h.spec.Notifications = []string{"chat"}
	res, err := h.run()
	require.NoError(t, err)
	assert.Equal(t, record.PhaseSucceeded, res.Phase)
	assert.Equal(t, fullRelease, h.target.Calls())
	notices := decisionsOf(res, record.KindNotice)
	assert.True(t, containsAll(notices, `notification channel chat event "started" not delivered`), "notices: %v", notices)
}

func TestPrechecksPassThenRelease(t *testing.T) {
	h := newHarness(t, baseSpec())
	ready := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"artifact":{"state":"published"}}`)
	}))
	defer ready.Close()
	minFree := 0.3
	h.acts.Prechecks["artifact"] = must(precheck.NewHTTP(precheck.HTTPCheck{URL: ready.URL + "/artifacts/{{.Version}}", JSONField: "artifact.state", Expect: "published"}))
	h.acts.Prechecks["migrations"] = must(precheck.NewExec(precheck.ExecCheck{Command: `echo "schema 42 for $SHEPHERD_VERSION"`}))
	h.spec.Prechecks = []spec.Precheck{
		{Name: "artifact-exists", Check: "artifact"},
		{Name: "migrations-applied", Check: "migrations"},
		{Name: "capacity", Metric: &spec.MetricPrecheck{Query: "free_capacity_ratio", Min: &minFree}},
	}
	h.metrics.value = func(check string, percent, round int) (float64, error) {
		if check == "free_capacity_ratio" {
			return 0.45, nil
		}
		return healthy(check, percent, round)
	}
	res, err := h.run()
	require.NoError(t, err)
	assert.Equal(t, record.PhaseSucceeded, res.Phase)
	checks := decisionsOf(res, record.KindCheck)
	assert.True(t, containsAll(checks, `pre-release check "artifact-exists" passed (observed "published")`), "%v", checks)
	assert.True(t, containsAll(checks, `pre-release check "migrations-applied" passed (observed "schema 42 for v2")`), "%v", checks)
	assert.True(t, containsAll(checks, `pre-release check "capacity" passed (observed "0.45")`), "%v", checks)
}

func TestFailedPrecheckRejectsTheReleaseBeforeAnyChange(t *testing.T) {
	h := newHarness(t, baseSpec())
	h.acts.Prechecks["qa"] = must(precheck.NewExec(precheck.ExecCheck{Command: "echo pending", Expect: "passed"}))
	h.spec.Prechecks = []spec.Precheck{{Name: "qa-passed", Check: "qa"}}
	_, err := h.run()
	var appErr *temporal.ApplicationError
	require.ErrorAs(t, err, &appErr)
	assert.Equal(t, ErrTypePrecheckFailed, appErr.Type())
	assert.Contains(t, appErr.Message(), `rejected before any change: pre-release check "qa-passed" failed`)
	assert.Contains(t, appErr.Message(), `"pending"`)
	assert.Empty(t, h.target.Calls(), "nothing may change when a pre-release check fails")
	var res record.Result
	require.NoError(t, appErr.Details(&res))
	assert.Equal(t, record.PhaseFailed, res.Phase)
}

func TestSignoffGate(t *testing.T) {
	signoff := func(timeout time.Duration) spec.Release {
		s := baseSpec()
		s.Prechecks = []spec.Precheck{{Name: "qa-signoff", Signoff: &spec.Signoff{Role: "qa", Timeout: spec.Duration(timeout)}}}
		return s
	}
	t.Run("approved by the role", func(t *testing.T) {
		h := newHarness(t, signoff(4*time.Hour))
		var noRole, wrongRole, ok *outcome
		h.at(time.Hour, func() {
			assert.Equal(t, record.PhaseAwaitingApproval, h.status().Phase)
			assert.Empty(t, h.target.Calls(), "no deploy before sign-off")
			noRole = h.update(Approve, ControlRequest{By: "alice"})
			wrongRole = h.update(Approve, ControlRequest{By: "alice", Role: "dev"})
			ok = h.update(Approve, ControlRequest{By: "quinn", Role: "qa", Comment: "regression suite green"})
		})
		res, err := h.run()
		require.NoError(t, err)
		noRole.rejected(t, `the release waits for sign-off by role "qa"`)
		wrongRole.rejected(t, `(got "dev")`)
		assert.Equal(t, "sign-off as qa by quinn (unverified)", ok.accepted(t).Message)
		assert.Equal(t, record.PhaseSucceeded, res.Phase)
		assert.Equal(t, fullRelease, h.target.Calls())
		assert.Equal(t, 75*time.Minute+time.Hour, h.elapsed().Round(time.Second))
		assert.True(t, containsAll(decisionsOf(res, record.KindApproval), `sign-off "qa-signoff" given by quinn (unverified) as qa after 1h0m0s`))
	})
	t.Run("timed out", func(t *testing.T) {
		h := newHarness(t, signoff(4*time.Hour))
		_, err := h.run()
		var appErr *temporal.ApplicationError
		require.ErrorAs(t, err, &appErr)
		assert.Equal(t, ErrTypePrecheckFailed, appErr.Type())
		assert.Contains(t, appErr.Message(), `no sign-off by role "qa" within 4h0m0s`)
		assert.Empty(t, h.target.Calls())
	})
}

func TestSucceededReleaseIsTaggedAndArchived(t *testing.T) {
	repo := t.TempDir()
	git := func(args ...string) string {
		cmd := exec.Command("git", args...)
		cmd.Dir = repo
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.invalid",
			"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.invalid")
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "git %v: %s", args, out)
		return string(out)
	}
	git("init", "-q")
	git("commit", "-q", "--allow-empty", "-m", "v2")
	h := newHarness(t, baseSpec())
	h.acts.Repositories["checkout"] = must(vcs.New(vcs.Config{Repo: repo}))
	h.spec.Tag = &spec.Tag{Repo: "checkout"}
	h.at(20*time.Minute, func() { h.signal(Pause, ControlRequest{By: "erin", Reason: "lunch"}) })
	h.at(30*time.Minute, func() { h.signal(Resume, ControlRequest{By: "erin"}) })
	res, err := h.run()
	require.NoError(t, err)
	require.Equal(t, record.PhaseSucceeded, res.Phase)

	notes := git("tag", "-l", "--format=%(contents)", "checkout/v2")
	assert.Contains(t, notes, "checkout v2 released to production by Shepherd")
	assert.Contains(t, notes, "- 3: 25% for 15m0s, passed")
	assert.Contains(t, notes, "error-rate = 0.001")

	entry, err := report.Find(h.reportDir, res.WorkflowID)
	require.NoError(t, err)
	md, err := os.ReadFile(entry.MarkdownPath)
	require.NoError(t, err)
	assert.Contains(t, string(md), "Succeeded")
	// A person paused it: the report comes with a post-mortem record.
	require.NotEmpty(t, entry.PostMortemPath)
	_, err = os.Stat(entry.PostMortemPath)
	assert.NoError(t, err)
	assert.True(t, containsAll(decisionsOf(res, record.KindNotice), "report archived: "+filepath.Join(h.reportDir)))
}

// A spec naming providers the worker does not have is rejected as InvalidSpec before anything changes,
// listing every unknown name and what the worker has.
func TestUnknownProviderNamesRejectTheReleaseBeforeAnyChange(t *testing.T) {
	h := newHarness(t, baseSpec())
	h.spec.Notifications = []string{"pager"}
	h.spec.Flags = &spec.Flags{Names: []string{"x"}, Provider: "launchdarkly"}
	h.spec.Target = "checkout-staging"
	_, err := h.run()
	var appErr *temporal.ApplicationError
	require.ErrorAs(t, err, &appErr)
	assert.Equal(t, ErrTypeInvalidSpec, appErr.Type())
	for _, want := range []string{
		`target: this worker has no target named "checkout-staging": it has "checkout-prod"`,
		`notifications[0]: this worker has no notification channel named "pager"`,
		`flags.provider: this worker has no flag provider named "launchdarkly"`,
	} {
		assert.Contains(t, appErr.Message(), want)
	}
	assert.Empty(t, h.target.Calls(), "nothing may change")
	var res record.Result
	require.NoError(t, appErr.Details(&res))
	assert.Equal(t, record.PhaseFailed, res.Phase)
}
