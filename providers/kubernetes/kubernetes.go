// Package kubernetes is the "kubernetes" deploy target: it releases a plain Deployment by running a
// canary Deployment beside it, splits traffic with a Gateway API HTTPRoute's weights or with replica
// counts, and promotes or rolls back, with nothing installed in the cluster but the objects it manages.
//
// It is plain Go over client-go (no Temporal, no Shepherd activities). Every method takes the release's
// facts in spec.TemplateData and is idempotent per step. Every write is an Update against the resourceVersion
// just read (optimistic concurrency, retried a bounded number of times on Conflict) and carries the
// release's fencing token (annotations shepherd.dev/release and shepherd.dev/step-seq); a step whose
// Seq is older than the newest one applied is refused with an error wrapping ErrStaleWrite. Errors that
// retrying cannot fix wrap ErrPermanent. Callers map both to their own error kinds (see
// providers/kubernetes/adapter). docs/targets.md describes what the target writes and in which order.
package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	kube "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	gateway "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"

	"github.com/shepherd-release/shepherd/providers"
)

// ErrPermanent is in the chain of every error that retrying cannot fix: invalid configuration, a missing
// object, missing permissions, an object owned by another release, a rollout past its progress deadline.
var ErrPermanent = providers.ErrPermanent

// ErrStaleWrite is in the chain of the error of a step refused by the fencing token: the objects already
// carry a newer step of the same release (the step is a late write from a cancelled or partitioned
// attempt), or another release has taken the Deployment over since.
var ErrStaleWrite = providers.ErrStaleWrite

// maxConflicts bounds the read-modify-write retries of one object on a Conflict answer; after that the
// step fails with a retryable error and its activity retries. Conflicts are routine on Deployments: the
// controller writes their status after every change.
const maxConflicts = 10

// conflictBackoff is the pause before the n-th re-read after a Conflict (n × conflictBackoff).
const conflictBackoff = 20 * time.Millisecond

// pollEvery is how often waits re-read a Deployment.
const pollEvery = 500 * time.Millisecond

// Target releases one Deployment as configured. Build it with New (or NewForConfig in tests); it is safe
// for concurrent use.
type Target struct {
	cfg  Config
	kube kube.Interface
	gw   gateway.Interface
	http *http.Client
	// now is the clock of the scale-down delay; tests replace it.
	now func() time.Time
}

// New validates cfg and connects to the cluster it names: the kubeconfig file (and context) if set,
// else the in-cluster service account. Nothing is contacted until a method runs.
func New(cfg Config) (*Target, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	rc, err := RESTConfig(cfg)
	if err != nil {
		return nil, err
	}
	return NewForConfig(cfg, rc)
}

// RESTConfig is the client configuration cfg names: its kubeconfig file and context, or in-cluster.
func RESTConfig(cfg Config) (*rest.Config, error) {
	if cfg.Kubeconfig == "" {
		rc, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("kubernetes target: no kubeconfig configured and not in a cluster: %v: %w", err, ErrPermanent)
		}
		return rc, nil
	}
	rules := &clientcmd.ClientConfigLoadingRules{ExplicitPath: cfg.Kubeconfig}
	overrides := &clientcmd.ConfigOverrides{CurrentContext: cfg.Context}
	rc, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubernetes target: kubeconfig %s: %v: %w", cfg.Kubeconfig, err, ErrPermanent)
	}
	return rc, nil
}

// NewForConfig is New with the client configuration given.
func NewForConfig(cfg Config, rc *rest.Config) (*Target, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	rc = rest.CopyConfig(rc)
	rc.UserAgent = "shepherd"
	if rc.QPS == 0 {
		rc.QPS, rc.Burst = 20, 40
	}
	k, err := kube.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("kubernetes target: client: %v: %w", err, ErrPermanent)
	}
	g, err := gateway.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("kubernetes target: gateway client: %v: %w", err, ErrPermanent)
	}
	return newTarget(cfg, k, g), nil
}

func newTarget(cfg Config, k kube.Interface, g gateway.Interface) *Target {
	return &Target{cfg: cfg, kube: k, gw: g, http: &http.Client{Timeout: cfg.RequestTimeout.D()}, now: time.Now}
}

// Config returns the target's configuration with its defaults.
func (t *Target) Config() Config { return t.cfg }

// apiError wraps an API server error with what was being done, adding ErrPermanent when a retry would
// only repeat it (not found, forbidden, invalid, bad request, unauthorized).
func apiError(what string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, ErrPermanent) || errors.Is(err, ErrStaleWrite) {
		return fmt.Errorf("%s: %w", what, err)
	}
	switch {
	case apierrors.IsNotFound(err), apierrors.IsForbidden(err), apierrors.IsInvalid(err), apierrors.IsBadRequest(err),
		apierrors.IsUnauthorized(err), apierrors.IsMethodNotSupported(err), apierrors.IsGone(err):
		return fmt.Errorf("kubernetes target: %s: %v: %w", what, err, ErrPermanent)
	}
	return fmt.Errorf("kubernetes target: %s: %w", what, err)
}

// call bounds one API call by the request timeout.
func (t *Target) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, t.cfg.RequestTimeout.D())
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-tm.C:
		return nil
	}
}
