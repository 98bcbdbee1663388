// Package web is the generic HTTP/JSON metrics provider (Argo Rollouts calls its equivalent "web"): a
// check's value is one number read from a JSON answer of an HTTP endpoint, for metric systems that are
// not Prometheus (an SLO service, a vendor API, a custom aggregator).
//
// The operator fixes the endpoint in the worker configuration: the URL's scheme and host are written
// literally and only its path and query are templated, so a release spec (which supplies the check's
// query and the version) can never send the request, or its credentials, anywhere else. Credentials come
// from the worker's environment or files; redirects to another host are refused; answers are bounded.
package web

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/shepherd-release/shepherd/providers"
	"github.com/shepherd-release/shepherd/spec"
)

// Defaults for Config.
const (
	DefaultTimeout          = 10 * time.Second
	DefaultMaxResponseBytes = 1 << 20
	// maxRedirects bounds redirects within the configured host.
	maxRedirects = 3
)

// Config is a web metrics source as the worker configuration gives it.
type Config struct {
	// URL is a Go template over the release (.Service .Environment .Version .PreviousVersion .Percent
	// .Stage .ReleaseID) and .Query, the check's rendered query. Every value is query-escaped. The scheme
	// and host must be written literally, before the first "{{", e.g.
	// "https://slo.internal/api/v1/value?service={{.Service}}&version={{.Version}}&q={{.Query}}".
	URL string `json:"url"`
	// JSONPath is the dot path of the number in the JSON answer, e.g. "data.value" or "results[0].value";
	// empty means the whole answer is the number. A numeric string counts as a number.
	JSONPath string `json:"jsonPath,omitempty"`
	// Headers are sent with every request; not for secrets (use SecretHeaders).
	Headers map[string]string `json:"headers,omitempty"`
	// SecretHeaders are sent with every request, their values read from the worker's environment or files
	// on each request, e.g. {"Authorization": {"env": "SLO_TOKEN", "prefix": "Bearer "}}.
	SecretHeaders map[string]SecretHeader `json:"secretHeaders,omitempty"`
	// Timeout bounds one request; default 10s.
	Timeout spec.Duration `json:"timeout,omitempty"`
	// MaxResponseBytes bounds an answer; default 1 MiB. A larger answer is an error, not a truncated read.
	MaxResponseBytes int64 `json:"maxResponseBytes,omitempty"`
}

// SecretHeader is a header value read from a secret, with an optional prefix such as "Bearer ".
type SecretHeader struct {
	providers.Secret
	// Prefix is put before the secret, e.g. "Bearer ".
	Prefix string `json:"prefix,omitempty"`
}

// Source queries one web endpoint. Build it with New.
type Source struct {
	cfg     Config
	tmpl    *template.Template
	base    *url.URL // scheme and host every request must keep
	timeout time.Duration
	limit   int64
	path    []pathStep
	client  *http.Client
}

var _ providers.Metrics = (*Source)(nil)
var _ providers.Describer = (*Source)(nil)

// New checks cfg and returns the source; it reads no secret yet, but checks each secret source is given.
func New(cfg Config) (*Source, error) {
	var problems []string
	fixed, _, _ := strings.Cut(cfg.URL, "{{")
	base, err := url.Parse(fixed)
	switch {
	case strings.TrimSpace(cfg.URL) == "":
		problems = append(problems, "url is required")
	case err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" ||
		!strings.Contains(strings.TrimPrefix(fixed, base.Scheme+"://"), "/"):
		problems = append(problems, fmt.Sprintf("url %q must start with a literal http:// or https:// scheme, host and '/' "+
			"before any template, so no release can send the request elsewhere", cfg.URL))
	case base.User != nil:
		problems = append(problems, "url must not hold credentials; use secretHeaders")
	}
	tmpl, err := template.New("url").Option("missingkey=error").Parse(cfg.URL)
	if err != nil {
		problems = append(problems, fmt.Sprintf("url: template does not parse: %v", err))
	}
	path, err := parsePath(cfg.JSONPath)
	if err != nil {
		problems = append(problems, fmt.Sprintf("jsonPath: %v", err))
	}
	for name, h := range cfg.SecretHeaders {
		if err := h.Validate(); err != nil {
			problems = append(problems, fmt.Sprintf("secretHeaders.%s: %v", name, err))
		}
		if _, dup := cfg.Headers[name]; dup {
			problems = append(problems, fmt.Sprintf("header %s is in both headers and secretHeaders", name))
		}
	}
	if cfg.Timeout < 0 {
		problems = append(problems, "timeout must not be negative")
	}
	if cfg.MaxResponseBytes < 0 {
		problems = append(problems, "maxResponseBytes must not be negative")
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("web metrics: %s: %w", strings.Join(problems, "; "), providers.ErrPermanent)
	}
	s := &Source{cfg: cfg, tmpl: tmpl, base: base, path: path,
		timeout: DefaultTimeout, limit: DefaultMaxResponseBytes}
	if cfg.Timeout > 0 {
		s.timeout = cfg.Timeout.D()
	}
	if cfg.MaxResponseBytes > 0 {
		s.limit = cfg.MaxResponseBytes
	}
	s.client = &http.Client{CheckRedirect: s.checkRedirect}
	return s, nil
}

