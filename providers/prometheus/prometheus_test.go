package prometheus_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shepherd-release/shepherd/providers"
	promprovider "github.com/shepherd-release/shepherd/providers/prometheus"
	"github.com/shepherd-release/shepherd/spec"
)

// request is what the fake Prometheus saw of one query.
type request struct {
	Method, Path, Query, Timeout, Authorization string
	User, Password                              string
	BasicOK                                     bool
}

// fakeProm is an httptest server speaking the /api/v1/query part of the Prometheus HTTP API.
type fakeProm struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []request
}

// newFakeProm serves each request with respond(n, w, r), n counting requests from 0.
func newFakeProm(t *testing.T, respond func(n int, w http.ResponseWriter, r *http.Request)) *fakeProm {
	t.Helper()
	f := &fakeProm{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		u, p, ok := r.BasicAuth()
		f.mu.Lock()
		n := len(f.reqs)
		f.reqs = append(f.reqs, request{Method: r.Method, Path: r.URL.Path, Query: r.Form.Get("query"),
			Timeout: r.Form.Get("timeout"), Authorization: r.Header.Get("Authorization"), User: u, Password: p,
			BasicOK: ok})
		f.mu.Unlock()
		respond(n, w, r)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeProm) requests() []request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]request(nil), f.reqs...)
}

// reply answers with a fixed status and body.
func reply(status int, body string) func(int, http.ResponseWriter, *http.Request) {
	return func(_ int, w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprint(w, body)
	}
}

func success(resultType, result string) func(int, http.ResponseWriter, *http.Request) {
	return reply(http.StatusOK, fmt.Sprintf(`{"status":"success","data":{"resultType":%q,"result":%s}}`,
		resultType, result))
}

var data = spec.TemplateData{Service: "checkout", Environment: "production", Version: "v2", PreviousVersion: "v1"}

func newProvider(t *testing.T, cfg promprovider.Config) interface {
	Evaluate(context.Context, string, spec.TemplateData) (float64, string, error)
} {
	t.Helper()
	m, err := promprovider.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return m
}

