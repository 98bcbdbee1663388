// Package vcs marks a finished release in version control: an annotated git tag with the release notes,
// optionally pushed. It drives the `git` command, so it uses the worker's git configuration and
// credentials as they are. Tag is idempotent: calling it again after a crash finds the tag it made and
// finishes the push. Plain Go, no Temporal imports.
package vcs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"time"

	"github.com/shepherd-release/shepherd/internal/redact"
	"github.com/shepherd-release/shepherd/internal/safetmpl"
	"github.com/shepherd-release/shepherd/spec"
)

// Defaults for Config.
const (
	DefaultName    = "{{.Service}}/{{.Version}}"
	DefaultRef     = "HEAD"
	DefaultRemote  = "origin"
	DefaultTimeout = 2 * time.Minute
)

// Fallback tagger identity, used only when git has none configured (a bare worker image).
const (
	FallbackTaggerName  = "Shepherd"
	FallbackTaggerEmail = "shepherd@localhost"
)

// ErrPermanent marks an error that retrying will not fix: invalid configuration, an unknown ref, or a tag
// that already exists pointing at a different commit (locally or on the remote).
var ErrPermanent = errors.New("permanent VCS failure")

// Config says where and how to tag.
type Config struct {
	// Repo is the path of a local clone (or bare repository) on the worker.
	Repo string `json:"repo"`
	// Name is the tag name, a Go template over spec.TemplateData; default "{{.Service}}/{{.Version}}".
	Name string `json:"name,omitempty"`
	// Ref is the commit to tag (branch, tag, SHA; a Go template); default "HEAD".
	Ref string `json:"ref,omitempty"`
	// Push pushes the tag to Remote after creating it.
	Push bool `json:"push,omitempty"`
	// Remote is the remote name or URL to push to; default "origin".
	Remote string `json:"remote,omitempty"`
	// Timeout bounds the whole Tag call; default 2m.
	Timeout spec.Duration `json:"timeout,omitempty"`
}

// Validate checks the configuration without running git.
func (c Config) Validate() error {
	var problems []string
	if strings.TrimSpace(c.Repo) == "" {
		problems = append(problems, "repo is required (path of a local git repository on the worker)")
	}
	for _, t := range []struct{ name, text string }{{"name", c.Name}, {"ref", c.Ref}} {
		if _, err := parseTemplate(t.name, t.text); err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", t.name, err))
		}
	}
	if strings.HasPrefix(c.Remote, "-") {
		problems = append(problems, fmt.Sprintf("remote %q must not start with '-'", c.Remote))
	}
	if c.Timeout < 0 {
		problems = append(problems, "timeout must not be negative")
	}
	if len(problems) > 0 {
		return fmt.Errorf("invalid VCS config: %s", strings.Join(problems, "; "))
	}
	return nil
}

