package approvals

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"
)

func newKey(t *testing.T) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	s, err := ssh.NewSignerFromKey(priv)
	require.NoError(t, err)
	return s
}

func allowed(principal string, k ssh.Signer) string {
	return principal + " " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k.PublicKey())))
}

var now = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

func claim() Claim {
	return Claim{WorkflowID: "release:checkout:production", RunID: "run-1", Gate: "stage:2", Action: "approve", Expires: now.Add(time.Hour)}
}

func sign(t *testing.T, k ssh.Signer, c Claim) Signed {
	t.Helper()
	sig, err := Sign(k, Namespace, c.Payload())
	require.NoError(t, err)
	return Signed{Claim: c, Signature: sig}
}

func TestVerifiedApprovalNamesTheKeyAndItsRoles(t *testing.T) {
	alice := newKey(t)
	v, err := NewVerifier(strings.NewReader(allowed("alice@example.com", alice)+"\n"), map[string][]string{"sre": {"alice@example.com"}})
	require.NoError(t, err)
	id, err := v.Verify(sign(t, alice, claim()), claim(), now, []string{"sre"})
	require.NoError(t, err)
	assert.Equal(t, "alice@example.com", id.Principal)
	assert.Equal(t, ssh.FingerprintSHA256(alice.PublicKey()), id.Fingerprint)
	assert.Equal(t, []string{"sre"}, id.Roles)
}

func TestEveryForgeryIsRejectedWithItsReason(t *testing.T) {
	alice, mallory := newKey(t), newKey(t)
	v, err := NewVerifier(strings.NewReader(allowed("alice@example.com", alice)+"\n"+allowed("bob@example.com", newKey(t))),
		map[string][]string{"sre": {"alice@example.com"}, "qa": {"bob@example.com"}})
	require.NoError(t, err)
	good := sign(t, alice, claim())

	forged := good
	forged.Claim.Gate = "stage:3" // the signature was over stage 2
	otherRun := sign(t, alice, Claim{WorkflowID: "release:checkout:production", RunID: "run-0", Gate: "stage:2", Action: "approve", Expires: now.Add(time.Hour)})
	otherStage := sign(t, alice, Claim{WorkflowID: "release:checkout:production", RunID: "run-1", Gate: "stage:1", Action: "approve", Expires: now.Add(time.Hour)})
	expired := sign(t, alice, Claim{WorkflowID: "release:checkout:production", RunID: "run-1", Gate: "stage:2", Action: "approve", Expires: now.Add(-time.Second)})
	tooLong := sign(t, alice, Claim{WorkflowID: "release:checkout:production", RunID: "run-1", Gate: "stage:2", Action: "approve", Expires: now.Add(30 * 24 * time.Hour)})
	unknown := sign(t, mallory, claim())
	otherNamespace := good
	otherNamespace.Signature, err = Sign(alice, "git", claim().Payload())
	require.NoError(t, err)
	swapped := good // mallory's signature presented with alice's claim
	swapped.Signature = unknown.Signature
	garbage := good
	garbage.Signature = "-----BEGIN SSH SIGNATURE-----\nU1NIU0lH\n-----END SSH SIGNATURE-----\n"

	for name, tc := range map[string]struct {
		s     Signed
		roles []string
		err   error
		msg   string
	}{
		"forged claim":                {forged, nil, ErrWrongClaim, "for approve stage:3, but the release waits for approve stage:2"},
		"replayed onto another run":   {otherRun, nil, ErrWrongClaim, "run run-0, not this release"},
		"replayed onto another stage": {otherStage, nil, ErrWrongClaim, "approve stage:1"},
		"expired":                     {expired, nil, ErrExpired, "expired at 2026-11-29T11:59:59Z"},
		"valid for too long":          {tooLong, nil, ErrWrongClaim, "more than 24h0m0s ahead"},
		"unknown key":                 {unknown, nil, ErrUnknownKey, "is not in the operators' allowed signers"},
		"another namespace":           {otherNamespace, nil, ErrBadSignature, `signed for namespace "git", not "shepherd-approval"`},
		"signature of another key":    {swapped, nil, ErrUnknownKey, "not in the operators' allowed signers"},
		"malformed":                   {garbage, nil, ErrBadSignature, "malformed SSH signature"},
		"not in the gate's role":      {good, []string{"qa"}, ErrWrongRole, "alice@example.com holds roles sre, the gate needs qa"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := v.Verify(tc.s, claim(), now, tc.roles)
			require.Error(t, err)
			assert.True(t, errors.Is(err, tc.err), "error %v is not %v", err, tc.err)
			assert.Contains(t, err.Error(), tc.msg)
		})
	}
}

