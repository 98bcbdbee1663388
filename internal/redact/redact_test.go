package redact

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestStringMasksTheWorkersSecrets(t *testing.T) {
	t.Setenv("TEMPORAL_API_KEY", "tmprl-key-123456")
	t.Setenv("GITHUB_TOKEN", "ghp_abcdefghijkl")
	t.Setenv("QA_HEADER", "Bearer qa-value-42")
	t.Setenv("SHORT_TOKEN", "abc") // too short to be a credential; masking it would mangle text
	t.Setenv("PLAIN", "not-a-secret-value")
	Names("QA_HEADER")
	Values("file-secret-999")
	got := String("k=tmprl-key-123456 g=ghp_abcdefghijkl h=Bearer qa-value-42 f=file-secret-999 abc not-a-secret-value")
	assert.Equal(t, "k=[redacted] g=[redacted] h=[redacted] f=[redacted] abc not-a-secret-value", got)
}

func TestTailRedactsBeforeCutting(t *testing.T) {
	t.Setenv("TEMPORAL_API_KEY", "tmprl-key-123456")
	s := strings.Repeat("é", 50) + "tmprl-key-123456"
	got := Tail(s, 20)
	assert.True(t, strings.HasPrefix(got, "…"))
	assert.True(t, strings.HasSuffix(got, Mask))
	assert.NotContains(t, got, "123456")
	assert.LessOrEqual(t, len(got), 20+len("…"))
}

func TestCommandEnvIsMinimal(t *testing.T) {
	t.Setenv("TEMPORAL_API_KEY", "tmprl-key-123456")
	t.Setenv("PATH", "/usr/bin:/bin")
	env := CommandEnv(map[string]string{"B": "2", "A": "1"}, []string{"SHEPHERD_VERSION=v2"})
	home := []string{}
	for _, kv := range env {
		if strings.HasPrefix(kv, "HOME=") {
			home = append(home, kv)
		}
	}
	want := append([]string{"PATH=/usr/bin:/bin"}, home...)
	want = append(want, "A=1", "B=2", "SHEPHERD_VERSION=v2")
	assert.Equal(t, want, env)
}
