package kubernetes

import "fmt"

// ManualSteps are kubectl commands a person runs when Shepherd cannot; every command is idempotent.
type ManualSteps struct {
	// Traffic sends all traffic to stable (first).
	Traffic []string
	// Remove removes the canary (after Traffic, and after anything else that must happen in between).
	Remove []string
	// Check shows the result.
	Check []string
}

// ManualRollback is what Rollback does, as kubectl commands (runbooks render it): traffic to stable
// first, then the canary removed.
func (c Config) ManualRollback() ManualSteps {
	c = c.WithDefaults()
	k := "kubectl"
	if c.Kubeconfig != "" {
		k += " --kubeconfig " + c.Kubeconfig
	}
	if c.Context != "" {
		k += " --context " + c.Context
	}
	k += " -n " + c.Namespace
	canary := c.CanaryName()
	var m ManualSteps
	switch c.Traffic.Mode {
	case ModeGateway:
		g := c.Traffic.Gateway
		m.Traffic = []string{
			"# in every rule of the route, delete the backendRef to " + g.CanaryService + " and set the weight of " +
				g.StableService + " to 100",
			k + " edit httproute " + g.HTTPRoute,
			k + " get httproute " + g.HTTPRoute + " -o jsonpath='{.spec.rules[*].backendRefs}'; echo",
		}
		m.Remove = []string{
			k + " delete service " + g.CanaryService + " --ignore-not-found",
			k + " delete deployment " + canary + " --ignore-not-found",
		}
	case ModeReplicas:
		m.Traffic = []string{
			"# stable back to the replica count it had before the canary, and ready",
			fmt.Sprintf("%s scale deployment %s --replicas=\"$(%s get deployment %s -o jsonpath='{.metadata.annotations.%s}')\"",
				k, c.Deployment, k, canary, jsonpathKey(AnnotationReplicas)),
			k + " rollout status deployment " + c.Deployment,
		}
		m.Remove = []string{k + " delete deployment " + canary + " --ignore-not-found"}
	}
	m.Check = []string{k + " get deployment " + c.Deployment + " " + canary + " -o wide --ignore-not-found"}
	return m
}

// jsonpathKey escapes the dots of an annotation key for kubectl's jsonpath.
func jsonpathKey(key string) string {
	out := make([]byte, 0, len(key)+2)
	for i := 0; i < len(key); i++ {
		if key[i] == '.' {
			out = append(out, '\\')
		}
		out = append(out, key[i])
	}
	return string(out)
}
