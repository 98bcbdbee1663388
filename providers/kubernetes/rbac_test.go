package kubernetes_test

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/shepherd-release/shepherd/internal/devstack"
	"github.com/shepherd-release/shepherd/internal/testenv"
	"github.com/shepherd-release/shepherd/providers/kubernetes"
)

// TestRBACManifest keeps deploy/kubernetes/rbac.yaml's Role equal to what the steps need in gateway mode
// (replicas mode needs a subset), and devstack's Role for `shepherd dev --kube` equal to it.
func TestRBACManifest(t *testing.T) {
	perms := func(role []string) []string { slices.Sort(role); return role }
	var manifest []string
	for _, r := range testenv.KubeRole(t).Rules {
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				for _, v := range r.Verbs {
					manifest = append(manifest, kubernetes.Permission{Group: g, Resource: res, Verb: v}.String())
				}
			}
		}
	}
	gw := kubernetes.Config{Traffic: kubernetes.Traffic{Mode: kubernetes.ModeGateway}}.Permissions()
	var want []string
	for _, p := range gw {
		want = append(want, p.String())
	}
	assert.Equal(t, perms(want), perms(manifest))

	var dev []string
	for _, r := range devstack.PolicyRules(gw) {
		for _, v := range r.Verbs {
			dev = append(dev, kubernetes.Permission{Group: r.APIGroups[0], Resource: r.Resources[0], Verb: v}.String())
		}
	}
	assert.Equal(t, perms(want), perms(dev))

	replicas := kubernetes.Config{Traffic: kubernetes.Traffic{Mode: kubernetes.ModeReplicas}}.Permissions()
	for _, p := range replicas {
		assert.Contains(t, manifest, p.String())
	}
}
