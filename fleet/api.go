package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"time"
)

// Role is what an instance does in its service.
type Role string

// Instance roles.
const (
	// RoleStable serves the traffic the canary does not get.
	RoleStable Role = "stable"
	// RoleCanary is the new version, getting Weight % of the traffic.
	RoleCanary Role = "canary"
	// RoleRetiring is a former stable version kept warm for the grace period after a promotion.
	RoleRetiring Role = "retiring"
)

// VersionRequest is the JSON body of bootstrap, deploy, promote and rollback.
type VersionRequest struct {
	// Version is the version to act on.
	Version string `json:"version"`
	// Fence is the release step's fencing token (releaseID, seq, step); without one the write is unfenced.
	Fence
}

// TrafficRequest is the JSON body of traffic.
type TrafficRequest struct {
	// Version must be the canary (or, for 0 %, a version that is not deployed: a no-op).
	Version string `json:"version"`
	// Percent of the service's traffic to send to the canary, 0..100.
	Percent int `json:"percent"`
	// Fence is the release step's fencing token (releaseID, seq, step); without one the write is unfenced.
	Fence
}

// ServiceState is the answer to GET /v1/services/{service} and to every successful change.
type ServiceState struct {
	// Service is the service name.
	Service string `json:"service"`
	// Stable is the version serving the traffic the canary does not get.
	Stable string `json:"stable,omitempty"`
	// Canary is the version being released, if any.
	Canary string `json:"canary,omitempty"`
	// Weight is the canary's share of traffic in percent.
	Weight int `json:"weight"`
	// Instances are the service's processes, stable first.
	Instances []InstanceState `json:"instances"`
	// Fence is the newest fenced step applied to the service (none before the first release step).
	Fence *FenceState `json:"fence,omitempty"`
}

// InstanceState is one process of a service.
type InstanceState struct {
	// Version the instance runs.
	Version string `json:"version"`
	// Role of the instance.
	Role Role `json:"role"`
	// PID of the process.
	PID int `json:"pid"`
	// Address is host:port of the instance; its metrics are at http://{Address}/metrics.
	Address string `json:"address"`
	// Alive reports whether the process is running.
	Alive bool `json:"alive"`
	// StartedAt is when the controller started the process.
	StartedAt time.Time `json:"startedAt,omitzero"`
	// RetireAt is when a retiring instance will be stopped.
	RetireAt time.Time `json:"retireAt,omitzero"`
	// Log is the path of the instance's log file.
	Log string `json:"log"`
}

// HealthState is the answer to GET /v1/services/{service}/health: 200 when healthy, 503 when not.
type HealthState struct {
	// Service is the service name.
	Service string `json:"service"`
	// Version is the version checked.
	Version string `json:"version"`
	// Healthy is true when the process runs and answers /healthz as this service and version.
	Healthy bool `json:"healthy"`
	// Error says why the version is not healthy.
	Error string `json:"error,omitempty"`
}

// ErrorResponse is the JSON body of every 4xx/5xx answer of the admin API.
type ErrorResponse struct {
	// Error says what failed and what to do about it.
	Error string `json:"error"`
	// Code classifies errors a client acts on: CodeStaleWrite for a refused stale write.
	Code string `json:"code,omitempty"`
}

