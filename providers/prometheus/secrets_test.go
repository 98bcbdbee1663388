package prometheus_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/shepherd-release/shepherd/spec"
)

// A Prometheus (or whatever answers at its address) that echoes the bearer token in an error body does
// not put it in the measurement's error, which is stored in history and the report.
func TestErrorsDoNotEchoCredentials(t *testing.T) {
	const token = "prom-secret-token-13579"
	t.Setenv("PROM_BEARER", token)
	prom := newFakeProm(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"status":"error","errorType":"unavailable","error":"token ` +
			strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ") + ` refused"}`))
	})
	m := newProvider(t, spec.Prometheus{Address: prom.URL, BearerTokenEnv: "PROM_BEARER"})
	_, _, err := m.Evaluate(context.Background(), "up", data)
	if err == nil {
		t.Fatal("want an error")
	}
	if strings.Contains(err.Error(), token) {
		t.Errorf("secret in %q", err)
	}
}
