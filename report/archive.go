package report

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/shepherd-release/shepherd/record"
)

// File name suffixes of an archived release.
const (
	JSONSuffix       = ".json"
	MarkdownSuffix   = ".md"
	PostMortemSuffix = ".postmortem.md"
)

// ErrNotFound is returned by Find and Load when no archived report matches.
var ErrNotFound = errors.New("no archived release report")

// ErrAmbiguous is returned by Find and Load when several reports of different releases match.
var ErrAmbiguous = errors.New("several archived release reports match")

// Archive writes the release's reports under dir as <service>/<environment>/<release>.json and .md, plus
// <release>.postmortem.md when NeedsPostMortem, and returns the paths written. Each file is replaced
// atomically, and the JSON (what Find reads) is written last, so a crash never leaves a report that Find
// sees but cannot show. Archiving the same release again rewrites identical bytes.
func Archive(dir string, res record.Result, spec []byte) (paths []string, err error) {
	if strings.TrimSpace(res.ReleaseID) == "" {
		return nil, errors.New("archive release report: the result has no release ID")
	}
	jsonBytes, md, err := Render(res, spec)
	if err != nil {
		return nil, fmt.Errorf("archive release report of %s: %w", res.ReleaseID, err)
	}
	base := basePath(dir, res)
	// Reports hold the spec, the decision log and the evidence: private to the worker's user. The service
	// and environment directories are the archive's own, so they are tightened even when an older version
	// made them world-readable; dir itself is only created so, since an operator may have chosen its mode.
	envDir := filepath.Dir(base)
	if err := os.MkdirAll(envDir, 0o700); err != nil {
		return nil, fmt.Errorf("archive release report of %s: %w", res.ReleaseID, err)
	}
	for _, d := range []string{filepath.Dir(envDir), envDir} {
		if err := os.Chmod(d, 0o700); err != nil {
			return nil, fmt.Errorf("archive release report of %s: %w", res.ReleaseID, err)
		}
	}
	type file struct {
		path string
		data []byte
	}
	files := []file{{base + MarkdownSuffix, md}}
	if NeedsPostMortem(res) {
		files = append(files, file{base + PostMortemSuffix, PostMortem(res)})
	}
	files = append(files, file{base + JSONSuffix, jsonBytes})
	for _, f := range files {
		if err := writeAtomic(f.path, f.data); err != nil {
			return paths, fmt.Errorf("archive release report of %s: %w", res.ReleaseID, err)
		}
		paths = append(paths, f.path)
	}
	return paths, nil
}

// basePath is the archive path of a release without suffix.
func basePath(dir string, res record.Result) string {
	return filepath.Join(dir, SafeName(res.Service), SafeName(res.Environment), SafeName(res.ReleaseID))
}

// SafeName turns an ID into a file name: kept as is when it is made of letters, digits, '.', '_' and '-'
// (Temporal run IDs are), otherwise with the other characters replaced and a hash of the original
// appended, so different IDs never share a file and no ID can climb out of the archive directory.
func SafeName(id string) string {
	safe := id != "" && len(id) <= 128 && !strings.HasPrefix(id, ".")
	for _, r := range id {
		if !isSafe(r) {
			safe = false
			break
		}
	}
	if safe {
		return id
	}
	var b strings.Builder
	for _, r := range id {
		if isSafe(r) {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	s := strings.TrimLeft(b.String(), ".")
	if len(s) > 100 {
		s = s[:100]
	}
	sum := sha256.Sum256([]byte(id))
	if s == "" {
		return "id-" + hex.EncodeToString(sum[:6])
	}
	return s + "-" + hex.EncodeToString(sum[:6])
}

func isSafe(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-'
}

// Entry describes one archived release report.
type Entry struct {
	ReleaseID   string       `json:"releaseID"`
	WorkflowID  string       `json:"workflowID"`
	Service     string       `json:"service"`
	Environment string       `json:"environment"`
	Version     string       `json:"version"`
	Phase       record.Phase `json:"phase"`
	StartedAt   time.Time    `json:"startedAt"`
	EndedAt     time.Time    `json:"endedAt,omitempty"`
	// JSONPath and MarkdownPath are the report's files; PostMortemPath is empty when there is none.
	JSONPath       string `json:"jsonPath"`
	MarkdownPath   string `json:"markdownPath"`
	PostMortemPath string `json:"postMortemPath,omitempty"`
}

// List returns every archived report under dir, newest first. Files that are not release reports are
// skipped.
func List(dir string) ([]Entry, error) {
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: the archive directory %s does not exist", ErrNotFound, dir)
	} else if err != nil {
		return nil, fmt.Errorf("release report archive: %w", err)
	}
	matches, err := filepath.Glob(filepath.Join(dir, "*", "*", "*"+JSONSuffix))
	if err != nil {
		return nil, err
	}
	var out []Entry
	for _, p := range matches {
		if e, ok := readEntry(p); ok {
			out = append(out, e)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].StartedAt.After(out[j].StartedAt) })
	return out, nil
}

