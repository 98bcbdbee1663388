package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"

	"github.com/shepherd-release/shepherd/approvals"
	"github.com/shepherd-release/shepherd/starter"
	"github.com/shepherd-release/shepherd/workflows"
)

// signFlags are approve's signing flags.
type signFlags struct {
	key, payload, signature string
	printPayload            bool
	validFor                time.Duration
}

func (s *signFlags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&s.key, "key", "", "sign with this SSH private key (runs ssh-keygen -Y sign)")
	f.DurationVar(&s.validFor, "valid-for", 15*time.Minute, "how long the signed approval stays valid (at most 24h)")
	f.BoolVar(&s.printPayload, "print-payload", false, "print what to sign for the release as it is now, and exit")
	f.StringVar(&s.payload, "payload", "", "with --signature: the payload printed by --print-payload")
	f.StringVar(&s.signature, "signature", "", "a signature of the payload made by ssh-keygen -Y sign -n "+approvals.Namespace)
}

// apply fills req.Signed as the flags say; done is true when nothing is to be sent (--print-payload).
func (s *signFlags) apply(ctx context.Context, c client.Client, g *globals, svc, action string, req *workflows.ControlRequest) (done bool, err error) {
	switch {
	case s.printPayload:
		claim, err := starter.PendingClaim(ctx, c, svc, g.env, action, s.validFor)
		if err != nil {
			return true, err
		}
		_, err = g.stdout.Write(claim.Payload())
		return true, err
	case s.signature != "":
		if s.payload == "" {
			return false, withHint(ExitUsage, fmt.Errorf("--signature needs --payload (the file you signed)"), "")
		}
		raw, err := readSmall(s.payload)
		if err != nil {
			return false, err
		}
		var claim approvals.Claim
		if err := json.Unmarshal(raw, &claim); err != nil {
			return false, fmt.Errorf("--payload %s: %w", s.payload, err)
		}
		if !bytes.Equal(claim.Payload(), bytes.TrimSpace(raw)) {
			return false, fmt.Errorf("--payload %s is not a payload printed by --print-payload (signed bytes must match exactly)", s.payload)
		}
		sig, err := readSmall(s.signature)
		if err != nil {
			return false, err
		}
		req.Signed = &approvals.Signed{Claim: claim, Signature: string(sig)}
	case s.key != "":
		claim, err := starter.PendingClaim(ctx, c, svc, g.env, action, s.validFor)
		if err != nil {
			return false, err
		}
		sig, err := sshKeygenSign(ctx, s.key, claim.Payload())
		if err != nil {
			return false, err
		}
		req.Signed = &approvals.Signed{Claim: claim, Signature: sig}
	}
	return false, nil
}

// sshKeygenSign signs payload with `ssh-keygen -Y sign`, which asks for a passphrase or uses ssh-agent as
// it always does.
func sshKeygenSign(ctx context.Context, key string, payload []byte) (string, error) {
	bin, err := exec.LookPath("ssh-keygen")
	if err != nil {
		return "", fmt.Errorf("--key needs ssh-keygen (OpenSSH 8.1 or later) on PATH: %w", err)
	}
	cmd := exec.CommandContext(ctx, bin, "-Y", "sign", "-n", approvals.Namespace, "-f", key)
	cmd.Stdin = bytes.NewReader(payload)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("ssh-keygen -Y sign -f %s: %v: %s", key, err, bytes.TrimSpace(errOut.Bytes()))
	}
	return out.String(), nil
}

// readSmall reads a file of at most 64 KiB.
func readSmall(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Size() > 64<<10 {
		return nil, fmt.Errorf("%s is %d bytes; a payload or signature is far smaller", path, fi.Size())
	}
	return os.ReadFile(path)
}
