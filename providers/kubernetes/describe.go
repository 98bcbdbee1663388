package kubernetes

import (
	"github.com/shepherd-release/shepherd/providers"
	"github.com/shepherd-release/shepherd/spec"
)

var (
	_ providers.Target      = (*Target)(nil)
	_ providers.Preflighter = (*Target)(nil)
	_ providers.Describer   = (*Target)(nil)
)

// Describe says what the target does to the cluster, for plans and runbooks.
func (t *Target) Describe() providers.Description {
	c := t.cfg.WithDefaults()
	traffic := "scale the canary to the stage's share of the stable replicas (replica ratio: approximate)"
	if c.Traffic.Mode == ModeGateway {
		traffic = "set the HTTPRoute " + c.Traffic.Gateway.HTTPRoute + "'s weights between " + c.Traffic.Gateway.StableService +
			" and " + c.Traffic.Gateway.CanaryService + " (exact percentages)"
	}
	m := c.ManualRollback()
	return providers.Description{
		Type:    "kubernetes",
		Summary: "the Deployment " + c.Namespace + "/" + c.Deployment + ", with a canary Deployment beside it",
		Steps: map[string]string{
			"deploy":   "create " + c.CanaryName() + " with the new image and wait until it is available",
			"health":   "check " + c.CanaryName() + " is available (and the health URL, if configured)",
			"traffic":  traffic,
			"promote":  "roll the new image out on " + c.Deployment + ", all traffic to stable, then remove the canary",
			"rollback": "traffic back to stable first, then remove the canary (after the scale-down delay)",
		},
		Prerequisites: []string{
			"the objects exist and the worker's credentials may do what the steps need (preflight checks both " +
				"with SelfSubjectAccessReview); deploy/kubernetes/rbac.yaml has the least-privilege Role",
		},
		ManualRollback: append(append(append([]string{}, m.Traffic...), m.Remove...), m.Check...),
		StepTimeout:    c.RolloutTimeout.D() + c.RequestTimeout.D(),
		Manual: func(step string, _ spec.TemplateData, _ []string) []string {
			switch step {
			case "traffic":
				return m.Traffic
			case "rollback":
				return append(append([]string{}, m.Remove...), m.Check...)
			}
			return nil
		},
	}
}
