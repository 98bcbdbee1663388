package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shepherd-release/shepherd/internal/cli"
	"github.com/shepherd-release/shepherd/record"
	"github.com/shepherd-release/shepherd/spec"
)

// webhook records the notification events a real HTTP endpoint receives.
type webhook struct {
	mu     sync.Mutex
	events []string
	keys   map[string]bool
}

func (w *webhook) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	var ev struct {
		Kind string `json:"kind"`
	}
	if err := json.NewDecoder(r.Body).Decode(&ev); err != nil {
		http.Error(rw, err.Error(), http.StatusBadRequest)
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.events = append(w.events, ev.Kind)
	w.keys[r.Header.Get("Idempotency-Key")] = true
}

func (w *webhook) count(kind string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, e := range w.events {
		if e == kind {
			n++
		}
	}
	return n
}

// flagState reads one flag's default variant and fractional "on" share from a flagd flag file.
func flagState(t *testing.T, path, flag string) (string, string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Flags map[string]struct {
			DefaultVariant string         `json:"defaultVariant"`
			Targeting      map[string]any `json:"targeting"`
		} `json:"flags"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("flag file is not valid JSON: %v\n%s", err, b)
	}
	f := doc.Flags[flag]
	return f.DefaultVariant, fmt.Sprint(f.Targeting["fractional"])
}

// TestLifecycleTogether runs two real releases through one worker: the first exercises a pre-release
// check, feature flags in a flagd file, webhook notifications, the git tag and the archived report; the
// second fails a step and must turn the flags off, notify the rollback and write a post-mortem record.
func TestLifecycleTogether(t *testing.T) {
	const svc = "e2e-lifecycle"
	t.Parallel()
	e := newEnv(t, svc)
	id := spec.WorkflowID(svc, envName)
	stateDir := t.TempDir()
	e.terminateOnCleanup(t, id)

	hook := &webhook{keys: map[string]bool{}}
	srv := httptest.NewServer(hook)
	defer srv.Close()
	artifacts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"state":"published"}`)
	}))
	defer artifacts.Close()

	repo := t.TempDir()
	git := func(args ...string) string {
		cmd := exec.Command("git", args...)
		cmd.Dir = repo
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=ci", "GIT_AUTHOR_EMAIL=ci@example.invalid",
			"GIT_COMMITTER_NAME=ci", "GIT_COMMITTER_EMAIL=ci@example.invalid")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	git("init", "-q")
	git("commit", "-q", "--allow-empty", "-m", "release candidate")

	flagFile := filepath.Join(t.TempDir(), "flags.json")
	log := filepath.Join(t.TempDir(), "release.log")
	log2 := filepath.Join(t.TempDir(), "release2.log")
	// The worker's providers: the second release's target fails its 100 % shift.
	e.provide("targets", e2eTarget, execTarget(log))
	e.provide("targets", "e2e-refusing-lb", execTarget(log2))["traffic"] =
		`if [ {{.Percent}} = 100 ]; then echo "LB refused" >&2; exit 1; fi; echo "traffic {{.Percent}}" >> ` + shellQuote(log2)
	e.provide("prechecks", "artifact", map[string]any{"type": "http", "url": artifacts.URL + "/{{.Version}}", "jsonField": "state", "expect": "published"})
	e.provide("flags", "flagd", map[string]any{"type": "flagd-file", "path": flagFile})
	e.provide("notifications", "hooks", map[string]any{"type": "webhook", "url": srv.URL})
	e.provide("repositories", "repo", map[string]any{"type": "git", "repo": repo})
	e.startWorker(stateDir)

	s := execRelease(svc, stage(20, time.Second), stage(100, time.Second))
	s.Prechecks = []spec.Precheck{{Name: "artifact-published", Check: "artifact"}}
	s.Flags = &spec.Flags{Names: []string{"new-checkout"}, Provider: "flagd"}
	s.Notifications = []string{"hooks"}
	s.Tag = &spec.Tag{Repo: "repo"}

	wantExit(t, e.shepherdCLI("start", "-f", writeJSON(t, "good.json", s), "--wait"), cli.ExitOK)
	res := e.waitResult(svc, 10*time.Second)
	if res.Phase != record.PhaseSucceeded {
		t.Fatalf("first release: %s", describe(res))
	}
	if v, _ := flagState(t, flagFile, "new-checkout"); v != "on" {
		t.Errorf("after promotion the flag's default variant is %q, want on", v)
	}
	if notes := git("tag", "-l", "--format=%(contents)", svc+"/v2"); !strings.Contains(notes, "e2e-lifecycle v2 released to production") {
		t.Errorf("tag notes: %q", notes)
	}
	for kind, want := range map[string]int{"started": 1, "stageEntered": 2, "succeeded": 1} {
		if got := hook.count(kind); got != want {
			t.Errorf("%d %q notifications, want %d", got, kind, want)
		}
	}
	reportDir := filepath.Join(stateDir, "reports")
	r := e.shepherdCLI("report", id, "--report-dir", reportDir)
	wantExit(t, r, cli.ExitOK)
	for _, want := range []string{"Succeeded", `pre-release check "artifact-published" passed`, "flags new-checkout at 100%", "tagged the release"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("report lacks %q:\n%s", want, r.stdout)
		}
	}

	// The second release fails its 100 % shift: traffic back, flags off, canary removed, in that order.
	bad := s
	bad.Version, bad.PreviousVersion = "v3", "v2"
	bad.Tag = nil
	bad.Target = "e2e-refusing-lb"
	wantExit(t, e.shepherdCLI("start", "-f", writeJSON(t, "bad.json", bad), "--wait"), cli.ExitRolledBack)
	res = e.waitResult(svc, 10*time.Second)
	if res.Phase != record.PhaseRolledBack || !strings.Contains(res.Reason, "LB refused") {
		t.Fatalf("second release: %s", describe(res))
	}
	wantLines(t, log2, "deploy v3", "health v3", "traffic 20", "traffic 0", "rollback v3")
	if v, frac := flagState(t, flagFile, "new-checkout"); v != "off" || frac != "<nil>" {
		t.Errorf("after the rollback the flag is %q (fractional %s), want off", v, frac)
	}
	var rollbackOrder []string
	for _, d := range res.Decisions {
		if d.Kind == record.KindRollback {
			rollbackOrder = append(rollbackOrder, d.Message)
		}
	}
	if want := []string{`rollback step "traffic to stable" done`, `rollback step "flags off" done`, `rollback step "remove canary" done`}; !slices.Equal(rollbackOrder, want) {
		t.Errorf("rollback order %q, want %q", rollbackOrder, want)
	}
	eventually(t, 30*time.Second, "rollback notifications", func() (bool, string) {
		return hook.count("rolledBack") == 1 && hook.count("postMortem") == 1,
			fmt.Sprintf("rolledBack %d, postMortem %d", hook.count("rolledBack"), hook.count("postMortem"))
	})
	pm := e.shepherdCLI("report", id, "--report-dir", reportDir, "--post-mortem")
	wantExit(t, pm, cli.ExitOK)
	if !strings.Contains(pm.stdout, "LB refused") {
		t.Errorf("post-mortem lacks the cause:\n%s", pm.stdout)
	}
}
