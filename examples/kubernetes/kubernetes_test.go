package kubernetes_test

import (
	"os"
	"testing"

	"github.com/shepherd-release/shepherd/config"
	"github.com/shepherd-release/shepherd/providers/kubernetes"
	"github.com/shepherd-release/shepherd/spec"
)

// The Kubernetes example pair is valid: the configuration parses, its target's settings validate with
// the provider's own rules, and the release names what the configuration declares.
func TestKubernetesExample(t *testing.T) {
	raw, err := os.ReadFile("shepherd.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := config.Parse(raw)
	if err != nil {
		t.Fatalf("shepherd.yaml: %v", err)
	}
	target, ok := c.Targets["checkout-prod"]
	if !ok || target.Type != "kubernetes" {
		t.Fatalf("shepherd.yaml has no kubernetes target checkout-prod: %+v", c.Targets)
	}
	k, err := config.Decode[kubernetes.Config](target)
	if err != nil {
		t.Fatal(err)
	}
	if err := k.Validate(); err != nil {
		t.Fatalf("targets.checkout-prod: %v", err)
	}
	data, err := os.ReadFile("release.yaml")
	if err != nil {
		t.Fatal(err)
	}
	r, err := spec.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.WithDefaults().Validate(); err != nil {
		t.Fatal(err)
	}
	if r.Target != "checkout-prod" {
		t.Errorf("release.yaml names target %q", r.Target)
	}
}
