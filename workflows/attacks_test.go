package workflows

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/shepherd-release/shepherd/providers/exec"
	"github.com/shepherd-release/shepherd/providers/prometheus"
	"github.com/shepherd-release/shepherd/record"
	"github.com/shepherd-release/shepherd/spec"
)

// Whoever can start a workflow in the namespace (the raw Temporal CLI will do) writes the spec. These
// tests send the specs an attacker would and check that the worker, configured by its operator, neither
// runs the attacker's commands nor sends its secrets to the attacker's address. Before named providers,
// the spec's exec target ran on every worker and analysis.prometheus.bearerTokenEnv chose which of the
// worker's variables went to the spec's address.

// attack makes h run raw as the workflow input, exactly as a raw Temporal CLI start sends it.
func (h *harness) attack(raw string) {
	h.t.Helper()
	require.NoError(h.t, json.Unmarshal([]byte(raw), &h.spec)) // for the workflow ID
	h.raw = json.RawMessage(raw)
}

func TestSpecCannotRunCommandsOnTheWorker(t *testing.T) {
	dir := t.TempDir()
	pwned := filepath.Join(dir, "pwned")
	// The worker has an exec target of its own: the operator's commands.
	h := newHarness(t, spec.Release{})
	h.acts.Targets["checkout-staging"] = must(exec.New(exec.Config{Deploy: "true", Traffic: "true", Promote: "true", Rollback: "true"}))
	h.attack(fmt.Sprintf(`{"service":"checkout","version":"v2",
		"target":{"type":"exec","exec":{"deploy":"touch %[1]s","traffic":"touch %[1]s","promote":"touch %[1]s","rollback":"touch %[1]s","health":"touch %[1]s"}},
		"stages":[{"percent":100,"soak":"1m"}],"analysis":{"disabled":true}}`, pwned))
	_, err := h.run()
	var appErr *temporal.ApplicationError
	require.ErrorAs(t, err, &appErr)
	assert.Equal(t, ErrTypeInvalidSpec, appErr.Type())
	assert.Contains(t, appErr.Message(), "target: a spec no longer describes its target")
	assert.Equal(t, record.PhaseFailed, h.status().Phase)
	_, statErr := os.Stat(pwned)
	assert.True(t, os.IsNotExist(statErr), "a command from the spec ran on the worker")
	assert.Empty(t, h.target.Calls())
}

func TestSpecCannotSendWorkerSecretsToItsAddress(t *testing.T) {
	t.Setenv("TEMPORAL_API_KEY", "worker-api-key")
	var mu sync.Mutex
	var leaked []string
	attacker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		leaked = append(leaked, r.Header.Get("Authorization"))
		mu.Unlock()
		fmt.Fprint(w, `{"status":"success","data":{"resultType":"scalar","result":[0,"0"]}}`)
	}))
	defer attacker.Close()
	// The worker has its own metrics source; the attacker gives an address of their own.
	for name, raw := range map[string]string{
		"address and credential in the spec": `{"service":"checkout","version":"v2","target":"checkout-prod",
			"stages":[{"percent":100,"soak":"1m"}],
			"analysis":{"prometheus":{"address":"` + attacker.URL + `","bearerTokenEnv":"TEMPORAL_API_KEY"}}}`,
		"a source name that is an address": `{"service":"checkout","version":"v2","target":"checkout-prod",
			"stages":[{"percent":100,"soak":"1m"}],"analysis":{"source":"` + attacker.URL + `"}}`,
	} {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, spec.Release{})
			h.attack(raw)
			h.acts.Metrics["prometheus"] = must(prometheus.New(prometheus.Config{Address: "http://127.0.0.1:1"}))
			_, err := h.run()
			var appErr *temporal.ApplicationError
			require.ErrorAs(t, err, &appErr)
			assert.Equal(t, ErrTypeInvalidSpec, appErr.Type())
			assert.Empty(t, h.target.Calls())
		})
	}
	mu.Lock()
	defer mu.Unlock()
	assert.Empty(t, leaked, "the attacker's address received requests")
}
