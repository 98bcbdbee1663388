package spec

// The release-lifecycle sections of the spec: pre-release checks, feature flags, notifications and the VCS
// tag. Each names providers of the worker configuration; what those providers run, where they send
// requests and with which credentials is configured there, by the worker's operators.

// Precheck is one pre-release check, run in the Validating phase before anything changes. Give exactly
// one of check, metric or signoff.
type Precheck struct {
	// Name identifies the check in the decision log and report.
	Name string `json:"name"`
	// Check names a check of the worker configuration's prechecks (an HTTP request, a command).
	Check string `json:"check,omitempty"`
	// Metric evaluates a query against a metrics source and compares it with a threshold, e.g. "free
	// capacity >= 30 %".
	Metric *MetricPrecheck `json:"metric,omitempty"`
	// Signoff waits for an `approve` carrying Role (e.g. "qa") before any deploy.
	Signoff *Signoff `json:"signoff,omitempty"`
}

// MetricPrecheck is a query (Go template over TemplateData) that must evaluate within thresholds.
type MetricPrecheck struct {
	// Source names the metrics source; default analysis.source.
	Source string   `json:"source,omitempty"`
	Query  string   `json:"query"`
	Max    *float64 `json:"max,omitempty"`
	Min    *float64 `json:"min,omitempty"`
}

// Signoff is a named-role approval required before deploy.
type Signoff struct {
	// Role the approver must name (`shepherd approve SERVICE --role qa`).
	Role string `json:"role"`
	// Timeout bounds the wait; the release is rejected when it passes. Zero waits forever.
	Timeout Duration `json:"timeout,omitempty"`
}

// Flags are feature flags that follow the release: created off at deploy, their rollout following the
// traffic percent (or Schedule) at each stage, fully on at promote, turned off first on rollback.
type Flags struct {
	// Names of the flags.
	Names []string `json:"names"`
	// Provider names the flag provider, one of the worker configuration's flags.
	Provider string `json:"provider"`
	// Schedule optionally gives the rollout percent per stage (same length as stages); default the
	// stage's traffic percent.
	Schedule []int `json:"schedule,omitempty"`
}

// Tag tags the release in git when it succeeds.
type Tag struct {
	// Repo names the repository, one of the worker configuration's repositories.
	Repo string `json:"repo"`
	// Name is the tag name, a Go template over TemplateData; default the repository's (or
	// "{{.Service}}/{{.Version}}").
	Name string `json:"name,omitempty"`
}

// Provider kinds, as Uses and error messages name them; each is a section of the worker configuration.
const (
	KindTarget       = "target"
	KindMetrics      = "metrics source"
	KindPrecheck     = "precheck"
	KindFlags        = "flag provider"
	KindNotification = "notification channel"
	KindRepository   = "repository"
)

// Use is one provider a spec names: what kind, which name, and where in the spec.
type Use struct {
	Kind string `json:"kind"`
	Name string `json:"name"`
	// Path is the field path in the spec, e.g. "notifications[1]".
	Path string `json:"path"`
}

// Uses lists every provider the spec (after WithDefaults) names, in spec order. A worker checks them all
// against its configuration before anything changes.
func (r Release) Uses() []Use {
	var u []Use
	if r.Target != "" {
		u = append(u, Use{KindTarget, r.Target, "target"})
	}
	if !r.Analysis.Disabled && r.Analysis.Source != "" {
		u = append(u, Use{KindMetrics, r.Analysis.Source, "analysis.source"})
	}
	for i, c := range r.Prechecks {
		switch {
		case c.Check != "":
			u = append(u, Use{KindPrecheck, c.Check, fmtPath("prechecks[%d].check", i)})
		case c.Metric != nil && c.Metric.Source != "":
			u = append(u, Use{KindMetrics, c.Metric.Source, fmtPath("prechecks[%d].metric.source", i)})
		}
	}
	if r.Flags != nil && r.Flags.Provider != "" {
		u = append(u, Use{KindFlags, r.Flags.Provider, "flags.provider"})
	}
	for i, n := range r.Notifications {
		u = append(u, Use{KindNotification, n, fmtPath("notifications[%d]", i)})
	}
	if r.Tag != nil && r.Tag.Repo != "" {
		u = append(u, Use{KindRepository, r.Tag.Repo, "tag.repo"})
	}
	return u
}
