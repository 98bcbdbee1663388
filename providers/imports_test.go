package providers_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestProvidersAreLeaves keeps providers plain Go: no Temporal, and nothing of Shepherd's above them (a
// provider that imported activities would pull Temporal in and import upwards).
func TestProvidersAreLeaves(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", "github.com/shepherd-release/shepherd/providers/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	// approvals (which spec uses) and internal/redact, safehttp and safetmpl are leaves (this listing would show
	// anything they imported).
	allowed := []string{"providers", "spec", "record", "fleet", "approvals", "internal/redact", "internal/safehttp", "internal/safetmpl"}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.HasPrefix(pkg, "go.temporal.io/") {
			t.Errorf("a provider depends on %s; providers must not import Temporal", pkg)
		}
		rest, ours := strings.CutPrefix(pkg, "github.com/shepherd-release/shepherd/")
		if !ours {
			continue
		}
		ok := false
		for _, a := range allowed {
			ok = ok || rest == a || strings.HasPrefix(rest, a+"/")
		}
		if !ok {
			t.Errorf("a provider depends on %s; providers may import only %v", pkg, allowed)
		}
	}
}