func TestEvaluateResults(t *testing.T) {
	tests := []struct {
		name    string
		respond func(int, http.ResponseWriter, *http.Request)
		want    float64
		wantErr error  // kind; nil means success
		msg     string // substring of the error
	}{
		{name: "scalar", respond: success("scalar", `[1700000000.5,"0.25"]`), want: 0.25},
		{name: "one-element vector", respond: success("vector",
			`[{"metric":{"service":"checkout"},"value":[1700000000,"0.0123"]}]`), want: 0.0123},
		{name: "zero is a value", respond: success("vector", `[{"metric":{},"value":[1700000000,"0"]}]`), want: 0},
		{name: "empty vector", respond: success("vector", `[]`), wantErr: promprovider.ErrNoData,
			msg: "query returned no series (is the service receiving traffic and being scraped"},
		{name: "NaN", respond: success("vector", `[{"metric":{},"value":[1700000000,"NaN"]}]`),
			wantErr: promprovider.ErrUnusableResult, msg: "NaN"},
		{name: "scalar NaN", respond: success("scalar", `[1700000000,"NaN"]`),
			wantErr: promprovider.ErrUnusableResult, msg: "NaN"},
		{name: "+Inf", respond: success("vector", `[{"metric":{},"value":[1700000000,"+Inf"]}]`),
			wantErr: promprovider.ErrUnusableResult, msg: "+Inf"},
		{name: "-Inf", respond: success("scalar", `[1700000000,"-Inf"]`),
			wantErr: promprovider.ErrUnusableResult, msg: "-Inf"},
		{name: "several series", respond: success("vector", `[
			{"metric":{"code":"200"},"value":[1700000000,"1"]},
			{"metric":{"code":"404"},"value":[1700000000,"2"]},
			{"metric":{"code":"500"},"value":[1700000000,"3"]}]`),
			wantErr: promprovider.ErrUnusableResult,
			msg:     `query returned 3 series ({code="200"}, {code="404"}, {code="500"}); aggregate it to one (e.g. sum(...))`},
		{name: "many series are abbreviated", respond: success("vector", `[
			{"metric":{"i":"1"},"value":[1,"1"]},{"metric":{"i":"2"},"value":[1,"1"]},
			{"metric":{"i":"3"},"value":[1,"1"]},{"metric":{"i":"4"},"value":[1,"1"]},
			{"metric":{"i":"5"},"value":[1,"1"]}]`),
			wantErr: promprovider.ErrUnusableResult, msg: "query returned 5 series ({i=\"1\"}, {i=\"2\"}, {i=\"3\"}, and 2 more)"},
		{name: "matrix", respond: success("matrix", `[{"metric":{"a":"b"},"values":[[1,"1"],[2,"2"]]}]`),
			wantErr: promprovider.ErrUnusableResult, msg: "range vector"},
		{name: "string", respond: success("string", `[1700000000,"hello"]`),
			// client_golang does not decode string results; they must still fail, never pass.
			wantErr: promprovider.ErrUnavailable, msg: `unexpected value type "string"`},
		{name: "bad_data", respond: reply(http.StatusBadRequest,
			`{"status":"error","errorType":"bad_data","error":"1:9: parse error: unexpected \"}\""}`),
			wantErr: promprovider.ErrRejected, msg: "parse error: unexpected"},
		{name: "execution error", respond: reply(http.StatusUnprocessableEntity,
			`{"status":"error","errorType":"execution","error":"many-to-many matching not allowed"}`),
			wantErr: promprovider.ErrRejected, msg: "many-to-many matching not allowed"},
		{name: "404", respond: reply(http.StatusNotFound, `404 page not found`),
			wantErr: promprovider.ErrRejected, msg: "HTTP 404"},
		{name: "401", respond: reply(http.StatusUnauthorized, `Unauthorized`),
			wantErr: promprovider.ErrCredentials, msg: "refused the credentials (HTTP 401"},
		{name: "500", respond: reply(http.StatusInternalServerError, `boom`),
			wantErr: promprovider.ErrUnavailable, msg: "answered HTTP 500 Internal Server Error: boom"},
		{name: "200 but not the API", respond: reply(http.StatusOK, `<html>hello</html>`),
			wantErr: promprovider.ErrUnavailable, msg: "not a usable query API response"},
		{name: "status error in a 200", respond: reply(http.StatusOK,
			`{"status":"error","errorType":"internal","error":"oops"}`),
			wantErr: promprovider.ErrUnavailable, msg: "oops"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newFakeProm(t, tt.respond)
			m := newProvider(t, promprovider.Config{Address: srv.URL})
			got, query, err := m.Evaluate(t.Context(), `up{service="{{.Service}}"}`, data)
			if query != `up{service="checkout"}` {
				t.Errorf("query = %q, want the rendered query even on error", query)
			}
			if tt.wantErr == nil {
				if err != nil || got != tt.want {
					t.Fatalf("Evaluate = %v, %v; want %v", got, err, tt.want)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Evaluate error = %v, want kind %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not say %q", err, tt.msg)
			}
		})
	}
}

