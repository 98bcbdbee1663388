package spec

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Anything in a spec is stored in workflow history and the archived report, and is readable by whoever can
// read the namespace: validation refuses credentials written into it, naming the field.
func TestInlineCredentialsAreRejected(t *testing.T) {
	for _, c := range []struct {
		name  string
		edit  func(*Release)
		path  string
		where string // the suggested home of the credential
	}{
		{"prometheus user-info", func(r *Release) {
			r.Analysis.Prometheus = &Prometheus{Address: "https://admin:hunter2@prom.internal"}
		}, "analysis.prometheus.address", "basicAuthPasswordEnv"},
		{"prometheus token query", func(r *Release) {
			r.Analysis.Prometheus = &Prometheus{Address: "https://prom.internal/?access_token=abc"}
		}, "analysis.prometheus.address", "bearerTokenEnv"},
		{"slack webhook", func(r *Release) {
			r.Notifications = []Notification{{Type: "slack", URL: "https://hooks.slack.com/services/T0/B0/XXXXSECRET"}}
		}, "notifications[0].url", "urlEnv"},
		{"webhook token", func(r *Release) {
			r.Notifications = []Notification{{Type: "webhook", URL: "https://hooks.internal/release?token=abc123"}}
		}, "notifications[0].url", "urlEnv"},
		{"webhook user-info", func(r *Release) {
			r.Notifications = []Notification{{Type: "webhook", URL: "https://bot:pw@hooks.internal/release"}}
		}, "notifications[0].url", "urlEnv"},
		{"flag url user-info", func(r *Release) {
			r.Flags = &Flags{Names: []string{"f"}, Provider: FlagProvider{Type: "http", URL: "https://u:p@flags.internal/{{.Flag}}"}}
		}, "flags.provider.url", "headerEnv"},
		{"flag url key", func(r *Release) {
			r.Flags = &Flags{Names: []string{"f"}, Provider: FlagProvider{Type: "http", URL: "https://flags.internal/{{.Flag}}?api_key=abc"}}
		}, "flags.provider.url", "headerEnv"},
		{"flag authorization header", func(r *Release) {
			r.Flags = &Flags{Names: []string{"f"}, Provider: FlagProvider{Type: "http", URL: "https://flags.internal/{{.Flag}}",
				Headers: map[string]string{"Authorization": "Bearer abc"}}}
		}, "flags.provider.headers.Authorization", "headerEnv"},
		{"flag token header", func(r *Release) {
			r.Flags = &Flags{Names: []string{"f"}, Provider: FlagProvider{Type: "http", URL: "https://flags.internal/{{.Flag}}",
				Headers: map[string]string{"X-Flags-Token": "abc"}}}
		}, "flags.provider.headers.X-Flags-Token", "headerEnv"},
		{"flag cookie header", func(r *Release) {
			r.Flags = &Flags{Names: []string{"f"}, Provider: FlagProvider{Type: "http", URL: "https://flags.internal/{{.Flag}}",
				Headers: map[string]string{"cookie": "session=abc"}}}
		}, "flags.provider.headers.cookie", "headerEnv"},
		{"flag bearer value", func(r *Release) {
			r.Flags = &Flags{Names: []string{"f"}, Provider: FlagProvider{Type: "http", URL: "https://flags.internal/{{.Flag}}",
				Headers: map[string]string{"X-Auth": "Bearer abc"}}}
		}, "flags.provider.headers.X-Auth", "headerEnv"},
		{"precheck url user-info", func(r *Release) {
			r.Prechecks = []Precheck{{Name: "a", HTTP: &HTTPPrecheck{URL: "https://ci:tok@artifacts.internal/{{.Version}}"}}}
		}, "prechecks[0].http.url", "headerEnv"},
		{"precheck url secret", func(r *Release) {
			r.Prechecks = []Precheck{{Name: "a", HTTP: &HTTPPrecheck{URL: "https://artifacts.internal/{{.Version}}?X-Amz-Signature=abc&secret=x"}}}
		}, "prechecks[0].http.url", "headerEnv"},
		{"local controller user-info", func(r *Release) {
			r.Target = Target{Type: TargetLocal, Local: &LocalTarget{Controller: "http://a:b@127.0.0.1:9300"}}
		}, "target.local.controller", "worker"},
		{"tag remote user-info", func(r *Release) {
			r.Tag = &Tag{Repo: "/srv/git/x", Remote: "https://bot:ghp_abc@github.com/o/r.git", Push: true}
		}, "tag.remote", "credential helper"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, err := Parse([]byte(minimal))
			require.NoError(t, err)
			c.edit(&r)
			err = r.WithDefaults().Validate()
			require.Error(t, err)
			var verr *ValidationError
			require.ErrorAs(t, err, &verr)
			var found *FieldError
			for i := range verr.Problems {
				if verr.Problems[i].Path == c.path {
					found = &verr.Problems[i]
				}
			}
			require.NotNil(t, found, "no problem at %s in %v", c.path, err)
			assert.Contains(t, found.Message, "credential")
			assert.Contains(t, found.Message, c.where)
			for _, secret := range []string{"hunter2", "XXXXSECRET", "abc123", "ghp_abc"} {
				assert.False(t, strings.Contains(err.Error(), secret), "the error repeats the secret: %v", err)
			}
		})
	}
}

