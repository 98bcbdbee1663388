package kubernetes

import (
	"bytes"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"text/template"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/shepherd-release/shepherd/spec"
)

// Traffic modes.
const (
	// ModeGateway splits traffic with the weights of a Gateway API HTTPRoute between the stable Service and
	// a canary Service the target creates: exact percentages, independent of replica counts.
	ModeGateway = "gateway"
	// ModeReplicas splits traffic by the ratio of ready canary to stable pods behind the one Service that
	// selects both (like Argo Rollouts' basic canary): approximate, in steps of 1/replicas.
	ModeReplicas = "replicas"
)

// Defaults for the Config fields left empty.
const (
	// DefaultRolloutTimeout bounds each wait for a Deployment to become available within one step; it stays
	// under the 5-minute attempt timeout of Shepherd's steps, and a retried step carries on waiting.
	DefaultRolloutTimeout = 4 * time.Minute
	// DefaultRequestTimeout bounds one call to the API server.
	DefaultRequestTimeout = 10 * time.Second
	// MaxScaleDownDelay is the longest scale-down delay accepted: the wait runs inside one step.
	MaxScaleDownDelay = 3 * time.Minute
	// CanarySuffix is appended to the stable Deployment's name to name the canary Deployment.
	CanarySuffix = "-canary"
)

// Config is how a Kubernetes target is configured by an operator: which Deployment it releases, how
// traffic is split, and how to reach the cluster. Everything per release (service, version, percent,
// fencing token) arrives in spec.TemplateData instead.
type Config struct {
	// Kubeconfig is the path of a kubeconfig file; empty uses the in-cluster service account.
	Kubeconfig string `json:"kubeconfig,omitempty"`
	// Context selects a kubeconfig context; default its current context.
	Context string `json:"context,omitempty"`
	// Namespace of the Deployment, Services and HTTPRoute.
	Namespace string `json:"namespace"`
	// Deployment is the stable Deployment's name; the canary is "<deployment>-canary".
	Deployment string `json:"deployment"`
	// Images maps a container name of the Deployment's pod template to its image, a Go template over
	// spec.TemplateData, e.g. {"app": "registry.example.com/checkout:{{.Version}}"}. Containers not named
	// keep their image.
	Images map[string]string `json:"images"`
	// CanaryLabels are set on the canary's pods (and its selector) over the stable pod labels. In gateway
	// mode they must change a label the stable Service selects on (e.g. track: canary against the stable
	// pods' track: stable), so that the stable Service does not select canary pods.
	CanaryLabels map[string]string `json:"canaryLabels,omitempty"`
	// Traffic says how traffic is split.
	Traffic Traffic `json:"traffic"`
	// ScaleDownDelay keeps the canary's pods for this long after its traffic went to the stable version
	// (on promote and on rollback), so that in-flight requests and slow route propagation drain. At most
	// MaxScaleDownDelay; default 0.
	ScaleDownDelay spec.Duration `json:"scaleDownDelay,omitempty"`
	// HealthURL is optional: a Go template over spec.TemplateData for a URL that must answer 2xx for the
	// canary to count as healthy, on top of the Deployment being available.
	HealthURL string `json:"healthURL,omitempty"`
	// RolloutTimeout bounds each wait for a Deployment within a step; default DefaultRolloutTimeout.
	RolloutTimeout spec.Duration `json:"rolloutTimeout,omitempty"`
	// RequestTimeout bounds each API call; default DefaultRequestTimeout.
	RequestTimeout spec.Duration `json:"requestTimeout,omitempty"`
}

// Traffic selects the traffic mode.
type Traffic struct {
	// Mode is "gateway" or "replicas".
	Mode string `json:"mode"`
	// Gateway configures ModeGateway; required in that mode.
	Gateway *Gateway `json:"gateway,omitempty"`
}

