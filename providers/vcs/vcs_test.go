package vcs

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shepherd-release/shepherd/spec"
)

var data = spec.TemplateData{Service: "checkout", Environment: "production", Version: "1.4.0",
	PreviousVersion: "1.3.2", ReleaseID: "rel-42"}

// isolateGit keeps the developer's and the system's git configuration out of the tests.
func isolateGit(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", home)
	t.Setenv("GIT_CONFIG_NOSYSTEM", "1")
	t.Setenv("GIT_CONFIG_GLOBAL", filepath.Join(home, "gitconfig"))
	for _, v := range []string{"GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL", "EMAIL", "GIT_DIR"} {
		t.Setenv(v, "")
		os.Unsetenv(v)
	}
}

func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// newRepo makes a repository with one commit; withIdentity configures a user in the repository.
func newRepo(t *testing.T, withIdentity bool) string {
	t.Helper()
	dir := t.TempDir()
	git(t, dir, "init", "--quiet", "--initial-branch=main")
	commit(t, dir, "first")
	if withIdentity {
		git(t, dir, "config", "user.name", "Release Bot")
		git(t, dir, "config", "user.email", "bot@example.com")
	}
	return dir
}

func commit(t *testing.T, dir, msg string) string {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "file.txt"), []byte(msg+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	git(t, dir, "add", "file.txt")
	git(t, dir, "-c", "user.name=Dev", "-c", "user.email=dev@example.com", "commit", "--quiet", "-m", msg)
	return git(t, dir, "rev-parse", "HEAD")
}

const notes = "checkout 1.4.0 released to production\n\n# Stages\n1 → 5 → 25 → 50 → 100 %, all checks passed.\n"

func TestTagCreatesAnnotatedTagIdempotently(t *testing.T) {
	isolateGit(t)
	repo := newRepo(t, true)
	head := git(t, repo, "rev-parse", "HEAD")
	cfg := Config{Repo: repo}

	created, err := Tag(context.Background(), cfg, data, notes)
	if err != nil || !created {
		t.Fatalf("Tag = %v, %v; want created", created, err)
	}
	if typ := git(t, repo, "cat-file", "-t", "refs/tags/checkout/1.4.0"); typ != "tag" {
		t.Errorf("tag object type = %s, want an annotated tag", typ)
	}
	if c := git(t, repo, "rev-parse", "checkout/1.4.0^{commit}"); c != head {
		t.Errorf("tag points at %s, want HEAD %s", c, head)
	}
	if msg := git(t, repo, "tag", "-l", "--format=%(contents)", "checkout/1.4.0"); msg != strings.TrimSpace(notes) {
		t.Errorf("tag message = %q, want the notes verbatim (comment lines kept)", msg)
	}
	if who := git(t, repo, "tag", "-l", "--format=%(taggername) %(taggeremail)", "checkout/1.4.0"); who != "Release Bot <bot@example.com>" {
		t.Errorf("tagger = %q, want the repository's identity", who)
	}

	created, err = Tag(context.Background(), cfg, data, "different notes do not matter")
	if err != nil || created {
		t.Errorf("second Tag = %v, %v; want created=false, nil", created, err)
	}
}

func TestTagAtAnotherCommitIsPermanent(t *testing.T) {
	isolateGit(t)
	repo := newRepo(t, true)
	first := git(t, repo, "rev-parse", "HEAD")
	if _, err := Tag(context.Background(), Config{Repo: repo}, data, notes); err != nil {
		t.Fatal(err)
	}
	second := commit(t, repo, "second")
	created, err := Tag(context.Background(), Config{Repo: repo}, data, notes)
	if created || !errors.Is(err, ErrPermanent) {
		t.Fatalf("Tag = %v, %v; want ErrPermanent", created, err)
	}
	for _, want := range []string{"checkout/1.4.0", first, second} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	// Pointing Ref at the tagged commit makes it a no-op again.
	created, err = Tag(context.Background(), Config{Repo: repo, Ref: first}, data, notes)
	if created || err != nil {
		t.Errorf("Tag at the tagged commit = %v, %v", created, err)
	}
}

func TestTagTemplatesAndFallbackIdentity(t *testing.T) {
	isolateGit(t)
	repo := newRepo(t, false)
	old := git(t, repo, "rev-parse", "HEAD")
	git(t, repo, "branch", "release-1.4.0")
	commit(t, repo, "unreleased work")
	cfg := Config{Repo: repo, Name: "{{.Environment}}/v{{.Version}}", Ref: "release-{{.Version}}"}
	created, err := Tag(context.Background(), cfg, data, "")
	if err != nil || !created {
		t.Fatalf("Tag = %v, %v", created, err)
	}
	if c := git(t, repo, "rev-parse", "production/v1.4.0^{commit}"); c != old {
		t.Errorf("tag at %s, want the release branch %s", c, old)
	}
	if who := git(t, repo, "tag", "-l", "--format=%(taggername) %(taggeremail)", "production/v1.4.0"); who != "Shepherd <shepherd@localhost>" {
		t.Errorf("tagger = %q, want the fallback identity", who)
	}
	if msg := git(t, repo, "tag", "-l", "--format=%(contents)", "production/v1.4.0"); msg != "Release checkout 1.4.0 to production (release rel-42)" {
		t.Errorf("default message = %q", msg)
	}
}

