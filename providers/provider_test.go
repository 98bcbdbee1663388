package providers_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shepherd-release/shepherd/internal/redact"

	"github.com/shepherd-release/shepherd/providers"
)

func TestRegistryLookupListsWhatExists(t *testing.T) {
	r := providers.Registry[int]{"prod": 1, "staging": 2}
	if v, err := r.Lookup("target", "prod"); err != nil || v != 1 {
		t.Fatalf("Lookup(prod) = %v, %v", v, err)
	}
	_, err := r.Lookup("target", "qa")
	var u *providers.UnknownError
	if !errors.As(err, &u) {
		t.Fatalf("want *UnknownError, got %v", err)
	}
	if want := `this worker has no target named "qa": it has "prod", "staging"`; err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
	_, err = providers.Registry[int](nil).Lookup("metrics source", "x")
	if want := `this worker has no metrics source named "x": its configuration declares none`; err == nil || err.Error() != want {
		t.Errorf("empty registry: %v", err)
	}
}

func TestSecretRead(t *testing.T) {
	t.Setenv("SHEPHERD_TEST_SECRET", " s3cret\n")
	if v, err := (providers.Secret{Env: "SHEPHERD_TEST_SECRET"}).Read(); err != nil || v != "s3cret" {
		t.Fatalf("env: %q, %v", v, err)
	}
	f := filepath.Join(t.TempDir(), "tok")
	if err := os.WriteFile(f, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if v, err := (providers.Secret{File: f}).Read(); err != nil || v != "from-file" {
		t.Fatalf("file: %q, %v", v, err)
	}
	// Both are masked wherever output that reaches history echoes them.
	if got := redact.String("token s3cret and from-file"); strings.Contains(got, "s3cret") || strings.Contains(got, "from-file") {
		t.Errorf("secrets read are not redacted: %q", got)
	}
	if _, err := (providers.Secret{Env: "SHEPHERD_TEST_UNSET_SECRET"}).Read(); err == nil {
		t.Error("an unset variable must be an error")
	}
	if err := (providers.Secret{Env: "A", File: f}).Validate(); err == nil {
		t.Error("env and file together must be rejected")
	}
	if err := (providers.Secret{}).Validate(); err == nil {
		t.Error("no source must be rejected")
	}
	if _, err := (providers.Secret{File: filepath.Join(t.TempDir(), "missing")}).Read(); err == nil {
		t.Error("a missing file must be an error")
	}
}
