package flags

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shepherd-release/shepherd/spec"
)

var data = spec.TemplateData{Service: "checkout", Environment: "production", Version: "1.4.0", Stage: 2, ReleaseID: "rel-42"}

func fileCfg(path string) Config { return Config{Type: TypeFlagdFile, Path: path} }

// readFlags parses the flag file the way flagd would see it.
func readFlags(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("flag file is not valid JSON: %v\n%s", err, b)
	}
	return doc
}

func TestFlagdFilePercents(t *testing.T) {
	path := filepath.Join(t.TempDir(), "flags.json")
	cases := []struct {
		percent int
		want    string
	}{
		{0, `{"defaultVariant":"off","state":"ENABLED","variants":{"off":false,"on":true}}`},
		{25, `{"defaultVariant":"off","state":"ENABLED","targeting":{"fractional":[["on",25],["off",75]]},"variants":{"off":false,"on":true}}`},
		{100, `{"defaultVariant":"on","state":"ENABLED","variants":{"off":false,"on":true}}`},
		{0, `{"defaultVariant":"off","state":"ENABLED","variants":{"off":false,"on":true}}`},
	}
	for _, c := range cases {
		if err := Set(context.Background(), fileCfg(path), []string{"new-checkout", "fast-cart"}, c.percent, data); err != nil {
			t.Fatalf("Set %d: %v", c.percent, err)
		}
		doc := readFlags(t, path)
		if doc["$schema"] != FlagdSchema {
			t.Errorf("$schema = %v", doc["$schema"])
		}
		flags := doc["flags"].(map[string]any)
		for _, name := range []string{"new-checkout", "fast-cart"} {
			got, _ := json.Marshal(flags[name])
			if string(got) != c.want {
				t.Errorf("percent %d: flag %s =\n %s\nwant\n %s", c.percent, name, got, c.want)
			}
		}
	}
}

func TestFlagdFilePreservesOtherContent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "flags.json")
	orig := `{
  "$schema": "https://flagd.dev/schema/v0/flags.json",
  "$evaluators": {"internal": {"in": ["@example.com", {"var": "email"}]}},
  "metadata": {"team": "payments"},
  "flags": {
    "dark-mode": {"state": "ENABLED", "variants": {"a": "<b>", "b": "light"}, "defaultVariant": "a",
                  "targeting": {"if": [{"$ref": "internal"}, "b", null]}},
    "new-checkout": {"state": "DISABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
                     "metadata": {"owner": "checkout-team"}}
  }
}`
	if err := os.WriteFile(path, []byte(orig), 0o640); err != nil {
		t.Fatal(err)
	}
	before := readFlags(t, path)
	if err := Set(context.Background(), fileCfg(path), []string{"new-checkout"}, 5, data); err != nil {
		t.Fatal(err)
	}
	after := readFlags(t, path)
	for _, k := range []string{"$schema", "$evaluators", "metadata"} {
		if fmt.Sprint(after[k]) != fmt.Sprint(before[k]) {
			t.Errorf("%s changed: %v -> %v", k, before[k], after[k])
		}
	}
	bf, af := before["flags"].(map[string]any), after["flags"].(map[string]any)
	if a, b := mustMarshal(af["dark-mode"]), mustMarshal(bf["dark-mode"]); a != b {
		t.Errorf("dark-mode changed:\n%s\n%s", b, a)
	}
	nc := af["new-checkout"].(map[string]any)
	if nc["state"] != "ENABLED" || mustMarshal(nc["metadata"]) != `{"owner":"checkout-team"}` ||
		mustMarshal(nc["targeting"]) != `{"fractional":[["on",5],["off",95]]}` {
		t.Errorf("new-checkout = %s", mustMarshal(nc))
	}
	raw, _ := os.ReadFile(path)
	if !strings.Contains(string(raw), `"<b>"`) {
		t.Errorf("HTML-like strings were escaped:\n%s", raw)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o640 {
		t.Errorf("mode = %v, want 0640 kept", st.Mode().Perm())
	}
}

func mustMarshal(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestFlagdFileIdempotent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "flags.json")
	if err := Set(context.Background(), fileCfg(path), []string{"f"}, 50, data); err != nil {
		t.Fatal(err)
	}
	st1, _ := os.Stat(path)
	b1, _ := os.ReadFile(path)
	if err := Set(context.Background(), fileCfg(path), []string{"f"}, 50, data); err != nil {
		t.Fatal(err)
	}
	st2, _ := os.Stat(path)
	b2, _ := os.ReadFile(path)
	if string(b1) != string(b2) {
		t.Errorf("content changed on a repeated Set")
	}
	if !os.SameFile(st1, st2) {
		t.Errorf("file was rewritten on a repeated Set (flagd would reload for nothing)")
	}
	leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".flags.json.tmp-*"))
	if len(leftovers) != 0 {
		t.Errorf("temporary files left behind: %v", leftovers)
	}
}

func TestFlagdFileCorruptIsPermanent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "flags.json")
	for _, bad := range []string{`{"flags": `, `[1,2]`, `{"flags": []}`, `{"flags": {"f": 3}}`} {
		if err := os.WriteFile(path, []byte(bad), 0o644); err != nil {
			t.Fatal(err)
		}
		err := Set(context.Background(), fileCfg(path), []string{"f"}, 10, data)
		if !errors.Is(err, ErrPermanent) || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: err = %v, want ErrPermanent naming the file", bad, err)
		}
		if b, _ := os.ReadFile(path); string(b) != bad {
			t.Errorf("%s: corrupt file was overwritten with %s", bad, b)
		}
	}
}

