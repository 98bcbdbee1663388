// Package prometheus is the Prometheus metrics provider: it renders a check's PromQL template with
// escaped values, runs it as an instant query against the Prometheus HTTP API and reduces the answer to
// one finite number, or says precisely why it cannot (which makes the measurement inconclusive).
package prometheus

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/shepherd-release/shepherd/internal/redact"
	"github.com/shepherd-release/shepherd/internal/safehttp"
	"github.com/shepherd-release/shepherd/providers"
	"github.com/shepherd-release/shepherd/spec"
)

// Defaults for Config.
const (
	// DefaultTimeout bounds one Evaluate, retries included, when the configuration gives no timeout.
	DefaultTimeout = 10 * time.Second
	// DefaultAddress is where a source without an address looks for Prometheus.
	DefaultAddress = "http://127.0.0.1:9090"
)

// Config is a Prometheus metrics source as the worker configuration gives it. Credentials are named
// (an environment variable or a file of the worker), read on every query so rotated secrets are picked up.
type Config struct {
	// Address is the base URL of the Prometheus HTTP API; default DefaultAddress.
	Address string `json:"address,omitempty"`
	// BearerTokenEnv names an environment variable of the worker holding a bearer token.
	BearerTokenEnv string `json:"bearerTokenEnv,omitempty"`
	// BearerTokenFile is a file on the worker holding a bearer token.
	BearerTokenFile string `json:"bearerTokenFile,omitempty"`
	// BasicAuthUser is the basic-auth user name.
	BasicAuthUser string `json:"basicAuthUser,omitempty"`
	// BasicAuthPasswordEnv names an environment variable of the worker holding the basic-auth password.
	BasicAuthPasswordEnv string `json:"basicAuthPasswordEnv,omitempty"`
	// BasicAuthPasswordFile is a file on the worker holding the basic-auth password.
	BasicAuthPasswordFile string `json:"basicAuthPasswordFile,omitempty"`
	// Timeout bounds one query, retries included; default 10s.
	Timeout spec.Duration `json:"timeout,omitempty"`
}

// Kinds of failure, for errors.Is on the *Error that Evaluate and New return. All of them make a
// measurement inconclusive; they differ in whether trying again can help.
var (
	// ErrTemplate means the check's query template does not parse or render; fix the check.
	ErrTemplate = errors.New("query template error")
	// ErrConfig means the source's settings are unusable; fix the worker configuration.
	ErrConfig = errors.New("prometheus settings error")
	// ErrCredentials means the worker could not read the credentials, or Prometheus refused them.
	ErrCredentials = errors.New("prometheus credentials error")
	// ErrRejected means Prometheus refused the query (bad PromQL, 4xx); retrying will not help.
	ErrRejected = errors.New("prometheus rejected the query")
	// ErrUnavailable means Prometheus could not be reached, answered 5xx or not in time; retrying may help.
	ErrUnavailable = errors.New("prometheus unavailable")
	// ErrNoData means the query returned no series.
	ErrNoData = errors.New("no data")
	// ErrUnusableResult means the query returned something other than one finite number.
	ErrUnusableResult = errors.New("unusable query result")
)

// Error is the error type of this package: Kind is one of the Err… values above (errors.Is matches it),
// Msg says what happened and what to do, Cause is the underlying error if any.
type Error struct {
	// Kind is ErrTemplate, ErrConfig, ErrCredentials, ErrRejected, ErrUnavailable, ErrNoData or
	// ErrUnusableResult.
	Kind error
	// Msg says what failed and what to do about it; it never holds a secret.
	Msg string
	// Cause is the underlying error, or nil.
	Cause error
}

// Error returns Msg followed by the cause, redacted: the cause may quote a response body, and a server
// may echo the credentials it was sent.
func (e *Error) Error() string {
	if e.Cause != nil {
		return redact.String(e.Msg + ": " + e.Cause.Error())
	}
	return redact.String(e.Msg)
}

// Unwrap exposes both the kind and the cause to errors.Is and errors.As.
func (e *Error) Unwrap() []error {
	if e.Cause != nil {
		return []error{e.Kind, e.Cause}
	}
	return []error{e.Kind}
}

