package activities

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shepherd-release/shepherd/providers/flags"
	"github.com/shepherd-release/shepherd/providers/notify"
	"github.com/shepherd-release/shepherd/providers/vcs"
	"github.com/shepherd-release/shepherd/spec"
)

// roundTrip converts a fully populated spec section to the provider's configuration and back: a field
// that one side lacks or names differently shows up as a difference.
func roundTrip[P any](t *testing.T, section any) {
	t.Helper()
	var provider P
	require.NoError(t, convert(section, &provider))
	want, err := json.Marshal(section)
	require.NoError(t, err)
	got, err := json.Marshal(provider)
	require.NoError(t, err)
	assert.JSONEq(t, string(want), string(got))
}

func TestSpecSectionsMatchProviderConfigs(t *testing.T) {
	roundTrip[notify.Config](t, spec.Notification{Type: "slack", URL: "u", URLEnv: "E",
		Templates: map[string]string{"started": "x"}, Events: []string{"started"}, Timeout: spec.Duration(5)})
	roundTrip[flags.Config](t, spec.FlagProvider{Type: "http", Path: "p", URL: "u", Method: "PUT", BodyTemplate: "b",
		Headers: map[string]string{"A": "b"}, HeaderEnv: map[string]string{"C": "D"}, Timeout: spec.Duration(7)})
	roundTrip[vcs.Config](t, spec.Tag{Repo: "r", Name: "n", Ref: "HEAD", Push: true, Remote: "origin", Timeout: spec.Duration(9)})
	http, err := precheckConfig(spec.Precheck{Name: "n", HTTP: &spec.HTTPPrecheck{URL: "u", ExpectStatus: 204, JSONField: "a.b",
		Expect: "x", HeaderEnv: map[string]string{"A": "B"}, Timeout: spec.Duration(3)}})
	require.NoError(t, err)
	assert.Equal(t, "n", http.HTTP.Name)
	assert.Equal(t, 204, http.HTTP.ExpectStatus)
	assert.Equal(t, "a.b", http.HTTP.JSONField)
	assert.Equal(t, map[string]string{"A": "B"}, http.HTTP.HeaderEnv)
	ex, err := precheckConfig(spec.Precheck{Name: "m", Exec: &spec.ExecPrecheck{Command: "c", Expect: "e", Dir: "/", Timeout: spec.Duration(4)}})
	require.NoError(t, err)
	assert.Equal(t, "m", ex.Exec.Name)
	assert.Equal(t, "/", ex.Exec.Dir)
	assert.Equal(t, spec.Duration(4), ex.Exec.Timeout)
}

func TestValidateSpecRunsProviderRules(t *testing.T) {
	r := spec.Release{Service: "a", Version: "1", Target: spec.Target{Type: "local"},
		Notifications: []spec.Notification{{Type: "slack"}},
		Tag:           &spec.Tag{},
	}.WithDefaults()
	err := ValidateSpec(r)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "notifications[0]: ")
	assert.Contains(t, err.Error(), "url or urlEnv is required")
	assert.Contains(t, err.Error(), "tag: ")
	r.Notifications[0].URLEnv = "SLACK_URL"
	r.Tag = nil
	assert.NoError(t, ValidateSpec(r))
}
