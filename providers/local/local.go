// Package local is the "local" deploy target: it drives the local demo fleet controller (package fleet)
// through its admin API, so a release can really deploy, shift traffic, promote and roll back on one
// machine.
package local

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/shepherd-release/shepherd/fleet"
	"github.com/shepherd-release/shepherd/internal/redact"
	"github.com/shepherd-release/shepherd/providers"
	"github.com/shepherd-release/shepherd/spec"
)

// ErrPermanent is in the chain of every error that retrying cannot fix: the controller answered 4xx (bad
// request, unknown service, conflicting state). It is providers.ErrPermanent, so the activity layer fails
// the step without retrying; transport errors and 5xx answers do not wrap it and are retried.
var ErrPermanent = providers.ErrPermanent

// Default timeouts for one call to the controller.
const (
	// DefaultTimeout bounds traffic, promote, rollback, health and state calls.
	DefaultTimeout = 10 * time.Second
	// DefaultDeployTimeout bounds deploy and bootstrap, which wait until the new instance answers its
	// health check (the controller gives up after fleet.DefaultHealthTimeout).
	DefaultDeployTimeout = 60 * time.Second
)

// DefaultController is the fleet controller's address when the configuration gives none (the fleet's
// default listen address).
const DefaultController = "http://127.0.0.1:9300"

// Config is a local target as the worker configuration gives it.
type Config struct {
	// Controller is the fleet controller's base URL; default DefaultController.
	Controller string `json:"controller,omitempty"`
}

// New checks cfg and returns the target.
func New(cfg Config) (*Target, error) {
	if c := cfg.Controller; c != "" {
		u, err := url.Parse(c)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("controller %q must be an http:// or https:// URL: %w", c, ErrPermanent)
		}
	}
	return &Target{Controller: cfg.Controller}, nil
}

// Describe says which controller the target drives.
func (t *Target) Describe() providers.Description {
	c := t.controller()
	return providers.Description{
		Type:    "local",
		Summary: "the local demo fleet's controller at " + c + " (processes of demo-service behind a weighted proxy)",
		Steps: map[string]string{
			"deploy":   "start the new version's process beside the stable one and wait until it is healthy",
			"health":   "ask the controller whether the new version is healthy",
			"traffic":  "set the proxy's weight of the new version",
			"promote":  "make the new version stable; the old one is retired after a grace window",
			"rollback": "send all traffic to stable and stop the new version's process",
		},
		Prerequisites: []string{"the fleet controller answers at " + c + " (shepherd fleet, or shepherd demo --keep)"},
		ManualRollback: []string{
			"curl -X POST " + c + "/v1/services/SERVICE/traffic -d '{\"version\":\"VERSION\",\"percent\":0}'",
			"curl -X POST " + c + "/v1/services/SERVICE/rollback -d '{\"version\":\"VERSION\"}'",
		},
		StepTimeout: t.deployTimeout(),
		Manual:      t.manual,
	}
}

// manual is the controller call that does step by hand.
func (t *Target) manual(step string, d spec.TemplateData, _ []string) []string {
	base := t.controller() + "/v1/services/" + d.Service
	post := "curl -sS -X POST -H 'Content-Type: application/json' "
	switch step {
	case "traffic":
		body, _ := json.Marshal(fleet.TrafficRequest{Version: d.Version, Percent: d.Percent})
		return []string{post + base + "/traffic -d '" + string(body) + "'"}
	case "rollback":
		body, _ := json.Marshal(fleet.VersionRequest{Version: d.Version})
		return []string{post + base + "/rollback -d '" + string(body) + "'",
			"curl -sS " + base + "   # check: stable version, canary and traffic weight"}
	}
	return nil
}

// Target is the local deploy target against the fleet controller at Controller (default
// DefaultController). The zero value is ready to use. Every call is idempotent on the
// controller's side, as a target must be, and every release step carries its fencing token
// (data.ReleaseID, Seq and Step): the controller refuses a step older than one it has applied, which
// this target returns as an error wrapping providers.ErrStaleWrite, and reports a retry of a step that
// had succeeded as a repeat, which this target logs (docs/targets.md).
type Target struct {
	// Controller is the fleet controller's base URL; default DefaultController.
	Controller string
	// Client sends the requests; default a plain http.Client (each call is bounded by a timeout below).
	Client *http.Client
	// Timeout bounds each call except deploy and bootstrap; default 10s.
	Timeout time.Duration
	// DeployTimeout bounds deploy and bootstrap; default 60s.
	DeployTimeout time.Duration
	// Log receives what the controller reported beyond success, such as an idempotent repeat (the
	// worker passes its logger's Info); default slog.Default().Info.
	Log func(msg string, keyvals ...any)
}

