package precheck

import (
	"context"
	"fmt"
	"strings"

	"github.com/shepherd-release/shepherd/providers"
	"github.com/shepherd-release/shepherd/spec"
)

var (
	_ providers.Checker   = HTTPCheck{}
	_ providers.Checker   = ExecCheck{}
	_ providers.Describer = HTTPCheck{}
	_ providers.Describer = ExecCheck{}
)

// NewHTTP checks an HTTP check's configuration and returns it.
func NewHTTP(c HTTPCheck) (HTTPCheck, error) {
	if err := c.Validate(); err != nil {
		return c, fmt.Errorf("%w: %v", ErrPermanent, err)
	}
	return c, nil
}

// NewExec checks a command check's configuration and returns it.
func NewExec(c ExecCheck) (ExecCheck, error) {
	if err := c.Validate(); err != nil {
		return c, fmt.Errorf("%w: %v", ErrPermanent, err)
	}
	return c, nil
}

// Check runs the check; see Run.
func (c HTTPCheck) Check(ctx context.Context, data spec.TemplateData) (string, error) {
	return c.Run(ctx, data)
}

// Check runs the check; see Run.
func (c ExecCheck) Check(ctx context.Context, data spec.TemplateData) (string, error) {
	return c.Run(ctx, data)
}

// Describe says what the check asks.
func (c HTTPCheck) Describe() providers.Description {
	// The URL as configured (a template), without its query string, which may carry a token.
	host, _, _ := strings.Cut(c.URL, "?")
	want := fmt.Sprintf("HTTP %d", statusOr(c.ExpectStatus))
	if c.JSONField != "" {
		want += fmt.Sprintf(" with %s = %q", c.JSONField, c.Expect)
	}
	return providers.Description{Type: "http", Summary: "HTTP GET `" + host + "`" + ", expecting " + want}
}

// Describe says what the check runs.
func (c ExecCheck) Describe() providers.Description {
	s := "runs `" + c.Command + "` on the worker, expecting exit 0"
	if c.Timeout > 0 {
		s += " within " + c.Timeout.String()
	}
	if c.Expect != "" {
		s += fmt.Sprintf(" and last line %q", c.Expect)
	}
	return providers.Description{Type: "exec", Summary: s}
}

func statusOr(s int) int {
	if s == 0 {
		return 200
	}
	return s
}
