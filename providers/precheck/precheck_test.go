package precheck

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shepherd-release/shepherd/spec"
)

var data = spec.TemplateData{Service: "checkout", Environment: "production", Version: "1.4.0",
	PreviousVersion: "1.3.2", Percent: 0, Stage: 0, ReleaseID: "rel-42"}

// services is a loopback stand-in for an artifact store, a QA sign-off API and a dependency.
func services(t *testing.T) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /artifacts/checkout/1.4.0", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
	})
	mux.HandleFunc("GET /artifacts/", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "artifact not found", http.StatusNotFound)
	})
	mux.HandleFunc("GET /qa/checkout/1.4.0", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer qa-token" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		fmt.Fprint(w, `{"signoff": {"state": "approved", "by": "qa-lead", "version": "1.4.0",
			"score": 98.5, "blocking": false, "notes": null, "suites": [{"name": "e2e", "passed": 412}]}}`)
	})
	mux.HandleFunc("GET /qa/checkout/1.5.0", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"signoff": {"state": "pending"}}`)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "OK\n") })
	mux.HandleFunc("GET /created", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("GET /html", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "<html>maintenance</html>") })
	mux.HandleFunc("GET /slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(10 * time.Second):
		case <-r.Context().Done():
		}
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestHTTPCheckPasses(t *testing.T) {
	srv := services(t)
	t.Setenv("QA_TEST_AUTH", "Bearer qa-token")
	qa := func(field, expect string) HTTPCheck {
		return HTTPCheck{Name: "qa-signoff", URL: srv.URL + "/qa/{{.Service}}/{{.Version}}", JSONField: field,
			Expect: expect, HeaderEnv: map[string]string{"Authorization": "QA_TEST_AUTH"}}
	}
	for name, c := range map[string]struct {
		check HTTPCheck
		want  string
	}{
		"artifact exists":    {HTTPCheck{URL: srv.URL + "/artifacts/{{.Service}}/{{.Version}}"}, "HTTP 200"},
		"other status":       {HTTPCheck{URL: srv.URL + "/created", ExpectStatus: 204}, "HTTP 204"},
		"body":               {HTTPCheck{URL: srv.URL + "/healthz", Expect: "OK"}, "OK"},
		"string field":       {qa("signoff.state", "approved"), "approved"},
		"templated expect":   {qa("signoff.version", "{{.Version}}"), "1.4.0"},
		"number field":       {qa("signoff.score", "98.5"), "98.5"},
		"bool field":         {qa("signoff.blocking", "false"), "false"},
		"null field":         {qa("signoff.notes", "null"), "null"},
		"array index":        {qa("signoff.suites.0.passed", "412"), "412"},
		"field present only": {qa("signoff.by", ""), "qa-lead"},
		"object field":       {qa("signoff.suites.0", ""), `{"name":"e2e","passed":412}`},
	} {
		got, err := c.check.Run(context.Background(), data)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if got != c.want {
			t.Errorf("%s: observed %q, want %q", name, got, c.want)
		}
	}
}

func TestHTTPCheckUnmet(t *testing.T) {
	srv := services(t)
	t.Setenv("QA_TEST_AUTH", "Bearer qa-token")
	pending := data
	pending.Version = "1.5.0"
	base := srv.URL
	for name, c := range map[string]struct {
		check    HTTPCheck
		data     spec.TemplateData
		observed string
		message  string
	}{
		"missing artifact": {HTTPCheck{Name: "artifact", URL: base + "/artifacts/{{.Service}}/{{.Version}}"}, pending,
			`HTTP 404 "artifact not found"`,
			`pre-release check "artifact" failed: observed HTTP 404 "artifact not found"; expected HTTP 200 from GET ` + base + `/artifacts/checkout/1.5.0`},
		"pending sign-off": {HTTPCheck{Name: "qa-signoff", URL: base + "/qa/{{.Service}}/{{.Version}}", JSONField: "signoff.state", Expect: "approved"}, pending,
			`signoff.state = "pending"`,
			`pre-release check "qa-signoff" failed: observed signoff.state = "pending"; expected HTTP 200 from GET ` + base + `/qa/checkout/1.5.0 with signoff.state = "approved"`},
		"missing field": {HTTPCheck{Name: "qa-signoff", URL: base + "/qa/checkout/1.5.0", JSONField: "signoff.by"}, data,
			`no field "by" in signoff`,
			`pre-release check "qa-signoff" failed: observed no field "by" in signoff; expected HTTP 200 from GET ` + base + `/qa/checkout/1.5.0 with field signoff.by present`},
		"not json": {HTTPCheck{Name: "dep", URL: base + "/html", JSONField: "status", Expect: "up"}, data,
			`a body that is not JSON ("<html>maintenance</html>")`, ""},
		"wrong body": {HTTPCheck{Name: "dep", URL: base + "/healthz", Expect: "READY"}, data, `body "OK"`,
			`pre-release check "dep" failed: observed body "OK"; expected HTTP 200 from GET ` + base + `/healthz with body "READY"`},
		"unauthorized": {HTTPCheck{Name: "qa", URL: base + "/qa/checkout/1.4.0", JSONField: "signoff.state"}, data,
			`HTTP 401 "unauthorized"`, ""},
		"index out of range": {HTTPCheck{Name: "qa", URL: base + "/qa/checkout/1.4.0", JSONField: "signoff.suites.3.passed",
			HeaderEnv: map[string]string{"Authorization": "QA_TEST_AUTH"}}, data,
			`no element "3" in signoff.suites (an array of 1)`, ""},
	} {
		got, err := c.check.Run(context.Background(), c.data)
		var ce *CheckError
		if !errors.Is(err, ErrUnmet) || !errors.As(err, &ce) {
			t.Errorf("%s: err = %v, want a *CheckError wrapping ErrUnmet", name, err)
			continue
		}
		if got != c.observed || ce.Observed != c.observed {
			t.Errorf("%s: observed %q / %q, want %q", name, got, ce.Observed, c.observed)
		}
		if c.message != "" && err.Error() != c.message {
			t.Errorf("%s: message\n got: %s\nwant: %s", name, err, c.message)
		}
	}
}

