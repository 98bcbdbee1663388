package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shepherd-release/shepherd/fleet"
)

func TestParseProfile(t *testing.T) {
	for _, tc := range []struct {
		in      string
		key     string
		want    fleet.Profile
		wantErr string
	}{
		{in: "v3=errors:0.2,latency:50ms", key: "v3", want: fleet.Profile{ErrorRate: 0.2, Latency: 50 * time.Millisecond}},
		{in: "checkout/v3=errors:20%", key: "checkout/v3", want: fleet.Profile{ErrorRate: 0.2, Latency: fleet.DefaultProfile.Latency}},
		{in: "v2=latency:400ms", key: "v2", want: fleet.Profile{Latency: 400 * time.Millisecond}},
		{in: " v4 = errors: 1 , latency: 0s", key: "v4", want: fleet.Profile{ErrorRate: 1}},
		{in: "errors:0.2", wantErr: "missing VERSION="},
		{in: "v3=", wantErr: "no settings"},
		{in: "v3=errors:1.5", wantErr: "want a fraction in [0, 1]"},
		{in: "v3=errors:-1%", wantErr: "want a fraction"},
		{in: "v3=latency:fast", wantErr: "want a Go duration"},
		{in: "v3=latency:-5ms", wantErr: "want a Go duration"},
		{in: "v3=speed:2", wantErr: "unknown setting"},
		{in: "v3=errors", wantErr: "want name:value"},
		{in: "a/b/c=errors:0", wantErr: "missing VERSION="},
	} {
		key, p, err := parseProfile(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("parseProfile(%q) error = %v, want one containing %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || key != tc.key || p != tc.want {
			t.Errorf("parseProfile(%q) = %q, %+v, %v; want %q, %+v", tc.in, key, p, err, tc.key, tc.want)
		}
	}
}

func TestParseProfilesRejectsDuplicates(t *testing.T) {
	if _, err := parseProfiles([]string{"v3=errors:0.1", "v3=errors:0.2"}); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Fatalf("duplicate profile: err = %v", err)
	}
	m, err := parseProfiles([]string{"v3=errors:0.1", "checkout/v3=errors:0.2"})
	if err != nil || len(m) != 2 {
		t.Fatalf("parseProfiles = %v, %v", m, err)
	}
}

func TestFindServiceBinary(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "demo-service")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if got, err := findServiceBinary(exe); err != nil || got != exe {
		t.Errorf("explicit: %q, %v", got, err)
	}
	if _, err := findServiceBinary(filepath.Join(dir, "missing")); err == nil {
		t.Error("explicit missing binary: no error")
	}
	// Nothing next to the test binary or under bin/ of the package directory; PATH decides.
	t.Setenv("PATH", dir)
	if got, err := findServiceBinary(""); err != nil || got != exe {
		t.Errorf("from PATH: %q, %v", got, err)
	}
	t.Setenv("PATH", t.TempDir())
	if _, err := findServiceBinary(""); err == nil || !strings.Contains(err.Error(), "demo service binary not found") {
		t.Errorf("nowhere: err = %v", err)
	}
}

func TestFleetHelpHasExample(t *testing.T) {
	cmd := newFleetCmd(&globals{})
	if !strings.Contains(cmd.Example, "--profile v3=errors:0.2,latency:50ms") {
		t.Errorf("fleet --help example lacks the profile syntax:\n%s", cmd.Example)
	}
}