// Tag creates an annotated tag named by cfg.Name at cfg.Ref with notes as its message (a one-line summary
// when notes is empty), and pushes it when cfg.Push is set. created is false when the tag already existed
// at the same commit, which is success: Tag is safe to call again. A tag at another commit, here or on the
// remote, is an error wrapping ErrPermanent that names both commits; so are invalid names and unknown refs.
// Other errors (a failed push, a timeout) are worth retrying. With Push, the remote is checked before the
// local tag is made, so a conflict there leaves nothing behind; if the push itself fails, created still
// reports the local tag, and the retry (created=false) completes the push.
func Tag(ctx context.Context, cfg Config, data spec.TemplateData, notes string) (created bool, err error) {
	if err := cfg.Validate(); err != nil {
		return false, fmt.Errorf("%w: %v", ErrPermanent, err)
	}
	name, err := render("name", orDefault(cfg.Name, DefaultName), data)
	if err != nil {
		return false, fmt.Errorf("%w: tag name template: %v", ErrPermanent, err)
	}
	ref, err := render("ref", orDefault(cfg.Ref, DefaultRef), data)
	if err != nil {
		return false, fmt.Errorf("%w: ref template: %v", ErrPermanent, err)
	}
	remote := orDefault(cfg.Remote, DefaultRemote)
	timeout := cfg.Timeout.D()
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	g := gitRepo{dir: cfg.Repo}
	if _, err := exec.LookPath("git"); err != nil {
		return false, fmt.Errorf("%w: the git command is not installed on the worker (or not on PATH)", ErrPermanent)
	}
	if st, err := os.Stat(cfg.Repo); err != nil || !st.IsDir() {
		return false, fmt.Errorf("%w: repo %s is not a directory on the worker", ErrPermanent, cfg.Repo)
	}
	if _, err := g.run(ctx, "", "rev-parse", "--git-dir"); err != nil {
		return false, permanent(ctx, fmt.Errorf("repo %s is not a git repository: %w", cfg.Repo, err))
	}
	if _, err := g.run(ctx, "", "check-ref-format", "refs/tags/"+name); err != nil || strings.HasPrefix(name, "-") {
		return false, fmt.Errorf("%w: %q is not a valid git tag name (see git check-ref-format)", ErrPermanent, name)
	}
	commit, err := g.run(ctx, "", "rev-parse", "--verify", "--quiet", "--end-of-options", ref+"^{commit}")
	if err != nil {
		return false, permanent(ctx, fmt.Errorf("ref %q does not name a commit in %s", ref, cfg.Repo))
	}

	pushed := false
	if cfg.Push {
		if pushed, err = g.remoteState(ctx, remote, name, commit); err != nil {
			return false, err
		}
	}
	existing, err := g.tagCommit(ctx, name)
	if err != nil {
		return false, err
	}
	switch {
	case existing == commit:
	case existing != "":
		return false, fmt.Errorf("%w: tag %s already exists in %s at commit %s, not at %s (%s); "+
			"delete or rename one of them by hand", ErrPermanent, name, cfg.Repo, existing, commit, ref)
	default:
		err := g.createTag(ctx, name, commit, tagMessage(notes, data))
		if err == nil {
			created = true
			break
		}
		// Another caller may have created it meanwhile; that is success if it names the same commit.
		now, _ := g.tagCommit(ctx, name)
		if now == "" {
			return false, classify(ctx, fmt.Errorf("create tag %s in %s: %w", name, cfg.Repo, err))
		}
		if now != commit {
			return false, fmt.Errorf("%w: tag %s was just created in %s at commit %s, not at %s",
				ErrPermanent, name, cfg.Repo, now, commit)
		}
	}
	if cfg.Push && !pushed {
		if err := g.push(ctx, remote, name, commit); err != nil {
			return created, err
		}
	}
	return created, nil
}

func tagMessage(notes string, d spec.TemplateData) string {
	if strings.TrimSpace(notes) != "" {
		return notes
	}
	return fmt.Sprintf("Release %s %s to %s (release %s)", d.Service, d.Version, d.Environment, d.ReleaseID)
}

// gitRepo runs git in one repository.
type gitRepo struct{ dir string }

// tagCommit returns the commit a local tag points at, or "" when there is no such tag.
func (g gitRepo) tagCommit(ctx context.Context, name string) (string, error) {
	out, err := g.run(ctx, "", "for-each-ref", "--format=%(objectname) %(*objectname)", "refs/tags/"+name)
	if err != nil {
		return "", classify(ctx, fmt.Errorf("look up tag %s in %s: %w", name, g.dir, err))
	}
	fields := strings.Fields(out)
	switch len(fields) {
	case 0:
		return "", nil
	case 1: // lightweight tag: the object is the commit
		return fields[0], nil
	default: // annotated tag: the peeled object
		return fields[1], nil
	}
}

func (g gitRepo) createTag(ctx context.Context, name, commit, message string) error {
	var ident []string
	if _, err := g.run(ctx, "", "var", "GIT_COMMITTER_IDENT"); err != nil {
		ident = []string{"-c", "user.name=" + FallbackTaggerName, "-c", "user.email=" + FallbackTaggerEmail}
	}
	args := append(ident, "tag", "--annotate", "--cleanup=verbatim", "--file=-", "--", name, commit)
	_, err := g.run(ctx, message, args...)
	return err
}

