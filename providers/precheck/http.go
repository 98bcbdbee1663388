package precheck

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/shepherd-release/shepherd/internal/redact"
	"github.com/shepherd-release/shepherd/internal/safehttp"
	"github.com/shepherd-release/shepherd/spec"
)

// DefaultHTTPTimeout bounds an HTTP check when its Timeout is zero.
const DefaultHTTPTimeout = 10 * time.Second

// maxBody bounds how much of a response an HTTP check reads.
const maxBody = 1 << 20

// HTTPCheck GETs a URL and checks the status and, optionally, a JSON field or the whole body.
type HTTPCheck struct {
	// Name identifies the check in errors and reports; default the URL's host and path.
	Name string `json:"name,omitempty"`
	// URL is a Go template over spec.TemplateData, e.g.
	// "https://artifacts.internal/api/{{.Service}}/{{.Version}}".
	URL string `json:"url"`
	// ExpectStatus is the status code wanted; default 200.
	ExpectStatus int `json:"expectStatus,omitempty"`
	// JSONField is a dot path into the JSON body ("status", "checks.0.state"); array elements by index.
	JSONField string `json:"jsonField,omitempty"`
	// Expect is the value wanted at JSONField (or the whole trimmed body without JSONField), compared as
	// text: strings as is, numbers as written, true/false/null. A Go template over spec.TemplateData. With
	// JSONField and no Expect, the field only has to exist.
	Expect string `json:"expect,omitempty"`
	// HeaderEnv adds headers whose values come from environment variables of the worker, for credentials:
	// {"Authorization": "QA_API_AUTH"}.
	HeaderEnv map[string]string `json:"headerEnv,omitempty"`
	// Timeout bounds the request; default 10s.
	Timeout spec.Duration `json:"timeout,omitempty"`
}

func (c HTTPCheck) name() string {
	if c.Name != "" {
		return c.Name
	}
	if u, err := url.Parse(c.URL); err == nil && u.Host != "" {
		return u.Host + u.Path
	}
	return c.URL
}