// retryBackoff is the pause before each retry of a transport error or 5xx; retries stop early when the
// timeout budget would run out.
var retryBackoff = []time.Duration{100 * time.Millisecond, 300 * time.Millisecond}

// transport is shared by every provider: activities may build one per measurement, and a transport per
// provider would leave idle connections behind each time. Credentials are set per request, not here.
var transport = http.DefaultTransport.(*http.Transport).Clone()

// httpClient caps every answer (client_golang reads the whole body into memory) and keeps the
// Authorization header from following a redirect to another origin.
var httpClient = &http.Client{Transport: safehttp.LimitBody(transport, safehttp.MaxBody), CheckRedirect: safehttp.CheckRedirect}

// provider implements providers.Metrics against one Prometheus server.
type provider struct {
	address string
	client  api.Client
	creds   credentials
	timeout time.Duration
}

// New returns Metrics querying the Prometheus at cfg.Address (default DefaultAddress). It
// reads the credentials on every query so rotated secrets are picked up; CheckSecrets reads them once, for
// a worker to fail at start-up rather than at a release's first query.
func New(cfg Config) (providers.Metrics, error) {
	addr := cfg.Address
	if addr == "" {
		addr = DefaultAddress
	}
	u, err := url.Parse(addr)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, &Error{Kind: ErrConfig, Msg: fmt.Sprintf("address %q must be an "+
			"http:// or https:// URL such as %s", redactURL(addr), DefaultAddress)}
	}
	if u.User != nil {
		return nil, &Error{Kind: ErrConfig, Msg: "address must not contain credentials " +
			"(keep secrets out of configuration files); use basicAuthUser with basicAuthPasswordEnv or " +
			"basicAuthPasswordFile"}
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, &Error{Kind: ErrConfig, Msg: fmt.Sprintf("address %q must be a base "+
			"URL without query or fragment", addr)}
	}
	if cfg.Timeout < 0 {
		return nil, &Error{Kind: ErrConfig, Msg: "timeout must not be negative"}
	}
	timeout := cfg.Timeout.D()
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	creds, err := newCredentials(cfg)
	if err != nil {
		return nil, err
	}
	client, err := api.NewClient(api.Config{Address: addr, Client: httpClient})
	if err != nil {
		return nil, &Error{Kind: ErrConfig, Msg: "building the Prometheus client", Cause: err}
	}
	return &provider{address: strings.TrimRight(addr, "/"), client: client, creds: creds, timeout: timeout}, nil
}

// CheckSecrets reads the configured credentials once.
func (p *provider) CheckSecrets() error {
	_, err := p.creds.authorization()
	return err
}

// Describe says which Prometheus the source queries (never its credentials).
func (p *provider) Describe() providers.Description {
	pre := []string{"Prometheus answers from the workers within " + p.timeout.String() + ": `curl -sS " + p.address + "/-/ready`"}
	switch c := p.creds; {
	case c.tokenEnv != "":
		pre = append(pre, "the workers have the bearer token in $"+c.tokenEnv)
	case c.tokenFile != "":
		pre = append(pre, "the workers have the bearer token in the file "+c.tokenFile)
	case c.user != "" && c.passwordEnv != "":
		pre = append(pre, "the workers have the basic-auth password of "+c.user+" in $"+c.passwordEnv)
	case c.user != "":
		pre = append(pre, "the workers have the basic-auth password of "+c.user+" in the file "+c.passwordFile)
	}
	return providers.Description{
		Type:          "prometheus",
		Summary:       "PromQL instant queries against `" + p.address + "`",
		Prerequisites: pre,
		StepTimeout:   p.timeout,
	}
}

// Evaluate renders queryTemplate over data (values escaped for PromQL label matchers), runs it as an
// instant query and returns its single value and the rendered query. The query is returned with every
// error after rendering, so a report can show what ran.
func (p *provider) Evaluate(ctx context.Context, queryTemplate string, data spec.TemplateData) (float64, string, error) {
	query, err := Render(queryTemplate, data)
	if err != nil {
		return 0, "", err
	}
	auth, err := p.creds.authorization()
	if err != nil {
		return 0, query, err
	}
	val, err := p.query(ctx, auth, query)
	if err != nil {
		return 0, query, err
	}
	v, err := single(val)
	return v, query, err
}