// remoteState reports whether remote already has the tag at commit (done), and fails permanently when it
// has the tag at another commit. It runs before the local tag is made, so a conflict leaves nothing behind.
func (g gitRepo) remoteState(ctx context.Context, remote, name, commit string) (done bool, err error) {
	if !strings.ContainsAny(remote, ":/") { // a remote name, not a URL or path: it must be configured
		if _, err := g.run(ctx, "", "remote", "get-url", remote); err != nil {
			return false, permanent(ctx, fmt.Errorf("remote %q is not configured in %s (git remote add %s URL)",
				remote, g.dir, remote))
		}
	}
	theirs, err := g.remoteTagCommit(ctx, remote, name)
	switch {
	case err != nil:
		return false, classify(ctx, fmt.Errorf("read tags of remote %s: %w (will retry)", redactURLs(remote), err))
	case theirs == commit:
		return true, nil
	case theirs != "":
		return false, fmt.Errorf("%w: remote %s already has tag %s at commit %s, not at %s; resolve by hand",
			ErrPermanent, redactURLs(remote), name, theirs, commit)
	}
	return false, nil
}

// push publishes the tag; when the push fails it looks again, since a concurrent or earlier push may have
// put the same tag there.
func (g gitRepo) push(ctx context.Context, remote, name, commit string) error {
	ref := "refs/tags/" + name
	_, err := g.run(ctx, "", "push", "--quiet", "--", remote, ref+":"+ref)
	if err == nil {
		return nil
	}
	if done, cerr := g.remoteState(ctx, remote, name, commit); done {
		return nil
	} else if errors.Is(cerr, ErrPermanent) {
		return cerr
	}
	return classify(ctx, fmt.Errorf("push tag %s to %s: %w (will retry)", name, redactURLs(remote), err))
}

// remoteTagCommit returns the commit the remote's tag points at, or "" when it has no such tag.
func (g gitRepo) remoteTagCommit(ctx context.Context, remote, name string) (string, error) {
	ref := "refs/tags/" + name
	out, err := g.run(ctx, "", "ls-remote", "--tags", "--", remote, ref, ref+"^{}")
	if err != nil {
		return "", err
	}
	var direct, peeled string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		switch f[1] {
		case ref:
			direct = f[0]
		case ref + "^{}":
			peeled = f[0]
		}
	}
	if peeled != "" {
		return peeled, nil
	}
	return direct, nil
}

// gitError is a failed git command: its arguments, exit status and (redacted) stderr.
type gitError struct {
	args   []string
	err    error
	stderr string
}

func (e *gitError) Error() string {
	msg := "git " + strings.Join(e.args, " ") + ": " + e.err.Error()
	if e.stderr != "" {
		msg += ": " + e.stderr
	}
	return msg
}

func (e *gitError) Unwrap() error { return e.err }

// run runs git with stdin and returns its trimmed stdout. Git never prompts (no terminal) and speaks C
// locale, so failures are reported rather than hanging.
func (g gitRepo) run(ctx context.Context, stdin string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", append([]string{"-C", g.dir}, args...)...)
	cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "LC_ALL=C", "LANG=C")
	cmd.Stdin = strings.NewReader(stdin)
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", &gitError{args: redactArgs(args), err: err, stderr: lastLines(redact.String(redactURLs(stderr.String())), 3)}
	}
	return strings.TrimSpace(stdout.String()), nil
}

// classify turns a context timeout into a clear retryable error and leaves other errors as they are.
func classify(ctx context.Context, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ErrPermanent) {
		return fmt.Errorf("%v (%w)", err, ctxErr)
	}
	return err
}

// permanent marks a configuration error as permanent, unless the call ran out of time, in which case the
// failure says nothing about the configuration and is worth retrying.
func permanent(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return classify(ctx, err)
	}
	return fmt.Errorf("%w: %v", ErrPermanent, err)
}

// credentialsInURL matches the user-info part of URLs (https://user:token@host).
var credentialsInURL = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@`)

func redactURLs(s string) string { return credentialsInURL.ReplaceAllString(s, "${1}***@") }

func redactArgs(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = redactURLs(a)
	}
	return out
}

// lastLines keeps the last n non-blank lines of git's stderr, where its "fatal:" explanation is.
func lastLines(s string, n int) string {
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

func orDefault(v, def string) string {
	if strings.TrimSpace(v) == "" {
		return def
	}
	return v
}

func parseTemplate(name, text string) (*safetmpl.Template, error) {
	return safetmpl.Parse(name, text, nil)
}

func render(name, text string, d spec.TemplateData) (string, error) {
	t, err := parseTemplate(name, text)
	if err != nil {
		return "", err
	}
	out, err := t.Execute(d)
	return strings.TrimSpace(out), err
}