// ControllerError is an error answer from the controller. For 4xx answers other than 408 and 429 it
// unwraps to ErrPermanent; a refused stale write (409, code StaleWrite) also to providers.ErrStaleWrite.
type ControllerError struct {
	// Op is the step, e.g. "deploy checkout v2".
	Op string
	// Method and URL of the request.
	Method, URL string
	// Status is the HTTP status code.
	Status int
	// Message is the controller's {"error": ...} text, or the start of a non-JSON body.
	Message string
	// Code is the controller's {"code": ...}: fleet.CodeStaleWrite for a refused stale write.
	Code string
}

// Error says which step failed, which request, and what the controller said.
func (e *ControllerError) Error() string {
	return fmt.Sprintf("local target: %s: %s %s: %d %s: %s", e.Op, e.Method, e.URL, e.Status, http.StatusText(e.Status), e.Message)
}

// Unwrap returns ErrPermanent when retrying the same request cannot succeed, and providers.ErrStaleWrite
// too when the controller refused the step as stale.
func (e *ControllerError) Unwrap() []error {
	var errs []error
	if e.Stale() {
		errs = append(errs, providers.ErrStaleWrite)
	}
	if e.Permanent() {
		errs = append(errs, ErrPermanent)
	}
	return errs
}

// Stale reports whether the controller refused the write because it has applied a newer step.
func (e *ControllerError) Stale() bool {
	return e.Status == http.StatusConflict && e.Code == fleet.CodeStaleWrite
}

// Permanent reports whether the answer is a client error that a retry would only repeat.
func (e *ControllerError) Permanent() bool {
	return e.Status >= 400 && e.Status < 500 && e.Status != http.StatusRequestTimeout && e.Status != http.StatusTooManyRequests
}

// Deploy starts data.Version beside the stable version at 0 % traffic and waits until it is healthy.
func (t *Target) Deploy(ctx context.Context, data spec.TemplateData) error {
	return t.change(ctx, op("deploy", data), data, "deploy", fleet.VersionRequest{Version: data.Version, Fence: fence(data)},
		t.deployTimeout())
}

// Health returns nil only when the controller reports data.Version (the canary) healthy.
func (t *Target) Health(ctx context.Context, data spec.TemplateData) error {
	var h fleet.HealthState
	q := url.Values{"version": {data.Version}}.Encode()
	if err := t.do(ctx, op("health", data), http.MethodGet, data.Service, "health", q, nil, &h, t.timeout()); err != nil {
		return err
	}
	if !h.Healthy || h.Version != data.Version {
		return fmt.Errorf("local target: %s: controller at %s answered 200 without reporting %s healthy (%+v)",
			op("health", data), t.controller(), data.Version, h)
	}
	return nil
}

// SetTraffic sends data.Percent % of the service's traffic to data.Version.
func (t *Target) SetTraffic(ctx context.Context, data spec.TemplateData) error {
	return t.change(ctx, fmt.Sprintf("traffic %s %s %d%%", data.Service, data.Version, data.Percent), data, "traffic",
		fleet.TrafficRequest{Version: data.Version, Percent: data.Percent, Fence: fence(data)}, t.timeout())
}

// Promote makes data.Version the stable version; the old one is retired after the controller's grace.
func (t *Target) Promote(ctx context.Context, data spec.TemplateData) error {
	return t.change(ctx, op("promote", data), data, "promote", fleet.VersionRequest{Version: data.Version, Fence: fence(data)},
		t.timeout())
}

// Rollback stops the canary data.Version; a version that is not deployed is not an error.
func (t *Target) Rollback(ctx context.Context, data spec.TemplateData) error {
	return t.change(ctx, op("rollback", data), data, "rollback", fleet.VersionRequest{Version: data.Version, Fence: fence(data)},
		t.timeout())
}

// Preflight checks, without changing anything, that the controller answers and that the service can take
// data.Version as its canary: it has a stable version, data.Version is not it, and no other canary runs.
func (t *Target) Preflight(ctx context.Context, data spec.TemplateData) error {
	st, err := t.State(ctx, data.Service)
	if err != nil {
		return err
	}
	what := op("preflight", data)
	switch {
	case st.Stable == data.Version:
		return fmt.Errorf("local target: %s: %s is already the stable version of %s: %w", what, data.Version, data.Service, ErrPermanent)
	case st.Canary != "" && st.Canary != data.Version:
		return fmt.Errorf("local target: %s: %s already has canary %s at %d%%: promote or roll it back first: %w",
			what, data.Service, st.Canary, st.Weight, ErrPermanent)
	}
	return nil
}

