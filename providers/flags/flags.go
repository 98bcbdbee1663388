// Package flags rolls feature flags along with traffic: each stage sets the release's flags to the stage
// percent (0 = off, 100 = fully on, in between a sticky fractional rollout). Set writes absolute state, so
// calling it again with the same arguments changes nothing: retries and compensations are safe.
// Plain Go, no Temporal imports.
package flags

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/shepherd-release/shepherd/spec"
)

// Provider types.
const (
	// TypeFlagdFile edits a flagd JSON flag file in place (flagd reloads it on change).
	TypeFlagdFile = "flagd-file"
	// TypeHTTP sends one templated HTTP request per flag to a flag service's API.
	TypeHTTP = "http"
)

// DefaultTimeout bounds one Set call (flag file) or one request (http) when Config.Timeout is zero.
const DefaultTimeout = 30 * time.Second

// ErrPermanent marks an error that retrying will not fix (invalid configuration, a corrupt flag file, a
// 4xx answer): give up and record it.
var ErrPermanent = errors.New("permanent feature-flag failure")

// Config selects and configures the flag provider. Header values that are secrets go in HeaderEnv, never
// in Headers: the spec is stored in workflow history.
type Config struct {
	// Type is "flagd-file" or "http".
	Type string `json:"type"`
	// Path is the flagd flag file (flagd-file); created if missing.
	Path string `json:"path,omitempty"`
	// URL is a Go template over FlagData (http), e.g. "http://flags:8080/api/flags/{{.Flag}}".
	URL string `json:"url,omitempty"`
	// Method is the HTTP method (http); default PUT, since the request sets state.
	Method string `json:"method,omitempty"`
	// BodyTemplate is a Go template over FlagData (http); default FlagData as JSON. The function "json"
	// encodes a value as JSON: {"key": {{json .Flag}}, "rollout": {{.Percent}}}.
	BodyTemplate string `json:"bodyTemplate,omitempty"`
	// Headers are added to each request (http); values are Go templates over FlagData.
	Headers map[string]string `json:"headers,omitempty"`
	// HeaderEnv adds headers whose values are read from environment variables of the worker (http), e.g.
	// {"Authorization": "FLAGS_API_AUTH"}.
	HeaderEnv map[string]string `json:"headerEnv,omitempty"`
	// Timeout bounds one Set (flagd-file) or one request (http); default 30s.
	Timeout spec.Duration `json:"timeout,omitempty"`
}

// FlagData is what the http provider's templates see: the flag, the percent being set and the release.
type FlagData struct {
	Flag string `json:"flag"`
	// Percent of evaluations that get the flag on, 0-100.
	Percent int `json:"percent"`
	// Enabled is Percent > 0.
	Enabled         bool   `json:"enabled"`
	Service         string `json:"service"`
	Environment     string `json:"environment"`
	Version         string `json:"version"`
	PreviousVersion string `json:"previousVersion,omitempty"`
	Stage           int    `json:"stage"`
	ReleaseID       string `json:"releaseID"`
}

// Validate checks the configuration without touching files, the network or the environment.
func (c Config) Validate() error {
	var problems []string
	switch c.Type {
	case TypeFlagdFile:
		if strings.TrimSpace(c.Path) == "" {
			problems = append(problems, "path is required for type "+TypeFlagdFile)
		}
	case TypeHTTP:
		if strings.TrimSpace(c.URL) == "" {
			problems = append(problems, "url is required for type "+TypeHTTP)
		}
		for _, t := range []struct{ name, text string }{{"url", c.URL}, {"bodyTemplate", c.BodyTemplate}} {
			if _, err := parseTemplate(t.name, t.text); err != nil {
				problems = append(problems, fmt.Sprintf("%s: %v", t.name, err))
			}
		}
		for _, h := range slices.Sorted(maps.Keys(c.Headers)) { // sorted: the same config, the same message
			if _, err := parseTemplate("headers."+h, c.Headers[h]); err != nil {
				problems = append(problems, fmt.Sprintf("headers.%s: %v", h, err))
			}
		}
		for _, h := range slices.Sorted(maps.Keys(c.HeaderEnv)) {
			if env := c.HeaderEnv[h]; strings.TrimSpace(env) == "" {
				problems = append(problems, fmt.Sprintf("headerEnv.%s: name an environment variable", h))
			}
		}
		if c.Method != "" && strings.ContainsAny(c.Method, " \t\r\n") {
			problems = append(problems, fmt.Sprintf("method %q is not an HTTP method", c.Method))
		}
	case "":
		problems = append(problems, fmt.Sprintf("type is required: %q or %q", TypeFlagdFile, TypeHTTP))
	default:
		problems = append(problems, fmt.Sprintf("unknown type %q: want %q or %q", c.Type, TypeFlagdFile, TypeHTTP))
	}
	if c.Timeout < 0 {
		problems = append(problems, "timeout must not be negative")
	}
	if len(problems) > 0 {
		return fmt.Errorf("invalid feature-flag config: %s", strings.Join(problems, "; "))
	}
	return nil
}

// Set puts every flag in flags at percent: 0 turns them off, 100 fully on, anything in between rolls
// them out to that share of evaluations (sticky per targeting key, so raising the percent only adds users).
// Other flags are left as they are. Errors wrapping ErrPermanent must not be retried.
func Set(ctx context.Context, cfg Config, flags []string, percent int, data spec.TemplateData) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("%w: %v", ErrPermanent, err)
	}
	if percent < 0 || percent > 100 {
		return fmt.Errorf("%w: percent must be in [0, 100], got %d", ErrPermanent, percent)
	}
	for _, f := range flags {
		if strings.TrimSpace(f) == "" || strings.ContainsAny(f, "\r\n\t") {
			return fmt.Errorf("%w: invalid flag name %q", ErrPermanent, f)
		}
	}
	if len(flags) == 0 {
		return nil
	}
	timeout := cfg.Timeout.D()
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	switch cfg.Type {
	case TypeFlagdFile:
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		return setFlagdFile(ctx, cfg.Path, flags, percent)
	default:
		for _, f := range flags {
			if err := setHTTP(ctx, cfg, timeout, flagData(f, percent, data)); err != nil {
				return err
			}
		}
		return nil
	}
}

func flagData(flag string, percent int, d spec.TemplateData) FlagData {
	return FlagData{
		Flag: flag, Percent: percent, Enabled: percent > 0,
		Service: d.Service, Environment: d.Environment, Version: d.Version, PreviousVersion: d.PreviousVersion,
		Stage: d.Stage, ReleaseID: d.ReleaseID,
	}
}