func TestSetRejectsBadArguments(t *testing.T) {
	path := filepath.Join(t.TempDir(), "flags.json")
	for name, c := range map[string]struct {
		cfg     Config
		flags   []string
		percent int
	}{
		"percent > 100": {fileCfg(path), []string{"f"}, 101},
		"percent < 0":   {fileCfg(path), []string{"f"}, -1},
		"empty flag":    {fileCfg(path), []string{""}, 10},
		"no path":       {Config{Type: TypeFlagdFile}, []string{"f"}, 10},
		"no type":       {Config{Path: path}, []string{"f"}, 10},
		"unknown type":  {Config{Type: "launchdarkly"}, []string{"f"}, 10},
		"http no url":   {Config{Type: TypeHTTP}, []string{"f"}, 10},
		"bad template":  {Config{Type: TypeHTTP, URL: "http://x/{{.Flag"}, []string{"f"}, 10},
	} {
		if err := Set(context.Background(), c.cfg, c.flags, c.percent, data); !errors.Is(err, ErrPermanent) {
			t.Errorf("%s: err = %v, want ErrPermanent", name, err)
		}
	}
	if _, err := os.Stat(path); err == nil {
		t.Errorf("a rejected Set created the flag file")
	}
	if err := Set(context.Background(), fileCfg(path), nil, 10, data); err != nil {
		t.Errorf("no flags: %v", err)
	}
}

func TestFlagdFileWaitsForLockUntilContextDone(t *testing.T) {
	path := filepath.Join(t.TempDir(), "flags.json")
	unlock, err := lockFile(context.Background(), path+".lock")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	err = Set(ctx, fileCfg(path), []string{"f"}, 10, data)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want DeadlineExceeded while another writer holds the lock", err)
	}
	unlock()
	if err := Set(context.Background(), fileCfg(path), []string{"f"}, 10, data); err != nil {
		t.Errorf("after unlock: %v", err)
	}
}

// TestFlagdFileConcurrentWriters runs writers in this process and in child processes at once while a
// reader keeps parsing the file: every read must be valid JSON and no writer's flag may be lost.
func TestFlagdFileConcurrentWriters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "flags.json")
	const goroutines, procs, perWriter = 4, 3, 15

	stop := make(chan struct{})
	var reads, badReads atomic.Int64
	var readerDone sync.WaitGroup
	readerDone.Add(1)
	go func() {
		defer readerDone.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			b, err := os.ReadFile(path)
			if err != nil {
				continue // not created yet
			}
			reads.Add(1)
			if !json.Valid(b) {
				badReads.Add(1)
			}
		}
	}()

	var wg sync.WaitGroup
	errs := make(chan error, goroutines*perWriter+procs)
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perWriter; i++ {
				name := fmt.Sprintf("g%d-f%d", g, i)
				if err := Set(context.Background(), fileCfg(path), []string{name}, (i*7)%101, data); err != nil {
					errs <- err
				}
			}
		}()
	}
	for p := 0; p < procs; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command(os.Args[0], "-test.run=^TestHelperWriter$")
			cmd.Env = append(os.Environ(), "SHEPHERD_FLAGS_HELPER_PATH="+path,
				"SHEPHERD_FLAGS_HELPER_PREFIX=p"+strconv.Itoa(p), "SHEPHERD_FLAGS_HELPER_N="+strconv.Itoa(perWriter))
			if out, err := cmd.CombinedOutput(); err != nil {
				errs <- fmt.Errorf("writer process %d: %v\n%s", p, err, out)
			}
		}()
	}
	wg.Wait()
	close(stop)
	readerDone.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := badReads.Load(); n > 0 {
		t.Errorf("%d of %d concurrent reads saw invalid JSON", n, reads.Load())
	}
	t.Logf("%d concurrent reads, all valid", reads.Load())
	flags := readFlags(t, path)["flags"].(map[string]any)
	want := (goroutines + procs) * perWriter
	if len(flags) != want {
		t.Errorf("file holds %d flags, want %d: updates were lost", len(flags), want)
	}
	for p := 0; p < procs; p++ {
		for i := 0; i < perWriter; i++ {
			if _, ok := flags[fmt.Sprintf("p%d-f%d", p, i)]; !ok {
				t.Errorf("flag p%d-f%d written by a child process is missing", p, i)
			}
		}
	}
}

// TestHelperWriter is the child process of TestFlagdFileConcurrentWriters; it does nothing on its own.
func TestHelperWriter(t *testing.T) {
	path := os.Getenv("SHEPHERD_FLAGS_HELPER_PATH")
	if path == "" {
		t.Skip("child process of TestFlagdFileConcurrentWriters")
	}
	n, _ := strconv.Atoi(os.Getenv("SHEPHERD_FLAGS_HELPER_N"))
	prefix := os.Getenv("SHEPHERD_FLAGS_HELPER_PREFIX")
	for i := 0; i < n; i++ {
		if err := Set(context.Background(), fileCfg(path), []string{fmt.Sprintf("%s-f%d", prefix, i)}, 100, data); err != nil {
			t.Fatal(err)
		}
	}
}
