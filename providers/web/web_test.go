package web_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shepherd-release/shepherd/providers"
	"github.com/shepherd-release/shepherd/providers/web"
	"github.com/shepherd-release/shepherd/spec"
)

var data = spec.TemplateData{Service: "checkout", Environment: "prod", Version: "v2", PreviousVersion: "v1", Percent: 10}

func newSource(t *testing.T, cfg web.Config) *web.Source {
	t.Helper()
	s, err := web.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestEvaluateReadsTheNumberAtThePath(t *testing.T) {
	t.Setenv("WEB_TEST_TOKEN", "tok-123")
	var gotQuery, gotAuth, gotStatic string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotQuery, gotAuth, gotStatic = r.URL.Query().Get("q"), r.Header.Get("Authorization"), r.Header.Get("X-Team")
		if r.URL.Query().Get("version") != "v2" {
			http.Error(w, "bad version", http.StatusBadRequest)
			return
		}
		fmt.Fprint(w, `{"data": {"results": [{"value": "0.0042"}, {"value": 7}]}}`)
	}))
	defer srv.Close()
	s := newSource(t, web.Config{
		URL:           srv.URL + "/api/value?service={{.Service}}&version={{.Version}}&q={{.Query}}",
		JSONPath:      "data.results[0].value",
		Headers:       map[string]string{"X-Team": "payments"},
		SecretHeaders: map[string]web.SecretHeader{"Authorization": {Secret: providers.Secret{Env: "WEB_TEST_TOKEN"}, Prefix: "Bearer "}},
	})
	v, shown, err := s.Evaluate(context.Background(), "error_rate{service={{.Service}}} & x=1", data)
	if err != nil {
		t.Fatal(err)
	}
	if v != 0.0042 {
		t.Errorf("value = %v, want 0.0042", v)
	}
	if gotQuery != "error_rate{service=checkout} & x=1" {
		t.Errorf("the query arrived as %q; it must arrive whole, as one parameter", gotQuery)
	}
	if gotAuth != "Bearer tok-123" || gotStatic != "payments" {
		t.Errorf("headers: Authorization %q, X-Team %q", gotAuth, gotStatic)
	}
	if strings.Contains(shown, "tok-123") || !strings.Contains(shown, srv.URL) {
		t.Errorf("shown URL %q", shown)
	}
}

// A version cannot add parameters or change the path: every value is query-escaped.
func TestValuesCannotInjectIntoTheURL(t *testing.T) {
	var raw string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw = r.URL.RawQuery
		fmt.Fprint(w, `1`)
	}))
	defer srv.Close()
	s := newSource(t, web.Config{URL: srv.URL + "/v?version={{.Version}}"})
	d := data
	d.Version = "v2&admin=true#x"
	if _, _, err := s.Evaluate(context.Background(), "q", d); err != nil {
		t.Fatal(err)
	}
	if raw != "version=v2%26admin%3Dtrue%23x" {
		t.Errorf("query = %q", raw)
	}
}

func TestNewRequiresALiteralHost(t *testing.T) {
	for _, u := range []string{
		"{{.Query}}",
		"https://{{.Service}}.internal/x",
		"https://slo.internal{{.Query}}",
		"ftp://slo.internal/x",
		"https://user:pw@slo.internal/x",
		"",
	} {
		if _, err := web.New(web.Config{URL: u}); err == nil || !errors.Is(err, providers.ErrPermanent) {
			t.Errorf("url %q accepted (%v)", u, err)
		}
	}
	if _, err := web.New(web.Config{URL: "https://slo.internal/x", JSONPath: "a[x]"}); err == nil {
		t.Error("a bad jsonPath must be rejected")
	}
	if _, err := web.New(web.Config{URL: "https://slo.internal/x", SecretHeaders: map[string]web.SecretHeader{"A": {}}}); err == nil {
		t.Error("a secret header without a source must be rejected")
	}
}

