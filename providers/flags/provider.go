package flags

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/shepherd-release/shepherd/providers"
	"github.com/shepherd-release/shepherd/spec"
)

// Provider is one configured flag provider (a flagd file or an HTTP flag service). Build it with New.
type Provider struct {
	cfg Config
}

var (
	_ providers.Flags     = (*Provider)(nil)
	_ providers.Describer = (*Provider)(nil)
)

// New checks cfg and returns the provider.
func New(cfg Config) (*Provider, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrPermanent, err)
	}
	return &Provider{cfg: cfg}, nil
}

// Set puts every named flag at percent; see the package function Set.
func (p *Provider) Set(ctx context.Context, names []string, percent int, data spec.TemplateData) error {
	return Set(ctx, p.cfg, names, percent, data)
}

// Describe says where the flags are written, and how a person turns them off by hand.
func (p *Provider) Describe() providers.Description {
	if p.cfg.Type == TypeFlagdFile {
		return providers.Description{Type: p.cfg.Type, Summary: "flagd flag file `" + p.cfg.Path + "` (fractional rollout, rewritten atomically)",
			Prerequisites: []string{"the flag file `" + p.cfg.Path + "` is writable on the workers (and read by flagd)"},
			Manual:        p.off}
	}
	pre := "the flag service answers from the workers"
	if len(p.cfg.HeaderEnv) > 0 {
		pre += "; the workers have " + strings.Join(sortedValues(p.cfg.HeaderEnv), ", ")
	}
	return providers.Description{Type: p.cfg.Type, Summary: "HTTP flag service, one " + method(p.cfg) + " per flag",
		Prerequisites: []string{pre}, Manual: p.off}
}

func method(c Config) string {
	if c.Method == "" {
		return "PUT"
	}
	return strings.ToUpper(c.Method)
}

func sortedValues(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for _, v := range m {
		out = append(out, "$"+v)
	}
	slices.Sort(out)
	return out
}

// off is the commands that turn the named flags off as Set(0) would.
func (p *Provider) off(_ string, d spec.TemplateData, names []string) []string {
	shq := func(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
	shword := func(s string) string {
		if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=@%+,") == "" {
			return s
		}
		return shq(s)
	}
	switch p.cfg.Type {
	case TypeFlagdFile:
		var filter []string
		for _, n := range names {
			key, _ := json.Marshal(n)
			filter = append(filter, fmt.Sprintf(`.flags[%s].defaultVariant = "off" | del(.flags[%s].targeting)`, key, key))
		}
		path, tmp := shword(p.cfg.Path), shword(p.cfg.Path+".tmp")
		return []string{
			"# the flag file on the worker(s); flagd reloads it. Flags stay ENABLED with defaultVariant off.",
			"jq " + shq(strings.Join(filter, " | ")) + " " + path + " > " + tmp + " && mv " + tmp + " " + path,
		}
	default:
		var lines []string
		for _, n := range names {
			fd := flagData(n, 0, d)
			u, err := render("url", p.cfg.URL, fd)
			if err != nil {
				lines = append(lines, "# the url template does not render: substitute by hand")
				u = p.cfg.URL
			}
			body := ""
			if p.cfg.BodyTemplate == "" {
				raw, _ := json.Marshal(fd)
				body = string(raw)
			} else if body, err = render("body", p.cfg.BodyTemplate, fd); err != nil {
				lines = append(lines, "# the body template does not render: substitute by hand")
				body = p.cfg.BodyTemplate
			}
			cmd := "curl -sS -X " + method(p.cfg) + " -H 'Content-Type: application/json'"
			for _, h := range sortedKeys(p.cfg.Headers) {
				v, _ := render("header", p.cfg.Headers[h], fd)
				cmd += " -H " + shq(h+": "+v)
			}
			for _, h := range sortedKeys(p.cfg.HeaderEnv) {
				cmd += fmt.Sprintf(` -H "%s: ${%s}"`, h, p.cfg.HeaderEnv[h])
			}
			lines = append(lines, cmd+" "+shword(strings.TrimSpace(u))+" -d "+shq(body))
		}
		return lines
	}
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
