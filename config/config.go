// Package config reads the worker configuration: the file in which platform operators declare the named
// providers a worker offers (deploy targets with their commands, metric sources, notification channels,
// flag providers, git repositories, pre-release checks) and where reports go. A release spec only names
// these providers, so what a worker runs and which credentials it sends where is decided here, by whoever
// deploys the worker, and never by whoever can start a workflow.
//
// The file is YAML or JSON with camelCase keys, unknown keys rejected, bounded in size. Each provider is
// "name: {type: T, ...settings}"; this package checks the structure and names, and the worker builds each
// provider from its settings through the provider's own typed configuration (worker/providers.go), which
// rejects unknown keys too. Every problem is reported at once with its field path, like spec validation.
package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/shepherd-release/shepherd/approvals"
	"github.com/shepherd-release/shepherd/spec"
)

// MaxBytes bounds a configuration file; it is checked before the file is read.
const MaxBytes = 1 << 20

// EnvVar names the environment variable that gives the configuration file when --config is not given.
const EnvVar = "SHEPHERD_CONFIG"

// Sections of the file, each a map from provider name to provider. Their keys are the field paths of
// errors and the words of docs/operations.md.
const (
	SectionTargets       = "targets"
	SectionMetrics       = "metrics"
	SectionNotifications = "notifications"
	SectionFlags         = "flags"
	SectionRepositories  = "repositories"
	SectionPrechecks     = "prechecks"
)

// Config is the worker configuration.
type Config struct {
	// Targets are the deploy targets, by name (a spec's `target`).
	Targets map[string]Provider `json:"targets,omitempty"`
	// Metrics are the metric sources, by name (a spec's `analysis.source`).
	Metrics map[string]Provider `json:"metrics,omitempty"`
	// Notifications are the notification channels, by name (a spec's `notifications`).
	Notifications map[string]Provider `json:"notifications,omitempty"`
	// Flags are the feature-flag providers, by name (a spec's `flags.provider`).
	Flags map[string]Provider `json:"flags,omitempty"`
	// Repositories are the git repositories releases may be tagged in, by name (a spec's `tag.repo`).
	Repositories map[string]Provider `json:"repositories,omitempty"`
	// Prechecks are the pre-release checks that run something (an HTTP request, a command), by name (a
	// spec's `prechecks[].check`).
	Prechecks map[string]Provider `json:"prechecks,omitempty"`
	// Reports says where release reports are archived.
	Reports Reports `json:"reports,omitempty"`
	// Approvals is the approval policy: whose signatures verify approvals, where unsigned approvals are
	// still accepted, four eyes, change freezes. Without it no approval is accepted: a worker that gates
	// releases must say whom it trusts (or, on a laptop, where unsigned approvals will do).
	Approvals *Approvals `json:"approvals,omitempty"`
	// Worker tunes this worker process's pollers, task slots and workflow cache; default DefaultTuning.
	Worker *Worker `json:"worker,omitempty"`
	// Alerts configures the alert-driven abort: an Alertmanager webhook on the worker's HTTP server.
	// Off unless alerts.webhook is given.
	Alerts *Alerts `json:"alerts,omitempty"`
}

// Approvals configures the verification of approvals (package approvals).
type Approvals struct {
	// AllowedSigners is an OpenSSH allowed_signers file on the worker: the keys whose signatures verify
	// approvals, each with its principal.
	AllowedSigners string `json:"allowedSigners,omitempty"`
	// Roles maps a role (e.g. "qa", "sre") to the principals of AllowedSigners who hold it.
	Roles map[string][]string `json:"roles,omitempty"`
	// UnsignedEnvironments lists the environments where an unsigned approval is accepted (recorded as
	// unverified); "*" is every one. Default none.
	UnsignedEnvironments []string `json:"unsignedEnvironments,omitempty"`
	// FourEyesEnvironments lists the environments where a release must be started signed and its starter
	// may not approve it; "*" is every one.
	FourEyesEnvironments []string `json:"fourEyesEnvironments,omitempty"`
	// Freezes are change-freeze windows during which traffic shifts and promotion wait.
	Freezes []approvals.Freeze `json:"freezes,omitempty"`
	// BreakGlassRoles are the roles whose approval lets a release go ahead during a freeze.
	BreakGlassRoles []string `json:"breakGlassRoles,omitempty"`
	// SignedResume makes resume (after a person's pause or inconclusive analysis) need a signature outside
	// UnsignedEnvironments, like an approval. Pause and abort never need one.
	SignedResume bool `json:"signedResume,omitempty"`
}