// checkRedirect follows a redirect only within the configured scheme and host: the request carries
// credentials, and a redirect elsewhere would carry them along.
func (s *Source) checkRedirect(req *http.Request, via []*http.Request) error {
	if req.URL.Scheme != s.base.Scheme || req.URL.Host != s.base.Host {
		return fmt.Errorf("redirect to %s://%s refused: only %s://%s is configured", req.URL.Scheme, req.URL.Host,
			s.base.Scheme, s.base.Host)
	}
	if len(via) > maxRedirects {
		return fmt.Errorf("more than %d redirects", maxRedirects)
	}
	return nil
}

// CheckSecrets reads every secret header once.
func (s *Source) CheckSecrets() error {
	for name, h := range s.cfg.SecretHeaders {
		if _, err := h.Read(); err != nil {
			return fmt.Errorf("secretHeaders.%s: %w", name, err)
		}
	}
	return nil
}

// Describe says what the source queries.
func (s *Source) Describe() providers.Description {
	what := "the number"
	if s.cfg.JSONPath != "" {
		what = "the field " + s.cfg.JSONPath
	}
	return providers.Description{
		Type:    "web",
		Summary: fmt.Sprintf("HTTP GET %s://%s%s, reading %s of the JSON answer", s.base.Scheme, s.base.Host, s.base.Path, what),
		Prerequisites: []string{fmt.Sprintf("%s://%s answers within %s from the worker", s.base.Scheme, s.base.Host,
			s.timeout)},
		StepTimeout: s.timeout,
	}
}

// Evaluate renders the check's query over data, puts it into the URL as .Query, requests the URL and
// returns the number at the configured path, with the URL that ran (without its query string's secrets:
// the URL never holds any).
func (s *Source) Evaluate(ctx context.Context, queryTemplate string, data spec.TemplateData) (float64, string, error) {
	query, err := render("query", queryTemplate, data)
	if err != nil {
		return 0, "", fmt.Errorf("check query template: %v: %w", err, providers.ErrPermanent)
	}
	vals := escaped(data)
	vals["Query"] = url.QueryEscape(query)
	var b bytes.Buffer
	if err := s.tmpl.Execute(&b, vals); err != nil {
		return 0, "", fmt.Errorf("url template does not render: %v: %w", err, providers.ErrPermanent)
	}
	u, err := url.Parse(b.String())
	if err != nil || u.Scheme != s.base.Scheme || u.Host != s.base.Host {
		return 0, "", fmt.Errorf("rendered url does not stay on %s://%s: %w", s.base.Scheme, s.base.Host, providers.ErrPermanent)
	}
	shown := u.String()
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, shown, nil)
	if err != nil {
		return 0, shown, fmt.Errorf("building the request: %v: %w", err, providers.ErrPermanent)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "shepherd")
	for k, v := range s.cfg.Headers {
		req.Header.Set(k, v)
	}
	for k, h := range s.cfg.SecretHeaders {
		v, err := h.Read()
		if err != nil {
			return 0, shown, fmt.Errorf("header %s: %w", k, err)
		}
		req.Header.Set(k, h.Prefix+v)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return 0, shown, fmt.Errorf("no answer within %s (timeout): %w", s.timeout, ctx.Err())
		}
		return 0, shown, fmt.Errorf("request failed: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, s.limit+1))
	if err != nil {
		return 0, shown, fmt.Errorf("reading the answer: %w", err)
	}
	if int64(len(body)) > s.limit {
		return 0, shown, fmt.Errorf("answer is larger than %d bytes (maxResponseBytes)", s.limit)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return 0, shown, fmt.Errorf("answered HTTP %d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
	}
	v, err := s.value(body)
	return v, shown, err
}

func (s *Source) value(body []byte) (float64, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return 0, fmt.Errorf("answer is not JSON: %v", err)
	}
	v, err := walk(doc, s.path)
	if err != nil {
		return 0, fmt.Errorf("jsonPath %q: %v", s.cfg.JSONPath, err)
	}
	var f float64
	switch x := v.(type) {
	case json.Number:
		f, err = x.Float64()
	case string:
		f, err = strconv.ParseFloat(strings.TrimSpace(x), 64)
	case nil:
		return 0, fmt.Errorf("jsonPath %q is null: no data", s.cfg.JSONPath)
	default:
		return 0, fmt.Errorf("jsonPath %q holds %s, not a number", s.cfg.JSONPath, kind(v))
	}
	if err != nil {
		return 0, fmt.Errorf("jsonPath %q is not a number: %v", s.cfg.JSONPath, err)
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("jsonPath %q is %v, not a usable number", s.cfg.JSONPath, f)
	}
	return f, nil
}

