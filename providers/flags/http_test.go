package flags

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

type flagReq struct {
	method, path, query string
	headers             http.Header
	body                string
}

type flagServer struct {
	*httptest.Server
	mu     sync.Mutex
	reqs   []flagReq
	status int
}

func newFlagServer(t *testing.T) *flagServer {
	s := &flagServer{status: http.StatusNoContent}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.reqs = append(s.reqs, flagReq{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Clone(), string(b)})
		status := s.status
		s.mu.Unlock()
		w.WriteHeader(status)
		if status >= 400 {
			_, _ = io.WriteString(w, `{"error":"flag is archived"}`)
		}
	}))
	t.Cleanup(s.Close)
	return s
}

func TestHTTPTemplatedRequests(t *testing.T) {
	srv := newFlagServer(t)
	t.Setenv("FLAGS_TEST_TOKEN", "Bearer s3cret")
	cfg := Config{
		Type:         TypeHTTP,
		URL:          srv.URL + "/api/projects/{{.Service}}/flags/{{.Flag}}",
		Method:       "patch",
		BodyTemplate: `{"key":{{json .Flag}},"rollout":{{.Percent}},"on":{{.Enabled}},"note":{{json (printf "%s %s stage %d" .Service .Version .Stage)}}}`,
		Headers:      map[string]string{"X-Release": "{{.ReleaseID}}"},
		HeaderEnv:    map[string]string{"Authorization": "FLAGS_TEST_TOKEN"},
	}
	if err := Set(context.Background(), cfg, []string{"new-checkout", "fast-cart"}, 25, data); err != nil {
		t.Fatal(err)
	}
	if len(srv.reqs) != 2 {
		t.Fatalf("got %d requests, want one per flag", len(srv.reqs))
	}
	for i, flag := range []string{"new-checkout", "fast-cart"} {
		r := srv.reqs[i]
		if r.method != http.MethodPatch || r.path != "/api/projects/checkout/flags/"+flag {
			t.Errorf("request %d: %s %s", i, r.method, r.path)
		}
		want := `{"key":"` + flag + `","rollout":25,"on":true,"note":"checkout 1.4.0 stage 2"}`
		if r.body != want {
			t.Errorf("body = %s, want %s", r.body, want)
		}
		for h, v := range map[string]string{
			"X-Release": "rel-42", "Authorization": "Bearer s3cret",
			"Idempotency-Key": "rel-42/flag/" + flag + "/25", "Content-Type": "application/json",
		} {
			if got := r.headers.Get(h); got != v {
				t.Errorf("%s = %q, want %q", h, got, v)
			}
		}
	}
}

func TestHTTPDefaultBodyAndMethod(t *testing.T) {
	srv := newFlagServer(t)
	cfg := Config{Type: TypeHTTP, URL: srv.URL + "/flags/{{.Flag}}"}
	if err := Set(context.Background(), cfg, []string{"f"}, 0, data); err != nil {
		t.Fatal(err)
	}
	r := srv.reqs[0]
	if r.method != http.MethodPut {
		t.Errorf("method = %s, want PUT", r.method)
	}
	var got FlagData
	if err := json.Unmarshal([]byte(r.body), &got); err != nil {
		t.Fatal(err)
	}
	want := FlagData{Flag: "f", Percent: 0, Enabled: false, Service: "checkout", Environment: "production",
		Version: "1.4.0", Stage: 2, ReleaseID: "rel-42"}
	if got != want {
		t.Errorf("body = %+v, want %+v", got, want)
	}
}

func TestHTTPErrors(t *testing.T) {
	srv := newFlagServer(t)
	cfg := Config{Type: TypeHTTP, URL: srv.URL + "/flags/{{.Flag}}?apikey=hush"}
	for _, c := range []struct {
		status    int
		permanent bool
	}{{400, true}, {404, true}, {409, true}, {429, false}, {500, false}, {503, false}} {
		srv.mu.Lock()
		srv.status = c.status
		srv.mu.Unlock()
		err := Set(context.Background(), cfg, []string{"f"}, 10, data)
		if err == nil || errors.Is(err, ErrPermanent) != c.permanent {
			t.Errorf("HTTP %d: err = %v, want permanent=%v", c.status, err, c.permanent)
			continue
		}
		if strings.Contains(err.Error(), "hush") || !strings.Contains(err.Error(), "/flags/f") {
			t.Errorf("HTTP %d: error should name the endpoint without the query: %v", c.status, err)
		}
	}

	t.Setenv("FLAGS_TEST_UNSET", "")
	err := Set(context.Background(), Config{Type: TypeHTTP, URL: srv.URL, HeaderEnv: map[string]string{"Authorization": "FLAGS_TEST_UNSET"}},
		[]string{"f"}, 10, data)
	if !errors.Is(err, ErrPermanent) || !strings.Contains(err.Error(), "FLAGS_TEST_UNSET") {
		t.Errorf("unset header env: %v", err)
	}

	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	err = Set(context.Background(), Config{Type: TypeHTTP, URL: dead.URL + "/x?apikey=hush"}, []string{"f"}, 10, data)
	if err == nil || errors.Is(err, ErrPermanent) || strings.Contains(err.Error(), "hush") {
		t.Errorf("transport error: %v, want retryable without the query", err)
	}
}
