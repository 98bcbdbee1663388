package activities

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/shepherd-release/shepherd/providers"
	"github.com/shepherd-release/shepherd/spec"
)

type describedTarget struct {
	countingTarget
	timeout time.Duration
}

func (d *describedTarget) Describe() providers.Description {
	return providers.Description{Type: "test", StepTimeout: d.timeout}
}

type describedMetrics struct{ scripted }

func (describedMetrics) Describe() providers.Description {
	return providers.Description{Type: "test", StepTimeout: 3 * time.Second}
}

// A spec that names providers the worker lacks is rejected before anything changes, with every such
// name and what the worker has instead.
func TestPreflightRejectsUnknownNamesListingWhatExists(t *testing.T) {
	target := &describedTarget{countingTarget: countingTarget{calls: map[string]int{}}, timeout: time.Minute}
	a := &Activities{
		Targets: providers.Registry[providers.Target]{"checkout-prod": target, "checkout-staging": target},
		Metrics: providers.Registry[providers.Metrics]{"prometheus": describedMetrics{}},
	}
	e := env(t, a)
	r := spec.Release{Service: "checkout", Version: "v2", Target: "checkout-qa", Notifications: []string{"slack"},
		Analysis: spec.Analysis{Source: "thanos"}}.WithDefaults()
	in := PreflightInput{StepInput: StepInput{ReleaseID: "r", Step: "preflight", Target: r.Target}, Uses: r.Uses()}
	_, err := e.ExecuteActivity(a.Preflight, in)
	var appErr *temporal.ApplicationError
	require.ErrorAs(t, err, &appErr)
	assert.Equal(t, ErrTypeInvalidSpec, appErr.Type())
	assert.True(t, appErr.NonRetryable())
	for _, want := range []string{
		`target: this worker has no target named "checkout-qa": it has "checkout-prod", "checkout-staging"`,
		`analysis.source: this worker has no metrics source named "thanos": it has "prometheus"`,
		`notifications[0]: this worker has no notification channel named "slack": its configuration declares none`,
	} {
		assert.Contains(t, appErr.Error(), want)
	}
	assert.Empty(t, target.calls, "nothing ran")

	r.Target, r.Notifications, r.Analysis.Source = "checkout-prod", nil, "prometheus"
	in = PreflightInput{StepInput: StepInput{ReleaseID: "r", Step: "preflight", Target: r.Target}, Uses: r.Uses()}
	v, err := e.ExecuteActivity(a.Preflight, in)
	require.NoError(t, err)
	var res PreflightResult
	require.NoError(t, v.Get(&res))
	assert.Equal(t, time.Minute, res.StepTimeout, "the target's own bound reaches the workflow")
	assert.Equal(t, 3*time.Second, res.MetricsTimeout)
}

type flagRecorder struct {
	names   []string
	percent int
	err     error
}

func (f *flagRecorder) Set(_ context.Context, names []string, percent int, _ spec.TemplateData) error {
	f.names, f.percent = names, percent
	return f.err
}

type tagRecorder struct{ name string }

func (r *tagRecorder) Tag(_ context.Context, name string, _ spec.TemplateData, _ string) (bool, error) {
	r.name = name
	return true, nil
}

type checker struct {
	observed string
	err      error
}

func (c checker) Check(context.Context, spec.TemplateData) (string, error) { return c.observed, c.err }

func TestLifecycleActivitiesUseNamedProviders(t *testing.T) {
	fl := &flagRecorder{}
	tags := &tagRecorder{}
	a := &Activities{
		Flags:        providers.Registry[providers.Flags]{"flagd": fl},
		Repositories: providers.Registry[providers.Tagger]{"checkout": tags},
		Prechecks:    providers.Registry[providers.Checker]{"artifact": checker{observed: "HTTP 200"}},
		Metrics:      providers.Registry[providers.Metrics]{"prometheus": scripted{"cap@v2": {v: 0.2}}},
	}
	e := env(t, a)
	_, err := e.ExecuteActivity(a.SetFlags, FlagsInput{Flags: spec.Flags{Names: []string{"new"}, Provider: "flagd"}, Percent: 25})
	require.NoError(t, err)
	assert.Equal(t, []string{"new"}, fl.names)
	assert.Equal(t, 25, fl.percent)

	fl.err = errors.Join(errors.New("flag file corrupt"), providers.ErrPermanent)
	_, err = e.ExecuteActivity(a.SetFlags, FlagsInput{Flags: spec.Flags{Names: []string{"new"}, Provider: "flagd"}, Percent: 25})
	var appErr *temporal.ApplicationError
	require.ErrorAs(t, err, &appErr)
	assert.True(t, appErr.NonRetryable())

	_, err = e.ExecuteActivity(a.TagRelease, TagInput{Tag: spec.Tag{Repo: "checkout", Name: "rel/{{.Version}}"}})
	require.NoError(t, err)
	assert.Equal(t, "rel/{{.Version}}", tags.name)

	v, err := e.ExecuteActivity(a.Precheck, PrecheckInput{Check: spec.Precheck{Name: "a", Check: "artifact"}})
	require.NoError(t, err)
	var pr PrecheckResult
	require.NoError(t, v.Get(&pr))
	assert.Equal(t, "HTTP 200", pr.Observed)

	one := 0.3
	_, err = e.ExecuteActivity(a.Precheck, PrecheckInput{Data: spec.TemplateData{Version: "v2"},
		Check: spec.Precheck{Name: "capacity", Metric: &spec.MetricPrecheck{Source: "prometheus", Query: "cap", Min: &one}}})
	require.ErrorAs(t, err, &appErr)
	assert.Equal(t, ErrTypePrecheckFailed, appErr.Type())

	_, err = e.ExecuteActivity(a.Notify, NotifyInput{Channel: "slack", Kind: "started"})
	require.ErrorAs(t, err, &appErr)
	assert.Equal(t, ErrTypePermanent, appErr.Type())
	assert.Contains(t, appErr.Error(), `no notification channel named "slack"`)
}
