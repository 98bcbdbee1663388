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
	if !r.legacyAccepted {
		p = append(p, r.legacy...)
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
	if !r.legacyTarget() {
		checkRef(&p, "target", r.Target, true)
	}
	validateStages(&p, r.Stages)
	validateAnalysis(&p, r.Analysis, r.PreviousVersion)
	validateLifecycle(&p, r)
	validateBounds(&p, r)
	if r.legacyAccepted {
		p = r.withoutLegacy(p)
	}
	if len(p) == 0 {
		return nil
	}
	return &ValidationError{Problems: p}
}

// withoutLegacy drops the problems at (or under) the paths of lifted legacy sections, whose names are
// empty by construction.
func (r Release) withoutLegacy(p problems) problems {
	var out problems
	for _, f := range p {
		legacy := false
		for _, l := range r.legacy {
			legacy = legacy || f.Path == l.Path || strings.HasPrefix(f.Path, l.Path+".")
		}
		if !legacy {
			out = append(out, f)
		}
	}
	return out
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

// checkRef checks the name of a provider of the worker configuration; whether the worker has it is
// checked by the worker, before anything changes (the Preflight activity).
func checkRef(p *problems, path, name string, required bool) {
	switch {
	case name == "" && required:
		p.add(path, "required: the name of one of the worker configuration's %s", sectionOf(path))
	case name != "" && (len(name) > 63 || !nameRE.MatchString(name)):
		p.add(path, "%q is not a provider name (lowercase letters, digits and '-'); see the worker configuration's %s", name, sectionOf(path))
	}
}

func sectionOf(path string) string {
	switch {
	case path == "target":
		return "targets"
	case strings.HasPrefix(path, "analysis"), strings.HasSuffix(path, "metric.source"):
		return "metrics"
	case strings.HasPrefix(path, "prechecks"):
		return "prechecks"
	case strings.HasPrefix(path, "flags"):
		return "flags"
	case strings.HasPrefix(path, "notifications"):
		return "notifications"
	case strings.HasPrefix(path, "tag"):
		return "repositories"
	}
	return "providers"
}

func fmtPath(format string, args ...any) string { return fmt.Sprintf(format, args...) }

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
	checkRef(p, "analysis.source", a.Source, false)
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

// validateLifecycle checks the structure of the lifecycle sections and the names they give.
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
		for _, set := range []bool{c.Check != "", c.Metric != nil, c.Signoff != nil} {
			if set {
				kinds++
			}
		}
		if kinds != 1 {
			p.add(path, "give exactly one of check (a precheck of the worker configuration), metric or signoff")
		}
		checkRef(p, path+".check", c.Check, false)
		if q := c.Metric; q != nil {
			checkRef(p, path+".metric.source", q.Source, false)
			if strings.TrimSpace(q.Query) == "" {
				p.add(path+".metric.query", "required")
			}
			checkTemplate(p, path+".metric.query", q.Query)
			if q.Max == nil && q.Min == nil {
				p.add(path+".metric", "needs max or min")
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
		checkRef(p, "flags.provider", f.Provider, true)
	}
	seen := map[string]int{}
	for i, n := range r.Notifications {
		path := fmt.Sprintf("notifications[%d]", i)
		checkRef(p, path, n, true)
		if j, dup := seen[n]; dup {
			p.add(path, "%q already named at notifications[%d]", n, j)
		}
		seen[n] = i
	}
	if t := r.Tag; t != nil {
		checkRef(p, "tag.repo", t.Repo, true)
		checkTemplate(p, "tag.name", t.Name)
	}
}

// legacyTarget reports whether the spec came with an inline target (see liftLegacy); its problem is
// reported (or accepted) as such, not as a missing name.
func (r Release) legacyTarget() bool {
	for _, l := range r.legacy {
		if l.Path == "target" {
			return true
		}
	}
	return false
}