func TestCredentialFreeURLsAreAccepted(t *testing.T) {
	r, err := Parse([]byte(minimal))
	require.NoError(t, err)
	r.Analysis.Prometheus = &Prometheus{Address: "https://prom.internal:9090", BearerTokenEnv: "PROM_TOKEN"}
	r.Notifications = []Notification{{Type: "webhook", URL: "https://hooks.internal/release?channel=ops"}, {Type: "slack", URLEnv: "SLACK_URL"}}
	r.Flags = &Flags{Names: []string{"f"}, Provider: FlagProvider{Type: "http", URL: "https://flags.internal/{{.Flag}}?env={{.Environment}}",
		Headers: map[string]string{"Content-Language": "en", "X-Request-Source": "shepherd"}, HeaderEnv: map[string]string{"Authorization": "FLAGS_AUTH"}}}
	r.Prechecks = []Precheck{{Name: "a", HTTP: &HTTPPrecheck{URL: "https://artifacts.internal/{{.Version}}?keyword=x"}}}
	require.NoError(t, r.WithDefaults().Validate())
}

// The worker's own Temporal credentials are never a spec's to send: bearerTokenEnv: TEMPORAL_API_KEY with
// an address of the spec writer's choosing sent the worker's API key there.
func TestTheWorkersTemporalCredentialsCannotBeNamed(t *testing.T) {
	for path, edit := range map[string]func(*Release){
		"analysis.prometheus.bearerTokenEnv": func(r *Release) {
			r.Analysis.Prometheus = &Prometheus{Address: "https://evil.example", BearerTokenEnv: "TEMPORAL_API_KEY"}
		},
		"analysis.prometheus.basicAuthPasswordEnv": func(r *Release) {
			r.Analysis.Prometheus = &Prometheus{BasicAuthUser: "u", BasicAuthPasswordEnv: "TEMPORAL_TLS_CLIENT_KEY_DATA"}
		},
		"prechecks[0].http.headerEnv.Authorization": func(r *Release) {
			r.Prechecks = []Precheck{{Name: "a", HTTP: &HTTPPrecheck{URL: "https://evil.example",
				HeaderEnv: map[string]string{"Authorization": "TEMPORAL_API_KEY"}}}}
		},
		"flags.provider.headerEnv.X-Key": func(r *Release) {
			r.Flags = &Flags{Names: []string{"f"}, Provider: FlagProvider{Type: "http", URL: "https://evil.example/{{.Flag}}",
				HeaderEnv: map[string]string{"X-Key": "temporal_api_key"}}}
		},
		"notifications[0].urlEnv": func(r *Release) {
			r.Notifications = []Notification{{Type: "webhook", URLEnv: "TEMPORAL_API_KEY"}}
		},
	} {
		r, err := Parse([]byte(minimal))
		require.NoError(t, err)
		edit(&r)
		err = r.WithDefaults().Validate()
		require.Error(t, err, path)
		assert.Contains(t, err.Error(), path+": names the worker's own Temporal credential", path)
	}
}
