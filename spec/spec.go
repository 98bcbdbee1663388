// Package spec defines the release spec: the one document a person writes to describe a release, its
// defaults, its parser (YAML or JSON, same camelCase keys, unknown keys rejected) and its validation.
// It is pure code with no I/O so the workflow can run the same validation deterministically.
package spec

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"

	"strconv"
	"strings"
	"time"

	"github.com/shepherd-release/shepherd/approvals"
)

// Approval-timeout actions.
const (
	// OnTimeoutAbort rolls the release back when an approval gate times out (the default: safe).
	OnTimeoutAbort = "abort"
	// OnTimeoutProceed continues to the stage when an approval gate times out.
	OnTimeoutProceed = "proceed"
)

// Defaults a user gets by writing only service, version and target.
const (
	DefaultEnvironment       = "production"
	DefaultSoak              = Duration(15 * time.Minute)
	DefaultInterval          = Duration(10 * time.Second)
	DefaultFailureLimit      = 1
	DefaultInconclusiveLimit = 3
	// DefaultMetricsSource is the metrics source analysis uses when the spec names none: a worker
	// configuration usually calls its main Prometheus "prometheus".
	DefaultMetricsSource = "prometheus"
)

// DefaultStagePercents is the canary plan used when the spec names no stages.
var DefaultStagePercents = []int{1, 5, 25, 50, 100}

// Release is the release spec. Its JSON form is the workflow's input, so field names are wire contract.
type Release struct {
	// Service is the name of the service being released (DNS-label style: lowercase, digits, '-').
	Service string `json:"service"`
	// Environment the service runs in; default "production".
	Environment string `json:"environment,omitempty"`
	// Version being released.
	Version string `json:"version"`
	// PreviousVersion is the stable version now serving traffic; optional, used in templates and reports.
	PreviousVersion string `json:"previousVersion,omitempty"`
	// Description is free text shown in the UI and reports.
	Description string `json:"description,omitempty"`
	// Target names the deploy target, one of the worker configuration's targets (e.g. "checkout-prod").
	// What it runs and where is the operator's configuration, never the spec's.
	Target string `json:"target"`
	// Stages is the canary plan; default 1, 5, 25, 50, 100 % with 15 minute soaks.
	Stages []Stage `json:"stages,omitempty"`
	// Analysis configures the SLO checks run during each soak.
	Analysis Analysis `json:"analysis,omitempty"`
	// Prechecks run before anything changes; any failure rejects the release.
	Prechecks []Precheck `json:"prechecks,omitempty"`
	// Flags are feature flags that follow the release.
	Flags *Flags `json:"flags,omitempty"`
	// Notifications name the stakeholder channels, from the worker configuration's notifications.
	Notifications []string `json:"notifications,omitempty"`
	// Tag tags the release in git when it succeeds.
	Tag *Tag `json:"tag,omitempty"`
	// StartedBy proves who started the release: a signed claim over StartGate (`shepherd start --key`).
	// Where the operators require four eyes, a release must be started signed, and its starter cannot
	// approve its gates.
	StartedBy *approvals.Signed `json:"startedBy,omitempty"`

	// decodeErr remembers what was wrong with the JSON this spec was decoded from (an unknown key, a
	// value of the wrong type), so Validate rejects it however the spec arrived.
	decodeErr error
	// legacy lists the sections written in the shape of releases started before named providers (an
	// inline target), which Validate rejects unless AcceptLegacy was called.
	legacy []FieldError
	// legacyAccepted is set by AcceptLegacy: a legacy spec without a target name replays.
	legacyAccepted bool
}

// Stage is one step of the canary plan.
type Stage struct {
	// Percent of traffic sent to the new version during this stage, in (0, 100].
	Percent int `json:"percent"`
	// Soak is how long the stage runs while analysis checks it; default 15m.
	Soak Duration `json:"soak,omitempty"`
	// Approval makes the release wait for an `approve` before shifting traffic to this stage.
	Approval bool `json:"approval,omitempty"`
	// ApprovalTimeout bounds the wait for approval; zero waits forever.
	ApprovalTimeout Duration `json:"approvalTimeout,omitempty"`
	// OnApprovalTimeout is "abort" (default) or "proceed".
	OnApprovalTimeout string `json:"onApprovalTimeout,omitempty"`
	// Approvers is how many distinct people must approve the gate (a quorum); default 1.
	Approvers int `json:"approvers,omitempty"`
	// ApprovalRoles limits who may approve to people holding one of these roles (roles are given to
	// keys in the worker's configuration); empty: anyone trusted.
	ApprovalRoles []string `json:"approvalRoles,omitempty"`
}