// Gateway names the objects of the gateway traffic mode.
type Gateway struct {
	// HTTPRoute is the route whose backendRefs to the stable Service get the weights.
	HTTPRoute string `json:"httpRoute"`
	// StableService is the Service of the stable pods.
	StableService string `json:"stableService"`
	// CanaryService is the Service the target creates for the canary pods; default "<stableService>-canary".
	CanaryService string `json:"canaryService,omitempty"`
	// Port is the Service port the route's backendRefs use.
	Port int32 `json:"port"`
}

// WithDefaults returns c with the defaults filled in.
func (c Config) WithDefaults() Config {
	if c.RolloutTimeout == 0 {
		c.RolloutTimeout = spec.Duration(DefaultRolloutTimeout)
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = spec.Duration(DefaultRequestTimeout)
	}
	if g := c.Traffic.Gateway; g != nil && g.CanaryService == "" && g.StableService != "" {
		gw := *g
		gw.CanaryService = g.StableService + CanarySuffix
		c.Traffic.Gateway = &gw
	}
	return c
}

// CanaryName is the canary Deployment's name.
func (c Config) CanaryName() string { return c.Deployment + CanarySuffix }

// Problem is one thing wrong, at a field path: a path in the Config for configuration errors, or an
// object and a path in it for what preflight found in the cluster.
type Problem struct {
	Path    string `json:"path"`
	Message string `json:"message"`
}

func (p Problem) String() string { return p.Path + ": " + p.Message }

// ProblemsError lists every problem found, so a person can fix them all in one go. It wraps ErrPermanent.
type ProblemsError struct {
	// What was checked, e.g. "invalid kubernetes target configuration".
	What     string    `json:"what"`
	Problems []Problem `json:"problems"`
}

func (e *ProblemsError) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.String()
	}
	if len(parts) == 1 {
		return e.What + ": " + parts[0]
	}
	return fmt.Sprintf("%s (%d problems): %s", e.What, len(parts), strings.Join(parts, "; "))
}

// Unwrap returns ErrPermanent: what the problems describe needs a person, not a retry.
func (e *ProblemsError) Unwrap() error { return ErrPermanent }

type problems []Problem

func (p *problems) add(path, format string, args ...any) {
	*p = append(*p, Problem{Path: path, Message: fmt.Sprintf(format, args...)})
}

func (p problems) err(what string) error {
	if len(p) == 0 {
		return nil
	}
	return &ProblemsError{What: what, Problems: p}
}