// A credential header never follows a redirect to another host: the redirect is refused.
func TestCrossHostRedirectCarriesNoCredentials(t *testing.T) {
	t.Setenv("WEB_TEST_TOKEN", "tok-secret")
	var leaked atomic.Value
	leaked.Store("")
	attacker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		leaked.Store(r.Header.Get("X-Api-Key") + r.Header.Get("Authorization"))
		fmt.Fprint(w, `0`)
	}))
	defer attacker.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/same" {
			http.Redirect(w, r, "/final", http.StatusFound)
			return
		}
		if r.URL.Path == "/final" {
			fmt.Fprint(w, `5`)
			return
		}
		http.Redirect(w, r, attacker.URL+"/steal", http.StatusFound)
	}))
	defer srv.Close()
	hdr := map[string]web.SecretHeader{
		"X-Api-Key":     {Secret: providers.Secret{Env: "WEB_TEST_TOKEN"}},
		"Authorization": {Secret: providers.Secret{Env: "WEB_TEST_TOKEN"}, Prefix: "Bearer "},
	}
	s := newSource(t, web.Config{URL: srv.URL + "/away", SecretHeaders: hdr})
	if _, _, err := s.Evaluate(context.Background(), "q", data); err == nil || !strings.Contains(err.Error(), "redirect") {
		t.Errorf("a cross-host redirect must fail, got %v", err)
	}
	if got := leaked.Load().(string); got != "" {
		t.Errorf("the other host received credentials %q", got)
	}
	s = newSource(t, web.Config{URL: srv.URL + "/same", SecretHeaders: hdr})
	if v, _, err := s.Evaluate(context.Background(), "q", data); err != nil || v != 5 {
		t.Errorf("a same-host redirect should be followed: %v, %v", v, err)
	}
}

func TestAnswersAreBoundedAndJudged(t *testing.T) {
	var body atomic.Value
	status := atomic.Int32{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s := status.Load(); s != 0 {
			w.WriteHeader(int(s))
		}
		fmt.Fprint(w, body.Load().(string))
	}))
	defer srv.Close()
	s := newSource(t, web.Config{URL: srv.URL + "/x", JSONPath: "value", MaxResponseBytes: 64})
	for _, tc := range []struct {
		status int32
		body   string
		want   string
	}{
		{0, `{"value": ` + strings.Repeat(" ", 100) + `1}`, "larger than 64 bytes"},
		{0, `{"other": 1}`, `no key "value"`},
		{0, `{"value": null}`, "null"},
		{0, `{"value": true}`, "a boolean"},
		{0, `{"value": "NaN"}`, "not a usable number"},
		{0, `not json`, "not JSON"},
		{503, `{"value": 1}`, "HTTP 503"},
	} {
		status.Store(tc.status)
		body.Store(tc.body)
		if _, _, err := s.Evaluate(context.Background(), "q", data); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("body %q status %d: error %v, want %q", tc.body, tc.status, err, tc.want)
		}
	}
}

func TestEvaluateTimesOut(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	s := newSource(t, web.Config{URL: srv.URL + "/slow", Timeout: spec.Duration(100 * time.Millisecond)})
	start := time.Now()
	_, _, err := s.Evaluate(context.Background(), "q", data)
	if err == nil || !strings.Contains(err.Error(), "timeout") {
		t.Errorf("error = %v", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("took %s", took)
	}
}

func TestDescribe(t *testing.T) {
	s := newSource(t, web.Config{URL: "https://slo.internal/api/v1/value?q={{.Query}}", JSONPath: "data.value", Timeout: spec.Duration(3 * time.Second)})
	d := s.Describe()
	if d.Type != "web" || d.StepTimeout != 3*time.Second || !strings.Contains(d.Summary, "https://slo.internal/api/v1/value") ||
		!strings.Contains(d.Summary, "data.value") {
		t.Errorf("Describe() = %+v", d)
	}
}
