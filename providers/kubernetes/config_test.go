package kubernetes

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shepherd-release/shepherd/spec"
)

func gatewayConfig() Config {
	return Config{
		Kubeconfig: "/etc/kube/config", Namespace: "shop", Deployment: "checkout",
		Images:       map[string]string{"app": "registry.example.com/checkout:{{.Version}}"},
		CanaryLabels: map[string]string{"track": "canary"},
		Traffic: Traffic{Mode: ModeGateway, Gateway: &Gateway{
			HTTPRoute: "checkout", StableService: "checkout", Port: 80,
		}},
	}
}

func TestValidate(t *testing.T) {
	require.NoError(t, gatewayConfig().Validate())
	replicas := gatewayConfig()
	replicas.Traffic, replicas.CanaryLabels = Traffic{Mode: ModeReplicas}, nil
	require.NoError(t, replicas.Validate())

	cases := []struct {
		name   string
		mutate func(*Config)
		want   []string
	}{
		{"required fields", func(c *Config) { *c = Config{} }, []string{
			"namespace: required", "deployment: required", "images: required", "traffic.mode: required"}},
		{"bad names", func(c *Config) { c.Namespace, c.Deployment = "Shop", "check_out" }, []string{
			`namespace: "Shop"`, `deployment: "check_out"`}},
		{"image template", func(c *Config) { c.Images["app"] = "reg/app:{{.Versoin}}" }, []string{
			"images.app: template does not render"}},
		{"image renders empty", func(c *Config) { c.Images["app"] = "{{if false}}x{{end}}" }, []string{
			`images.app: renders to ""`}},
		{"gateway fields", func(c *Config) { c.Traffic.Gateway = &Gateway{} }, []string{
			"traffic.gateway.httpRoute: required", "traffic.gateway.stableService: required", "traffic.gateway.port: must be"}},
		{"canary service differs", func(c *Config) { c.Traffic.Gateway.CanaryService = "checkout" }, []string{
			"traffic.gateway.canaryService: must differ from stableService"}},
		{"gateway needs canary labels", func(c *Config) { c.CanaryLabels = nil }, []string{"canaryLabels: required in gateway mode"}},
		{"own label keys", func(c *Config) { c.CanaryLabels[LabelRole] = "x" }, []string{"canaryLabels.shepherd.dev/role: keys under"}},
		{"gateway only in its mode", func(c *Config) { c.Traffic.Mode = ModeReplicas }, []string{
			`traffic.gateway: only allowed when traffic.mode is "gateway"`}},
		{"unknown mode", func(c *Config) { c.Traffic.Mode = "mesh" }, []string{`traffic.mode: unknown mode "mesh"`}},
		{"bounds", func(c *Config) {
			c.ScaleDownDelay, c.RolloutTimeout, c.RequestTimeout = spec.Duration(time.Hour), spec.Duration(time.Hour), spec.Duration(time.Millisecond)
		}, []string{"scaleDownDelay: must be between 0 and 3m0s", "rolloutTimeout: must be between 1s and 4m0s", "requestTimeout: must be between"}},
		{"health URL", func(c *Config) { c.HealthURL = "checkout.shop/healthz" }, []string{"healthURL: renders to"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := gatewayConfig()
			c.Images = map[string]string{"app": c.Images["app"]}
			c.CanaryLabels = map[string]string{"track": "canary"}
			g := *c.Traffic.Gateway
			c.Traffic.Gateway = &g
			tc.mutate(&c)
			err := c.Validate()
			require.Error(t, err)
			assert.True(t, errors.Is(err, ErrPermanent), "configuration problems are permanent")
			var pe *ProblemsError
			require.ErrorAs(t, err, &pe)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
			assert.Len(t, pe.Problems, len(tc.want), "problems: %v", pe.Problems)
		})
	}
}

func TestDefaults(t *testing.T) {
	c := gatewayConfig().WithDefaults()
	assert.Equal(t, "checkout-canary", c.Traffic.Gateway.CanaryService)
	assert.Equal(t, "checkout-canary", c.CanaryName())
	assert.Equal(t, DefaultRolloutTimeout, c.RolloutTimeout.D())
	assert.Equal(t, DefaultRequestTimeout, c.RequestTimeout.D())
	assert.Empty(t, gatewayConfig().Traffic.Gateway.CanaryService, "WithDefaults does not change its receiver")
}

func TestManualRollback(t *testing.T) {
	all := func(m ManualSteps) string {
		return strings.Join(append(append(m.Traffic, m.Remove...), m.Check...), "\n")
	}
	lines := all(gatewayConfig().ManualRollback())
	assert.Contains(t, lines, "kubectl --kubeconfig /etc/kube/config -n shop edit httproute checkout")
	assert.Contains(t, lines, "delete the backendRef to checkout-canary and set the weight of checkout to 100")
	assert.Less(t, strings.Index(lines, "httproute"), strings.Index(lines, "delete deployment checkout-canary"),
		"traffic goes back before the canary is removed")
	c := gatewayConfig()
	c.Traffic = Traffic{Mode: ModeReplicas}
	lines = all(c.ManualRollback())
	assert.Contains(t, lines, `scale deployment checkout --replicas="$(kubectl --kubeconfig /etc/kube/config -n shop get deployment checkout-canary -o jsonpath='{.metadata.annotations.shepherd\.dev/replicas}')"`)
	assert.Less(t, strings.Index(lines, "scale deployment"), strings.Index(lines, "delete deployment"))
}