// Analysis configures the SLO checks.
type Analysis struct {
	// Interval between measurements during a soak; default 10s, at least 1s. Independent of the soak time,
	// and free in history (one watch activity per stage measures every interval).
	Interval Duration `json:"interval,omitempty"`
	// FailureLimit is the number of consecutive failed measurements of one check that triggers a rollback;
	// default 1.
	FailureLimit int `json:"failureLimit,omitempty"`
	// InconclusiveLimit is the number of consecutive inconclusive measurements (no data, NaN, provider
	// error) of one check that pauses the release for a human; default 3.
	InconclusiveLimit int `json:"inconclusiveLimit,omitempty"`
	// Source names the metrics source the checks query, one of the worker configuration's metrics;
	// default "prometheus".
	Source string `json:"source,omitempty"`
	// Checks replace the default checks (error rate <= 1 %, p99 latency <= 500 ms) when given.
	Checks []Check `json:"checks,omitempty"`
	// Disabled turns analysis off: stages pass on their soak alone. Only for targets without metrics.
	Disabled bool `json:"disabled,omitempty"`
}

// Check is one SLO check: a query template (PromQL for a Prometheus source) evaluated to one number,
// compared with a threshold.
type Check struct {
	// Name identifies the check in status, logs and reports.
	Name string `json:"name"`
	// Query is a Go template over TemplateData in the source's query language; values are escaped for it
	// (PromQL label matchers, URL query parameters).
	Query string `json:"query"`
	// Max fails the check when the value is greater.
	Max *float64 `json:"max,omitempty"`
	// Min fails the check when the value is smaller.
	Min *float64 `json:"min,omitempty"`
	// Baseline optionally compares the canary with the stable version.
	Baseline *Baseline `json:"baseline,omitempty"`
}

// Baseline compares a check's canary value with the same query for the stable version.
type Baseline struct {
	// Query for the stable version; default the check's query with .Version set to .PreviousVersion.
	Query string `json:"query,omitempty"`
	// MaxRelativeIncrease fails the check when canary > baseline × (1 + MaxRelativeIncrease); e.g. 0.2.
	MaxRelativeIncrease float64 `json:"maxRelativeIncrease"`
}

// TemplateData is what command and query templates see.
type TemplateData struct {
	Service         string
	Environment     string
	Version         string
	PreviousVersion string
	Percent         int
	Stage           int
	ReleaseID       string
	// Step names the target step being run: "preflight", "deploy", "health", "traffic", "promote",
	// "rollback-traffic" or "remove-canary" ("" outside target steps).
	Step string
	// Seq is the step's fencing sequence number within the release: every target step the workflow
	// starts (forward or rollback) gets a larger one, and every retry of one step carries the same one.
	// ReleaseID + Seq is the fencing token: a target refuses a write whose Seq is older than the newest it
	// has applied for the release (docs/targets.md).
	Seq int64
}

// Env is the SHEPHERD_* environment every command Shepherd runs gets (exec target, exec prechecks).
func (d TemplateData) Env() []string {
	return []string{
		"SHEPHERD_SERVICE=" + d.Service,
		"SHEPHERD_ENVIRONMENT=" + d.Environment,
		"SHEPHERD_VERSION=" + d.Version,
		"SHEPHERD_PREVIOUS_VERSION=" + d.PreviousVersion,
		"SHEPHERD_PERCENT=" + strconv.Itoa(d.Percent),
		"SHEPHERD_STAGE=" + strconv.Itoa(d.Stage),
		"SHEPHERD_RELEASE_ID=" + d.ReleaseID,
		"SHEPHERD_STEP=" + d.Step,
		"SHEPHERD_STEP_SEQ=" + strconv.FormatInt(d.Seq, 10),
	}
}

