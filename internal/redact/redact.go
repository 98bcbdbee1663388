// Package redact keeps the worker's secrets out of what Shepherd's commands see and out of the text
// that reaches workflow history, reports and notifications: command output and HTTP response bodies
// become error messages, and a command or a server may echo a secret back.
//
// A secret is the value of an environment variable the worker treats as secret: TEMPORAL_API_KEY and
// the other Temporal client credentials, any variable whose name says it is one (…TOKEN…, …SECRET…,
// …PASSWORD…, …API_KEY…, …CREDENTIAL…), and every variable a provider read a credential from (Names),
// plus values read from credential files (Values). Values are looked up when String runs, so a rotated
// secret is still redacted.
//
// It is a leaf package: the standard library only.
package redact

import (
	"os"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"
)

// Mask replaces a secret in redacted text.
const Mask = "[redacted]"

// minLen is the shortest value treated as a secret: shorter ones ("1", "true") would mask ordinary text,
// and are no credential anyway.
const minLen = 6

// alwaysSecret are the worker's own credentials (the Temporal client's environment configuration).
var alwaysSecret = []string{"TEMPORAL_API_KEY", "TEMPORAL_TLS_CLIENT_KEY_DATA", "TEMPORAL_TLS_CLIENT_KEY_PATH"}

// secretWords mark a variable name as a secret's.
var secretWords = []string{"TOKEN", "SECRET", "PASSWORD", "PASSWD", "API_KEY", "APIKEY", "CREDENTIAL", "PRIVATE_KEY"}

var (
	mu     sync.Mutex
	names  = map[string]bool{}
	values = map[string]bool{}
)

// Names records environment variables whose values are secrets: every variable a provider reads a
// credential from (bearerTokenEnv, headerEnv, urlEnv, …).
func Names(envNames ...string) {
	mu.Lock()
	defer mu.Unlock()
	for _, n := range envNames {
		if n != "" {
			names[n] = true
		}
	}
}

// Values records secret values that come from elsewhere than the environment (a token file).
func Values(vals ...string) {
	mu.Lock()
	defer mu.Unlock()
	for _, v := range vals {
		if v = strings.TrimSpace(v); len(v) >= minLen {
			values[v] = true
		}
	}
}

// IsSecretName reports whether the environment variable name is one whose value String masks.
func IsSecretName(name string) bool {
	if slices.Contains(alwaysSecret, name) {
		return true
	}
	upper := strings.ToUpper(name)
	for _, w := range secretWords {
		if strings.Contains(upper, w) {
			return true
		}
	}
	mu.Lock()
	defer mu.Unlock()
	return names[name]
}

// secrets returns the current secret values, longest first (so a secret containing another is masked
// whole).
func secrets() []string {
	var out []string
	for _, kv := range os.Environ() {
		name, v, ok := strings.Cut(kv, "=")
		if ok && len(strings.TrimSpace(v)) >= minLen && IsSecretName(name) {
			out = append(out, v)
			if t := strings.TrimSpace(v); t != v {
				out = append(out, t)
			}
		}
	}
	mu.Lock()
	for v := range values {
		out = append(out, v)
	}
	mu.Unlock()
	slices.SortFunc(out, func(a, b string) int { return len(b) - len(a) })
	return slices.Compact(out)
}

// String returns s with every secret value replaced by Mask.
func String(s string) string {
	for _, v := range secrets() {
		s = strings.ReplaceAll(s, v, Mask)
	}
	return s
}

// Tail returns the last n bytes of s (cut at a character boundary, marked with "…"), redacted. The cut
// comes after redaction, so a secret across the cut is not left half visible.
func Tail(s string, n int) string {
	s = String(s)
	if len(s) <= n {
		return s
	}
	cut := len(s) - n
	for cut < len(s) && !utf8.RuneStart(s[cut]) {
		cut++
	}
	return "…" + s[cut:]
}

// CommandEnv is the whole environment of a command Shepherd runs: PATH and HOME from the worker, the
// command's own declared variables, then the SHEPHERD_* variables of the step. Nothing else of the
// worker's environment (its Temporal API key, cloud credentials) reaches the command.
func CommandEnv(declared map[string]string, shepherd []string) []string {
	var env []string
	for _, k := range []string{"PATH", "HOME"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	keys := make([]string, 0, len(declared))
	for k := range declared {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		env = append(env, k+"="+declared[k])
	}
	return append(env, shepherd...)
}
