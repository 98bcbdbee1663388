// Package exec is the exec deploy target: one shell command per release step, rendered as a Go template
// over the release and also given the SHEPHERD_* environment variables, among them the step's fencing
// token (SHEPHERD_RELEASE_ID, SHEPHERD_STEP, SHEPHERD_STEP_SEQ). A command that refuses a stale step
// exits with ExitStaleWrite (docs/targets.md shows how). The commands are the worker operator's, from
// the worker configuration: a release spec only names the target.
package exec

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	osexec "os/exec"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/shepherd-release/shepherd/internal/redact"
	"github.com/shepherd-release/shepherd/internal/safetmpl"
	"github.com/shepherd-release/shepherd/providers"
	"github.com/shepherd-release/shepherd/spec"
)

// stderrTail is how much of a failed command's output goes into the error (redacted: it reaches
// history, the report and notifications).
const stderrTail = 2048

// ExitStaleWrite is the exit code by which a command says it refused the step as stale: it has applied a
// newer step (a larger SHEPHERD_STEP_SEQ) of the same release. The step then fails with an error wrapping
// providers.ErrStaleWrite, which is never retried. It lies outside the sysexits range (64-78) on purpose:
// 75, EX_TEMPFAIL, means "try again later", the opposite, and a script passing on a tool's exit status
// must not turn a temporary failure into a refusal.
const ExitStaleWrite = 79

// DefaultTimeout bounds each command when the configuration gives none.
const DefaultTimeout = 5 * time.Minute

// Config is an exec target as the worker configuration gives it.
type Config struct {
	// Deploy starts the new version beside the stable one, at 0% traffic.
	Deploy string `json:"deploy"`
	// Traffic sends {{.Percent}} % of traffic to the new version (0 on rollback).
	Traffic string `json:"traffic"`
	// Promote makes the new version stable.
	Promote string `json:"promote"`
	// Rollback removes the new version; it runs after traffic was set to 0 and must be idempotent.
	Rollback string `json:"rollback"`
	// Health checks the new version after deploy; optional.
	Health string `json:"health,omitempty"`
	// Timeout bounds each command; default 5m.
	Timeout spec.Duration `json:"timeout,omitempty"`
	// Dir is the working directory of the commands; default the worker's.
	Dir string `json:"dir,omitempty"`
	// Env adds environment variables to every command. Commands get only these, PATH, HOME and the
	// SHEPHERD_* variables, never the worker's whole environment.
	Env map[string]string `json:"env,omitempty"`
	// Shell runs the commands; default "sh".
	Shell string `json:"shell,omitempty"`
}

// Target runs one configured command per step with `sh -c`. Build it with New.
type Target struct {
	cfg Config
}

var (
	_ providers.Target      = (*Target)(nil)
	_ providers.Preflighter = (*Target)(nil)
	_ providers.Describer   = (*Target)(nil)
)

// New checks cfg (required commands present, templates parse) and returns the target.
func New(cfg Config) (*Target, error) {
	var problems []string
	for _, c := range []struct{ name, tmpl string }{
		{"deploy", cfg.Deploy}, {"traffic", cfg.Traffic}, {"promote", cfg.Promote}, {"rollback", cfg.Rollback},
	} {
		if strings.TrimSpace(c.tmpl) == "" {
			problems = append(problems, c.name+" is required")
		}
	}
	for _, step := range []string{"deploy", "traffic", "promote", "rollback", "health"} {
		if _, err := safetmpl.Parse(step, cfg.command(step), nil); err != nil {
			problems = append(problems, fmt.Sprintf("%s: template does not parse: %v", step, err))
		}
	}
	if cfg.Timeout < 0 {
		problems = append(problems, "timeout must not be negative")
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%s: %w", strings.Join(problems, "; "), providers.ErrPermanent)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = spec.Duration(DefaultTimeout)
	}
	return &Target{cfg: cfg}, nil
}

// Describe says what each step runs.
func (t *Target) Describe() providers.Description {
	steps := map[string]string{}
	for _, step := range []string{"deploy", "health", "traffic", "promote", "rollback"} {
		if c := t.cfg.command(step); strings.TrimSpace(c) != "" {
			steps[step] = "`" + strings.TrimSpace(c) + "`"
		}
	}
	where := "the worker's working directory"
	if t.cfg.Dir != "" {
		where = t.cfg.Dir
	}
	return providers.Description{
		Type:    "exec",
		Summary: fmt.Sprintf("shell commands on the worker (%s -c, in %s), each bounded by %s", t.shell(), where, t.cfg.Timeout),
		Steps:   steps,
		Prerequisites: []string{
			"the commands' tools and credentials are installed on every worker of the task queue",
			"every command is idempotent: a retry runs it again with the same SHEPHERD_STEP_SEQ",
		},
		ManualRollback: []string{
			"run the traffic command with SHEPHERD_PERCENT=0 (all traffic to the stable version): " + steps["traffic"],
			"then the rollback command to remove the new version: " + steps["rollback"],
		},
		StepTimeout: t.cfg.Timeout.D(),
		Manual:      t.manual,
	}
}