// Bootstrap starts the first stable version of a service on the fleet (the demo's set-up step; releases
// then go through Deploy, SetTraffic and Promote). It is a no-op when version is already stable. It is
// not a release step, so it carries no fencing token.
func (t *Target) Bootstrap(ctx context.Context, service, version string) error {
	return t.do(ctx, "bootstrap "+service+" "+version, http.MethodPost, service, "bootstrap", "",
		fleet.VersionRequest{Version: version}, nil, t.deployTimeout())
}

// State returns the controller's view of a service.
func (t *Target) State(ctx context.Context, service string) (fleet.ServiceState, error) {
	var st fleet.ServiceState
	err := t.do(ctx, "state "+service, http.MethodGet, service, "", "", nil, &st, t.timeout())
	return st, err
}

// Journal returns the controller's journal of writes to a service and its fencing state.
func (t *Target) Journal(ctx context.Context, service string) (fleet.Journal, error) {
	var j fleet.Journal
	err := t.do(ctx, "journal "+service, http.MethodGet, service, "journal", "", nil, &j, t.timeout())
	return j, err
}

// change sends one release step and logs what the controller said beyond success: that the step had
// already been applied with this fencing token (an idempotent repeat, e.g. the retry after a worker
// crash of a step whose first attempt landed).
func (t *Target) change(ctx context.Context, what string, data spec.TemplateData, action string, in any,
	timeout time.Duration) error {
	var res fleet.ChangeResult
	if err := t.do(ctx, what, http.MethodPost, data.Service, action, "", in, &res, timeout); err != nil {
		return err
	}
	if res.Repeat {
		t.log()("Fleet controller reports an idempotent repeat: this step had already been applied; nothing new happened",
			"step", data.Step, "seq", data.Seq, "releaseID", data.ReleaseID, "service", data.Service,
			"version", data.Version, "action", action, "controller", t.controller())
	}
	return nil
}

func (t *Target) log() func(string, ...any) {
	if t.Log != nil {
		return t.Log
	}
	return slog.Default().Info
}

// fence is the step's fencing token; a step without a release ID or seq goes out unfenced.
func fence(data spec.TemplateData) fleet.Fence {
	return fleet.Fence{ReleaseID: data.ReleaseID, Seq: data.Seq, Step: data.Step}
}

func op(what string, data spec.TemplateData) string {
	return what + " " + data.Service + " " + data.Version
}

func (t *Target) timeout() time.Duration       { return cmp.Or(t.Timeout, DefaultTimeout) }
func (t *Target) deployTimeout() time.Duration { return cmp.Or(t.DeployTimeout, DefaultDeployTimeout) }

// controller is the controller's base URL without a trailing slash.
func (t *Target) controller() string {
	return strings.TrimRight(cmp.Or(t.Controller, DefaultController), "/")
}

// do sends one request to /v1/services/{service}[/{action}] and decodes a 200 answer into out (if set).
func (t *Target) do(ctx context.Context, what, method, service, action, query string, in, out any,
	timeout time.Duration) error {
	if service == "" {
		return fmt.Errorf("local target: %s: no service name: %w", what, ErrPermanent)
	}
	u := t.controller() + "/v1/services/" + url.PathEscape(service)
	if action != "" {
		u += "/" + action
	}
	if query != "" {
		u += "?" + query
	}
	var body io.Reader
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("local target: %s: encode request: %w", what, err)
		}
		body = bytes.NewReader(data)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return fmt.Errorf("local target: %s: %v (check the target's controller): %w", what, err, ErrPermanent)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	client := t.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("local target: %s: %s %s: %w (is the fleet controller running at %s?)", what, method, u, err,
			t.controller())
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("local target: %s: %s %s: read answer: %w", what, method, u, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e fleet.ErrorResponse
		msg := strings.TrimSpace(string(data))
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		// The message reaches history and the report: bounded, and without the worker's secrets.
		if msg = redact.String(msg); len(msg) > 300 {
			msg = msg[:300] + "…"
		}
		return &ControllerError{Op: what, Method: method, URL: u, Status: resp.StatusCode, Message: msg, Code: e.Code}
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("local target: %s: %s %s: answer is not the fleet controller's JSON: %w", what, method, u, err)
		}
	}
	return nil
}

var (
	_ providers.Target      = (*Target)(nil)
	_ providers.Preflighter = (*Target)(nil)
	_ providers.Describer   = (*Target)(nil)
)