// query runs an instant query within p.timeout, retrying transport errors and 5xx answers while the
// budget allows, never 4xx.
func (p *provider) query(parent context.Context, auth, query string) (model.Value, error) {
	ctx, cancel := context.WithTimeout(parent, p.timeout)
	defer cancel()
	for attempt := 0; ; attempt++ {
		c := &call{inner: p.client, auth: auth}
		// The server-side timeout lets Prometheus give up on the query too instead of computing it for
		// nobody.
		val, _, _, err := v1.NewAPI(c).Query(ctx, query, time.Time{}, v1.WithTimeout(p.timeout))
		if err == nil {
			return val, nil
		}
		if parent.Err() != nil {
			return nil, &Error{Kind: ErrUnavailable, Msg: "query abandoned", Cause: parent.Err()}
		}
		if ctx.Err() != nil {
			return nil, &Error{Kind: ErrUnavailable, Msg: fmt.Sprintf("query to %s timed out after %s "+
				"(timeout); is Prometheus overloaded or the query too expensive?",
				p.address, p.timeout), Cause: ctx.Err()}
		}
		e, retry := p.classify(c.status, err)
		if !retry || attempt >= len(retryBackoff) {
			return nil, e
		}
		if d, ok := ctx.Deadline(); ok && time.Until(d) < retryBackoff[attempt] {
			return nil, e
		}
		t := time.NewTimer(retryBackoff[attempt])
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, e
		}
	}
}

// classify turns a failed query into an *Error and says whether to retry it.
func (p *provider) classify(status int, err error) (*Error, bool) {
	var apiErr *v1.Error
	isAPI := errors.As(err, &apiErr)
	switch {
	case errors.Is(err, safehttp.ErrBodyTooLarge):
		return &Error{Kind: ErrUnusableResult, Msg: fmt.Sprintf("Prometheus at %s answered with more than %d "+
			"bytes; is the source's address the Prometheus base URL, and does the query aggregate to "+
			"one series?", p.address, safehttp.MaxBody), Cause: err}, false
	case status == 0 || !isAPI:
		return &Error{Kind: ErrUnavailable, Msg: fmt.Sprintf("cannot reach Prometheus at %s "+
			"(address); is it running and reachable from the worker?", p.address),
			Cause: err}, true
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return &Error{Kind: ErrCredentials, Msg: fmt.Sprintf("Prometheus at %s refused the credentials "+
			"(HTTP %d %s); check the token or password the worker reads for the metrics source", p.address,
			status, http.StatusText(status))}, false
	case status == http.StatusBadRequest || status == http.StatusUnprocessableEntity:
		return &Error{Kind: ErrRejected, Msg: fmt.Sprintf("Prometheus rejected the query (HTTP %d, %s: %s); "+
			"fix the check's query", status, apiErr.Type, apiErr.Msg), Cause: err}, false
	case status >= 400 && status < 500:
		return &Error{Kind: ErrRejected, Msg: fmt.Sprintf("Prometheus query API at %s answered HTTP %d %s; "+
			"is address the Prometheus base URL?", p.address, status,
			http.StatusText(status)), Cause: err}, false
	case status >= 500:
		return &Error{Kind: ErrUnavailable, Msg: fmt.Sprintf("Prometheus at %s answered HTTP %d %s%s",
			p.address, status, http.StatusText(status), detail(apiErr.Detail)), Cause: err}, true
	case apiErr.Type == v1.ErrBadResponse:
		return &Error{Kind: ErrUnavailable, Msg: fmt.Sprintf("Prometheus at %s answered HTTP %d with a body "+
			"that is not a usable query API response; is address the Prometheus base URL?",
			p.address, status), Cause: err}, false
	default:
		return &Error{Kind: ErrUnavailable, Msg: fmt.Sprintf("Prometheus at %s reported an error", p.address),
			Cause: err}, false
	}
}

