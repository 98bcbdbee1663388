package precheck

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const workerKey = "tmprl-worker-api-key-0123456789"

func TestExecCheckGetsAMinimalEnvironment(t *testing.T) {
	t.Setenv("TEMPORAL_API_KEY", workerKey)
	c := ExecCheck{Name: "env", Command: `test -z "$TEMPORAL_API_KEY" && test -n "$SHEPHERD_VERSION" && test -n "$PATH"`}
	if _, err := c.Run(context.Background(), data); err != nil {
		t.Fatalf("the command saw the worker's environment (or lost PATH/SHEPHERD_*): %v", err)
	}
}

func TestExecCheckOutputIsRedacted(t *testing.T) {
	t.Setenv("TEMPORAL_API_KEY", workerKey)
	f := filepath.Join(t.TempDir(), "leak")
	if err := os.WriteFile(f, []byte(workerKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"cat " + f + " >&2; exit 1", "cat " + f, "cat " + f + "; exit 1"} {
		c := ExecCheck{Name: "leak", Command: cmd, Expect: "ok"}
		obs, err := c.Run(context.Background(), data)
		if err == nil {
			t.Fatalf("%s: want an error", cmd)
		}
		for _, s := range []string{obs, err.Error()} {
			if strings.Contains(s, workerKey) {
				t.Errorf("%s: secret in %q", cmd, s)
			}
		}
	}
}

// A server that echoes the credential header back (many do, in error pages) does not put it in the
// check's error.
func TestHTTPCheckErrorsDoNotEchoCredentials(t *testing.T) {
	const token = "Bearer qa-secret-token-987654"
	t.Setenv("QA_AUTH_HEADER", token)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "forbidden for "+r.Header.Get("Authorization"), http.StatusForbidden)
	}))
	defer srv.Close()
	c := HTTPCheck{Name: "qa", URL: srv.URL + "/qa", HeaderEnv: map[string]string{"Authorization": "QA_AUTH_HEADER"}}
	obs, err := c.Run(context.Background(), data)
	if err == nil {
		t.Fatal("want an error")
	}
	for _, s := range []string{obs, err.Error()} {
		if strings.Contains(s, "qa-secret-token-987654") {
			t.Errorf("secret in %q", s)
		}
	}
}
