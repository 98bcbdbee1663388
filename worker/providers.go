package worker

import (
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/shepherd-release/shepherd/activities"
	"github.com/shepherd-release/shepherd/approvals"
	"github.com/shepherd-release/shepherd/config"
	"github.com/shepherd-release/shepherd/providers"
	"github.com/shepherd-release/shepherd/providers/exec"
	"github.com/shepherd-release/shepherd/providers/flags"
	"github.com/shepherd-release/shepherd/providers/kubernetes"
	"github.com/shepherd-release/shepherd/providers/local"
	"github.com/shepherd-release/shepherd/providers/notify"
	"github.com/shepherd-release/shepherd/providers/precheck"
	"github.com/shepherd-release/shepherd/providers/prometheus"
	"github.com/shepherd-release/shepherd/providers/vcs"
	"github.com/shepherd-release/shepherd/providers/web"
)

// The provider types a worker can build, by configuration section. Adding a provider is one package
// under providers/ and one line here.
var (
	targetTypes = factories[providers.Target]{
		"exec":  build[providers.Target](exec.New),
		"local": build[providers.Target](local.New),
		// Releases a Deployment beside a canary: docs/targets.md.
		"kubernetes": build[providers.Target](kubernetes.New),
	}
	metricTypes = factories[providers.Metrics]{
		"prometheus": build[providers.Metrics](prometheus.New),
		"web":        build[providers.Metrics](web.New),
	}
	precheckTypes = factories[providers.Checker]{
		"http": build[providers.Checker](precheck.NewHTTP),
		"exec": build[providers.Checker](precheck.NewExec),
	}
	flagTypes = factories[providers.Flags]{
		flags.TypeFlagdFile: build[providers.Flags](typed(flags.TypeFlagdFile, func(c *flags.Config) *string { return &c.Type }, flags.New)),
		flags.TypeHTTP:      build[providers.Flags](typed(flags.TypeHTTP, func(c *flags.Config) *string { return &c.Type }, flags.New)),
	}
	notificationTypes = factories[*notify.Channel]{
		notify.TypeSlack:   build[*notify.Channel](typed(notify.TypeSlack, func(c *notify.Config) *string { return &c.Type }, notify.New)),
		notify.TypeWebhook: build[*notify.Channel](typed(notify.TypeWebhook, func(c *notify.Config) *string { return &c.Type }, notify.New)),
	}
	repositoryTypes = factories[providers.Tagger]{
		"git": build[providers.Tagger](vcs.New),
	}
)

// Providers are every provider a worker offers, by the names its configuration gives them.
type Providers struct {
	Targets       providers.Registry[providers.Target]
	Metrics       providers.Registry[providers.Metrics]
	Prechecks     providers.Registry[providers.Checker]
	Flags         providers.Registry[providers.Flags]
	Notifications providers.Registry[*notify.Channel]
	Repositories  providers.Registry[providers.Tagger]
	// ReportDir is where reports are archived (the configuration's reports.dir).
	ReportDir string
	// Approvals is the approval policy (the configuration's approvals); nil when none is configured.
	Approvals *approvals.Policy
	// Alerts is the alert webhook (the configuration's alerts.webhook); nil when it is off.
	Alerts *AlertWebhook
	// Descriptions describe every provider, by section and name, for paperwork.
	Descriptions map[string]map[string]providers.Description
	// Tuning is the configuration's worker section, defaults applied (Config.Tuning of Run).
	Tuning config.Tuning
}

// Activities returns the release activities over these providers; the caller adds an Observer.
func (p *Providers) Activities() *activities.Activities {
	return &activities.Activities{
		Targets: p.Targets, Metrics: p.Metrics, Prechecks: p.Prechecks, Flags: p.Flags,
		Notifications: p.Notifications, Repositories: p.Repositories, ReportDir: p.ReportDir, Approvals: p.Approvals,
	}
}

// BuildOptions adjust Build.
type BuildOptions struct {
	// CheckSecrets reads every credential once (a worker starting); off for paperwork, which describes
	// providers on a machine that may not hold their secrets.
	CheckSecrets bool
	// Log receives what providers report beyond success (a local target's idempotent repeats); optional.
	Log func(msg string, keyvals ...any)
}

