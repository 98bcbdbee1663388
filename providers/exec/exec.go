// Package exec is the exec deploy target: one shell command per release step, rendered as a Go template
// over the release and also given the SHEPHERD_* environment variables, among them the step's fencing
// token (SHEPHERD_RELEASE_ID, SHEPHERD_STEP, SHEPHERD_STEP_SEQ). A command that refuses a stale step
// exits with ExitStaleWrite (docs/targets.md shows how).
package exec

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	osexec "os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/shepherd-release/shepherd/activities"
	"github.com/shepherd-release/shepherd/internal/redact"
	"github.com/shepherd-release/shepherd/internal/safetmpl"
	"github.com/shepherd-release/shepherd/spec"
)

// stderrTail is how much of a failed command's output goes into the error (redacted: it reaches
// history, the report and notifications).
const stderrTail = 2048

// ExitStaleWrite is the exit code by which a command says it refused the step as stale: it has applied a
// newer step (a larger SHEPHERD_STEP_SEQ) of the same release. The step then fails with an error wrapping
// activities.ErrStaleWrite, which is never retried. It lies outside the sysexits range (64-78) on purpose:
// 75, EX_TEMPFAIL, means "try again later", the opposite, and a script passing on a tool's exit status
// must not turn a temporary failure into a refusal.
const ExitStaleWrite = 79

// Target runs the spec's exec commands with `sh -c`.
type Target struct {
	// Shell runs the commands; default "sh".
	Shell string
}

var _ activities.Target = Target{}
var _ activities.Preflighter = Target{}

// Deploy runs target.exec.deploy.
func (t Target) Deploy(ctx context.Context, cfg spec.Target, d spec.TemplateData) error {
	return t.run(ctx, cfg, "deploy", d)
}

// Health runs target.exec.health; with none configured the new version counts as healthy.
func (t Target) Health(ctx context.Context, cfg spec.Target, d spec.TemplateData) error {
	if cfg.Exec == nil || strings.TrimSpace(cfg.Exec.Health) == "" {
		return nil
	}
	return t.run(ctx, cfg, "health", d)
}

// SetTraffic runs target.exec.traffic with .Percent set.
func (t Target) SetTraffic(ctx context.Context, cfg spec.Target, d spec.TemplateData) error {
	return t.run(ctx, cfg, "traffic", d)
}

// Promote runs target.exec.promote.
func (t Target) Promote(ctx context.Context, cfg spec.Target, d spec.TemplateData) error {
	return t.run(ctx, cfg, "promote", d)
}

// Rollback runs target.exec.rollback.
func (t Target) Rollback(ctx context.Context, cfg spec.Target, d spec.TemplateData) error {
	return t.run(ctx, cfg, "rollback", d)
}

// Preflight renders every command and checks the working directory and the shell, changing nothing.
func (t Target) Preflight(_ context.Context, cfg spec.Target, d spec.TemplateData) error {
	if cfg.Exec == nil {
		return fmt.Errorf("target.exec is missing: %w", activities.ErrPermanent)
	}
	for _, step := range []string{"deploy", "traffic", "promote", "rollback", "health"} {
		if _, err := Render(cfg.Exec, step, d); err != nil {
			return err
		}
	}
	if dir := cfg.Exec.Dir; dir != "" {
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			return fmt.Errorf("target.exec.dir %q is not a directory on this worker: %w", dir, activities.ErrPermanent)
		}
	}
	if _, err := osexec.LookPath(t.shell()); err != nil {
		return fmt.Errorf("shell %q not found on this worker: %w", t.shell(), activities.ErrPermanent)
	}
	return nil
}

func (t Target) shell() string {
	if t.Shell != "" {
		return t.Shell
	}
	return "sh"
}

// Render returns the command for step with the template applied. Errors wrap activities.ErrPermanent:
// a template that does not render will not render on a retry either.
func Render(cfg *spec.ExecTarget, step string, d spec.TemplateData) (string, error) {
	var src string
	switch step {
	case "deploy":
		src = cfg.Deploy
	case "traffic":
		src = cfg.Traffic
	case "promote":
		src = cfg.Promote
	case "rollback":
		src = cfg.Rollback
	case "health":
		src = cfg.Health
	default:
		return "", fmt.Errorf("unknown exec step %q: %w", step, activities.ErrPermanent)
	}
	tmpl, err := safetmpl.Parse(step, src, nil)
	if err != nil {
		return "", fmt.Errorf("target.exec.%s: template does not parse: %v: %w", step, err, activities.ErrPermanent)
	}
	out, err := tmpl.Execute(d)
	if err != nil {
		return "", fmt.Errorf("target.exec.%s: template does not render: %v: %w", step, err, activities.ErrPermanent)
	}
	return out, nil
}

func (t Target) run(ctx context.Context, cfg spec.Target, step string, d spec.TemplateData) error {
	if cfg.Exec == nil {
		return fmt.Errorf("target.exec is missing: %w", activities.ErrPermanent)
	}
	script, err := Render(cfg.Exec, step, d)
	if err != nil {
		return err
	}
	timeout := cfg.Exec.Timeout.D()
	if timeout <= 0 {
		timeout = spec.DefaultCommandTimeout.D()
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	cmd := osexec.CommandContext(ctx, t.shell(), "-c", script)
	cmd.Dir = cfg.Exec.Dir
	// Never the worker's whole environment: it holds the Temporal API key and other credentials.
	cmd.Env = redact.CommandEnv(cfg.Exec.Env, d.Env())
	// Own process group, killed as a whole on timeout or cancellation; and killed if the worker dies, so
	// a retry on another worker never races a half-finished command.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var stderr tailBuffer
	cmd.Stderr = &stderr
	cmd.Stdout = &stderr

	err = cmd.Run()
	if err == nil {
		return nil
	}
	tail := redact.Tail(strings.TrimSpace(stderr.String()), stderrTail)
	if tail != "" {
		tail = "; output: " + tail
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%s command timed out after %s (target.exec.timeout)%s", step, timeout, tail)
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%s command cancelled: %w", step, ctx.Err())
	}
	var exitErr *osexec.ExitError
	if errors.As(err, &exitErr) && exitErr.ExitCode() == ExitStaleWrite {
		return fmt.Errorf("%s command refused step %q (seq %d) of release %s as stale: exit code %d means a newer "+
			"step was applied%s: %w", step, d.Step, d.Seq, d.ReleaseID, ExitStaleWrite, tail, activities.ErrStaleWrite)
	}
	if errors.As(err, &exitErr) {
		return fmt.Errorf("%s command exited with code %d%s", step, exitErr.ExitCode(), tail)
	}
	return fmt.Errorf("%s command could not run: %v", step, err)
}

// tailBuffer keeps the last 2×stderrTail bytes written to it: the error shows stderrTail of them after
// redaction, so a secret cut at the buffer's start is not left half visible in the error.
type tailBuffer struct{ b bytes.Buffer }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b.Write(p)
	if over := t.b.Len() - 2*stderrTail; over > 0 {
		t.b.Next(over)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string { return t.b.String() }