func readEntry(path string) (Entry, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Entry{}, false
	}
	var r struct {
		SchemaVersion int `json:"schemaVersion"`
		Release       struct {
			ReleaseID   string       `json:"releaseID"`
			WorkflowID  string       `json:"workflowID"`
			Service     string       `json:"service"`
			Environment string       `json:"environment"`
			Version     string       `json:"version"`
			Phase       record.Phase `json:"phase"`
			StartedAt   time.Time    `json:"startedAt"`
			EndedAt     time.Time    `json:"endedAt"`
		} `json:"release"`
	}
	if err := json.Unmarshal(b, &r); err != nil || r.SchemaVersion == 0 || r.Release.ReleaseID == "" {
		return Entry{}, false
	}
	base := strings.TrimSuffix(path, JSONSuffix)
	e := Entry{
		ReleaseID: r.Release.ReleaseID, WorkflowID: r.Release.WorkflowID, Service: r.Release.Service,
		Environment: r.Release.Environment, Version: r.Release.Version, Phase: r.Release.Phase,
		StartedAt: r.Release.StartedAt, EndedAt: r.Release.EndedAt,
		JSONPath: path, MarkdownPath: base + MarkdownSuffix,
	}
	if _, err := os.Stat(base + PostMortemSuffix); err == nil {
		e.PostMortemPath = base + PostMortemSuffix
	}
	return e, true
}

// Find looks a release up in the archive under dir by release ID, or by a prefix of a release ID or
// workflow ID. A workflow ID names a service in an environment, which has had many releases: when every
// match has the same workflow ID, the latest release is the answer. Matches from different workflows or
// different release-ID prefixes are ErrAmbiguous, which lists them; no match is ErrNotFound.
func Find(dir, id string) (Entry, error) {
	id = strings.TrimSpace(id)
	if id == "" {
		return Entry{}, errors.New("find release report: give a release ID or workflow ID")
	}
	// Fast path: the file is named after the release ID.
	if paths, _ := filepath.Glob(filepath.Join(dir, "*", "*", SafeName(id)+JSONSuffix)); len(paths) > 0 {
		for _, p := range paths {
			if e, ok := readEntry(p); ok && e.ReleaseID == id {
				return e, nil
			}
		}
	}
	all, err := List(dir)
	if err != nil {
		return Entry{}, err
	}
	var matches []Entry
	for _, e := range all {
		if e.ReleaseID == id {
			return e, nil
		}
		if strings.HasPrefix(e.ReleaseID, id) || strings.HasPrefix(e.WorkflowID, id) {
			matches = append(matches, e)
		}
	}
	switch {
	case len(matches) == 0:
		return Entry{}, fmt.Errorf("%w matches %q in %s (%d reports there)", ErrNotFound, id, dir, len(all))
	case len(matches) == 1:
		return matches[0], nil
	}
	sameWorkflow := true
	for _, m := range matches {
		if m.WorkflowID != matches[0].WorkflowID || !strings.HasPrefix(m.WorkflowID, id) {
			sameWorkflow = false
			break
		}
	}
	if sameWorkflow {
		return matches[0], nil // List is newest first
	}
	var lines []string
	for i, m := range matches {
		if i == 10 {
			lines = append(lines, fmt.Sprintf("and %d more", len(matches)-10))
			break
		}
		lines = append(lines, fmt.Sprintf("%s (workflow %s, %s %s, started %s)", m.ReleaseID, m.WorkflowID,
			m.Service, m.Version, stamp(m.StartedAt)))
	}
	return Entry{}, fmt.Errorf("%w %q; give more of the ID: %s", ErrAmbiguous, id, strings.Join(lines, "; "))
}

// Load finds a release as Find does and reads its JSON report.
func Load(dir, id string) (Report, error) {
	e, err := Find(dir, id)
	if err != nil {
		return Report{}, err
	}
	b, err := os.ReadFile(e.JSONPath)
	if err != nil {
		return Report{}, fmt.Errorf("read release report: %w", err)
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return Report{}, fmt.Errorf("release report %s is not valid JSON: %w", e.JSONPath, err)
	}
	if r.SchemaVersion > SchemaVersion {
		return r, fmt.Errorf("release report %s has schema version %d; this Shepherd reads up to %d: upgrade it",
			e.JSONPath, r.SchemaVersion, SchemaVersion)
	}
	return r, nil
}

// writeAtomic replaces path with data via a temporary file in the same directory, fsync and rename, so
// readers see the old or the new file, never a part.
func writeAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(data); err != nil {
		return err
	}
	if err = tmp.Chmod(fs.FileMode(0o600)); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	if d, derr := os.Open(dir); derr == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}