// Validate checks the configuration without sending anything.
func (c HTTPCheck) Validate() error {
	var problems []string
	if strings.TrimSpace(c.URL) == "" {
		problems = append(problems, "url is required")
	}
	for _, t := range []struct{ name, text string }{{"url", c.URL}, {"expect", c.Expect}} {
		if _, err := parseTemplate(t.name, t.text); err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", t.name, err))
		}
	}
	if c.ExpectStatus != 0 && (c.ExpectStatus < 100 || c.ExpectStatus > 599) {
		problems = append(problems, fmt.Sprintf("expectStatus %d is not an HTTP status", c.ExpectStatus))
	}
	if c.JSONField != "" {
		for _, seg := range strings.Split(c.JSONField, ".") {
			if seg == "" {
				problems = append(problems, fmt.Sprintf("jsonField %q has an empty segment", c.JSONField))
				break
			}
		}
	}
	for _, h := range slices.Sorted(maps.Keys(c.HeaderEnv)) { // sorted: the same config, the same message
		if env := c.HeaderEnv[h]; strings.TrimSpace(env) == "" {
			problems = append(problems, fmt.Sprintf("headerEnv.%s: name an environment variable", h))
		}
	}
	if c.Timeout < 0 {
		problems = append(problems, "timeout must not be negative")
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

// Run GETs the URL and returns what it observed: the JSONField value, else the body when Expect is set,
// else "HTTP <status>". Errors are *CheckError; the URL in them has no query or user info.
func (c HTTPCheck) Run(ctx context.Context, data spec.TemplateData) (observed string, err error) {
	name := c.name()
	fail := func(observed, expected string, err error) (string, error) {
		return observed, &CheckError{Check: name, Observed: observed, Expected: expected, Err: err}
	}
	if err := c.Validate(); err != nil {
		return fail("", "", fmt.Errorf("%w: %v", ErrPermanent, err))
	}
	raw, err := render("url", c.URL, data)
	if err != nil {
		return fail("", "", fmt.Errorf("%w: url: %v", ErrPermanent, err))
	}
	expect, err := render("expect", c.Expect, data)
	if err != nil {
		return fail("", "", fmt.Errorf("%w: expect: %v", ErrPermanent, err))
	}
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fail("", "", fmt.Errorf("%w: url must render to an absolute http:// or https:// URL", ErrPermanent))
	}
	status := c.ExpectStatus
	if status == 0 {
		status = http.StatusOK
	}
	expected := fmt.Sprintf("HTTP %d from GET %s", status, redactURL(u))
	switch {
	case c.JSONField != "" && expect != "":
		expected += fmt.Sprintf(" with %s = %q", c.JSONField, expect)
	case c.JSONField != "":
		expected += fmt.Sprintf(" with field %s present", c.JSONField)
	case expect != "":
		expected += fmt.Sprintf(" with body %q", expect)
	}

	timeout := c.Timeout.D()
	if timeout == 0 {
		timeout = DefaultHTTPTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fail("", expected, fmt.Errorf("%w: %v", ErrPermanent, err))
	}
	req.Header.Set("User-Agent", "shepherd-precheck")
	if c.JSONField != "" {
		req.Header.Set("Accept", "application/json")
	}
	for _, h := range slices.Sorted(maps.Keys(c.HeaderEnv)) { // sorted: the same error for the same config
		env := c.HeaderEnv[h]
		redact.Names(env) // a credential: masked wherever an answer echoes it
		v := os.Getenv(env)
		if v == "" {
			return fail("", expected, fmt.Errorf("%w: environment variable %s (headerEnv %s) is unset or empty on the worker",
				ErrPermanent, env, h))
		}
		req.Header.Set(h, v)
	}
	resp, err := safehttp.Client.Do(req) // no credentials follow a redirect to another host
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // *url.Error repeats the full URL, query included
		}
		if ctx.Err() == context.DeadlineExceeded {
			return fail(fmt.Sprintf("no answer within %v", timeout), expected, err)
		}
		return fail("no answer", expected, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return fail(fmt.Sprintf("HTTP %d with an unreadable body", resp.StatusCode), expected, err)
	}
	// What the server said becomes the observation, stored in history and the report: a server that
	// echoes the credential header must not put it there.
	body = []byte(redact.String(string(body)))
	if resp.StatusCode != status {
		obs := fmt.Sprintf("HTTP %d", resp.StatusCode)
		if s := clip(string(body), 120); s != "" {
			obs += fmt.Sprintf(" %q", s)
		}
		return fail(obs, expected, ErrUnmet)
	}
	if c.JSONField == "" {
		if expect == "" {
			return fmt.Sprintf("HTTP %d", resp.StatusCode), nil
		}
		got := strings.TrimSpace(string(body))
		if got != expect {
			return fail(fmt.Sprintf("body %q", clip(got, 200)), expected, ErrUnmet)
		}
		return got, nil
	}
	value, err := field(body, c.JSONField)
	if err != nil {
		return fail(err.Error(), expected, ErrUnmet)
	}
	if expect != "" && value != expect {
		return fail(fmt.Sprintf("%s = %q", c.JSONField, clip(value, 200)), expected, ErrUnmet)
	}
	return value, nil
}

// field finds a dot path in a JSON document and returns its value as text.
func field(body []byte, path string) (string, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return "", fmt.Errorf("a body that is not JSON (%q)", clip(string(body), 80))
	}
	walked := ""
	for _, seg := range strings.Split(path, ".") {
		where := "the document"
		if walked != "" {
			where = walked
		}
		switch cur := v.(type) {
		case map[string]any:
			next, ok := cur[seg]
			if !ok {
				return "", fmt.Errorf("no field %q in %s", seg, where)
			}
			v = next
		case []any:
			i, err := strconv.Atoi(seg)
			if err != nil || i < 0 || i >= len(cur) {
				return "", fmt.Errorf("no element %q in %s (an array of %d)", seg, where, len(cur))
			}
			v = cur[i]
		default:
			return "", fmt.Errorf("no field %q: %s is not an object", seg, where)
		}
		if walked != "" {
			walked += "."
		}
		walked += seg
	}
	switch x := v.(type) {
	case string:
		return x, nil
	case nil:
		return "null", nil
	default:
		b, _ := json.Marshal(x) // numbers as written, true/false, compact objects and arrays
		return string(b), nil
	}
}

// redact names an endpoint without user info or query, where tokens tend to live.
func redactURL(u *url.URL) string { return u.Scheme + "://" + u.Host + u.EscapedPath() }