func TestTagPermanentErrors(t *testing.T) {
	isolateGit(t)
	repo := newRepo(t, true)
	notRepo := t.TempDir()
	for name, cfg := range map[string]Config{
		"no repo":        {},
		"missing dir":    {Repo: filepath.Join(notRepo, "nope")},
		"not a repo":     {Repo: notRepo},
		"bad name":       {Repo: repo, Name: "{{.Service}} {{.Version}}"},
		"dotdot name":    {Repo: repo, Name: "../{{.Version}}"},
		"unknown ref":    {Repo: repo, Ref: "no-such-branch"},
		"option ref":     {Repo: repo, Ref: "--all"},
		"bad template":   {Repo: repo, Name: "{{.Nope}}"},
		"unknown remote": {Repo: repo, Push: true, Remote: "upstream"},
	} {
		created, err := Tag(context.Background(), cfg, data, notes)
		if created || !errors.Is(err, ErrPermanent) {
			t.Errorf("%s: Tag = %v, %v; want ErrPermanent", name, created, err)
		}
	}
	if tags := git(t, repo, "tag", "-l"); tags != "" {
		t.Errorf("failed calls left tags: %q", tags)
	}
}

func TestTagPushToBareRemote(t *testing.T) {
	isolateGit(t)
	repo := newRepo(t, true)
	head := git(t, repo, "rev-parse", "HEAD")
	bare := filepath.Join(t.TempDir(), "origin.git")
	git(t, repo, "init", "--quiet", "--bare", bare)
	git(t, repo, "remote", "add", "origin", bare)
	cfg := Config{Repo: repo, Push: true}

	created, err := Tag(context.Background(), cfg, data, notes)
	if err != nil || !created {
		t.Fatalf("Tag = %v, %v", created, err)
	}
	if c := git(t, bare, "rev-parse", "checkout/1.4.0^{commit}"); c != head {
		t.Errorf("remote tag at %s, want %s", c, head)
	}
	if typ := git(t, bare, "cat-file", "-t", "refs/tags/checkout/1.4.0"); typ != "tag" {
		t.Errorf("remote tag type %s, want annotated", typ)
	}
	created, err = Tag(context.Background(), cfg, data, notes)
	if err != nil || created {
		t.Errorf("repeat Tag = %v, %v; want false, nil", created, err)
	}
}

// TestTagPushResumesAfterFailure: the tag was made but the push did not happen (a crash, or the remote
// was unreachable); the retry finds the local tag and completes the push.
func TestTagPushResumesAfterFailure(t *testing.T) {
	isolateGit(t)
	repo := newRepo(t, true)
	bare := filepath.Join(t.TempDir(), "origin.git")
	git(t, repo, "remote", "add", "origin", bare) // not created yet: unreachable
	if created, err := Tag(context.Background(), Config{Repo: repo}, data, notes); err != nil || !created {
		t.Fatalf("local Tag = %v, %v", created, err)
	}
	cfg := Config{Repo: repo, Push: true}
	_, err := Tag(context.Background(), cfg, data, notes)
	if err == nil || errors.Is(err, ErrPermanent) {
		t.Fatalf("push to a missing remote: err = %v, want a retryable error", err)
	}
	git(t, repo, "init", "--quiet", "--bare", bare)
	created, err := Tag(context.Background(), cfg, data, notes)
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	if created {
		t.Errorf("retry created the tag again")
	}
	if c := git(t, bare, "rev-parse", "checkout/1.4.0^{commit}"); c != git(t, repo, "rev-parse", "HEAD") {
		t.Errorf("remote tag at %s", c)
	}
}

func TestTagRemoteConflictLeavesNoLocalTag(t *testing.T) {
	isolateGit(t)
	repo := newRepo(t, true)
	bare := filepath.Join(t.TempDir(), "origin.git")
	git(t, repo, "init", "--quiet", "--bare", bare)
	git(t, repo, "remote", "add", "origin", bare)
	git(t, repo, "push", "--quiet", "origin", "HEAD:refs/heads/main")
	first := git(t, repo, "rev-parse", "HEAD")
	git(t, repo, "tag", "-a", "-m", "someone else", "checkout/1.4.0")
	git(t, repo, "push", "--quiet", "origin", "refs/tags/checkout/1.4.0")
	git(t, repo, "tag", "-d", "checkout/1.4.0")
	second := commit(t, repo, "second")

	created, err := Tag(context.Background(), Config{Repo: repo, Push: true}, data, notes)
	if created || !errors.Is(err, ErrPermanent) {
		t.Fatalf("Tag = %v, %v; want ErrPermanent", created, err)
	}
	for _, want := range []string{first, second, "remote"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	if tags := git(t, repo, "tag", "-l"); tags != "" {
		t.Errorf("a local tag was left behind: %q", tags)
	}
}

func TestTagErrorsHideCredentials(t *testing.T) {
	isolateGit(t)
	repo := newRepo(t, true)
	cfg := Config{Repo: repo, Push: true, Remote: "http://deploy:hunter2@127.0.0.1:1/repo.git"}
	_, err := Tag(context.Background(), cfg, data, notes)
	if err == nil || errors.Is(err, ErrPermanent) {
		t.Fatalf("unreachable remote: err = %v, want a retryable error", err)
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error leaks the remote's password: %v", err)
	}
	if !strings.Contains(err.Error(), "http://***@127.0.0.1:1") {
		t.Errorf("error should name the remote, redacted: %v", err)
	}
}