func TestEvaluateSendsQuery(t *testing.T) {
	srv := newFakeProm(t, success("scalar", `[1,"1"]`))
	m := newProvider(t, promprovider.Config{Address: srv.URL + "/"})
	if _, _, err := m.Evaluate(t.Context(), "vector(1)", data); err != nil {
		t.Fatal(err)
	}
	reqs := srv.requests()
	if len(reqs) != 1 {
		t.Fatalf("server saw %d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if r.Path != "/api/v1/query" || r.Query != "vector(1)" {
		t.Errorf("request = %s %s query=%q, want /api/v1/query query=vector(1)", r.Method, r.Path, r.Query)
	}
	if r.Timeout != "10s" {
		t.Errorf("server-side timeout = %q, want the default 10s", r.Timeout)
	}
	if r.Authorization != "" {
		t.Errorf("Authorization = %q without credentials configured", r.Authorization)
	}
}

func TestEvaluateEscapesTemplateValues(t *testing.T) {
	srv := newFakeProm(t, success("vector", `[]`))
	m := newProvider(t, promprovider.Config{Address: srv.URL})
	evil := data
	evil.Version = `v1"} or vector(1) #`
	evil.Service = "a\\\"\nb"
	_, query, _ := m.Evaluate(t.Context(), spec.DefaultErrorRateQuery, evil)
	want := `sum(rate(http_requests_total{service="a\\\"\nb",version="v1\"} or vector(1) #",code=~"5.."}[1m]))` +
		` / sum(rate(http_requests_total{service="a\\\"\nb",version="v1\"} or vector(1) #"}[1m]))`
	reqs := srv.requests()
	if len(reqs) != 1 {
		t.Fatalf("server saw %d requests, want 1", len(reqs))
	}
	if reqs[0].Query != want {
		t.Errorf("server received query\n%s\nwant\n%s", reqs[0].Query, want)
	}
	if query != want {
		t.Errorf("Evaluate returned query %q, want %q", query, want)
	}
}

func TestEvaluateTemplateErrorsSendNothing(t *testing.T) {
	srv := newFakeProm(t, success("scalar", `[1,"1"]`))
	m := newProvider(t, promprovider.Config{Address: srv.URL})
	for _, tmpl := range []string{`up{x="{{.Missing}}"}`, `up{x="{{.Version"}`} {
		_, _, err := m.Evaluate(t.Context(), tmpl, data)
		if !errors.Is(err, promprovider.ErrTemplate) {
			t.Errorf("Evaluate(%q) error = %v, want ErrTemplate", tmpl, err)
		}
	}
	_, _, err := m.Evaluate(t.Context(), `up{x="{{.Missing}}"}`, data)
	if err == nil || !strings.Contains(err.Error(), "Missing") {
		t.Errorf("error = %v, want one naming the key Missing", err)
	}
	if n := len(srv.requests()); n != 0 {
		t.Errorf("server saw %d requests for templates that do not render", n)
	}
}

func TestEvaluateRetries(t *testing.T) {
	t.Run("5xx is retried", func(t *testing.T) {
		srv := newFakeProm(t, func(n int, w http.ResponseWriter, r *http.Request) {
			if n == 0 {
				reply(http.StatusServiceUnavailable, "starting")(n, w, r)
				return
			}
			success("scalar", `[1,"7"]`)(n, w, r)
		})
		m := newProvider(t, promprovider.Config{Address: srv.URL})
		v, _, err := m.Evaluate(t.Context(), "vector(7)", data)
		if err != nil || v != 7 {
			t.Fatalf("Evaluate = %v, %v; want 7 after one retry", v, err)
		}
		if n := len(srv.requests()); n != 2 {
			t.Errorf("server saw %d requests, want 2", n)
		}
	})
	t.Run("persistent 500 gives up", func(t *testing.T) {
		srv := newFakeProm(t, reply(http.StatusInternalServerError, "boom"))
		m := newProvider(t, promprovider.Config{Address: srv.URL})
		_, _, err := m.Evaluate(t.Context(), "vector(1)", data)
		if !errors.Is(err, promprovider.ErrUnavailable) {
			t.Fatalf("error = %v, want ErrUnavailable", err)
		}
		if n := len(srv.requests()); n != 3 {
			t.Errorf("server saw %d requests, want 3 (two retries)", n)
		}
	})
	for _, status := range []int{http.StatusBadRequest, http.StatusUnauthorized, http.StatusNotFound} {
		t.Run(fmt.Sprintf("%d is not retried", status), func(t *testing.T) {
			srv := newFakeProm(t, reply(status, `{"status":"error","errorType":"bad_data","error":"nope"}`))
			m := newProvider(t, promprovider.Config{Address: srv.URL})
			if _, _, err := m.Evaluate(t.Context(), "vector(1)", data); err == nil {
				t.Fatal("Evaluate succeeded")
			}
			if n := len(srv.requests()); n != 1 {
				t.Errorf("server saw %d requests, want 1", n)
			}
		})
	}
}

func TestEvaluateUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := srv.URL
	srv.Close() // nothing listens there any more
	m := newProvider(t, promprovider.Config{Address: addr})
	_, _, err := m.Evaluate(t.Context(), "vector(1)", data)
	if !errors.Is(err, promprovider.ErrUnavailable) {
		t.Fatalf("error = %v, want ErrUnavailable", err)
	}
	if !strings.Contains(err.Error(), "cannot reach Prometheus at "+addr) {
		t.Errorf("error %q does not name the address", err)
	}
}

