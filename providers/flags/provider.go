package flags

import (
	"context"
	"fmt"

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

// Describe says where the flags are written.
func (p *Provider) Describe() providers.Description {
	if p.cfg.Type == TypeFlagdFile {
		return providers.Description{Type: p.cfg.Type, Summary: "flagd flag file " + p.cfg.Path + " (fractional rollout, rewritten atomically)",
			Prerequisites: []string{"the worker can write " + p.cfg.Path}}
	}
	return providers.Description{Type: p.cfg.Type, Summary: "HTTP flag service, one request per flag"}
}