// single reduces a query result to one finite number.
func single(val model.Value) (float64, error) {
	var f float64
	switch v := val.(type) {
	case *model.Scalar:
		f = float64(v.Value)
	case model.Vector:
		switch len(v) {
		case 0:
			return 0, &Error{Kind: ErrNoData, Msg: "query returned no series (is the service receiving " +
				"traffic and being scraped, and do the metric and label names match?)"}
		case 1:
		default:
			return 0, &Error{Kind: ErrUnusableResult, Msg: fmt.Sprintf("query returned %d series (%s); "+
				"aggregate it to one (e.g. sum(...))", len(v), seriesList(v))}
		}
		if v[0].Histogram != nil {
			return 0, &Error{Kind: ErrUnusableResult, Msg: "query returned a native histogram, not a number; " +
				"reduce it with histogram_quantile(...) or histogram_count(...)"}
		}
		f = float64(v[0].Value)
	case model.Matrix:
		return 0, &Error{Kind: ErrUnusableResult, Msg: fmt.Sprintf("query returned a range vector (%d series); "+
			"a check needs an instant value: wrap the range selector in rate(...), avg_over_time(...) or similar",
			len(v))}
	case *model.String:
		return 0, &Error{Kind: ErrUnusableResult, Msg: "query returned a string, not a number"}
	default:
		return 0, &Error{Kind: ErrUnusableResult, Msg: fmt.Sprintf("query returned an unsupported result "+
			"type %T", val)}
	}
	switch {
	case math.IsNaN(f):
		return 0, &Error{Kind: ErrUnusableResult, Msg: "query returned NaN (usually 0/0: no requests for this " +
			"version in the query's time window)"}
	case math.IsInf(f, 0):
		return 0, &Error{Kind: ErrUnusableResult, Msg: fmt.Sprintf("query returned %v (a division by zero, "+
			"or a quantile above the highest histogram bucket)", f)}
	}
	return f, nil
}

// seriesList names up to three series of v, enough to show which label to aggregate away.
func seriesList(v model.Vector) string {
	const show = 3
	var parts []string
	for i, s := range v {
		if i == show {
			parts = append(parts, fmt.Sprintf("and %d more", len(v)-show))
			break
		}
		parts = append(parts, s.Metric.String())
	}
	return strings.Join(parts, ", ")
}

// detail returns a short excerpt of an error body, prefixed for appending to a message.
func detail(body string) string {
	body = strings.Join(strings.Fields(body), " ")
	if body == "" {
		return ""
	}
	const limit = 200
	if len(body) > limit {
		body = body[:limit] + "…"
	}
	return ": " + body
}

// redact hides the password of a URL that failed to parse as we want.
func redactURL(addr string) string {
	if u, err := url.Parse(addr); err == nil {
		return u.Redacted()
	}
	return "(unparseable URL)"
}

// call is one query attempt's api.Client: it adds the Authorization header and remembers the HTTP status,
// which client_golang's errors do not carry.
type call struct {
	inner  api.Client
	auth   string
	status int
}

func (c *call) URL(ep string, args map[string]string) *url.URL { return c.inner.URL(ep, args) }

func (c *call) Do(ctx context.Context, req *http.Request) (*http.Response, []byte, error) {
	if c.auth != "" {
		req.Header.Set("Authorization", c.auth)
	}
	req.Header.Set("User-Agent", "shepherd")
	resp, body, err := c.inner.Do(ctx, req)
	if resp != nil {
		c.status = resp.StatusCode
	}
	return resp, body, err
}

// GraphURL links query graphed over [from, to] in Prometheus' own UI (the worker's address for it: put
// a Prometheus the people reading reports can reach in the address, or read the query off the report).
func (p *provider) GraphURL(query string, from, to time.Time) string {
	if query == "" || to.Before(from) {
		return ""
	}
	window := max(to.Sub(from).Round(time.Second), time.Minute)
	v := url.Values{}
	v.Set("g0.expr", query)
	v.Set("g0.tab", "0")
	v.Set("g0.range_input", fmt.Sprintf("%ds", int64(window/time.Second)))
	v.Set("g0.end_input", to.UTC().Format("2006-01-02 15:04:05"))
	return p.address + "/graph?" + v.Encode()
}
