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
	assert.Equal(t, 150, d.AnalysisRounds())
	assert.Less(t, d.HistoryEstimate(), 2500)
}

func TestLongSoaksNeedALongerInterval(t *testing.T) {
	r := minimalRelease(t)
	r.Stages = []Stage{{Percent: 10, Soak: Duration(24 * time.Hour)}, {Percent: 100, Soak: Duration(time.Hour)}}
	r.Analysis.Interval = Duration(10 * time.Second)
	err := r.WithDefaults().Validate()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "stages: this plan needs about 9")
	assert.Contains(t, err.Error(), "(9000 analysis rounds at 10s); at most 8000 fit a release safely")
	assert.Contains(t, err.Error(), "a 24h soak needs an interval of at least 2m6s")

	r.Analysis.Interval = Duration(2*time.Minute + 10*time.Second)
	d := r.WithDefaults()
	require.NoError(t, d.Validate())
	assert.LessOrEqual(t, d.HistoryEstimate(), MaxHistoryEvents)
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
	err := r.WithDefaults().Validate()
	require.Error(t, err)
	for _, want := range []string{
		"stages: 21 given; at most 20",
		"analysis.checks: 21 given; at most 20",
		"analysis.checks[0].query: is 4097 bytes; at most 4096",
		"analysis.interval: must be at least 1s, got 500ms",
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