// Default SLO checks, following the documented metric conventions
// (http_requests_total{service,version,code} and http_request_duration_seconds_bucket).
const (
	DefaultErrorRateQuery = `sum(rate(http_requests_total{service="{{.Service}}",version="{{.Version}}",code=~"5.."}[1m]))` +
		` / sum(rate(http_requests_total{service="{{.Service}}",version="{{.Version}}"}[1m]))`
	DefaultLatencyQuery = `histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{service="{{.Service}}",version="{{.Version}}"}[1m])))`
)

// PassCondition says what the check's value must satisfy, e.g. "≤ 0.01, ≤ stable + 20%".
func (c Check) PassCondition() string {
	var parts []string
	if c.Max != nil {
		parts = append(parts, "≤ "+strconv.FormatFloat(*c.Max, 'g', -1, 64))
	}
	if c.Min != nil {
		parts = append(parts, "≥ "+strconv.FormatFloat(*c.Min, 'g', -1, 64))
	}
	if c.Baseline != nil {
		parts = append(parts, "≤ stable + "+strconv.FormatFloat(c.Baseline.MaxRelativeIncrease*100, 'g', -1, 64)+"%")
	}
	return strings.Join(parts, ", ")
}

// DefaultChecks returns the default checks: error rate <= 1 % and p99 latency <= 500 ms.
func DefaultChecks() []Check {
	maxErr, maxLat := 0.01, 0.5
	return []Check{
		{Name: "error-rate", Query: DefaultErrorRateQuery, Max: &maxErr},
		{Name: "p99-latency", Query: DefaultLatencyQuery, Max: &maxLat},
	}
}

// WorkflowID is the Temporal workflow ID of the release of service in environment. Temporal allows one
// running workflow per ID, which is how Shepherd keeps at most one active release per service and
// environment however the release was started.
func WorkflowID(service, environment string) string {
	return "release:" + service + ":" + environment
}

// WithDefaults returns a copy of r with every default filled in; r itself is not changed.
func (r Release) WithDefaults() Release {
	out := r
	if out.Environment == "" {
		out.Environment = DefaultEnvironment
	}
	if len(out.Stages) == 0 {
		for _, p := range DefaultStagePercents {
			out.Stages = append(out.Stages, Stage{Percent: p})
		}
	} else {
		out.Stages = append([]Stage(nil), r.Stages...)
	}
	for i := range out.Stages {
		if out.Stages[i].Soak == 0 {
			out.Stages[i].Soak = DefaultSoak
		}
		if out.Stages[i].Approval && out.Stages[i].OnApprovalTimeout == "" {
			out.Stages[i].OnApprovalTimeout = OnTimeoutAbort
		}
	}
	a := &out.Analysis
	if a.Interval == 0 {
		a.Interval = DefaultInterval
	}
	if a.FailureLimit == 0 {
		a.FailureLimit = DefaultFailureLimit
	}
	if a.InconclusiveLimit == 0 {
		a.InconclusiveLimit = DefaultInconclusiveLimit
	}
	if !a.Disabled {
		if len(a.Checks) == 0 {
			a.Checks = DefaultChecks()
		}
		if a.Source == "" {
			a.Source = DefaultMetricsSource
		}
	}
	if len(out.Prechecks) > 0 {
		out.Prechecks = append([]Precheck(nil), r.Prechecks...)
		for i, c := range out.Prechecks {
			if c.Metric != nil && c.Metric.Source == "" {
				m := *c.Metric
				m.Source = a.Source
				if m.Source == "" {
					m.Source = DefaultMetricsSource
				}
				out.Prechecks[i].Metric = &m
			}
		}
	}
	return out
}

// TotalSoak is the sum of all stage soaks: the least time a release takes.
func (r Release) TotalSoak() time.Duration {
	var d time.Duration
	for _, s := range r.Stages {
		d += s.Soak.D()
	}
	return d
}

// StartGate is the gate a signed start names: "start:" and the SHA-256 of the spec (without StartedBy)
// as JSON, so a start signature vouches for exactly this spec.
func (r Release) StartGate() string {
	r.StartedBy = nil
	r.decodeErr = nil
	b, _ := json.Marshal(r) // plain data: cannot fail
	sum := sha256.Sum256(b)
	return "start:" + hex.EncodeToString(sum[:])
}