func TestEvaluateTimeout(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	srv := newFakeProm(t, func(_ int, _ http.ResponseWriter, r *http.Request) {
		select { // hang until the client gives up
		case <-r.Context().Done():
		case <-release:
		}
	})
	m := newProvider(t, promprovider.Config{Address: srv.URL, Timeout: spec.Duration(200 * time.Millisecond)})
	start := time.Now()
	_, _, err := m.Evaluate(t.Context(), "vector(1)", data)
	elapsed := time.Since(start)
	if !errors.Is(err, promprovider.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error = %v, want ErrUnavailable wrapping context.DeadlineExceeded", err)
	}
	if !strings.Contains(err.Error(), "timed out after 200ms") {
		t.Errorf("error %q does not say it timed out after 200ms", err)
	}
	if elapsed > 2*time.Second {
		t.Errorf("Evaluate took %s with a 200ms timeout", elapsed)
	}
	if r := srv.requests(); len(r) == 0 || r[0].Timeout != "200ms" {
		t.Errorf("requests = %+v, want the server-side timeout 200ms", r)
	}
}

func TestEvaluateCanceled(t *testing.T) {
	srv := newFakeProm(t, success("scalar", `[1,"1"]`))
	m := newProvider(t, promprovider.Config{Address: srv.URL})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, _, err := m.Evaluate(ctx, "vector(1)", data)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error = %v, want context.Canceled", err)
	}
}

