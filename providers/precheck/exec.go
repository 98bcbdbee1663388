package precheck

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"github.com/shepherd-release/shepherd/internal/redact"
	"github.com/shepherd-release/shepherd/spec"
)

// DefaultExecTimeout bounds an exec check when its Timeout is zero.
const DefaultExecTimeout = time.Minute

// maxOutput bounds how much of a command's stdout and stderr a check keeps.
const maxOutput = 64 << 10

// ExecCheck runs a shell command with `sh -c`; exit status 0 passes. The command also gets the SHEPHERD_*
// environment variables the exec target sets.
type ExecCheck struct {
	// Name identifies the check in errors and reports; default the start of the command.
	Name string `json:"name,omitempty"`
	// Command is a Go template over spec.TemplateData; {{shq .Version}} quotes a value for the shell.
	Command string `json:"command"`
	// Expect, when set, is the trimmed standard output wanted (a Go template over spec.TemplateData).
	Expect string `json:"expect,omitempty"`
	// Dir is the working directory; default the worker's.
	Dir string `json:"dir,omitempty"`
	// Timeout bounds the command, which is killed with its children when it runs over; default 1m.
	Timeout spec.Duration `json:"timeout,omitempty"`
}

func (c ExecCheck) name() string {
	if c.Name != "" {
		return c.Name
	}
	return clip(c.Command, 40)
}

// Validate checks the configuration without running anything.
func (c ExecCheck) Validate() error {
	var problems []string
	if strings.TrimSpace(c.Command) == "" {
		problems = append(problems, "command is required")
	}
	for _, t := range []struct{ name, text string }{{"command", c.Command}, {"expect", c.Expect}} {
		if _, err := parseTemplate(t.name, t.text); err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", t.name, err))
		}
	}
	if c.Timeout < 0 {
		problems = append(problems, "timeout must not be negative")
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

// Run runs the command and returns its trimmed standard output ("exit status 0" when it printed
// nothing). A non-zero exit or unexpected output is ErrUnmet, with the end of stderr as evidence; a
// timeout is a retryable *CheckError.
func (c ExecCheck) Run(ctx context.Context, data spec.TemplateData) (observed string, err error) {
	name := c.name()
	fail := func(observed, expected string, err error) (string, error) {
		return observed, &CheckError{Check: name, Observed: observed, Expected: expected, Err: err}
	}
	if err := c.Validate(); err != nil {
		return fail("", "", fmt.Errorf("%w: %v", ErrPermanent, err))
	}
	command, err := render("command", c.Command, data)
	if err != nil {
		return fail("", "", fmt.Errorf("%w: command: %v", ErrPermanent, err))
	}
	expect, err := render("expect", c.Expect, data)
	if err != nil {
		return fail("", "", fmt.Errorf("%w: expect: %v", ErrPermanent, err))
	}
	expected := "exit status 0"
	if expect != "" {
		expected += fmt.Sprintf(" with output %q", expect)
	}
	timeout := c.Timeout.D()
	if timeout == 0 {
		timeout = DefaultExecTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	cmd := exec.CommandContext(ctx, "sh", "-c", command)
	cmd.Dir = c.Dir
	// Never the worker's whole environment: it holds the Temporal API key and other credentials.
	cmd.Env = redact.CommandEnv(nil, data.Env())
	stdout, stderr := &capped{max: maxOutput}, &capped{max: maxOutput, tail: true}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	killGroup(cmd)
	cmd.WaitDelay = 2 * time.Second
	runErr := cmd.Run()
	// The output becomes the observation, stored in history and the report: redacted.
	raw := strings.TrimSpace(stdout.String())
	out := redact.String(raw)

	if ctx.Err() == context.DeadlineExceeded {
		return fail(fmt.Sprintf("no result within %v", timeout), expected, ctx.Err())
	}
	if err := ctx.Err(); err != nil {
		return fail("no result (cancelled)", expected, err)
	}
	var exitErr *exec.ExitError
	if runErr != nil && !errors.As(runErr, &exitErr) {
		return fail("", expected, fmt.Errorf("%w: start sh: %v", ErrPermanent, runErr))
	}
	if runErr != nil {
		obs := exitErr.ProcessState.String() // "exit status 3", "signal: killed"
		if ev := lastLine(redact.String(stderr.String())); ev != "" {
			obs += ": " + clip(ev, 200)
		} else if ev := lastLine(out); ev != "" {
			obs += ": " + clip(ev, 200)
		}
		return fail(obs, expected, ErrUnmet)
	}
	if expect != "" && raw != expect {
		return fail(fmt.Sprintf("output %q", clip(out, 200)), expected, ErrUnmet)
	}
	if out == "" {
		return "exit status 0", nil
	}
	return out, nil
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return strings.TrimSpace(s)
}

// capped keeps the first (or, with tail, the last) max bytes written, so a chatty command cannot exhaust
// the worker's memory. Stderr keeps its tail: that is where the explanation of a failure is.
type capped struct {
	buf  bytes.Buffer
	max  int
	tail bool
}

func (c *capped) Write(p []byte) (int, error) {
	if c.tail {
		c.buf.Write(p)
		if over := c.buf.Len() - c.max; over > 0 {
			c.buf.Next(over)
		}
		return len(p), nil
	}
	if room := c.max - c.buf.Len(); room > 0 {
		if len(p) > room {
			c.buf.Write(p[:room])
		} else {
			c.buf.Write(p)
		}
	}
	return len(p), nil
}

func (c *capped) String() string { return c.buf.String() }
