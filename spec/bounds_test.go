package spec

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func minimalRelease(t *testing.T) Release {
	t.Helper()
	r, err := Parse([]byte(minimal))
	require.NoError(t, err)
	return r
}

func TestDefaultReleaseFitsItsHistoryWithRoomToSpare(t *testing.T) {
	d := minimalRelease(t).WithDefaults()
	require.NoError(t, d.Validate())
	assert.Less(t, d.HistoryEstimate(), 300)
}

// A stage is watched by one activity however long it soaks: soak time and interval cost no history.
func TestSoakLengthAndIntervalCostNoHistory(t *testing.T) {
	r := minimalRelease(t)
	short := r.WithDefaults().HistoryEstimate()
	for i := range r.Stages {
		r.Stages[i].Soak = Duration(24 * time.Hour)
	}
	r.Analysis.Interval = Duration(time.Second)
	d := r.WithDefaults()
	require.NoError(t, d.Validate())
	assert.Equal(t, short, d.HistoryEstimate())

	r.Analysis.Interval = Duration(2 * time.Hour)
	assert.ErrorContains(t, r.WithDefaults().Validate(), "analysis.interval: must be at most 1h0m0s, got 2h0m0s")
}

// The largest plan the count bounds allow (every stage gated, every channel, every precheck, flags) still
// fits MaxHistoryEvents, so the count bounds alone keep every release's history safe.
func TestTheLargestPlanFitsOneHistory(t *testing.T) {
	r := minimalRelease(t)
	r.Stages = nil
	for p := 1; p <= MaxStages; p++ {
		r.Stages = append(r.Stages, Stage{Percent: p * 100 / MaxStages, Approval: true, ApprovalTimeout: Duration(time.Hour)})
	}
	for i := 0; i < MaxNotifications; i++ {
		r.Notifications = append(r.Notifications, fmt.Sprint("chat-", i))
	}
	for i := 0; i < MaxPrechecks; i++ {
		r.Prechecks = append(r.Prechecks, Precheck{Name: fmt.Sprint("check-", i), Check: "smoke"})
	}
	r.Flags = &Flags{Provider: "flagd", Names: []string{"new-checkout"}}
	d := r.WithDefaults()
	est := d.HistoryEstimate()
	t.Logf("largest plan: %d events estimated", est)
	assert.LessOrEqual(t, est, MaxHistoryEvents)
}

func TestCountsAndSizesAreBounded(t *testing.T) {
	r := minimalRelease(t)
	r.Stages = nil
	for p := 1; p <= MaxStages+1; p++ {
		r.Stages = append(r.Stages, Stage{Percent: p * 100 / (MaxStages + 1), Soak: Duration(time.Minute)})
	}
	r.Stages[len(r.Stages)-1].Percent = 100
	for i := 0; i <= MaxChecks; i++ {
		max := 1.0
		r.Analysis.Checks = append(r.Analysis.Checks, Check{Name: fmt.Sprint("c", i), Query: "up", Max: &max})
	}
	r.Analysis.Checks[0].Query = strings.Repeat("x", MaxQueryBytes+1)
	r.Analysis.Interval = Duration(500 * time.Millisecond)
	r.Stages[0].Soak = Duration(MaxSoak + time.Second)
	err := r.WithDefaults().Validate()
	require.Error(t, err)
	for _, want := range []string{
		"stages: 21 given; at most 20",
		"analysis.checks: 21 given; at most 20",
		"analysis.checks[0].query: is 4097 bytes; at most 4096",
		"analysis.interval: must be at least 1s, got 500ms",
		"stages[0].soak: must be at most 168h0m0s (7 days), got 168h0m1s",
	} {
		assert.Contains(t, err.Error(), want)
	}
}

// Keys are case-sensitive (Go's JSON decoding is not), and a misspelt key comes with what was meant.
func TestKeysAreExactWithASuggestion(t *testing.T) {
	for doc, want := range map[string]string{
		minimal + "previousversion: v1\n":                     `unknown key "previousversion": keys are case-sensitive; did you mean "previousVersion"?`,
		minimal + "stages: [{percent: 100, aproval: true}]\n": `unknown key "aproval" in stages[0]; did you mean "approval"?`,
		minimal + "analysis: {Interval: 10s}\n":               `unknown key "Interval" in analysis: keys are case-sensitive; did you mean "interval"?`,
		minimal + "frobnicate: yes\n":                         `unknown key "frobnicate" (see docs/spec.md`,
	} {
		_, err := Parse([]byte(doc))
		require.Error(t, err, doc)
		assert.Contains(t, err.Error(), want)
	}
	_, err := Parse([]byte(minimal + "previousVersion: v1\n"))
	assert.NoError(t, err)
}