func TestHTTPCheckRetryableAndPermanent(t *testing.T) {
	srv := services(t)
	start := time.Now()
	_, err := HTTPCheck{Name: "slow", URL: srv.URL + "/slow", Timeout: spec.Duration(100 * time.Millisecond)}.Run(context.Background(), data)
	if err == nil || errors.Is(err, ErrUnmet) || errors.Is(err, ErrPermanent) {
		t.Errorf("timeout: err = %v, want retryable", err)
	} else if !strings.Contains(err.Error(), "no answer within 100ms") {
		t.Errorf("timeout message: %v", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("timeout not honoured")
	}

	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	_, err = HTTPCheck{Name: "dep", URL: dead.URL + "/health?token=hush"}.Run(context.Background(), data)
	if err == nil || errors.Is(err, ErrUnmet) || errors.Is(err, ErrPermanent) {
		t.Errorf("refused: err = %v, want retryable", err)
	}
	if strings.Contains(err.Error(), "hush") {
		t.Errorf("error leaks the query: %v", err)
	}

	t.Setenv("QA_TEST_UNSET", "")
	for name, c := range map[string]HTTPCheck{
		"no url":         {Name: "x"},
		"bad template":   {URL: srv.URL + "/{{.Nope}}"},
		"relative url":   {URL: "/healthz"},
		"bad status":     {URL: srv.URL, ExpectStatus: 42},
		"empty segment":  {URL: srv.URL, JSONField: "a..b"},
		"unset auth env": {URL: srv.URL + "/healthz", HeaderEnv: map[string]string{"Authorization": "QA_TEST_UNSET"}},
	} {
		if _, err := c.Run(context.Background(), data); !errors.Is(err, ErrPermanent) {
			t.Errorf("%s: err = %v, want ErrPermanent", name, err)
		}
	}
}

func TestExecCheck(t *testing.T) {
	got, err := ExecCheck{Name: "env", Command: `test "$SHEPHERD_VERSION" = {{shq .Version}} && echo "$SHEPHERD_SERVICE/$SHEPHERD_RELEASE_ID"`}.Run(context.Background(), data)
	if err != nil || got != "checkout/rel-42" {
		t.Errorf("env check = %q, %v", got, err)
	}
	got, err = ExecCheck{Command: "true"}.Run(context.Background(), data)
	if err != nil || got != "exit status 0" {
		t.Errorf("silent check = %q, %v", got, err)
	}
	got, err = ExecCheck{Name: "capacity", Command: `echo 12`, Expect: "12"}.Run(context.Background(), data)
	if err != nil || got != "12" {
		t.Errorf("expect check = %q, %v", got, err)
	}
	dir := t.TempDir()
	got, err = ExecCheck{Command: "pwd", Dir: dir}.Run(context.Background(), data)
	if err != nil || got != dir {
		t.Errorf("dir check = %q, %v; want %s", got, err, dir)
	}
	quoted := data
	quoted.Version = "1.4.0'; echo pwned; '"
	got, err = ExecCheck{Command: `printf %s {{shq .Version}}`}.Run(context.Background(), quoted)
	if err != nil || got != quoted.Version {
		t.Errorf("shq = %q, %v", got, err)
	}
}

func TestExecCheckUnmet(t *testing.T) {
	for name, c := range map[string]struct {
		check    ExecCheck
		observed string
		message  string
	}{
		"exit status": {ExecCheck{Name: "capacity", Command: `echo checking >&2; echo "only 2 nodes free in {{.Environment}}, need 4" >&2; exit 3`},
			"exit status 3: only 2 nodes free in production, need 4",
			`pre-release check "capacity" failed: observed exit status 3: only 2 nodes free in production, need 4; expected exit status 0`},
		"stdout evidence": {ExecCheck{Name: "deps", Command: `echo "payments: DOWN"; exit 1`},
			"exit status 1: payments: DOWN", ""},
		"wrong output": {ExecCheck{Name: "replicas", Command: `echo 2`, Expect: "3"},
			`output "2"`,
			`pre-release check "replicas" failed: observed output "2"; expected exit status 0 with output "3"`},
	} {
		got, err := c.check.Run(context.Background(), data)
		if !errors.Is(err, ErrUnmet) {
			t.Errorf("%s: err = %v, want ErrUnmet", name, err)
			continue
		}
		if got != c.observed {
			t.Errorf("%s: observed %q, want %q", name, got, c.observed)
		}
		if c.message != "" && err.Error() != c.message {
			t.Errorf("%s: message\n got: %s\nwant: %s", name, err, c.message)
		}
	}
}

func TestExecCheckTimeoutKillsChildren(t *testing.T) {
	start := time.Now()
	// The background child keeps stdout open: without killing the group, Run would wait for it.
	_, err := ExecCheck{Name: "slow", Command: `(sleep 30; echo late) & sleep 30`, Timeout: spec.Duration(200 * time.Millisecond)}.Run(context.Background(), data)
	if err == nil || errors.Is(err, ErrUnmet) || errors.Is(err, ErrPermanent) {
		t.Fatalf("err = %v, want a retryable timeout", err)
	}
	if !strings.Contains(err.Error(), "no result within 200ms") {
		t.Errorf("message: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Run took %v after a 200ms timeout: children not killed", d)
	}
}

// A child that let go of the output is killed too: it would write "late" 1 s in, well after the timeout,
// and the test waits past that moment.
func TestExecCheckTimeoutKillsDetachedChildren(t *testing.T) {
	dir := t.TempDir()
	start := time.Now()
	_, err := ExecCheck{Name: "slow", Command: `(sleep 1; touch late) >/dev/null 2>&1 & sleep 30`, Dir: dir,
		Timeout: spec.Duration(200 * time.Millisecond)}.Run(context.Background(), data)
	if err == nil {
		t.Fatal("want a timeout")
	}
	time.Sleep(time.Until(start.Add(1500 * time.Millisecond)))
	if _, err := os.Stat(filepath.Join(dir, "late")); !os.IsNotExist(err) {
		t.Error("a child of the timed-out command survived it")
	}
}

func TestExecCheckPermanent(t *testing.T) {
	for name, c := range map[string]ExecCheck{
		"empty":        {},
		"bad template": {Command: "echo {{.Nope}}"},
		"parse":        {Command: "echo {{"},
		"missing dir":  {Command: "true", Dir: "/nonexistent/shepherd"},
	} {
		if _, err := c.Run(context.Background(), data); !errors.Is(err, ErrPermanent) {
			t.Errorf("%s: err = %v, want ErrPermanent", name, err)
		}
	}
}

func TestCheckUnion(t *testing.T) {
	srv := services(t)
	c := Check{HTTP: &HTTPCheck{URL: srv.URL + "/healthz"}}
	if got, err := c.Run(context.Background(), data); err != nil || got != "HTTP 200" {
		t.Errorf("http = %q, %v", got, err)
	}
	if n := c.Name(); n != strings.TrimPrefix(srv.URL, "http://")+"/healthz" {
		t.Errorf("default name = %q", n)
	}
	c = Check{Exec: &ExecCheck{Command: "echo ok"}}
	if got, err := c.Run(context.Background(), data); err != nil || got != "ok" {
		t.Errorf("exec = %q, %v", got, err)
	}
	for name, c := range map[string]Check{"neither": {}, "both": {HTTP: &HTTPCheck{URL: srv.URL}, Exec: &ExecCheck{Command: "true"}}} {
		if c.Validate() == nil {
			t.Errorf("%s: Validate passed", name)
		}
		if _, err := c.Run(context.Background(), data); !errors.Is(err, ErrPermanent) {
			t.Errorf("%s: err = %v, want ErrPermanent", name, err)
		}
	}
}