// manual renders one step as the lines a person runs on a host like the workers: the environment the
// worker gives the command, then the command.
func (t *Target) manual(step string, d spec.TemplateData, _ []string) []string {
	var lines []string
	if t.cfg.Dir != "" {
		lines = append(lines, "cd "+shword(t.cfg.Dir))
	}
	keys := make([]string, 0, len(t.cfg.Env))
	for k := range t.cfg.Env {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		lines = append(lines, "export "+k+"="+shword(t.cfg.Env[k]))
	}
	var env []string
	for _, kv := range d.Env() {
		k, v, _ := strings.Cut(kv, "=")
		if k == "SHEPHERD_STEP_SEQ" && d.Step == providers.ManualStep {
			// Newer than any step Shepherd ran (providers.ManualStep).
			env = append(env, k+`="$(date +%s)"`)
			continue
		}
		env = append(env, k+"="+shword(v))
	}
	cmd, err := t.Render(step, d)
	if err != nil {
		return append(lines, "# the "+step+" command does not render ("+strings.ReplaceAll(err.Error(), "\n", " ")+
			"): substitute by hand", strings.Join(env, " ")+" "+t.shell()+" -c "+shq(t.cfg.command(step)))
	}
	return append(lines, strings.Join(env, " ")+" "+t.shell()+" -c "+shq(cmd))
}

// shq quotes s for sh.
func shq(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// shword quotes s for sh unless it is a plain word.
func shword(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=@%+,") == "" {
		return s
	}
	return shq(s)
}

// Deploy runs the deploy command.
func (t *Target) Deploy(ctx context.Context, d spec.TemplateData) error {
	return t.run(ctx, "deploy", d)
}

// Health runs the health command; with none configured the new version counts as healthy.
func (t *Target) Health(ctx context.Context, d spec.TemplateData) error {
	if strings.TrimSpace(t.cfg.Health) == "" {
		return nil
	}
	return t.run(ctx, "health", d)
}

// SetTraffic runs the traffic command with .Percent set.
func (t *Target) SetTraffic(ctx context.Context, d spec.TemplateData) error {
	return t.run(ctx, "traffic", d)
}

// Promote runs the promote command.
func (t *Target) Promote(ctx context.Context, d spec.TemplateData) error {
	return t.run(ctx, "promote", d)
}

// Rollback runs the rollback command.
func (t *Target) Rollback(ctx context.Context, d spec.TemplateData) error {
	return t.run(ctx, "rollback", d)
}

// Preflight renders every command and checks the working directory and the shell, changing nothing.
func (t *Target) Preflight(_ context.Context, d spec.TemplateData) error {
	for _, step := range []string{"deploy", "traffic", "promote", "rollback", "health"} {
		if _, err := t.Render(step, d); err != nil {
			return err
		}
	}
	if dir := t.cfg.Dir; dir != "" {
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			return fmt.Errorf("dir %q is not a directory on this worker: %w", dir, providers.ErrPermanent)
		}
	}
	if _, err := osexec.LookPath(t.shell()); err != nil {
		return fmt.Errorf("shell %q not found on this worker: %w", t.shell(), providers.ErrPermanent)
	}
	return nil
}

func (t *Target) shell() string {
	if t.cfg.Shell != "" {
		return t.cfg.Shell
	}
	return "sh"
}

func (c Config) command(step string) string {
	switch step {
	case "deploy":
		return c.Deploy
	case "traffic":
		return c.Traffic
	case "promote":
		return c.Promote
	case "rollback":
		return c.Rollback
	case "health":
		return c.Health
	}
	return ""
}

// Render returns the command for step with the template applied. Errors wrap providers.ErrPermanent:
// a template that does not render will not render on a retry either.
func (t *Target) Render(step string, d spec.TemplateData) (string, error) {
	switch step {
	case "deploy", "traffic", "promote", "rollback", "health":
	default:
		return "", fmt.Errorf("unknown exec step %q: %w", step, providers.ErrPermanent)
	}
	tmpl, err := safetmpl.Parse(step, t.cfg.command(step), nil)
	if err != nil {
		return "", fmt.Errorf("%s: template does not parse: %v: %w", step, err, providers.ErrPermanent)
	}
	out, err := tmpl.Execute(d)
	if err != nil {
		return "", fmt.Errorf("%s: template does not render: %v: %w", step, err, providers.ErrPermanent)
	}
	return out, nil
}

func (t *Target) run(ctx context.Context, step string, d spec.TemplateData) error {
	script, err := t.Render(step, d)
	if err != nil {
		return err
	}
	timeout := t.cfg.Timeout.D()
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	cmd := osexec.CommandContext(ctx, t.shell(), "-c", script)
	cmd.Dir = t.cfg.Dir
	// Never the worker's whole environment: it holds the Temporal API key and other credentials.
	cmd.Env = redact.CommandEnv(t.cfg.Env, d.Env())
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
		return fmt.Errorf("%s command timed out after %s (timeout)%s", step, timeout, tail)
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%s command cancelled: %w", step, ctx.Err())
	}
	var exitErr *osexec.ExitError
	if errors.As(err, &exitErr) && exitErr.ExitCode() == ExitStaleWrite {
		return fmt.Errorf("%s command refused step %q (seq %d) of release %s as stale: exit code %d means a newer "+
			"step was applied%s: %w", step, d.Step, d.Seq, d.ReleaseID, ExitStaleWrite, tail, providers.ErrStaleWrite)
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
