package spec

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Errors about a key say where the key is, in YAML and in JSON alike, counted as editors count.
func TestParseErrorsSayWhere(t *testing.T) {
	cases := []struct{ name, doc, want string }{
		{"misspelt nested key", "service: checkout\nversion: v2\ntarget: t\nstages:\n  - {percent: 50, soak: 5s, aproval: true}\n",
			`line 5, column 29: unknown key "aproval" in stages[0]; did you mean "approval"?`},
		{"misspelt top-level key", "service: checkout\nversion: v2\ntarget: t\nanalyis: {}\n",
			`line 4, column 1: unknown key "analyis"; did you mean "analysis"?`},
		{"key in the wrong case", "service: checkout\nversion: v2\n  \ntarget: t\npreviousversion: v1\n",
			`line 5, column 1: unknown key "previousversion": keys are case-sensitive; did you mean "previousVersion"?`},
		{"wrong type, with its path", "service: checkout\nversion: v2\ntarget: t\nstages:\n  - percent: 50\n    soak: 5\n",
			`line 6, column 5: stages[0].soak: want a duration string such as "15m" or "30s", got 5`},
		{"JSON", "{\"service\": \"checkout\",\n \"version\": \"v2\",\n \"target\": \"t\", \"stagez\": []}",
			`line 3, column 17: unknown key "stagez"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.doc))
			require.Error(t, err)
			assert.Equal(t, tc.want, err.Error()[:len(tc.want)])
		})
	}
}

func TestLocate(t *testing.T) {
	doc := []byte("service: checkout\nstages:\n  - percent: 10\n  - percent: 100\n    soak: 1m\nanalysis:\n  checks:\n    - name: errors\n")
	for path, want := range map[string]Position{
		"service":                 {1, 1},
		"stages[1]":               {4, 5},
		"stages[1].soak":          {5, 5},
		"analysis.checks[0].name": {8, 7},
	} {
		got, ok := Locate(doc, path)
		assert.True(t, ok, path)
		assert.Equal(t, want, got, path)
	}
	for _, path := range []string{"version", "stages[2]", "stages[0].soak", "spec", ""} {
		_, ok := Locate(doc, path)
		assert.False(t, ok, path)
	}
}
