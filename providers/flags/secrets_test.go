package flags

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/shepherd-release/shepherd/spec"
)

// A flag service that echoes the credential header in its error page does not put it in the error.
func TestHTTPErrorsDoNotEchoCredentials(t *testing.T) {
	const token = "flags-secret-token-24680"
	t.Setenv("FLAGS_AUTH_HEADER", token)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "bad key "+r.Header.Get("X-Flags-Key"), http.StatusForbidden)
	}))
	defer srv.Close()
	cfg := Config{Type: TypeHTTP, URL: srv.URL + "/flags/{{.Flag}}", HeaderEnv: map[string]string{"X-Flags-Key": "FLAGS_AUTH_HEADER"}}
	err := Set(context.Background(), cfg, []string{"new-checkout"}, 10, spec.TemplateData{ReleaseID: "r1"})
	if err == nil {
		t.Fatal("want an error")
	}
	if strings.Contains(err.Error(), token) {
		t.Errorf("secret in %q", err)
	}
}

// A redirect to another host never carries the credential headers there.
func TestHTTPRedirectDropsCredentials(t *testing.T) {
	var got http.Header
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer other.Close()
	otherURL := strings.Replace(other.URL, "127.0.0.1", "localhost", 1)
	first := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, otherURL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	defer first.Close()
	t.Setenv("FLAGS_AUTH_HEADER", "flags-secret-token-24680")
	cfg := Config{Type: TypeHTTP, URL: first.URL + "/flags/{{.Flag}}", HeaderEnv: map[string]string{
		"X-Flags-Key": "FLAGS_AUTH_HEADER", "Authorization": "FLAGS_AUTH_HEADER"}}
	if err := Set(context.Background(), cfg, []string{"new-checkout"}, 10, spec.TemplateData{ReleaseID: "r1"}); err != nil {
		t.Fatal(err)
	}
	if got == nil {
		t.Fatal("the redirect was not followed")
	}
	for _, h := range []string{"Authorization", "X-Flags-Key"} {
		if v := got.Get(h); v != "" {
			t.Errorf("%s followed the redirect to another host: %q", h, v)
		}
	}
}
