package worker

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/temporal"
	"golang.org/x/crypto/ssh"

	"github.com/shepherd-release/shepherd/approvals"
	"github.com/shepherd-release/shepherd/config"
	"github.com/shepherd-release/shepherd/internal/alerts"
	"github.com/shepherd-release/shepherd/internal/observe"
)

const testToken = "a-random-token-of-32-characters!"

func buildAlerts(t *testing.T, doc string) (*Providers, error) {
	t.Helper()
	cfg, err := config.Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return Build(cfg, BuildOptions{CheckSecrets: true})
}

func TestAlertWebhookOffByDefault(t *testing.T) {
	p, err := buildAlerts(t, "")
	if err != nil || p.Alerts != nil {
		t.Fatalf("alerts %+v, %v; want none", p.Alerts, err)
	}
}

func TestAlertWebhookToken(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "token")
	if err := os.WriteFile(file, []byte(testToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := buildAlerts(t, "alerts: {webhook: {tokenFile: "+file+", serviceLabel: app}}")
	if err != nil {
		t.Fatal(err)
	}
	if a := p.Alerts; a == nil || string(a.token) != testToken || a.Pattern() != "POST /alerts/abort" || a.Labels.Service != "app" || a.Signed() {
		t.Fatalf("webhook %+v", a)
	}
	t.Setenv("SHEPHERD_TEST_AM_TOKEN", testToken)
	if p, err := buildAlerts(t, "alerts: {webhook: {tokenEnv: SHEPHERD_TEST_AM_TOKEN}}"); err != nil || string(p.Alerts.token) != testToken {
		t.Fatalf("from the environment: %v", err)
	}

	short := filepath.Join(dir, "short")
	if err := os.WriteFile(short, []byte("hunter2"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SHEPHERD_TEST_EMPTY", "")
	for name, tc := range map[string]struct{ doc, want string }{
		"missing file": {"alerts: {webhook: {tokenFile: " + filepath.Join(dir, "nope") + "}}", "alerts.webhook: reading the bearer token"},
		"short":        {"alerts: {webhook: {tokenFile: " + short + "}}", "is 7 bytes; use at least 16"},
		"empty env":    {"alerts: {webhook: {tokenEnv: SHEPHERD_TEST_EMPTY}}", "SHEPHERD_TEST_EMPTY (tokenEnv) is empty"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := buildAlerts(t, tc.doc)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("the error shows the token: %v", err)
			}
		})
	}
	// Paperwork builds without reading secrets: no token, and a handler that refuses everything.
	cfg, _ := config.Parse([]byte("alerts: {webhook: {tokenFile: /nonexistent}}"))
	if p, err := Build(cfg, BuildOptions{}); err != nil || p.Alerts == nil || p.Alerts.token != nil {
		t.Fatalf("without secrets: %+v, %v", p, err)
	}
}

// The signing key's signature over the claim of an abort verifies with the operators' allowed_signers as
// the workflow's VerifyControl activity checks it (gate and action "abort", this run), and not for
// another run.
func TestAlertWebhookSigningKey(t *testing.T) {
	dir := t.TempDir()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "id_ed25519")
	if err := os.WriteFile(key, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SHEPHERD_TEST_AM_TOKEN", testToken)
	p, err := buildAlerts(t, "alerts: {webhook: {tokenEnv: SHEPHERD_TEST_AM_TOKEN, signingKeyFile: "+key+"}}")
	if err != nil {
		t.Fatal(err)
	}
	if !p.Alerts.Signed() {
		t.Fatal("not signing")
	}
	sshPub, _ := ssh.NewPublicKey(pub)
	v, err := approvals.NewVerifier(strings.NewReader("alertmanager@shepherd "+string(ssh.MarshalAuthorizedKey(sshPub))), nil)
	if err != nil {
		t.Fatal(err)
	}
	claim := approvals.Claim{WorkflowID: "release:checkout:production", RunID: "run-1", Gate: "abort", Action: "abort",
		Expires: time.Now().Add(signedAbortValidity).UTC().Truncate(time.Second)}
	sig, err := approvals.Sign(p.Alerts.signer, approvals.Namespace, claim.Payload())
	if err != nil {
		t.Fatal(err)
	}
	id, err := v.Verify(approvals.Signed{Claim: claim, Signature: sig}, approvals.Claim{WorkflowID: claim.WorkflowID, RunID: "run-1", Gate: "abort", Action: "abort"}, time.Now(), nil)
	if err != nil || id.Principal != "alertmanager@shepherd" {
		t.Fatalf("verify: %+v, %v", id, err)
	}
	if _, err := v.Verify(approvals.Signed{Claim: claim, Signature: sig}, approvals.Claim{WorkflowID: claim.WorkflowID, RunID: "run-2", Gate: "abort", Action: "abort"}, time.Now(), nil); err == nil {
		t.Error("the signature verified for another run")
	}

	encrypted, err := ssh.MarshalPrivateKeyWithPassphrase(priv, "", []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, pem.EncodeToMemory(encrypted), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := buildAlerts(t, "alerts: {webhook: {tokenEnv: SHEPHERD_TEST_AM_TOKEN, signingKeyFile: "+key+"}}"); err == nil || !strings.Contains(err.Error(), "is encrypted") {
		t.Errorf("an encrypted key: %v", err)
	}
}

// The workflow's answers to an abort become outcomes; anything else is an error (503, Alertmanager retries).
func TestClassifyAbortError(t *testing.T) {
	req := alerts.AbortRequest{Service: "checkout", Environment: "production"}
	for _, tc := range []struct {
		err  error
		want alerts.Outcome
	}{
		{serviceerror.NewNotFound("workflow not found"), alerts.NoActiveRelease},
		{errors.New("workflow execution already completed"), alerts.NoActiveRelease},
		{temporal.NewApplicationError("already rolling back (aborted by alice)", ""), alerts.AlreadyRollingBack},
		{temporal.NewApplicationError("release already ended: RolledBack (x)", ""), alerts.NoActiveRelease},
		{temporal.NewApplicationError("too late to abort: v2 is being promoted", ""), alerts.Rejected},
		{serviceerror.NewUnavailable("connection refused"), ""},
		{fmt.Errorf("wrapped: %w", errors.New("context deadline exceeded")), ""},
	} {
		res, err := classifyAbortError(req, tc.err)
		if tc.want == "" {
			if err == nil {
				t.Errorf("%v: outcome %s, want an error", tc.err, res.Outcome)
			}
			continue
		}
		if err != nil || res.Outcome != tc.want {
			t.Errorf("%v: %s, %v; want %s", tc.err, res.Outcome, err, tc.want)
		}
	}
}

// Every outcome of the webhook is a value of its metric's outcome label.
func TestAlertOutcomesAreMetricLabels(t *testing.T) {
	var got []string
	for _, o := range alerts.Outcomes {
		got = append(got, string(o))
	}
	if !slices.Equal(got, observe.AlertOutcomes) {
		t.Errorf("alerts.Outcomes %v, observe.AlertOutcomes %v", got, observe.AlertOutcomes)
	}
}
