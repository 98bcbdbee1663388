package e2e

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/shepherd-release/shepherd/internal/devstack"
	"github.com/shepherd-release/shepherd/internal/testenv"
	"github.com/shepherd-release/shepherd/worker"
	"github.com/shepherd-release/shepherd/workflows"
)

// recordHistories makes the tests that end in a release worth keeping write its history to
// testdata/histories/, where workflows/replay_test.go replays it.
var recordHistories = flag.Bool("record", false, "write the histories of the recorded runs to testdata/histories/*.json")

// envRequireE2E set to "1" turns a missing binary from a skip into a failure (CI sets it).
const envRequireE2E = "SHEPHERD_REQUIRE_E2E"

// stack is what every test shares: one dev server and one shepherd binary.
type stack struct {
	// dir holds the binary, the server log, and an empty Temporal client config file.
	dir string
	// shepherd is the freshly built binary; temporal is the Temporal CLI that also runs the server.
	shepherd, temporal string
	// addr is the dev server's frontend address.
	addr   string
	server *devstack.Temporal
	// cluster, for the fault suite's stack (faults_harness_test.go), is PostgreSQL and the Temporal
	// server; server is nil then.
	cluster *devstack.Cluster
	// admin is a client of the default namespace, used to create each test's namespace.
	admin client.Client
	// configFile is an empty TOML file given as TEMPORAL_CONFIG_FILE to every child process, so a
	// profile in the developer's home directory cannot redirect the tests to another server.
	configFile string

	// skip is set when a binary is missing (skip, or fail under SHEPHERD_REQUIRE_E2E=1); err when setup failed.
	skip string
	err  error
}

var (
	setupOnce sync.Once
	shared    *stack
	// atExit runs after every test, before TestMain exits (the fault suite stops its cluster there).
	atExit []func(failed bool)
)

func TestMain(m *testing.M) {
	flag.Parse()
	// The tests wait on soaks and server timeouts, not on the CPU: run them all at once unless -parallel
	// says otherwise (its default, GOMAXPROCS, is 2 on CI machines and would double the run time).
	parallelSet := false
	flag.Visit(func(f *flag.Flag) { parallelSet = parallelSet || f.Name == "test.parallel" })
	if !parallelSet {
		_ = flag.Set("test.parallel", "16")
	}
	code := m.Run()
	if shared != nil {
		if code != 0 && shared.dir != "" {
			if tail := fileTail(filepath.Join(shared.dir, "temporal-server.log"), 40); tail != "" {
				fmt.Fprintf(os.Stderr, "--- tail of the Temporal dev server log ---\n%s\n", tail)
			}
		}
		shared.close()
	}
	stopAllWorkers()
	for _, f := range atExit {
		f(code != 0)
	}
	os.Exit(code)
}

// sharedStack returns the shared stack, starting it on first use, so a run that selects no test here
// starts nothing.
func sharedStack(t *testing.T) *stack {
	t.Helper()
	setupOnce.Do(func() { shared = setup() })
	switch {
	case shared.skip != "":
		if os.Getenv(envRequireE2E) == "1" {
			t.Fatalf("%s (%s=1 requires the end-to-end tests to run)", shared.skip, envRequireE2E)
		}
		t.Skip(shared.skip)
	case shared.err != nil:
		t.Fatalf("end-to-end stack: %v", shared.err)
	}
	return shared
}

// tenv is one test's corner of the stack: its own namespace (so its worker polls the task queue
// "shepherd" without picking up another test's tasks, and tests run in parallel) and a client of it.
type tenv struct {
	*stack
	t      *testing.T
	ns     string
	client client.Client
	// cfg is the worker configuration the test's workers start with (shared by with's copies), and
	// approvals its approvals section (by default: unsigned approvals count everywhere, as on a laptop).
	cfg       workerConfig
	approvals map[string]any
	// lazy, when it holds a state directory, is a worker to start before the test's first command, so
	// a test can finish configuring providers after newReleaseEnv.
	lazy *string
}

// newEnv gives the test the namespace ns, created on first use with every release search attribute
// (as `temporal operator namespace create` and `temporal operator search-attribute create` would).
func newEnv(t *testing.T, ns string) *tenv {
	t.Helper()
	return sharedStack(t).env(t, ns)
}