// Alerts configures what the worker does with alerts from Alertmanager.
type Alerts struct {
	// Webhook, when given, serves an Alertmanager webhook receiver on the worker's HTTP server (the one
	// serving /metrics, --metrics-addr) that aborts the running release named by a firing alert's labels.
	Webhook *AlertWebhook `json:"webhook,omitempty"`
}

// AlertWebhook is the Alertmanager webhook receiver that aborts releases (docs/operations.md#alerts).
type AlertWebhook struct {
	// Path is where the receiver listens (POST); default DefaultAlertPath.
	Path string `json:"path,omitempty"`
	// TokenFile is a file on the worker holding the bearer token Alertmanager must send
	// (http_config.authorization.credentials_file on its side). Exactly one of TokenFile and TokenEnv.
	TokenFile string `json:"tokenFile,omitempty"`
	// TokenEnv names an environment variable of the worker holding the bearer token.
	TokenEnv string `json:"tokenEnv,omitempty"`
	// ServiceLabel and EnvironmentLabel are the alert labels that name the release; default "service"
	// and "environment".
	ServiceLabel     string `json:"serviceLabel,omitempty"`
	EnvironmentLabel string `json:"environmentLabel,omitempty"`
	// SigningKeyFile, optional, is an unencrypted OpenSSH private key the worker signs each alert-driven
	// abort with; when its public key is in approvals.allowedSigners, the release verifies the signature
	// (in its VerifyControl activity) and records the abort as signed by that key's principal rather than
	// as unverified.
	SigningKeyFile string `json:"signingKeyFile,omitempty"`
}

// Defaults of the alert webhook.
const (
	DefaultAlertPath             = "/alerts/abort"
	DefaultAlertServiceLabel     = "service"
	DefaultAlertEnvironmentLabel = "environment"
)

// WithDefaults returns w with every default filled in.
func (w AlertWebhook) WithDefaults() AlertWebhook {
	if w.Path == "" {
		w.Path = DefaultAlertPath
	}
	if w.ServiceLabel == "" {
		w.ServiceLabel = DefaultAlertServiceLabel
	}
	if w.EnvironmentLabel == "" {
		w.EnvironmentLabel = DefaultAlertEnvironmentLabel
	}
	return w
}

var (
	labelNameRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
	alertPathRE = regexp.MustCompile(`^(/[A-Za-z0-9._~-]+)+$`)
	// reservedPaths are served by the worker's HTTP server already.
	reservedPaths = []string{"/metrics", "/healthz", "/readyz"}
)

func checkAlerts(p *Problems, a *Alerts) {
	if a == nil || a.Webhook == nil {
		return
	}
	w := a.Webhook.WithDefaults()
	const path = "alerts.webhook"
	if len(w.Path) > 128 || !alertPathRE.MatchString(w.Path) || slices.Contains(reservedPaths, w.Path) {
		p.Add(path+".path", "%q must be an absolute URL path of letters, digits and '.', '_', '~', '-' (at most 128 bytes), "+
			"other than %s", w.Path, strings.Join(reservedPaths, ", "))
	}
	switch {
	case w.TokenFile == "" && w.TokenEnv == "":
		p.Add(path, "a bearer token is required: give tokenFile (a file on the worker) or tokenEnv (an environment variable), "+
			"and the same token to Alertmanager (http_config.authorization.credentials_file)")
	case w.TokenFile != "" && w.TokenEnv != "":
		p.Add(path, "give one of tokenFile and tokenEnv, not both")
	}
	for _, l := range [][2]string{{"serviceLabel", w.ServiceLabel}, {"environmentLabel", w.EnvironmentLabel}} {
		if len(l[1]) > 128 || !labelNameRE.MatchString(l[1]) {
			p.Add(path+"."+l[0], "%q is not a Prometheus label name", l[1])
		}
	}
	if w.ServiceLabel == w.EnvironmentLabel {
		p.Add(path, "serviceLabel and environmentLabel are both %q; they must differ", w.ServiceLabel)
	}
	settings, _ := json.Marshal(a.Webhook)
	checkCredentialSources(p, path, settings)
}

