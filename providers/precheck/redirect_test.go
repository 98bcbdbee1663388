package precheck

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// recorder is a second server, on another origin, that remembers the headers it was sent.
type recorder struct {
	*httptest.Server
	mu      sync.Mutex
	headers http.Header
}

func newRecorder(t *testing.T) *recorder {
	r := &recorder{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.headers = req.Header.Clone()
		r.mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(r.Close)
	return r
}

// A redirect to another host never carries the check's credential headers there.
func TestHTTPCheckRedirectDropsCredentials(t *testing.T) {
	other := newRecorder(t)
	// Same address, another host name: "localhost" instead of "127.0.0.1".
	otherURL := strings.Replace(other.URL, "127.0.0.1", "localhost", 1)
	first := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, otherURL+"/elsewhere", http.StatusFound)
	}))
	defer first.Close()
	t.Setenv("QA_AUTH_HEADER", "Bearer qa-secret-token-987654")
	t.Setenv("QA_KEY_HEADER", "qa-api-key-123456")
	c := HTTPCheck{Name: "qa", URL: first.URL + "/qa", HeaderEnv: map[string]string{
		"Authorization": "QA_AUTH_HEADER", "X-Api-Key": "QA_KEY_HEADER"}}
	if _, err := c.Run(context.Background(), data); err != nil {
		t.Fatal(err)
	}
	other.mu.Lock()
	defer other.mu.Unlock()
	if other.headers == nil {
		t.Fatal("the redirect was not followed")
	}
	for _, h := range []string{"Authorization", "X-Api-Key"} {
		if v := other.headers.Get(h); v != "" {
			t.Errorf("%s followed the redirect to another host: %q", h, v)
		}
	}
	if other.headers.Get("User-Agent") != "shepherd-precheck" {
		t.Errorf("User-Agent = %q; the harmless headers should follow", other.headers.Get("User-Agent"))
	}
}
