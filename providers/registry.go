package providers

import (
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/shepherd-release/shepherd/internal/redact"
)

// Registry holds the providers of one kind a worker has, by the name the operator gave each in the worker
// configuration. A release spec names them; a name the worker lacks is an *UnknownError listing what it
// has.
type Registry[T any] map[string]T

// Names lists the registered names in order.
func (r Registry[T]) Names() []string {
	names := make([]string, 0, len(r))
	for n := range r {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Lookup returns the provider named name, or an *UnknownError naming kind (e.g. "target") and listing
// what exists.
func (r Registry[T]) Lookup(kind, name string) (T, error) {
	p, ok := r[name]
	if !ok {
		var zero T
		return zero, &UnknownError{Kind: kind, Name: name, Have: r.Names()}
	}
	return p, nil
}

// UnknownError says a spec named a provider the worker does not have, and which ones it has.
type UnknownError struct {
	// Kind is what was looked up: "target", "metrics source", "notification channel", ...
	Kind string `json:"kind"`
	// Name is the name the spec gave.
	Name string `json:"name"`
	// Have lists the names this worker's configuration declares, in order.
	Have []string `json:"have"`
}

func (e *UnknownError) Error() string {
	if len(e.Have) == 0 {
		return fmt.Sprintf("this worker has no %s named %q: its configuration declares none", e.Kind, e.Name)
	}
	return fmt.Sprintf("this worker has no %s named %q: it has %s", e.Kind, e.Name, quoteList(e.Have))
}

func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	return strings.Join(q, ", ")
}

// Secret references a credential the worker reads when it uses it: an environment variable of the worker
// or a file on the worker. Secrets appear only in the worker configuration, which platform operators own;
// a release spec cannot name one, so a spec cannot choose which of the worker's secrets goes where.
type Secret struct {
	// Env names an environment variable of the worker holding the secret.
	Env string `json:"env,omitempty"`
	// File is a file on the worker holding the secret (surrounding white space is trimmed).
	File string `json:"file,omitempty"`
}

// IsZero reports whether no source is given.
func (s Secret) IsZero() bool { return s.Env == "" && s.File == "" }

// Validate checks that exactly one source is given; it reads nothing.
func (s Secret) Validate() error {
	switch {
	case s.Env != "" && s.File != "":
		return fmt.Errorf("give env or file, not both")
	case s.IsZero():
		return fmt.Errorf("give env (an environment variable of the worker) or file (a file on the worker)")
	}
	return nil
}

// Read returns the secret, read afresh (so a rotated file is picked up), and registers it with
// internal/redact, so it is masked wherever command output or an answer echoes it. Errors name the
// variable or the file, never the content.
func (s Secret) Read() (string, error) {
	if err := s.Validate(); err != nil {
		return "", err
	}
	if s.Env != "" {
		redact.Names(s.Env)
		v, ok := os.LookupEnv(s.Env)
		if !ok || strings.TrimSpace(v) == "" {
			return "", fmt.Errorf("environment variable %s is not set (or empty) in the worker's environment", s.Env)
		}
		return strings.TrimSpace(v), nil
	}
	b, err := os.ReadFile(s.File)
	if err != nil {
		return "", fmt.Errorf("reading secret file: %w", err)
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return "", fmt.Errorf("secret file %s is empty", s.File)
	}
	redact.Values(v)
	return v, nil
}

// String names the source, never the value: "env PROM_TOKEN" or "file /run/secrets/token".
func (s Secret) String() string {
	switch {
	case s.Env != "":
		return "env " + s.Env
	case s.File != "":
		return "file " + s.File
	}
	return "none"
}