// Provider is one named provider: its type and the settings of that type, as written. The worker decodes
// Settings into the type's own configuration.
type Provider struct {
	// Type selects the implementation, e.g. "exec" or "prometheus".
	Type string
	// Settings are the remaining keys, as a JSON object.
	Settings json.RawMessage
}

// UnmarshalJSON splits "type" from the settings.
func (p *Provider) UnmarshalJSON(b []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return errors.New("want a mapping with a type and its settings")
	}
	if t, ok := m["type"]; ok {
		if err := json.Unmarshal(t, &p.Type); err != nil {
			return errors.New("type: want a string")
		}
		delete(m, "type")
	}
	settings, err := json.Marshal(m)
	if err != nil {
		return err
	}
	p.Settings = settings
	return nil
}

// MarshalJSON writes the provider back as one mapping.
func (p Provider) MarshalJSON() ([]byte, error) {
	m := map[string]json.RawMessage{}
	if len(p.Settings) > 0 {
		if err := json.Unmarshal(p.Settings, &m); err != nil {
			return nil, err
		}
	}
	t, _ := json.Marshal(p.Type)
	m["type"] = t
	return json.Marshal(m)
}

// Reports configures the report archive.
type Reports struct {
	// Dir is the directory reports and post-mortem records are written to; default the worker's
	// --report-dir.
	Dir string `json:"dir,omitempty"`
}

// ValidationError lists every problem in a configuration, each with its field path.
type ValidationError struct {
	// Source is the file the configuration came from, if any.
	Source   string            `json:"source,omitempty"`
	Problems []spec.FieldError `json:"problems"`
}

func (e *ValidationError) Error() string {
	where := "invalid worker configuration"
	if e.Source != "" {
		where += " " + e.Source
	}
	if len(e.Problems) == 1 {
		return where + ": " + e.Problems[0].Error()
	}
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.Error()
	}
	return fmt.Sprintf("%s (%d problems): %s", where, len(parts), strings.Join(parts, "; "))
}

// Problems collects field errors; Err returns them as a *ValidationError, or nil.
type Problems []spec.FieldError

// Add records a problem at path.
func (p *Problems) Add(path, format string, args ...any) {
	*p = append(*p, spec.FieldError{Path: path, Message: fmt.Sprintf(format, args...)})
}

// Err returns the problems as a *ValidationError, or nil when there are none.
func (p Problems) Err() error {
	if len(p) == 0 {
		return nil
	}
	return &ValidationError{Problems: p}
}

var nameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// Load reads the configuration file at path (size checked before reading) and parses it.
func Load(path string) (Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return Config{}, fmt.Errorf("worker configuration: %w", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() && fi.Size() > MaxBytes {
		return Config{}, fmt.Errorf("worker configuration %s is %d bytes; the limit is %d", path, fi.Size(), MaxBytes)
	}
	// Read one byte beyond the limit, so a file that is not regular (a pipe, /dev/zero) is bounded too.
	data, err := io.ReadAll(io.LimitReader(f, MaxBytes+1))
	if err != nil {
		return Config{}, fmt.Errorf("worker configuration %s: %w", path, err)
	}
	c, err := Parse(data)
	var verr *ValidationError
	if errors.As(err, &verr) {
		verr.Source = path
	} else if err != nil {
		err = fmt.Errorf("worker configuration %s: %w", path, err)
	}
	return c, err
}

// Parse reads a configuration from YAML or JSON, rejecting unknown keys, and checks its structure: every
// name is a lowercase name, every provider has a type. The providers' own settings are checked when the
// worker builds them.
func Parse(data []byte) (Config, error) {
	var c Config
	if len(data) > MaxBytes {
		return c, fmt.Errorf("the configuration is larger than %d bytes", MaxBytes)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return c, nil
	}
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return c, fmt.Errorf("neither valid YAML nor JSON: %v", err)
	}
	if !bytes.HasPrefix(bytes.TrimSpace(js), []byte("{")) {
		return c, errors.New("want a mapping of sections (targets, metrics, notifications, ...)")
	}
	if err := checkWorkerSection(js); err != nil {
		return Config{}, err
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		msg := strings.TrimPrefix(err.Error(), "json: ")
		if f, ok := strings.CutPrefix(msg, "unknown field "); ok {
			msg = "unknown key " + f + " (the sections are targets, metrics, notifications, flags, repositories, prechecks, reports, approvals, alerts, worker)"
		}
		return Config{}, errors.New(msg)
	}
	return c, c.Validate()
}

// Sections returns the provider sections by key, for code that treats them alike.
func (c Config) Sections() map[string]map[string]Provider {
	return map[string]map[string]Provider{
		SectionTargets: c.Targets, SectionMetrics: c.Metrics, SectionNotifications: c.Notifications,
		SectionFlags: c.Flags, SectionRepositories: c.Repositories, SectionPrechecks: c.Prechecks,
	}
}

// Validate checks names and types; it reads nothing and runs nothing.
func (c Config) Validate() error {
	var p Problems
	sections := c.Sections()
	keys := make([]string, 0, len(sections))
	for k := range sections {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, section := range keys {
		for _, name := range SortedNames(sections[section]) {
			path := section + "." + name
			if len(name) > 63 || !nameRE.MatchString(name) {
				p.Add(path, "the name must be 1-63 lowercase letters, digits or '-', starting and ending with a letter or digit")
			}
			if sections[section][name].Type == "" {
				p.Add(path+".type", "required")
			}
			checkCredentialSources(&p, path, sections[section][name].Settings)
		}
	}
	if a := c.Approvals; a != nil {
		for i := range a.Freezes {
			f := a.Freezes[i] // Validate prepares the window; the worker validates its own copy again
			if err := f.Validate(fmt.Sprintf("approvals.freezes[%d]", i)); err != nil {
				path, msg, _ := strings.Cut(err.Error(), ": ")
				p.Add(path, "%s", msg)
			}
		}
		if len(a.Roles) > 0 && a.AllowedSigners == "" {
			p.Add("approvals.roles", "roles name principals of approvals.allowedSigners, which is not given")
		}
		for _, r := range a.BreakGlassRoles {
			if _, ok := a.Roles[r]; !ok {
				p.Add("approvals.breakGlassRoles", "role %q is not in approvals.roles", r)
			}
		}
	}
	c.Worker.validate(&p)
	checkAlerts(&p, c.Alerts)
	return p.Err()
}

// SortedNames lists the names of a section in order.
func SortedNames(m map[string]Provider) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Decode decodes a provider's settings into its type's configuration C, rejecting unknown keys and
// values of the wrong type with messages that name the key.
func Decode[C any](p Provider) (C, error) {
	var c C
	settings := p.Settings
	if len(settings) == 0 {
		settings = []byte("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(settings))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		var typeErr *json.UnmarshalTypeError
		msg := strings.TrimPrefix(err.Error(), "json: ")
		switch {
		case errors.As(err, &typeErr):
			msg = fmt.Sprintf("%s: want %s, got %s", typeErr.Field, typeErr.Type, typeErr.Value)
		case strings.HasPrefix(msg, "unknown field "):
			msg = fmt.Sprintf("unknown key %s for type %q", strings.TrimPrefix(msg, "unknown field "), p.Type)
		}
		return c, errors.New(msg)
	}
	return c, nil
}