// pathStep is one key or one index of a JSON path.
type pathStep struct {
	key   string
	index int // >= 0 for an index step
}

// parsePath reads "a.b[0].c".
func parsePath(p string) ([]pathStep, error) {
	var steps []pathStep
	if p == "" {
		return nil, nil
	}
	for _, part := range strings.Split(p, ".") {
		key, rest, _ := strings.Cut(part, "[")
		if key == "" && rest == "" {
			return nil, fmt.Errorf("empty element in %q", p)
		}
		if key != "" {
			steps = append(steps, pathStep{key: key, index: -1})
		}
		for rest != "" {
			idx, after, ok := strings.Cut(rest, "]")
			n, err := strconv.Atoi(idx)
			if !ok || err != nil || n < 0 {
				return nil, fmt.Errorf("bad index in %q", part)
			}
			steps = append(steps, pathStep{index: n})
			if after == "" {
				break
			}
			if !strings.HasPrefix(after, "[") {
				return nil, fmt.Errorf("bad index in %q", part)
			}
			rest = after[1:]
		}
	}
	return steps, nil
}

func walk(doc any, path []pathStep) (any, error) {
	cur := doc
	for _, st := range path {
		if st.index >= 0 {
			arr, ok := cur.([]any)
			if !ok {
				return nil, fmt.Errorf("[%d] applied to %s", st.index, kind(cur))
			}
			if st.index >= len(arr) {
				return nil, fmt.Errorf("index %d of a list of %d: no data", st.index, len(arr))
			}
			cur = arr[st.index]
			continue
		}
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("key %q applied to %s", st.key, kind(cur))
		}
		v, ok := obj[st.key]
		if !ok {
			return nil, fmt.Errorf("no key %q: no data", st.key)
		}
		cur = v
	}
	return cur, nil
}

func kind(v any) string {
	switch v.(type) {
	case map[string]any:
		return "an object"
	case []any:
		return "a list"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	default:
		return fmt.Sprintf("%T", v)
	}
}

// render renders a check's query template over data as written (it goes into the URL escaped).
func render(name, text string, data spec.TemplateData) (string, error) {
	t, err := template.New(name).Option("missingkey=error").Parse(text)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	if err := t.Execute(&b, data); err != nil {
		return "", err
	}
	return b.String(), nil
}

// escaped maps every field of data to its query-escaped value, so no value can add a parameter or change
// the path.
func escaped(data spec.TemplateData) map[string]any {
	v := reflect.ValueOf(data)
	m := make(map[string]any, v.NumField()+1)
	for i := range v.NumField() {
		f := v.Type().Field(i)
		if !f.IsExported() {
			continue
		}
		m[f.Name] = url.QueryEscape(fmt.Sprint(v.Field(i).Interface()))
	}
	return m
}