func TestCredentials(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	passFile := filepath.Join(dir, "password")
	if err := os.WriteFile(tokenFile, []byte("file-token-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(passFile, []byte("file-pass\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SHEPHERD_TEST_PROM_TOKEN", "env-token")
	t.Setenv("SHEPHERD_TEST_PROM_PASS", "env-pass")

	tests := []struct {
		name      string
		cfg       promprovider.Config
		wantAuth  string // exact Authorization header for bearer tokens
		wantBasic [2]string
	}{
		{name: "bearer from env", cfg: promprovider.Config{BearerTokenEnv: "SHEPHERD_TEST_PROM_TOKEN"},
			wantAuth: "Bearer env-token"},
		{name: "bearer from file", cfg: promprovider.Config{BearerTokenFile: tokenFile},
			wantAuth: "Bearer file-token-1"},
		{name: "basic from env", cfg: promprovider.Config{BasicAuthUser: "shepherd",
			BasicAuthPasswordEnv: "SHEPHERD_TEST_PROM_PASS"}, wantBasic: [2]string{"shepherd", "env-pass"}},
		{name: "basic from file", cfg: promprovider.Config{BasicAuthUser: "shepherd",
			BasicAuthPasswordFile: passFile}, wantBasic: [2]string{"shepherd", "file-pass"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newFakeProm(t, success("scalar", `[1,"1"]`))
			tt.cfg.Address = srv.URL
			m := newProvider(t, tt.cfg)
			if _, _, err := m.Evaluate(t.Context(), "vector(1)", data); err != nil {
				t.Fatal(err)
			}
			r := srv.requests()[0]
			if tt.wantAuth != "" && r.Authorization != tt.wantAuth {
				t.Errorf("Authorization = %q, want %q", r.Authorization, tt.wantAuth)
			}
			if tt.wantBasic[0] != "" && (!r.BasicOK || r.User != tt.wantBasic[0] || r.Password != tt.wantBasic[1]) {
				t.Errorf("basic auth = %q:%q (ok %v), want %q:%q", r.User, r.Password, r.BasicOK,
					tt.wantBasic[0], tt.wantBasic[1])
			}
		})
	}

	t.Run("token file is re-read on every query", func(t *testing.T) {
		srv := newFakeProm(t, success("scalar", `[1,"1"]`))
		file := filepath.Join(t.TempDir(), "token")
		if err := os.WriteFile(file, []byte("old"), 0o600); err != nil {
			t.Fatal(err)
		}
		m := newProvider(t, promprovider.Config{Address: srv.URL, BearerTokenFile: file})
		if err := os.WriteFile(file, []byte("rotated"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, _, err := m.Evaluate(t.Context(), "vector(1)", data); err != nil {
			t.Fatal(err)
		}
		if got := srv.requests()[0].Authorization; got != "Bearer rotated" {
			t.Errorf("Authorization = %q, want the rotated token", got)
		}
	})

	t.Run("refused credentials are not echoed", func(t *testing.T) {
		srv := newFakeProm(t, reply(http.StatusForbidden, "forbidden"))
		m := newProvider(t, promprovider.Config{Address: srv.URL, BearerTokenEnv: "SHEPHERD_TEST_PROM_TOKEN"})
		_, _, err := m.Evaluate(t.Context(), "vector(1)", data)
		if !errors.Is(err, promprovider.ErrCredentials) {
			t.Fatalf("error = %v, want ErrCredentials", err)
		}
		if strings.Contains(err.Error(), "env-token") {
			t.Errorf("error %q leaks the token", err)
		}
	})
}

func TestNewErrors(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SHEPHERD_TEST_PROM_EMPTY", "")
	t.Setenv("SHEPHERD_TEST_PROM_SECRET", "s3cret")
	os.Unsetenv("SHEPHERD_TEST_PROM_UNSET")
	tests := []struct {
		name string
		cfg  promprovider.Config
		kind error
		msg  string
	}{
		{name: "not a URL", cfg: promprovider.Config{Address: "localhost:9090"}, kind: promprovider.ErrConfig,
			msg: "must be an http:// or https:// URL"},
		{name: "credentials in the address", cfg: promprovider.Config{Address: "http://u:s3cret@prom:9090"},
			kind: promprovider.ErrConfig, msg: "must not contain credentials"},
		{name: "negative timeout", cfg: promprovider.Config{Timeout: -1}, kind: promprovider.ErrConfig,
			msg: "timeout"},
		{name: "unset token variable", cfg: promprovider.Config{BearerTokenEnv: "SHEPHERD_TEST_PROM_UNSET"},
			kind: promprovider.ErrCredentials, msg: "environment variable SHEPHERD_TEST_PROM_UNSET (bearerTokenEnv) is not set"},
		{name: "empty token variable", cfg: promprovider.Config{BearerTokenEnv: "SHEPHERD_TEST_PROM_EMPTY"},
			kind: promprovider.ErrCredentials, msg: "SHEPHERD_TEST_PROM_EMPTY (bearerTokenEnv) is empty"},
		{name: "missing token file", cfg: promprovider.Config{BearerTokenFile: filepath.Join(dir, "nope")},
			kind: promprovider.ErrCredentials, msg: filepath.Join(dir, "nope")},
		{name: "empty password file", cfg: promprovider.Config{BasicAuthUser: "u", BasicAuthPasswordFile: empty},
			kind: promprovider.ErrCredentials, msg: "basic-auth password file " + empty},
		{name: "password without user", cfg: promprovider.Config{BasicAuthPasswordEnv: "SHEPHERD_TEST_PROM_SECRET"},
			kind: promprovider.ErrCredentials, msg: "basicAuthUser is required"},
		{name: "user without password", cfg: promprovider.Config{BasicAuthUser: "u"},
			kind: promprovider.ErrCredentials, msg: "needs basicAuthPasswordEnv or basicAuthPasswordFile"},
		{name: "bearer and basic", cfg: promprovider.Config{BearerTokenEnv: "SHEPHERD_TEST_PROM_SECRET",
			BasicAuthUser: "u", BasicAuthPasswordEnv: "SHEPHERD_TEST_PROM_SECRET"},
			kind: promprovider.ErrCredentials, msg: "not both"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := promprovider.New(tt.cfg)
			if err == nil {
				err = m.(providers.SecretChecker).CheckSecrets()
			}
			if !errors.Is(err, tt.kind) {
				t.Fatalf("New error = %v, want kind %v", err, tt.kind)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not say %q", err, tt.msg)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error %q leaks a secret", err)
			}
		})
	}
}

func TestNewDefaultsAddress(t *testing.T) {
	if _, err := promprovider.New(promprovider.Config{}); err != nil {
		t.Fatalf("New with an empty config: %v", err)
	}
}

func TestGraphURLLinksTheQueryOverTheWindow(t *testing.T) {
	m := newProvider(t, promprovider.Config{Address: "http://prom.example:9090/"})
	g, ok := m.(providers.Grapher)
	if !ok {
		t.Fatal("the Prometheus source must link graphs")
	}
	from := time.Date(2026, 11, 30, 1, 0, 0, 0, time.UTC)
	u, err := url.Parse(g.GraphURL(`sum(rate(x{version="v2"}[1m]))`, from, from.Add(15*time.Minute)))
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	for _, c := range []struct{ got, want string }{
		{u.Host, "prom.example:9090"}, {u.Path, "/graph"},
		{q.Get("g0.expr"), `sum(rate(x{version="v2"}[1m]))`},
		{q.Get("g0.range_input"), "900s"},
		{q.Get("g0.end_input"), "2026-11-30 01:15:00"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
	if got := g.GraphURL("", from, from); got != "" {
		t.Errorf("no query should give no link, got %q", got)
	}
}
