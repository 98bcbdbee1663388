// Package worker runs a Shepherd worker: it checks the namespace is ready for releases, registers the
// workflows and activities (through the same functions the replay tests use) and polls the task queue
// until its context ends, then stops gracefully.
package worker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"

	"github.com/shepherd-release/shepherd/activities"
	"github.com/shepherd-release/shepherd/config"
	"github.com/shepherd-release/shepherd/workflows"
)

// Config configures a worker.
type Config struct {
	// Namespace the client is connected to; used in start-up checks and messages. Default "default".
	Namespace string
	// TaskQueue to poll; default workflows.TaskQueue.
	TaskQueue string
	// Activities are the activities over the worker's providers (Providers.Activities); default none,
	// which rejects every release with the list of what the worker lacks.
	Activities *activities.Activities
	// StopTimeout is how long a stopping worker lets running activities (release steps) finish before
	// it cancels them; default DefaultStopTimeout.
	StopTimeout time.Duration
	// SkipChecks skips the namespace and search-attribute checks (tests against the test server only).
	SkipChecks bool
	// OnReady is called once the worker polls; optional.
	OnReady func()
	// Tuning sets pollers, task slots and the sticky cache (the configuration's worker section); zero
	// fields take config.DefaultTuning.
	Tuning config.Tuning
}

// DefaultStopTimeout lets a running step (a deploy, a traffic shift, a rollback step) finish when the
// worker is stopped: long enough for the default exec command timeout.
const DefaultStopTimeout = 5*time.Minute + 30*time.Second

// DefaultStateDir is $XDG_STATE_HOME/shepherd, or ~/.local/state/shepherd.
func DefaultStateDir() string {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "shepherd")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "shepherd-state")
	}
	return filepath.Join(home, ".local", "state", "shepherd")
}

// Run checks the namespace, then polls until ctx ends, then stops gracefully: it stops polling and lets
// running activities finish for up to StopTimeout; only then are they cancelled (and retried elsewhere).
func Run(ctx context.Context, c client.Client, cfg Config) error {
	if cfg.TaskQueue == "" {
		cfg.TaskQueue = workflows.TaskQueue
	}
	if cfg.Namespace == "" {
		cfg.Namespace = client.DefaultNamespace
	}
	if cfg.StopTimeout <= 0 {
		cfg.StopTimeout = DefaultStopTimeout
	}
	if !cfg.SkipChecks {
		if err := CheckNamespace(ctx, c, cfg.Namespace); err != nil {
			return err
		}
	}
	a := cfg.Activities
	if a == nil {
		a = (&Providers{}).Activities()
	}
	t := cfg.Tuning.WithDefaults()
	release, err := acquireStickyCache(t.StickyCacheSize)
	if err != nil {
		return err
	}
	defer release()
	w := sdkworker.New(c, cfg.TaskQueue, Options(t, cfg.StopTimeout))
	workflows.RegisterWorkflows(w)
	workflows.RegisterActivities(w, a)
	if err := w.Start(); err != nil {
		return fmt.Errorf("starting the worker on task queue %q: %w", cfg.TaskQueue, err)
	}
	if cfg.OnReady != nil {
		cfg.OnReady()
	}
	<-ctx.Done()
	w.Stop()
	return nil
}

// Options are the SDK worker options for a tuning (zero fields take config.DefaultTuning). The sticky
// cache size is not among them: it belongs to the process (acquireStickyCache).
func Options(t config.Tuning, stopTimeout time.Duration) sdkworker.Options {
	t = t.WithDefaults()
	return sdkworker.Options{
		WorkerStopTimeout:                       stopTimeout,
		MaxConcurrentWorkflowTaskPollers:        t.WorkflowTaskPollers,
		MaxConcurrentActivityTaskPollers:        t.ActivityTaskPollers,
		MaxConcurrentWorkflowTaskExecutionSize:  t.MaxConcurrentWorkflowTasks,
		MaxConcurrentActivityExecutionSize:      t.MaxConcurrentActivities,
		MaxConcurrentLocalActivityExecutionSize: t.MaxConcurrentLocalActivities,
	}
}

