// Package precheck runs the checks that gate a release before anything changes: an HTTP endpoint
// answering as expected (build artifact exists, QA signed off, dependency healthy) or a shell command
// succeeding (capacity query, custom script). Every check reports what it observed, and every error is a
// *CheckError naming the check, the observation and the expectation, so the rejection reason a person
// reads says exactly what to fix. Plain Go, no Temporal imports.
package precheck

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/shepherd-release/shepherd/internal/safetmpl"
	"github.com/shepherd-release/shepherd/spec"
)

// ErrUnmet marks a check that ran and observed something other than expected: an answer, not a fault.
// Retrying soon rarely changes it; the workflow rejects the release with the error as the reason.
var ErrUnmet = errors.New("expectation not met")

// ErrPermanent marks a check that cannot run as configured (bad template, bad URL); retrying will not help.
var ErrPermanent = errors.New("invalid check")

// CheckError is the error of every failed check. Errors that wrap neither ErrUnmet nor ErrPermanent (a
// connection refused, a timeout) say nothing about the release and are worth retrying.
type CheckError struct {
	// Check is the check's name.
	Check string
	// Observed is what the check saw ("HTTP 503", "pending", "exit status 1: no capacity").
	Observed string
	// Expected is what it wanted ("HTTP 200, field status = \"approved\"").
	Expected string
	// Err is ErrUnmet, ErrPermanent or the underlying failure.
	Err error
}

func (e *CheckError) Error() string {
	switch {
	case errors.Is(e.Err, ErrPermanent):
		return fmt.Sprintf("pre-release check %q cannot run: %v", e.Check, e.Err)
	case e.Err == ErrUnmet:
		return fmt.Sprintf("pre-release check %q failed: observed %s; expected %s", e.Check, e.Observed, e.Expected)
	default:
		return fmt.Sprintf("pre-release check %q failed: observed %s; expected %s (%v)", e.Check, e.Observed,
			e.Expected, e.Err)
	}
}

func (e *CheckError) Unwrap() error { return e.Err }

// Check is one pre-release check: exactly one of HTTP and Exec.
type Check struct {
	HTTP *HTTPCheck `json:"http,omitempty"`
	Exec *ExecCheck `json:"exec,omitempty"`
}

// Name is the check's name as errors and reports show it.
func (c Check) Name() string {
	switch {
	case c.HTTP != nil:
		return c.HTTP.name()
	case c.Exec != nil:
		return c.Exec.name()
	}
	return "unnamed"
}

// Validate checks the configuration without running anything.
func (c Check) Validate() error {
	switch {
	case c.HTTP != nil && c.Exec != nil:
		return errors.New("a check has either http or exec, not both")
	case c.HTTP != nil:
		return c.HTTP.Validate()
	case c.Exec != nil:
		return c.Exec.Validate()
	}
	return errors.New("a check needs http or exec")
}

// Run runs the check and returns what it observed; see HTTPCheck.Run and ExecCheck.Run.
func (c Check) Run(ctx context.Context, data spec.TemplateData) (observed string, err error) {
	switch {
	case c.HTTP != nil && c.Exec == nil:
		return c.HTTP.Run(ctx, data)
	case c.Exec != nil && c.HTTP == nil:
		return c.Exec.Run(ctx, data)
	}
	return "", &CheckError{Check: c.Name(), Err: fmt.Errorf("%w: %v", ErrPermanent, c.Validate())}
}

// parseTemplate parses a check's template; every template has {{shq .Version}}, which quotes a value for
// sh, and is bounded (internal/safetmpl).
func parseTemplate(name, text string) (*safetmpl.Template, error) {
	return safetmpl.Parse(name, text, nil)
}

func render(name, text string, d spec.TemplateData) (string, error) {
	t, err := parseTemplate(name, text)
	if err != nil {
		return "", err
	}
	return t.Execute(d)
}

// clip shortens an observation for messages, on one line.
func clip(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		cut := n
		for cut > 0 && s[cut]&0xC0 == 0x80 {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}