// Validate checks the configuration (after WithDefaults or not) without contacting the cluster and
// returns a *ProblemsError whose paths are relative to the Config (e.g. "traffic.gateway.port").
func (c Config) Validate() error {
	c = c.WithDefaults()
	var p problems
	if c.Namespace == "" {
		p.add("namespace", "required")
	} else if errs := validation.IsDNS1123Label(c.Namespace); len(errs) > 0 {
		p.add("namespace", "%q: %s", c.Namespace, strings.Join(errs, "; "))
	}
	if c.Deployment == "" {
		p.add("deployment", "required: the stable Deployment's name")
	} else if errs := validation.IsDNS1123Subdomain(c.CanaryName()); len(errs) > 0 {
		p.add("deployment", "%q (its canary %q): %s", c.Deployment, c.CanaryName(), strings.Join(errs, "; "))
	}
	if len(c.Images) == 0 {
		p.add("images", "required: at least one container name with its image template, e.g. {app: \"registry/app:{{.Version}}\"}")
	}
	for _, name := range sortedKeys(c.Images) {
		path := "images." + name
		if errs := validation.IsDNS1123Label(name); len(errs) > 0 {
			p.add(path, "container name %q: %s", name, strings.Join(errs, "; "))
		}
		img, err := render(c.Images[name], sample)
		switch {
		case err != nil:
			p.add(path, "%v", err)
		case img == "" || strings.ContainsAny(img, " \t\n"):
			p.add(path, "renders to %q, not an image reference", img)
		}
	}
	for _, k := range sortedKeys(c.CanaryLabels) {
		if errs := validation.IsQualifiedName(k); len(errs) > 0 {
			p.add("canaryLabels."+k, "label key: %s", strings.Join(errs, "; "))
		}
		if errs := validation.IsValidLabelValue(c.CanaryLabels[k]); len(errs) > 0 {
			p.add("canaryLabels."+k, "label value %q: %s", c.CanaryLabels[k], strings.Join(errs, "; "))
		}
		if strings.HasPrefix(k, annotationPrefix) {
			p.add("canaryLabels."+k, "keys under %s are the target's own", annotationPrefix)
		}
	}
	switch c.Traffic.Mode {
	case ModeGateway:
		g := c.Traffic.Gateway
		if g == nil {
			p.add("traffic.gateway", "required when traffic.mode is %q", ModeGateway)
			break
		}
		for _, f := range []struct{ path, v string }{
			{"traffic.gateway.httpRoute", g.HTTPRoute}, {"traffic.gateway.stableService", g.StableService},
			{"traffic.gateway.canaryService", g.CanaryService},
		} {
			if f.v == "" && f.path == "traffic.gateway.canaryService" {
				continue // defaults to <stableService>-canary, which is reported above if missing
			}
			if f.v == "" {
				p.add(f.path, "required")
			} else if errs := validation.IsDNS1035Label(f.v); f.path != "traffic.gateway.httpRoute" && len(errs) > 0 {
				p.add(f.path, "%q: %s", f.v, strings.Join(errs, "; "))
			}
		}
		if g.StableService != "" && g.CanaryService == g.StableService {
			p.add("traffic.gateway.canaryService", "must differ from stableService")
		}
		if g.Port < 1 || g.Port > 65535 {
			p.add("traffic.gateway.port", "must be the Service port the route uses, 1-65535")
		}
		if len(c.CanaryLabels) == 0 {
			p.add("canaryLabels", "required in gateway mode: labels that keep the stable Service from selecting canary "+
				"pods, e.g. {track: canary} with track: stable on the stable pods and in the stable Service's selector")
		}
	case ModeReplicas:
		if c.Traffic.Gateway != nil {
			p.add("traffic.gateway", "only allowed when traffic.mode is %q", ModeGateway)
		}
	case "":
		p.add("traffic.mode", "required: %q or %q", ModeGateway, ModeReplicas)
	default:
		p.add("traffic.mode", "unknown mode %q: want %q or %q", c.Traffic.Mode, ModeGateway, ModeReplicas)
	}
	if d := c.ScaleDownDelay.D(); d < 0 || d > MaxScaleDownDelay {
		p.add("scaleDownDelay", "must be between 0 and %s (it is waited for inside one step)", MaxScaleDownDelay)
	}
	if d := c.RolloutTimeout.D(); d < time.Second || d > DefaultRolloutTimeout {
		p.add("rolloutTimeout", "must be between 1s and %s (steps time out after 5m and are retried)", DefaultRolloutTimeout)
	}
	if d := c.RequestTimeout.D(); d < time.Second || d > time.Minute {
		p.add("requestTimeout", "must be between 1s and 1m")
	}
	if c.HealthURL != "" {
		u, err := render(c.HealthURL, sample)
		if err != nil {
			p.add("healthURL", "%v", err)
		} else if pu, err := url.Parse(u); err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
			p.add("healthURL", "renders to %q, not an absolute http:// or https:// URL", u)
		}
	}
	return p.err("invalid kubernetes target configuration")
}

// sample is what templates are rendered over when validating.
var sample = spec.TemplateData{Service: "svc", Environment: "env", Version: "v2", PreviousVersion: "v1",
	ReleaseID: "release:svc:env/run", Step: "deploy", Seq: 1}

func render(tmpl string, data spec.TemplateData) (string, error) {
	t, err := template.New("").Option("missingkey=error").Parse(tmpl)
	if err != nil {
		return "", fmt.Errorf("template does not parse: %v", err)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return "", fmt.Errorf("template does not render: %v", err)
	}
	return b.String(), nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