// stickyCache tracks the process-wide sticky workflow cache: the SDK shares one cache among every worker
// of a process and takes its size only before the first of them starts (worker.SetStickyWorkflowCacheSize).
var stickyCache struct {
	sync.Mutex
	size, users int
}

// acquireStickyCache sets the process's sticky cache size for a worker about to start, or refuses when
// a worker of this process runs with another size already: the SDK would silently keep the first.
func acquireStickyCache(size int) (release func(), err error) {
	stickyCache.Lock()
	defer stickyCache.Unlock()
	if stickyCache.users > 0 && stickyCache.size != size {
		return nil, fmt.Errorf("worker.stickyCacheSize %d: the sticky workflow cache belongs to the process and a worker in it "+
			"runs with %d; run workers with different sizes as separate processes", size, stickyCache.size)
	}
	if stickyCache.users == 0 {
		sdkworker.SetStickyWorkflowCacheSize(size)
		stickyCache.size = size
	}
	stickyCache.users++
	var once sync.Once
	return func() {
		once.Do(func() {
			stickyCache.Lock()
			defer stickyCache.Unlock()
			stickyCache.users--
		})
	}, nil
}

// CheckNamespace verifies that the namespace exists and knows every custom search attribute the Release
// workflow upserts; an unknown attribute would otherwise stall every release silently.
func CheckNamespace(ctx context.Context, c client.Client, namespace string) error {
	if _, err := c.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: namespace}); err != nil {
		return fmt.Errorf("namespace %q is not usable: %w\n  create it with: temporal operator namespace create --namespace %s", namespace, err, namespace)
	}
	resp, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
	if err != nil {
		return fmt.Errorf("listing search attributes of namespace %q: %w", namespace, err)
	}
	return missingAttributes(namespace, resp.GetCustomAttributes())
}

// MissingAttributesError lists the search attributes a namespace lacks, with the command that adds them.
type MissingAttributesError struct {
	Namespace string
	Missing   []string
	Command   string
}

func (e *MissingAttributesError) Error() string {
	return fmt.Sprintf("namespace %q lacks the search attributes %s that releases record their state in; "+
		"without them every release would stall. Create them with:\n  %s\n(the dev server takes them at start: temporal server start-dev %s)",
		e.Namespace, strings.Join(e.Missing, ", "), e.Command, DevServerFlags())
}

func missingAttributes(namespace string, have map[string]enumspb.IndexedValueType) error {
	var missing, args []string
	var wrongType []string
	for _, sa := range workflows.SearchAttributes {
		t, ok := have[sa.Name]
		if !ok {
			missing = append(missing, sa.Name)
			args = append(args, "--name", sa.Name, "--type", sa.Type)
			continue
		}
		if got := strings.TrimPrefix(t.String(), "INDEXED_VALUE_TYPE_"); !strings.EqualFold(got, sa.Type) {
			wrongType = append(wrongType, fmt.Sprintf("%s is %s, want %s", sa.Name, got, sa.Type))
		}
	}
	if len(wrongType) > 0 {
		sort.Strings(wrongType)
		return errors.New("search attributes of the wrong type in namespace " + namespace + ": " + strings.Join(wrongType, "; "))
	}
	if len(missing) == 0 {
		return nil
	}
	return &MissingAttributesError{
		Namespace: namespace, Missing: missing,
		Command: "temporal operator search-attribute create --namespace " + namespace + " " + strings.Join(args, " "),
	}
}

// DevServerFlags are the `temporal server start-dev` flags that register every search attribute.
func DevServerFlags() string {
	var parts []string
	for _, sa := range workflows.SearchAttributes {
		parts = append(parts, "--search-attribute "+sa.Name+"="+sa.Type)
	}
	return strings.Join(parts, " ")
}
