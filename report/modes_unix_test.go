//go:build unix

package report

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// A report holds the spec, the decision log and the evidence: only the worker's user may read it.
func TestArchiveIsPrivate(t *testing.T) {
	old := syscall.Umask(0o022) // the usual umask, whatever the test runner's
	defer syscall.Umask(old)
	root := filepath.Join(t.TempDir(), "reports")
	paths, err := Archive(root, rolledBack(), specJSON(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{root, filepath.Join(root, "checkout"), filepath.Join(root, "checkout", "production")} {
		if fi, err := os.Stat(d); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: mode %v (%v), want 0700", d, fi.Mode().Perm(), err)
		}
	}
	for _, p := range paths {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v (%v), want 0600", p, fi.Mode().Perm(), err)
		}
	}
}

// Directories made by an older version (0755) are tightened on the next archive.
func TestArchiveTightensExistingDirectories(t *testing.T) {
	root := t.TempDir()
	env := filepath.Join(root, "checkout", "production")
	if err := os.MkdirAll(env, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(env, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Archive(root, rolledBack(), nil); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{filepath.Join(root, "checkout"), env} {
		if fi, _ := os.Stat(d); fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: mode %v, want 0700", d, fi.Mode().Perm())
		}
	}
}
