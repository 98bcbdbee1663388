package prometheus_test

import (
	"context"
	"net/http"
	"runtime"
	"strings"
	"testing"

	promprovider "github.com/shepherd-release/shepherd/providers/prometheus"
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
	m := newProvider(t, promprovider.Config{Address: prom.URL, BearerTokenEnv: "PROM_BEARER"})
	_, _, err := m.Evaluate(context.Background(), "up", data)
	if err == nil {
		t.Fatal("want an error")
	}
	if strings.Contains(err.Error(), token) {
		t.Errorf("secret in %q", err)
	}
}

// An endless answer (a misconfigured address, a hostile server) is cut at a bound, not read into memory.
func TestHugeResponseIsRefused(t *testing.T) {
	prom := newFakeProm(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"success","data":{"resultType":"vector","result":[`))
		item := []byte(strings.Repeat(`{"metric":{"a":"b"},"value":[1,"1"]},`, 1000))
		for i := 0; i < 2000; i++ { // about 70 MB
			if _, err := w.Write(item); err != nil {
				return
			}
		}
	})
	m := newProvider(t, promprovider.Config{Address: prom.URL})
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, _, err := m.Evaluate(context.Background(), "up", data)
	runtime.ReadMemStats(&after)
	if err == nil || !strings.Contains(err.Error(), "response body is larger than the limit") {
		t.Fatalf("want a too-large error, got %v", err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<20 {
		t.Errorf("allocated %d bytes", alloc)
	}
}
