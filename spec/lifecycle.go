package spec

// The release-lifecycle sections of the spec: pre-release checks, feature flags, notifications and the VCS
// tag. Their JSON keys match the provider packages' configurations (providers/precheck, flags, notify,
// vcs), which the activities convert to; activities.ValidateSpec runs the providers' own validation.

// Precheck is one pre-release check, run in the Validating phase before anything changes. Give exactly
// one of http, exec, prometheus or signoff.
type Precheck struct {
	// Name identifies the check in the decision log and report.
	Name string `json:"name"`
	// HTTP expects a status (and optionally a JSON field value) from a URL, e.g. "the artifact exists".
	HTTP *HTTPPrecheck `json:"http,omitempty"`
	// Exec runs a command that must succeed (and optionally print an expected last line).
	Exec *ExecPrecheck `json:"exec,omitempty"`
	// Prometheus evaluates a query against analysis.prometheus and compares it with a threshold,
	// e.g. "free capacity >= 30 %".
	Prometheus *PrometheusPrecheck `json:"prometheus,omitempty"`
	// Signoff waits for an `approve` carrying Role (e.g. "qa") before any deploy.
	Signoff *Signoff `json:"signoff,omitempty"`
}

// HTTPPrecheck: see providers/precheck.HTTPCheck.
type HTTPPrecheck struct {
	URL          string            `json:"url"`
	ExpectStatus int               `json:"expectStatus,omitempty"`
	JSONField    string            `json:"jsonField,omitempty"`
	Expect       string            `json:"expect,omitempty"`
	HeaderEnv    map[string]string `json:"headerEnv,omitempty"`
	Timeout      Duration          `json:"timeout,omitempty"`
}

// ExecPrecheck: see providers/precheck.ExecCheck.
type ExecPrecheck struct {
	Command string   `json:"command"`
	Expect  string   `json:"expect,omitempty"`
	Dir     string   `json:"dir,omitempty"`
	Timeout Duration `json:"timeout,omitempty"`
}

// PrometheusPrecheck is a query (Go template over TemplateData) that must evaluate within thresholds.
type PrometheusPrecheck struct {
	Query string   `json:"query"`
	Max   *float64 `json:"max,omitempty"`
	Min   *float64 `json:"min,omitempty"`
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
	// Provider writes them.
	Provider FlagProvider `json:"provider"`
	// Schedule optionally gives the rollout percent per stage (same length as stages); default the
	// stage's traffic percent.
	Schedule []int `json:"schedule,omitempty"`
}

// FlagProvider: see providers/flags.Config ("flagd-file" or "http").
type FlagProvider struct {
	Type         string            `json:"type"`
	Path         string            `json:"path,omitempty"`
	URL          string            `json:"url,omitempty"`
	Method       string            `json:"method,omitempty"`
	BodyTemplate string            `json:"bodyTemplate,omitempty"`
	Headers      map[string]string `json:"headers,omitempty"`
	HeaderEnv    map[string]string `json:"headerEnv,omitempty"`
	Timeout      Duration          `json:"timeout,omitempty"`
}

// Notification is one stakeholder channel: see providers/notify.Config ("slack" or "webhook").
type Notification struct {
	Type string `json:"type"`
	// URL of the webhook; prefer URLEnv, since the spec is stored in workflow history.
	URL string `json:"url,omitempty"`
	// URLEnv names an environment variable of the worker holding the webhook URL.
	URLEnv string `json:"urlEnv,omitempty"`
	// Templates override the message per event kind (Go templates over the event).
	Templates map[string]string `json:"templates,omitempty"`
	// Events limits the kinds sent; default all.
	Events  []string `json:"events,omitempty"`
	Timeout Duration `json:"timeout,omitempty"`
}

// Tag tags the release in git when it succeeds: see providers/vcs.Config.
type Tag struct {
	Repo    string   `json:"repo"`
	Name    string   `json:"name,omitempty"`
	Ref     string   `json:"ref,omitempty"`
	Push    bool     `json:"push,omitempty"`
	Remote  string   `json:"remote,omitempty"`
	Timeout Duration `json:"timeout,omitempty"`
}
