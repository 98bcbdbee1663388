package spec

import (
	"fmt"
	"github.com/shepherd-release/shepherd/internal/safetmpl"
	"math"
	"regexp"
	"strings"
)

var nameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// FieldError is one problem with a spec, located by its field path (e.g. "stages[2].percent").
type FieldError struct {
	Path    string `json:"path"`
	Message string `json:"message"`
}

func (e FieldError) Error() string { return e.Path + ": " + e.Message }

// ValidationError lists every problem found in a spec, so a person can fix them all in one go.
type ValidationError struct {
	Problems []FieldError `json:"problems"`
}

func (e *ValidationError) Error() string {
	if len(e.Problems) == 1 {
		return "invalid release spec: " + e.Problems[0].Error()
	}
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.Error()
	}
	return fmt.Sprintf("invalid release spec (%d problems): %s", len(parts), strings.Join(parts, "; "))
}

type problems []FieldError

func (p *problems) add(path, format string, args ...any) {
	*p = append(*p, FieldError{Path: path, Message: fmt.Sprintf(format, args...)})
}

// Validate checks a spec after WithDefaults and returns a *ValidationError naming every problem, or nil.
// It is deterministic, so the CLI, the starter and the workflow all run exactly the same checks.
func (r Release) Validate() error {
	var p problems
	if r.decodeErr != nil {
		p.add("spec", "%v", r.decodeErr)
	}
	checkName(&p, "service", r.Service)
	checkName(&p, "environment", r.Environment)
	if r.Version == "" {
		p.add("version", "required (the version being released)")
	} else {
		checkVersion(&p, "version", r.Version)
	}
	if r.PreviousVersion != "" {
		checkVersion(&p, "previousVersion", r.PreviousVersion)
	}
	if r.PreviousVersion != "" && r.PreviousVersion == r.Version {
		p.add("previousVersion", "equals version %q; nothing to release", r.Version)
	}
	validateTarget(&p, r.Target)
	validateStages(&p, r.Stages)
	validateAnalysis(&p, r.Analysis, r.PreviousVersion)
	validateLifecycle(&p, r)
	validateNoCredentials(&p, r)
	validateBounds(&p, r)
	if len(p) == 0 {
		return nil
	}
	return &ValidationError{Problems: p}
}