var (
	serviceNameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	versionRE     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$`)
)

// apiError is an operation failure with the HTTP status that describes it.
type apiError struct {
	status int
	code   string // ErrorResponse.Code
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func errorf(status int, format string, args ...any) error {
	return &apiError{status: status, msg: fmt.Sprintf(format, args...)}
}

func (c *controller) routes() http.Handler {
	mux := http.NewServeMux()
	route := func(method, path string, h http.HandlerFunc) {
		mux.HandleFunc(method+" "+path, h)
		// Same path, other method: a JSON 405 instead of the mux's plain-text one.
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", method)
			writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("%s %s is not supported: use %s", r.Method, r.URL.Path, method))
		})
	}
	route(http.MethodGet, "/healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	route(http.MethodGet, "/v1/services", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, c.list())
	})
	route(http.MethodGet, "/v1/services/{service}", c.handle(func(r *http.Request, name string) (any, error) {
		return c.state(name)
	}))
	route(http.MethodGet, "/v1/services/{service}/health", c.handleHealth)
	route(http.MethodGet, "/v1/services/{service}/journal", c.handle(func(r *http.Request, name string) (any, error) {
		return c.journal(name)
	}))
	route(http.MethodPost, "/v1/services/{service}/bootstrap", c.versionOp("bootstrap", c.bootstrap))
	route(http.MethodPost, "/v1/services/{service}/deploy", c.versionOp("deploy", c.deploy))
	route(http.MethodPost, "/v1/services/{service}/promote", c.versionOp("promote", c.promote))
	route(http.MethodPost, "/v1/services/{service}/rollback", c.versionOp("rollback", c.rollback))
	route(http.MethodPost, "/v1/services/{service}/traffic", c.handle(func(r *http.Request, name string) (any, error) {
		var body struct {
			Version string `json:"version"`
			Percent *int   `json:"percent"`
			Fence
		}
		const want = `{"version": "v2", "percent": 25}`
		if err := decode(r, &body, "traffic", want); err != nil {
			return nil, err
		}
		if err := checkVersion(body.Version, want); err != nil {
			return nil, err
		}
		if body.Percent == nil {
			return nil, errorf(http.StatusBadRequest, "traffic: percent is required: want %s", want)
		}
		if p := *body.Percent; p < 0 || p > 100 {
			return nil, errorf(http.StatusBadRequest, "traffic: percent %d out of range: want 0..100", p)
		}
		w := write{action: "traffic", version: body.Version, percent: body.Percent, fence: body.Fence}
		return c.change(r.Context(), name, w, func(ctx context.Context) (ServiceState, error) {
			return c.traffic(ctx, name, body.Version, *body.Percent)
		})
	}))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no such endpoint %s %s: the API is under /v1/services/{service} "+
			"(GET, and POST .../bootstrap, deploy, traffic, promote, rollback; GET .../health, .../journal)", r.Method, r.URL.Path))
	})
	return mux
}

// handle validates the service name, runs fn and writes its result or error as JSON.
func (c *controller) handle(fn func(r *http.Request, service string) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("service")
		if !serviceNameRE.MatchString(name) {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("invalid service name %q: want 1-63 lowercase letters, "+
				"digits or '-', starting and ending with a letter or digit", name))
			return
		}
		out, err := fn(r, name)
		if errors.Is(err, errHandled) {
			return
		}
		if err != nil {
			status, code := http.StatusInternalServerError, ""
			var ae *apiError
			if errors.As(err, &ae) {
				status, code = ae.status, ae.code
			}
			if status >= 500 {
				c.log.Warn("admin request failed", "method", r.Method, "path", r.URL.Path, "status", status, "error", err)
			}
			writeJSON(w, status, ErrorResponse{Error: err.Error(), Code: code})
			return
		}
		writeJSON(w, http.StatusOK, out)
	}
}

// versionOp adapts an operation taking {"version"} to a handler.
func (c *controller) versionOp(what string, op func(ctx context.Context, service, version string) (ServiceState, error)) http.HandlerFunc {
	return c.handle(func(r *http.Request, name string) (any, error) {
		var body VersionRequest
		const want = `{"version": "v2"}`
		if err := decode(r, &body, what, want); err != nil {
			return nil, err
		}
		if err := checkVersion(body.Version, want); err != nil {
			return nil, err
		}
		w := write{action: what, version: body.Version, fence: body.Fence}
		res, err := c.change(r.Context(), name, w, func(ctx context.Context) (ServiceState, error) {
			return op(ctx, name, body.Version)
		})
		if err != nil {
			return nil, fmt.Errorf("%s %s %s: %w", what, name, body.Version, err)
		}
		c.log.Info(what, "service", name, "version", body.Version, "stable", res.Stable, "canary", res.Canary,
			"weight", res.Weight, "outcome", res.Outcome, "releaseID", body.ReleaseID, "seq", body.Seq, "step", body.Step)
		return res, nil
	})
}

func (c *controller) handleHealth(w http.ResponseWriter, r *http.Request) {
	c.handle(func(r *http.Request, name string) (any, error) {
		version := r.URL.Query().Get("version")
		if version != "" {
			if err := checkVersion(version, "?version=v2"); err != nil {
				return nil, err
			}
		}
		h, err := c.health(r.Context(), name, version)
		if err != nil {
			return nil, err
		}
		if !h.Healthy {
			writeJSON(w, http.StatusServiceUnavailable, h)
			return nil, errHandled
		}
		return h, nil
	})(w, r)
}

// errHandled tells handle that the response was already written.
var errHandled = errors.New("response written")

func checkVersion(v, want string) error {
	if v == "" {
		return errorf(http.StatusBadRequest, "version is required: want %s", want)
	}
	if !versionRE.MatchString(v) {
		return errorf(http.StatusBadRequest, "invalid version %q: want 1-128 letters, digits, '.', '_', '+' or '-', "+
			"starting with a letter or digit", v)
	}
	return nil
}

// decode reads a small JSON body strictly: unknown fields are refused so typos do not pass silently.
func decode(r *http.Request, v any, what, want string) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return errorf(http.StatusBadRequest, "%s: empty body: want %s", what, want)
		}
		return errorf(http.StatusBadRequest, "%s: invalid JSON body: %v: want %s", what, err, want)
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, ErrorResponse{Error: msg})
}
