package worker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"golang.org/x/crypto/ssh"

	"github.com/shepherd-release/shepherd/approvals"
	"github.com/shepherd-release/shepherd/config"
	"github.com/shepherd-release/shepherd/internal/alerts"
	"github.com/shepherd-release/shepherd/internal/observe"
	"github.com/shepherd-release/shepherd/spec"
	"github.com/shepherd-release/shepherd/workflows"
)

// AlertWebhook is the alert-driven abort as the worker configuration declares it (alerts.webhook), with
// its secrets read: mount its Handler on the worker's HTTP server at Pattern().
type AlertWebhook struct {
	// Path is where it listens (POST).
	Path string
	// Labels name the release in an alert.
	Labels alerts.Labels
	// token is the bearer token; nil when Build did not read secrets (paperwork), and then every
	// request is refused.
	token []byte
	// signer, when alerts.webhook.signingKeyFile is given, signs every abort (see signedAbortValidity).
	signer ssh.Signer
}

// signedAbortValidity is how long the signature on an alert-driven abort stays valid: it is verified
// moments after it is made, so minutes are plenty, and far below approvals.MaxValidity.
const signedAbortValidity = 10 * time.Minute

// maxKeyBytes bounds a signing key file.
const maxKeyBytes = 64 << 10

// Pattern is the ServeMux pattern of the webhook.
func (a *AlertWebhook) Pattern() string { return http.MethodPost + " " + a.Path }

// Signed reports whether aborts are signed with the configured key.
func (a *AlertWebhook) Signed() bool { return a.signer != nil }

// buildAlertWebhook checks alerts.webhook and, when readSecrets, reads its token and signing key.
func buildAlertWebhook(p *config.Problems, a *config.Alerts, readSecrets bool) *AlertWebhook {
	if a == nil || a.Webhook == nil {
		return nil
	}
	c := a.Webhook.WithDefaults()
	out := &AlertWebhook{Path: c.Path, Labels: alerts.Labels{Service: c.ServiceLabel, Environment: c.EnvironmentLabel}}
	if !readSecrets {
		return out
	}
	tok, err := readToken(c)
	if err != nil {
		p.Add("alerts.webhook", "%v", err)
	}
	out.token = tok
	if c.SigningKeyFile != "" {
		s, err := readSigner(c.SigningKeyFile)
		if err != nil {
			p.Add("alerts.webhook.signingKeyFile", "%v", err)
		}
		out.signer = s
	}
	return out
}

// readToken reads the bearer token from its file or variable. Its errors never hold the token.
func readToken(c config.AlertWebhook) ([]byte, error) {
	var tok []byte
	where := "the file " + c.TokenFile + " (tokenFile)"
	if c.TokenEnv != "" {
		where = "the environment variable " + c.TokenEnv + " (tokenEnv)"
		tok = []byte(os.Getenv(c.TokenEnv))
	} else {
		f, err := os.Open(c.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("reading the bearer token: %w", err)
		}
		defer f.Close()
		if tok, err = io.ReadAll(io.LimitReader(f, alerts.MaxTokenBytes+2)); err != nil {
			return nil, fmt.Errorf("reading the bearer token from %s: %w", c.TokenFile, err)
		}
	}
	tok = bytes.TrimSpace(tok)
	switch {
	case len(tok) == 0:
		return nil, fmt.Errorf("the bearer token in %s is empty; put a random token there (e.g. openssl rand -hex 32) and give Alertmanager the same", where)
	case len(tok) < alerts.MinTokenBytes:
		return nil, fmt.Errorf("the bearer token in %s is %d bytes; use at least %d (e.g. openssl rand -hex 32)", where, len(tok), alerts.MinTokenBytes)
	case len(tok) > alerts.MaxTokenBytes:
		return nil, fmt.Errorf("the bearer token in %s is longer than %d bytes", where, alerts.MaxTokenBytes)
	}
	return tok, nil
}