// env gives the test the namespace ns on this stack; see newEnv.
func (s *stack) env(t *testing.T, ns string) *tenv {
	t.Helper()
	// A real server takes a new namespace into use at its namespace cache refresh (about 10 s).
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	create := s.createNamespace
	if s.cluster != nil {
		create = s.cluster.CreateNamespace // the Temporal CLI, as an operator does
	}
	if err := create(ctx, ns); err != nil {
		t.Fatalf("creating namespace %s: %v", ns, err)
	}
	c, err := client.DialContext(ctx, client.Options{HostPort: s.addr, Namespace: ns, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	// The worker refuses to start until the namespace has every attribute; wait for the same check.
	var last error
	for {
		if last = worker.CheckNamespace(ctx, c, ns); last == nil {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("namespace %s not ready: %v", ns, last)
		case <-time.After(pollEvery):
		}
	}
	return &tenv{stack: s, t: t, ns: ns, client: c, cfg: workerConfig{}, lazy: new(string),
		approvals: map[string]any{"unsignedEnvironments": []string{"*"}}}
}

// with is e for a subtest: the same namespace, with failures reported on t.
func (e *tenv) with(t *testing.T) *tenv {
	c := *e
	c.t = t
	return &c
}

func (s *stack) createNamespace(ctx context.Context, ns string) error {
	_, err := s.admin.WorkflowService().RegisterNamespace(ctx, &workflowservice.RegisterNamespaceRequest{
		Namespace:                        ns,
		WorkflowExecutionRetentionPeriod: durationpb.New(24 * time.Hour),
	})
	var exists *serviceerror.NamespaceAlreadyExists
	if err != nil && !errors.As(err, &exists) {
		return err
	}
	attrs := map[string]enumspb.IndexedValueType{}
	for _, sa := range workflows.SearchAttributes {
		attrs[sa.Name] = enumspb.IndexedValueType(enumspb.IndexedValueType_value["INDEXED_VALUE_TYPE_"+strings.ToUpper(sa.Type)])
	}
	_, err = s.admin.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{
		Namespace: ns, SearchAttributes: attrs,
	})
	var already *serviceerror.AlreadyExists
	if err != nil && !errors.As(err, &already) {
		return err
	}
	return nil
}

func setup() *stack {
	s := &stack{}
	temporal, err := devstack.FindTemporal()
	if err != nil {
		s.skip = fmt.Sprintf("Temporal CLI not found (%v); make tools builds it", err)
		return s
	}
	s.temporal = temporal
	if s.dir, err = os.MkdirTemp("", "shepherd-e2e-"); err != nil {
		s.err = err
		return s
	}
	s.configFile = filepath.Join(s.dir, "temporal.toml")
	if s.err = os.WriteFile(s.configFile, nil, 0o644); s.err != nil {
		return s
	}

	// Build the binary while the server starts: both take seconds on a 2-core machine.
	built := make(chan error, 1)
	s.shepherd = filepath.Join(s.dir, "shepherd")
	go func() { built <- buildShepherd(s.shepherd) }()

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	s.server, err = devstack.StartTemporal(ctx, devstack.TemporalOptions{
		Binary:  temporal,
		UIPort:  -1,
		LogFile: filepath.Join(s.dir, "temporal-server.log"),
	})
	if err != nil {
		<-built
		s.err = err
		return s
	}
	s.addr = s.server.Address
	if err := <-built; err != nil {
		s.err = err
		return s
	}
	s.admin, s.err = client.DialContext(ctx, client.Options{HostPort: s.addr, Logger: quietLogger()})
	return s
}

func (s *stack) close() {
	if s.admin != nil {
		s.admin.Close()
	}
	s.server.Stop()
	if s.dir != "" {
		_ = os.RemoveAll(s.dir)
	}
}

// buildShepherd builds ./cmd/shepherd, as `go build -o bin/shepherd ./cmd/shepherd` does.
func buildShepherd(out string) error {
	return testenv.GoBuild(out, testenv.Module+"/cmd/shepherd")
}

// childEnv is the environment of every process a test starts: the caller's, minus its Temporal and
// Shepherd settings, pointed at the test's namespace on the test server.
func (e *tenv) childEnv(extra ...string) []string {
	var out []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "TEMPORAL_") || strings.HasPrefix(kv, "SHEPHERD_") {
			continue
		}
		out = append(out, kv)
	}
	out = append(out,
		"TEMPORAL_ADDRESS="+e.addr,
		"TEMPORAL_NAMESPACE="+e.ns,
		"TEMPORAL_CONFIG_FILE="+e.configFile,
	)
	return append(out, extra...)
}

func quietLogger() sdklog.Logger {
	return sdklog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))
}

// fileTail returns the last n lines of a file, or "" when it cannot be read.
func fileTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
