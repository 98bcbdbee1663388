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