// Build makes every provider of cfg: the worker's one composition root. It reports every problem at once,
// each with its field path (e.g. "metrics.prod.address: ...").
func Build(cfg config.Config, opts BuildOptions) (*Providers, error) {
	var p config.Problems
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	out := &Providers{ReportDir: cfg.Reports.Dir, Descriptions: map[string]map[string]providers.Description{},
		Tuning: cfg.Worker.Tuning()}
	describe := func(section, name, typ string, v any) {
		if out.Descriptions[section] == nil {
			out.Descriptions[section] = map[string]providers.Description{}
		}
		out.Descriptions[section][name] = providers.Describe(v, typ)
	}
	out.Targets = buildSection(&p, config.SectionTargets, cfg.Targets, targetTypes, opts, describe)
	for _, t := range out.Targets {
		if l, ok := t.(*local.Target); ok && opts.Log != nil {
			l.Log = opts.Log
		}
	}
	out.Metrics = buildSection(&p, config.SectionMetrics, cfg.Metrics, metricTypes, opts, describe)
	out.Prechecks = buildSection(&p, config.SectionPrechecks, cfg.Prechecks, precheckTypes, opts, describe)
	out.Flags = buildSection(&p, config.SectionFlags, cfg.Flags, flagTypes, opts, describe)
	out.Notifications = buildSection(&p, config.SectionNotifications, cfg.Notifications, notificationTypes, opts, describe)
	out.Repositories = buildSection(&p, config.SectionRepositories, cfg.Repositories, repositoryTypes, opts, describe)
	out.Approvals = buildApprovals(&p, cfg.Approvals)
	out.Alerts = buildAlertWebhook(&p, cfg.Alerts, opts.CheckSecrets)
	if err := p.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// buildApprovals makes the approval policy: the verifier from the allowed_signers file and roles, and
// the freeze windows prepared. Without an approvals section the policy is the strict one: no unsigned
// approval counts anywhere (and, with no keys, none can be signed): operators say where they accept less.
func buildApprovals(p *config.Problems, a *config.Approvals) *approvals.Policy {
	if a == nil {
		return &approvals.Policy{}
	}
	pol := &approvals.Policy{UnsignedEnvironments: a.UnsignedEnvironments, FourEyesEnvironments: a.FourEyesEnvironments,
		BreakGlassRoles: a.BreakGlassRoles, SignedResume: a.SignedResume}
	for i := range a.Freezes {
		f := a.Freezes[i]
		if err := f.Validate(fmt.Sprintf("approvals.freezes[%d]", i)); err == nil {
			pol.Freezes = append(pol.Freezes, f)
		}
	}
	if a.AllowedSigners != "" {
		f, err := os.Open(a.AllowedSigners)
		if err != nil {
			p.Add("approvals.allowedSigners", "%v", err)
			return pol
		}
		defer f.Close()
		v, err := approvals.NewVerifier(io.LimitReader(f, config.MaxBytes), a.Roles)
		if err != nil {
			p.Add("approvals.allowedSigners", "%s: %v", a.AllowedSigners, err)
			return pol
		}
		pol.Verifier = v
	}
	return pol
}

// factory builds one provider from its configuration entry.
type factory[T any] func(config.Provider) (T, error)

type factories[T any] map[string]factory[T]

func (f factories[T]) types() []string {
	out := make([]string, 0, len(f))
	for t := range f {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

// build turns a provider constructor taking its own typed configuration C into a factory: the settings
// are decoded strictly into C, then New checks them.
func build[T, C, P any](newFn func(C) (P, error)) factory[T] {
	return func(e config.Provider) (T, error) {
		var zero T
		c, err := config.Decode[C](e)
		if err != nil {
			return zero, err
		}
		v, err := newFn(c)
		if err != nil {
			return zero, err
		}
		t, ok := any(v).(T)
		if !ok {
			// A programming error in the tables above; TestEveryTypeBuilds catches it.
			return zero, fmt.Errorf("%T does not implement %T", v, (*T)(nil))
		}
		return t, nil
	}
}

// typed sets the type field of configurations that carry it (one package serving several types).
func typed[C, P any](typ string, field func(*C) *string, newFn func(C) (P, error)) func(C) (P, error) {
	return func(c C) (P, error) {
		*field(&c) = typ
		return newFn(c)
	}
}

func buildSection[T any](p *config.Problems, section string, entries map[string]config.Provider, types factories[T],
	opts BuildOptions, describe func(section, name, typ string, v any)) providers.Registry[T] {
	reg := providers.Registry[T]{}
	for _, name := range config.SortedNames(entries) {
		e := entries[name]
		path := section + "." + name
		f, ok := types[e.Type]
		if !ok {
			p.Add(path+".type", "unknown type %q: this worker knows %q", e.Type, types.types())
			continue
		}
		v, err := f(e)
		if err == nil && opts.CheckSecrets {
			if sc, ok := any(v).(providers.SecretChecker); ok {
				err = sc.CheckSecrets()
			}
		}
		if err != nil {
			p.Add(path, "%v", err)
			continue
		}
		reg[name] = v
		describe(section, name, e.Type, v)
	}
	return reg
}