// versionRE is what a version may be: it reaches shell commands, URLs, queries and tag names, so it is
// kept to characters none of them treat specially, and cannot start like a command-line option.
var versionRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$`)

func checkVersion(p *problems, path, v string) {
	if !versionRE.MatchString(v) {
		p.add(path, "%q must be 1-128 letters, digits, '.', '_', '+' or '-', starting with a letter or digit", v)
	}
}

func checkName(p *problems, path, v string) {
	switch {
	case v == "":
		p.add(path, "required")
	case len(v) > 63 || !nameRE.MatchString(v):
		p.add(path, "%q must be 1-63 lowercase letters, digits or '-', starting and ending with a letter or digit", v)
	}
}

func validateTarget(p *problems, t Target) {
	switch t.Type {
	case "":
		p.add("target.type", "required: one of %q, %q", TargetExec, TargetLocal)
	case TargetExec:
		if t.Exec == nil {
			p.add("target.exec", "required when target.type is %q", TargetExec)
			break
		}
		e := t.Exec
		for _, c := range []struct{ name, tmpl string }{
			{"deploy", e.Deploy}, {"traffic", e.Traffic}, {"promote", e.Promote}, {"rollback", e.Rollback},
		} {
			if strings.TrimSpace(c.tmpl) == "" {
				p.add("target.exec."+c.name, "required")
			}
		}
		for _, c := range []struct{ name, tmpl string }{
			{"deploy", e.Deploy}, {"traffic", e.Traffic}, {"promote", e.Promote}, {"rollback", e.Rollback}, {"health", e.Health},
		} {
			checkTemplate(p, "target.exec."+c.name, c.tmpl)
		}
		if e.Timeout < 0 {
			p.add("target.exec.timeout", "must be positive")
		}
		if t.Local != nil {
			p.add("target.local", "only allowed when target.type is %q", TargetLocal)
		}
	case TargetLocal:
		if t.Exec != nil {
			p.add("target.exec", "only allowed when target.type is %q", TargetExec)
		}
		if t.Local != nil && t.Local.Controller != "" && !strings.HasPrefix(t.Local.Controller, "http://") &&
			!strings.HasPrefix(t.Local.Controller, "https://") {
			p.add("target.local.controller", "must be an http:// or https:// URL")
		}
	default:
		p.add("target.type", "unknown target type %q: want one of %q, %q", t.Type, TargetExec, TargetLocal)
	}
}

func validateStages(p *problems, stages []Stage) {
	if len(stages) == 0 {
		p.add("stages", "at least one stage is required")
		return
	}
	for i, s := range stages {
		path := fmt.Sprintf("stages[%d]", i)
		if s.Percent <= 0 || s.Percent > 100 {
			p.add(path+".percent", "must be in (0, 100], got %d", s.Percent)
		} else if i > 0 && s.Percent <= stages[i-1].Percent {
			p.add(path+".percent", "must be greater than stages[%d].percent (%d)", i-1, stages[i-1].Percent)
		}
		if s.Soak <= 0 {
			p.add(path+".soak", "must be positive")
		}
		if s.ApprovalTimeout < 0 {
			p.add(path+".approvalTimeout", "must not be negative")
		}
		if !s.Approval && (s.ApprovalTimeout != 0 || s.OnApprovalTimeout != "" || s.Approvers != 0 || len(s.ApprovalRoles) > 0) {
			p.add(path, "approvalTimeout, onApprovalTimeout, approvers and approvalRoles need approval: true")
		}
		if s.Approvers < 0 || s.Approvers > MaxApprovers {
			p.add(path+".approvers", "must be 1 to %d distinct approvers, got %d", MaxApprovers, s.Approvers)
		}
		for j, role := range s.ApprovalRoles {
			checkName(p, fmt.Sprintf("%s.approvalRoles[%d]", path, j), role)
		}
		if s.OnApprovalTimeout != "" && s.OnApprovalTimeout != OnTimeoutAbort && s.OnApprovalTimeout != OnTimeoutProceed {
			p.add(path+".onApprovalTimeout", "must be %q or %q, got %q", OnTimeoutAbort, OnTimeoutProceed, s.OnApprovalTimeout)
		}
	}
	if last := stages[len(stages)-1]; last.Percent > 0 && last.Percent < 100 {
		p.add(fmt.Sprintf("stages[%d].percent", len(stages)-1), "the last stage must be 100, got %d", last.Percent)
	}
}

func validateAnalysis(p *problems, a Analysis, previousVersion string) {
	if a.Interval <= 0 {
		p.add("analysis.interval", "must be positive")
	}
	if a.FailureLimit < 1 {
		p.add("analysis.failureLimit", "must be at least 1")
	}
	if a.InconclusiveLimit < 1 {
		p.add("analysis.inconclusiveLimit", "must be at least 1")
	}
	if a.Disabled {
		if len(a.Checks) > 0 {
			p.add("analysis.checks", "given while analysis.disabled is true")
		}
		return
	}
	if a.Prometheus != nil {
		pr := a.Prometheus
		if !strings.HasPrefix(pr.Address, "http://") && !strings.HasPrefix(pr.Address, "https://") {
			p.add("analysis.prometheus.address", "must be an http:// or https:// URL, got %q", pr.Address)
		}
		if pr.BearerTokenEnv != "" && pr.BearerTokenFile != "" {
			p.add("analysis.prometheus", "give bearerTokenEnv or bearerTokenFile, not both")
		}
		if pr.BasicAuthPasswordEnv != "" && pr.BasicAuthPasswordFile != "" {
			p.add("analysis.prometheus", "give basicAuthPasswordEnv or basicAuthPasswordFile, not both")
		}
		if (pr.BasicAuthUser == "") != (pr.BasicAuthPasswordEnv == "" && pr.BasicAuthPasswordFile == "") {
			p.add("analysis.prometheus.basicAuthUser", "basic auth needs both a user and a password source")
		}
		if pr.Timeout < 0 {
			p.add("analysis.prometheus.timeout", "must not be negative")
		}
	}
	seen := map[string]int{}
	for i, c := range a.Checks {
		path := fmt.Sprintf("analysis.checks[%d]", i)
		if c.Name == "" {
			p.add(path+".name", "required")
		} else if j, dup := seen[c.Name]; dup {
			p.add(path+".name", "%q already names analysis.checks[%d]", c.Name, j)
		} else {
			seen[c.Name] = i
		}
		if strings.TrimSpace(c.Query) == "" {
			p.add(path+".query", "required")
		}
		checkTemplate(p, path+".query", c.Query)
		if len(c.Query) > MaxQueryBytes {
			p.add(path+".query", "is %d bytes; at most %d", len(c.Query), MaxQueryBytes)
		}
		if c.Max == nil && c.Min == nil && c.Baseline == nil {
			p.add(path, "needs a threshold: max, min or baseline")
		}
		for _, t := range []struct {
			name string
			v    *float64
		}{{"max", c.Max}, {"min", c.Min}} {
			if t.v != nil && (math.IsNaN(*t.v) || math.IsInf(*t.v, 0)) {
				p.add(path+"."+t.name, "must be a finite number")
			}
		}
		if c.Max != nil && c.Min != nil && *c.Min > *c.Max {
			p.add(path, "min (%g) is greater than max (%g)", *c.Min, *c.Max)
		}
		if b := c.Baseline; b != nil {
			if b.MaxRelativeIncrease <= 0 || math.IsInf(b.MaxRelativeIncrease, 0) || math.IsNaN(b.MaxRelativeIncrease) {
				p.add(path+".baseline.maxRelativeIncrease", "must be a positive number such as 0.2 (20 %%)")
			}
			checkTemplate(p, path+".baseline.query", b.Query)
			if b.Query == "" && previousVersion == "" {
				p.add(path+".baseline", "needs previousVersion (or an explicit baseline.query) to know the stable version")
			}
		}
	}
}

// checkTemplate reports a template that does not parse; an empty one is left to the caller.
func checkTemplate(p *problems, path, tmpl string) {
	if tmpl == "" {
		return
	}
	if _, err := safetmpl.Parse(path, tmpl, nil); err != nil {
		p.add(path, "template does not parse: %v", err)
	}
}

// validateLifecycle checks the structure of the lifecycle sections; the providers' own rules are applied
// by activities.ValidateSpec.
func validateLifecycle(p *problems, r Release) {
	names := map[string]int{}
	for i, c := range r.Prechecks {
		path := fmt.Sprintf("prechecks[%d]", i)
		if c.Name == "" {
			p.add(path+".name", "required")
		} else if j, dup := names[c.Name]; dup {
			p.add(path+".name", "%q already names prechecks[%d]", c.Name, j)
		} else {
			names[c.Name] = i
		}
		kinds := 0
		for _, set := range []bool{c.HTTP != nil, c.Exec != nil, c.Prometheus != nil, c.Signoff != nil} {
			if set {
				kinds++
			}
		}
		if kinds != 1 {
			p.add(path, "give exactly one of http, exec, prometheus or signoff")
		}
		if q := c.Prometheus; q != nil {
			if strings.TrimSpace(q.Query) == "" {
				p.add(path+".prometheus.query", "required")
			}
			checkTemplate(p, path+".prometheus.query", q.Query)
			if q.Max == nil && q.Min == nil {
				p.add(path+".prometheus", "needs max or min")
			}
			if r.Analysis.Disabled {
				p.add(path+".prometheus", "needs analysis.prometheus, but analysis is disabled")
			}
		}
		if s := c.Signoff; s != nil {
			if !nameRE.MatchString(s.Role) {
				p.add(path+".signoff.role", "%q must be a lowercase name such as \"qa\"", s.Role)
			}
			if s.Timeout < 0 {
				p.add(path+".signoff.timeout", "must not be negative")
			}
		}
	}
	if f := r.Flags; f != nil {
		if len(f.Names) == 0 {
			p.add("flags.names", "at least one flag name is required")
		}
		for i, n := range f.Names {
			if strings.TrimSpace(n) == "" {
				p.add(fmt.Sprintf("flags.names[%d]", i), "must not be empty")
			}
		}
		if len(f.Schedule) > 0 && len(f.Schedule) != len(r.Stages) {
			p.add("flags.schedule", "has %d entries for %d stages", len(f.Schedule), len(r.Stages))
		}
		for i, v := range f.Schedule {
			if v < 0 || v > 100 {
				p.add(fmt.Sprintf("flags.schedule[%d]", i), "must be in [0, 100], got %d", v)
			}
		}
	}
}
