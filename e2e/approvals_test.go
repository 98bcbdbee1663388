package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shepherd-release/shepherd/internal/cli"
	"github.com/shepherd-release/shepherd/record"
)

// sshKey makes an ed25519 key pair with OpenSSH's ssh-keygen and returns the private key's path and the
// allowed_signers line that names it principal.
func sshKey(t *testing.T, principal string) (key, allowed string) {
	t.Helper()
	bin, err := exec.LookPath("ssh-keygen")
	if err != nil {
		if os.Getenv(envRequireE2E) == "1" {
			t.Fatalf("ssh-keygen not found (.ci/run installs openssh-client): %v", err)
		}
		t.Skip("ssh-keygen not installed")
	}
	key = filepath.Join(t.TempDir(), "id_ed25519")
	if out, err := exec.Command(bin, "-q", "-t", "ed25519", "-N", "", "-C", principal, "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	return key, principal + " " + strings.TrimSpace(string(pub))
}

// TestSignedApprovalsAndFourEyes: on a real server, with workers that trust alice's and bob's keys and
// require four eyes in production, `shepherd start --key` records bob as the verified starter; bob's own
// signed approval, an unsigned one and one signed by an unknown key are refused (exit 5, each with its
// reason); alice's signed approval opens the gate, recorded with her verified identity and key.
func TestSignedApprovalsAndFourEyes(t *testing.T) {
	const svc = "e2e-signed"
	t.Parallel()
	e, _, log := newReleaseEnv(t, svc)
	alice, aliceLine := sshKey(t, "alice@example.com")
	bob, bobLine := sshKey(t, "bob@example.com")
	mallory, _ := sshKey(t, "mallory@example.com")
	signers := filepath.Join(t.TempDir(), "allowed_signers")
	if err := os.WriteFile(signers, []byte(aliceLine+"\n"+bobLine+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.approvals = map[string]any{
		"allowedSigners":       signers,
		"roles":                map[string][]string{"sre": {"alice@example.com", "bob@example.com"}},
		"fourEyesEnvironments": []string{"production"},
	}
	r := execRelease(svc, stage(10, time.Second), gated(100, time.Second))
	r.Stages[1].ApprovalRoles = []string{"sre"}
	f := writeJSON(t, "release.json", r)

	// Four eyes: an unsigned start is refused at once, before anything changes.
	wantExit(t, e.shepherdCLI("start", "-f", f), cli.ExitOK)
	if res := e.shepherdCLI("watch", svc); res.code != cli.ExitFailed || !strings.Contains(res.String(), "must be started signed") {
		t.Fatalf("unsigned start: want exit %d saying it must be started signed, got %s", cli.ExitFailed, res)
	}
	wantLines(t, log)

	wantExit(t, e.shepherdCLI("start", "-f", f, "--key", bob), cli.ExitOK)
	e.waitStatus(svc, "the gate of stage 2", func(st record.Status) bool { return st.Phase == record.PhaseAwaitingApproval })
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--key", bob}, "bob@example.com started this release and may not approve it (four eyes)"},
		{[]string{"--key", mallory}, "is not in the operators' allowed signers"},
		{nil, "an approval in production must be signed"},
	} {
		res := e.shepherdCLI(append([]string{"approve", svc, "--by", "someone"}, tc.args...)...)
		if res.code != cli.ExitRejected || !strings.Contains(res.String(), tc.want) {
			t.Errorf("approve %v: want exit %d saying %q, got %s", tc.args, cli.ExitRejected, tc.want, res)
		}
	}
	wantExit(t, e.shepherdCLI("approve", svc, "--by", "typed-name", "--key", alice, "--comment", "dashboards fine"), cli.ExitOK)
	res := e.waitResult(svc, 60*time.Second)
	if res.Phase != record.PhaseSucceeded {
		t.Fatalf("result: %s", describe(res))
	}
	if !hasDecision(res, record.KindApproval, "alice@example.com", "stage 2 approved by alice@example.com (verified, SHA256:") {
		t.Errorf("no verified approval by alice in the log:\n%s", demoDecisions(res))
	}
	if !hasDecision(res, record.KindCheck, "bob@example.com", "started by bob@example.com (verified") {
		t.Errorf("no verified starter in the log:\n%s", demoDecisions(res))
	}
	wantLines(t, log, "deploy v2", "health v2", "traffic 10", "traffic 100", "promote v2")
}