func TestAllowedSignersAreParsedStrictly(t *testing.T) {
	k := newKey(t)
	key := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k.PublicKey())))
	_, err := NewVerifier(strings.NewReader("a@x,b@x namespaces=\"shepherd-approval,git\" "+key+" comment\n# a comment\n"), map[string][]string{"sre": {"b@x"}})
	require.NoError(t, err)
	for _, tc := range []struct{ file, msg string }{
		{"*@x " + key, "principal patterns"},
		{"a@x cert-authority " + key, `option "cert-authority" is not supported`},
		{"a@x ssh-ed25519", "want `principals [options] keytype key`"},
	} {
		_, err := NewVerifier(strings.NewReader(tc.file), nil)
		require.Error(t, err, tc.file)
		assert.Contains(t, err.Error(), tc.msg)
	}
	_, err = NewVerifier(strings.NewReader("a@x "+key), map[string][]string{"sre": {"ghost@x"}})
	assert.ErrorContains(t, err, `role "sre" names "ghost@x", who has no key in the allowed signers`)
}

// A signature made by OpenSSH's own ssh-keygen -Y sign verifies, and one of ours verifies with
// ssh-keygen -Y verify: the format is the real one, not a look-alike.
func TestInteroperatesWithSSHKeygen(t *testing.T) {
	keygen, err := exec.LookPath("ssh-keygen")
	if err != nil {
		t.Skip("ssh-keygen not installed")
	}
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "id_ed25519")
	run := func(stdin string, args ...string) string {
		t.Helper()
		cmd := exec.Command(keygen, args...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "ssh-keygen %v: %s", args, out)
		return string(out)
	}
	run("", "-q", "-t", "ed25519", "-N", "", "-C", "alice", "-f", keyFile)
	pub, err := os.ReadFile(keyFile + ".pub")
	require.NoError(t, err)
	signersFile := filepath.Join(dir, "allowed_signers")
	require.NoError(t, os.WriteFile(signersFile, []byte("alice@example.com "+string(pub)), 0o600))
	c := claim()
	payload := filepath.Join(dir, "payload")
	require.NoError(t, os.WriteFile(payload, c.Payload(), 0o600))
	run("", "-Y", "sign", "-n", Namespace, "-f", keyFile, payload)
	sig, err := os.ReadFile(payload + ".sig")
	require.NoError(t, err)

	f, err := os.Open(signersFile)
	require.NoError(t, err)
	defer f.Close()
	v, err := NewVerifier(f, nil)
	require.NoError(t, err)
	id, err := v.Verify(Signed{Claim: c, Signature: string(sig)}, c, now, nil)
	require.NoError(t, err)
	assert.Equal(t, "alice@example.com", id.Principal)

	// And the other way round.
	priv, err := os.ReadFile(keyFile)
	require.NoError(t, err)
	signer, err := ssh.ParsePrivateKey(priv)
	require.NoError(t, err)
	ours, err := Sign(signer, Namespace, c.Payload())
	require.NoError(t, err)
	oursFile := filepath.Join(dir, "ours.sig")
	require.NoError(t, os.WriteFile(oursFile, []byte(ours), 0o600))
	out := run(string(c.Payload()), "-Y", "verify", "-f", signersFile, "-I", "alice@example.com", "-n", Namespace, "-s", oursFile)
	assert.Contains(t, out, "Good \"shepherd-approval\" signature for alice@example.com")
}
