package vcs

import (
	"context"
	"fmt"

	"github.com/shepherd-release/shepherd/providers"
	"github.com/shepherd-release/shepherd/spec"
)

// Repo is one configured git repository releases are tagged in. Build it with New.
type Repo struct {
	cfg Config
}

var (
	_ providers.Tagger    = (*Repo)(nil)
	_ providers.Describer = (*Repo)(nil)
)

// New checks cfg and returns the repository.
func New(cfg Config) (*Repo, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrPermanent, err)
	}
	return &Repo{cfg: cfg}, nil
}

// Tag creates the annotated tag named by the template name (the repository's own name template, or
// DefaultName, when empty); see the package function Tag.
func (r *Repo) Tag(ctx context.Context, name string, data spec.TemplateData, notes string) (bool, error) {
	cfg := r.cfg
	if name != "" {
		cfg.Name = name
	}
	return Tag(ctx, cfg, data, notes)
}

// Describe says where tags go.
func (r *Repo) Describe() providers.Description {
	s := "annotated git tag in " + r.cfg.Repo
	if r.cfg.Push {
		s += ", pushed to " + orDefault(r.cfg.Remote, DefaultRemote)
	}
	return providers.Description{Type: "git", Summary: s, Prerequisites: []string{"the worker can run git in " + r.cfg.Repo}}
}
