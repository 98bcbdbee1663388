package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shepherd-release/shepherd/internal/cli"
	"github.com/shepherd-release/shepherd/record"
	"github.com/shepherd-release/shepherd/spec"
)

// TestOperatorFindsTheReleaseWithoutEnv: the --env traps of issue 15. A service's only active release is
// found without --env, in whatever environment it runs; a command for an environment without one names
// the active release elsewhere, with the command that reaches it; with active releases in two
// environments a command asks which; and `watch` announces the approval gate once, with the exact
// approve command (its --env) and the gate's timeout, then follows the release to its promotion.
func TestOperatorFindsTheReleaseWithoutEnv(t *testing.T) {
	const svc = "e2e-operator"
	t.Parallel()
	e := newEnv(t, svc)
	e.terminateOnCleanup(t, spec.WorkflowID(svc, "staging"), spec.WorkflowID(svc, envName))
	e.provide("targets", e2eTarget, execTarget(filepath.Join(t.TempDir(), "release.log")))
	*e.lazy = t.TempDir()

	gate := gated(50, time.Second)
	gate.ApprovalTimeout = spec.Duration(time.Hour)
	staging := execRelease(svc, gate, stage(100, time.Second))
	staging.Environment = "staging"
	r := e.shepherdCLI("start", "-f", writeJSON(t, "staging.json", staging))
	wantExit(t, r, cli.ExitOK)
	if !strings.Contains(r.stdout, "Follow it with: shepherd watch "+svc+" --env staging") {
		t.Errorf("start: the follow-up command lacks --env staging: %s", r)
	}

	// No --env: the only active release, in staging (visibility is eventually consistent: poll).
	eventually(t, phaseTimeout, "shepherd status without --env to find the staging release at its gate", func() (bool, string) {
		r := e.shepherdCLI("status", svc, "-o", "json")
		var st struct {
			Environment string       `json:"environment"`
			Phase       record.Phase `json:"phase"`
			Stages      []struct {
				Soak string `json:"soak"`
			} `json:"stages"`
		}
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &st) != nil || len(st.Stages) != 2 || st.Stages[0].Soak != "1s" {
			return false, r.String()
		}
		return st.Environment == "staging" && st.Phase == record.PhaseAwaitingApproval, r.String()
	})
	r = e.shepherdCLI("status", svc)
	wantExit(t, r, cli.ExitOK)
	for _, want := range []string{
		"Release " + svc + " → v2 in staging: AwaitingApproval",
		"Stage 1/2 (50%) waits for approval. To approve:\n  shepherd approve " + svc + " --env staging --stage 1\n",
		"(full log: shepherd history " + svc + " --env staging)",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("status lacks %q: %s", want, r)
		}
	}

	// --env production, where nothing is active: the error names the staging release and its command.
	r = e.shepherdCLI("abort", svc, "--env", "production", "--reason", "wrong env")
	wantExit(t, r, cli.ExitError)
	if want := "error: abort: no active release of " + svc + " in production\nhint: " + svc +
		" has an active release in staging (v2, AwaitingApproval): shepherd abort " + svc + " --env staging\n"; r.stderr != want {
		t.Errorf("abort in the wrong environment:\nwant stderr %q\n got %s", want, r)
	}

	// A second active release, in production: without --env a command asks which.
	prod := execRelease(svc, gated(50, time.Second), stage(100, time.Second))
	wantExit(t, e.shepherdCLI("start", "-f", writeJSON(t, "production.json", prod)), cli.ExitOK)
	eventually(t, phaseTimeout, "pause without --env to refuse, naming both releases", func() (bool, string) {
		r := e.shepherdCLI("pause", svc, "--reason", "which one?")
		return r.code == cli.ExitUsage, r.String()
	})
	r = e.shepherdCLI("pause", svc, "--reason", "which one?")
	wantExit(t, r, cli.ExitUsage)
	for _, want := range []string{
		"error: " + svc + " has 2 active releases; say which with --env:\n",
		"  shepherd pause " + svc + " --env production   # v2, ",
		"  shepherd pause " + svc + " --env staging      # v2, ",
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("pause with two active releases lacks %q: %s", want, r)
		}
	}
	wantExit(t, e.shepherdCLI("abort", svc, "--env", "production", "--reason", "cleanup"), cli.ExitOK)
	eventually(t, phaseTimeout, "watch without --env to reach the staging release again", func() (bool, string) {
		r := e.shepherdCLI("status", svc)
		return r.code == 0 && strings.Contains(r.stdout, " in staging: "), r.String()
	})

	// watch: the gate is announced once, with the command, then the release is followed to its end.
	out := e.watchUntil(t, []string{"watch", svc}, "To approve:", func() {
		wantExit(t, e.shepherdCLI("approve", svc, "--stage", "1"), cli.ExitOK)
	})
	for _, want := range []string{
		"Stage 1/2 (50%) waits for approval. To approve:\n  shepherd approve " + svc + " --env staging --stage 1\n",
		"Without approval the gate times out in ",
		"Release Succeeded:",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("watch lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "To approve:"); n != 1 {
		t.Errorf("watch announced the gate %d times, want once:\n%s", n, out)
	}
}

// watchUntil runs the shepherd CLI with args (a command that follows a release), waits until its output
// shows marker, runs then, and returns the whole output once the command exits 0.
func (e *tenv) watchUntil(t *testing.T, args []string, marker string, then func()) string {
	t.Helper()
	e.ensureWorker()
	ctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.shepherd, args...)
	cmd.Env = e.childEnv("SHEPHERD_USER=e2e")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	sc := bufio.NewScanner(pipe)
	seen := false
	for sc.Scan() {
		out.WriteString(sc.Text() + "\n")
		if !seen && strings.Contains(sc.Text(), marker) {
			seen = true
			then()
		}
	}
	err = cmd.Wait()
	if !seen || err != nil {
		t.Fatalf("%s: marker %q seen: %v, exit: %v\nstdout:\n%s\nstderr:\n%s", args, marker, seen, err, out.String(), stderr.String())
	}
	return out.String()
}