// readSigner reads an unencrypted OpenSSH private key.
func readSigner(path string) (ssh.Signer, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	pem, err := io.ReadAll(io.LimitReader(f, maxKeyBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(pem) > maxKeyBytes {
		return nil, fmt.Errorf("%s is larger than %d bytes; want an OpenSSH private key", path, maxKeyBytes)
	}
	s, err := ssh.ParsePrivateKey(pem)
	var missing *ssh.PassphraseMissingError
	if errors.As(err, &missing) {
		return nil, fmt.Errorf("%s is encrypted; the worker signs unattended, so give it a key without a passphrase (ssh-keygen -t ed25519 -N '')", path)
	}
	if err != nil {
		return nil, fmt.Errorf("%s is not an OpenSSH private key: %v", path, err)
	}
	return s, nil
}

// Handler returns the webhook's HTTP handler: aborts go to releases through c; outcomes are counted on
// m; refusals and actions are logged on log.
func (a *AlertWebhook) Handler(c client.Client, m *observe.EngineMetrics, log alerts.Logger) http.Handler {
	return &alerts.Handler{
		Token:          a.token,
		Labels:         a.Labels,
		Releases:       &temporalReleases{c: c, signer: a.signer},
		Observe:        func(env string, o alerts.Outcome) { m.ObserveAlert(env, string(o)) },
		ObserveRequest: m.ObserveAlertRequest,
		Logger:         log,
	}
}

// temporalReleases reaches releases as `shepherd abort` does: an abort update to the release's workflow.
type temporalReleases struct {
	c      client.Client
	signer ssh.Signer
}

func (t *temporalReleases) Describe(ctx context.Context, service, environment string) (alerts.Release, error) {
	d, err := t.c.DescribeWorkflow(ctx, spec.WorkflowID(service, environment), "")
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return alerts.Release{}, nil
	}
	if err != nil {
		return alerts.Release{}, fmt.Errorf("describing the release of %s in %s: %w", service, environment, err)
	}
	if d.Status != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		return alerts.Release{}, nil
	}
	return alerts.Release{Running: true, RunID: d.WorkflowExecution.RunID, StartTime: d.WorkflowStartTime}, nil
}

func (t *temporalReleases) Abort(ctx context.Context, r alerts.AbortRequest) (alerts.AbortResult, error) {
	id := spec.WorkflowID(r.Service, r.Environment)
	req := workflows.ControlRequest{By: r.By, Reason: r.Reason}
	if t.signer != nil {
		// The release verifies this in its VerifyControl activity against approvals.allowedSigners and
		// records the abort as signed by the key's principal; the abort itself never waits on it.
		claim := approvals.Claim{WorkflowID: id, RunID: r.RunID, Gate: workflows.Abort, Action: workflows.Abort,
			Expires: time.Now().Add(signedAbortValidity).UTC().Truncate(time.Second)}
		sig, err := approvals.Sign(t.signer, approvals.Namespace, claim.Payload())
		if err != nil {
			return alerts.AbortResult{}, fmt.Errorf("signing the abort: %w", err)
		}
		req.Signed = &approvals.Signed{Claim: claim, Signature: sig}
	}
	h, err := t.c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID:   id,
		RunID:        r.RunID, // the run that was looked at; if it ended since, nothing else is aborted
		UpdateName:   workflows.Abort,
		Args:         []any{req},
		WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	var resp workflows.ControlResponse
	if err == nil {
		err = h.Get(ctx, &resp)
	}
	if err == nil {
		return alerts.AbortResult{Outcome: alerts.Aborted, Message: resp.Message, Phase: string(resp.Phase)}, nil
	}
	return classifyAbortError(r, err)
}

// classifyAbortError tells the release's refusals (an answer) from failures to reach it (an error, so
// Alertmanager retries).
func classifyAbortError(r alerts.AbortRequest, err error) (alerts.AbortResult, error) {
	var nf *serviceerror.NotFound
	var appErr *temporal.ApplicationError
	switch {
	case errors.As(err, &nf) || strings.Contains(err.Error(), "workflow execution already completed"):
		return alerts.AbortResult{Outcome: alerts.NoActiveRelease, Message: fmt.Sprintf("the release of %s in %s has ended", r.Service, r.Environment)}, nil
	case errors.As(err, &appErr):
		// The update validator's answer (workflows/handlers.go, check).
		msg := appErr.Message()
		switch {
		case strings.HasPrefix(msg, "already rolling back"):
			return alerts.AbortResult{Outcome: alerts.AlreadyRollingBack, Message: msg}, nil
		case strings.HasPrefix(msg, "release already ended"):
			return alerts.AbortResult{Outcome: alerts.NoActiveRelease, Message: msg}, nil
		}
		return alerts.AbortResult{Outcome: alerts.Rejected, Message: msg}, nil
	}
	return alerts.AbortResult{}, fmt.Errorf("aborting the release of %s in %s: %w", r.Service, r.Environment, err)
}
