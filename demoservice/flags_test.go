package demoservice

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeFlags(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func flagFileService(t *testing.T) (*Service, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "flags.json")
	return newTestService(t, Config{FlagFile: path}), path
}

func feature(s *Service, id string) string {
	return get(s, "/", HeaderRequestID, id).Header().Get(HeaderNewCheckout)
}

func gauge(t *testing.T, s *Service) string {
	t.Helper()
	for line := range strings.SplitSeq(get(s, "/metrics").Body.String(), "\n") {
		if strings.HasPrefix(line, `demo_feature_enabled{flag="new-checkout"} `) {
			return strings.TrimPrefix(line, `demo_feature_enabled{flag="new-checkout"} `)
		}
	}
	t.Fatal("no demo_feature_enabled{flag=\"new-checkout\"} series")
	return ""
}

const boolFlag = `{"flags": {"new-checkout": {"state": %q, "variants": {"on": true, "off": false}, "defaultVariant": %q}}}`

func TestFlagStateAndDefaultVariant(t *testing.T) {
	s, path := flagFileService(t)
	for _, tc := range []struct {
		state, variant, want, gauge string
	}{
		{"ENABLED", "on", "on", "1"},
		{"ENABLED", "off", "off", "0"},
		{"DISABLED", "on", "off", "0"},
	} {
		writeFlags(t, path, fmt.Sprintf(boolFlag, tc.state, tc.variant))
		if err := s.ReloadFlags(); err != nil {
			t.Fatalf("reload: %v", err)
		}
		if got := feature(s, "r1"); got != tc.want {
			t.Errorf("%s/%s: header = %q, want %q", tc.state, tc.variant, got, tc.want)
		}
		if got := gauge(t, s); got != tc.gauge {
			t.Errorf("%s/%s: gauge = %s, want %s", tc.state, tc.variant, got, tc.gauge)
		}
	}
}

func TestFlagFileProblems(t *testing.T) {
	s, path := flagFileService(t)
	writeFlags(t, path, fmt.Sprintf(boolFlag, "ENABLED", "on"))
	if err := s.ReloadFlags(); err != nil {
		t.Fatal(err)
	}
	// A half-written file keeps the last good flags.
	writeFlags(t, path, `{"flags": {"new-checkout": `)
	if err := s.ReloadFlags(); err == nil {
		t.Error("reload accepted truncated JSON")
	}
	if got := feature(s, "r1"); got != "on" {
		t.Errorf("after bad file: %q, want the last good value on", got)
	}
	writeFlags(t, path, `{"flags": {"new-checkout": {"state": "ENABLED", "variants": {"on": true}, "defaultVariant": "blue"}}}`)
	if err := s.ReloadFlags(); err == nil || !strings.Contains(err.Error(), `"blue"`) {
		t.Errorf("unknown default variant: err = %v", err)
	}
	// A removed file turns flags off.
	os.Remove(path)
	if err := s.ReloadFlags(); err != nil {
		t.Fatal(err)
	}
	if got := feature(s, "r1"); got != "off" {
		t.Errorf("after removal: %q, want off", got)
	}
}

func TestFlagFractionalRollout(t *testing.T) {
	s, path := flagFileService(t)
	writeFlags(t, path, `{"flags": {"new-checkout": {"state": "ENABLED", "variants": {"on": true, "off": false},
		"defaultVariant": "off", "targeting": {"fractional": [{"var": "targetingKey"}, ["on", 25], ["off", 75]]}}}}`)
	if err := s.ReloadFlags(); err != nil {
		t.Fatal(err)
	}
	on := 0
	const n = 2000
	for i := range n {
		id := fmt.Sprintf("req-%d", i)
		first := feature(s, id)
		if first == "on" {
			on++
		}
		if i < 50 && feature(s, id) != first {
			t.Fatalf("request id %s evaluated differently twice", id)
		}
	}
	if on < 400 || on > 600 {
		t.Errorf("%d of %d requests on, want about 25 %%", on, n)
	}
	if got := gauge(t, s); got != "0.25" {
		t.Errorf("gauge = %s, want 0.25", got)
	}
	if rec := get(s, "/"); rec.Code != http.StatusOK || rec.Header().Get(HeaderRequestID) == "" {
		t.Errorf("request without id: status %d, id %q", rec.Code, rec.Header().Get(HeaderRequestID))
	}
}
