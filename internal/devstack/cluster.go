package devstack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/template"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/shepherd-release/shepherd/workflows"
)

// The production-shaped stack: PostgreSQL (Debian's server, as its own user), the schema set up by
// temporal-sql-tool, the real Temporal server binary, and the namespace and search attributes created
// with the Temporal CLI the way an operator does. docker-compose.yml runs the same versions with the same
// settings; docs/operations.md ("Production deployment") describes both.

// TemporalServerVersion is the Temporal server (and temporal-sql-tool) version Shepherd is tested on; the
// pinned CLI's dev server embeds the same version.
const TemporalServerVersion = "1.29.1"

// PostgresMajor is the PostgreSQL major version the stack is tested with: Debian 12's postgresql package.
// docker-compose.yml runs the same major.
const PostgresMajor = 15

// NumHistoryShards is the cluster's history shard count. It is fixed when the schema is created and can
// never change; docker-compose.yml sets the same (NUM_HISTORY_SHARDS).
const NumHistoryShards = 4

// Schema names embedded in temporal-sql-tool (`--schema-name`), so no schema files need to be on disk.
const (
	schemaTemporal   = "postgresql/v12/temporal"
	schemaVisibility = "postgresql/v12/visibility"
)

// Databases and the role Temporal connects as (the same names as docker-compose.yml).
const (
	dbTemporal   = "temporal"
	dbVisibility = "temporal_visibility"
	dbUser       = "temporal"
)

// Bounds on starting and stopping the cluster's processes; generous for a busy 2-core machine.
const (
	postgresReadyTimeout = 60 * time.Second
	serverReadyTimeout   = 120 * time.Second
	processStopTimeout   = 20 * time.Second
)

// FindTemporalServer returns the Temporal server binary: $SHEPHERD_TEMPORAL_SERVER, else the project
// cache (CacheBin()/temporal-server, built by `make tools-cluster`), else `temporal-server` on PATH.
func FindTemporalServer() (string, error) {
	return findBinary("temporal-server", "SHEPHERD_TEMPORAL_SERVER")
}

// FindSQLTool returns temporal-sql-tool: $SHEPHERD_TEMPORAL_SQL_TOOL, else the project cache, else PATH.
func FindSQLTool() (string, error) {
	return findBinary("temporal-sql-tool", "SHEPHERD_TEMPORAL_SQL_TOOL")
}

// FindPostgres returns the directory holding PostgreSQL's server binaries (initdb, postgres):
// $SHEPHERD_POSTGRES_BIN, else the newest /usr/lib/postgresql/<major>/bin (Debian's postgresql package),
// else the directory of `initdb` on PATH.
func FindPostgres() (string, error) {
	if d := os.Getenv("SHEPHERD_POSTGRES_BIN"); d != "" {
		if !isExecutable(filepath.Join(d, "postgres")) {
			return "", fmt.Errorf("SHEPHERD_POSTGRES_BIN=%s holds no postgres binary", d)
		}
		return d, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return pgMajor(dirs[i]) > pgMajor(dirs[j]) })
	for _, d := range dirs {
		if isExecutable(filepath.Join(d, "postgres")) && isExecutable(filepath.Join(d, "initdb")) {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", errors.New("PostgreSQL server not found (looked at $SHEPHERD_POSTGRES_BIN, /usr/lib/postgresql/*/bin, PATH); " +
		"install it with: apt-get install -y postgresql")
}

func pgMajor(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

// FindClusterBinaries finds every binary StartCluster needs, or says which is missing and how to get it.
func FindClusterBinaries() (ClusterBinaries, error) {
	var b ClusterBinaries
	var errs []error
	var err error
	if b.Server, err = FindTemporalServer(); err != nil {
		errs = append(errs, err)
	}
	if b.SQLTool, err = FindSQLTool(); err != nil {
		errs = append(errs, err)
	}
	if b.CLI, err = FindTemporal(); err != nil {
		errs = append(errs, err)
	}
	if b.PostgresBin, err = FindPostgres(); err != nil {
		errs = append(errs, err)
	}
	return b, errors.Join(errs...)
}

// ClusterBinaries are the programs the cluster runs.
type ClusterBinaries struct {
	// Server is the Temporal server (go.temporal.io/server/cmd/server), SQLTool temporal-sql-tool
	// (go.temporal.io/server/cmd/tools/sql), CLI the Temporal CLI (namespace and search attributes).
	Server, SQLTool, CLI string
	// PostgresBin is the directory of PostgreSQL's initdb and postgres.
	PostgresBin string
}

// ClusterOptions configure StartCluster.
type ClusterOptions struct {
	// Binaries default to FindClusterBinaries().
	Binaries ClusterBinaries
	// Dir holds PostgreSQL's data, the server's configuration and the logs; it is created, and reused
	// (data kept) when it holds a cluster already. When running as root the user postgres must be able
	// to reach it (no 0700 directory above it).
	Dir string
	// Port is the frontend's gRPC port on 127.0.0.1; 0 picks a free one. The server's other ports
	// (internal services, membership, HTTP, metrics) and PostgreSQL's are always picked free.
	Port int
	// Namespace is created with the release search attributes; default "default".
	Namespace string
	// LogLevel of the Temporal server; default "warn".
	LogLevel string
}

// Cluster is a running production-shaped Temporal: PostgreSQL and the Temporal server as separate
// processes, each of which can be stopped and started again (the fault tests do).
type Cluster struct {
	// Address is the frontend's host:port; Namespace the namespace it was started with.
	Address, Namespace string
	// Dir is the cluster's directory; ServerLog and PostgresLog the two logs in it.
	Dir, ServerLog, PostgresLog string
	// MetricsURL serves the server's Prometheus metrics.
	MetricsURL string

	opts     ClusterOptions
	ports    clusterPorts
	pgData   string
	cred     *syscall.Credential // the postgres user's, when running as root
	postgres *proc
	server   *proc
}

// clusterPorts are every loopback port the cluster listens on.
type clusterPorts struct {
	Postgres, Frontend, FrontendHTTP, FrontendMembership int
	History, HistoryMembership                           int
	Matching, MatchingMembership                         int
	Worker, WorkerMembership                             int
	Metrics                                              int
}

// StartCluster starts PostgreSQL (initialising its data directory and Temporal's schema on first use),
// the Temporal server, and creates the namespace and the release search attributes with the Temporal
// CLI, as an operator would. It returns once releases can start on the namespace (a query over every
// release search attribute succeeds). Stop ends every process it started.
func StartCluster(ctx context.Context, o ClusterOptions) (*Cluster, error) {
	if o.Binaries == (ClusterBinaries{}) {
		b, err := FindClusterBinaries()
		if err != nil {
			return nil, err
		}
		o.Binaries = b
	}
	if o.Dir == "" {
		return nil, errors.New("cluster directory not set")
	}
	if o.Namespace == "" {
		o.Namespace = client.DefaultNamespace
	}
	if o.LogLevel == "" {
		o.LogLevel = "warn"
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, err
	}
	c := &Cluster{Dir: dir, Namespace: o.Namespace, opts: o, pgData: filepath.Join(dir, "postgres"),
		ServerLog: filepath.Join(dir, "temporal-server.log"), PostgresLog: filepath.Join(dir, "postgres.log")}
	if err := os.MkdirAll(filepath.Join(dir, "config", "dynamicconfig"), 0o755); err != nil {
		return nil, err
	}
	if os.Geteuid() == 0 {
		// PostgreSQL refuses to run as root: it runs as the postgres user the Debian package creates.
		if c.cred, err = userCredential("postgres"); err != nil {
			return nil, fmt.Errorf("running as root, PostgreSQL needs the user postgres: %w", err)
		}
	}
	if err := c.pickPorts(o.Port); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			c.Stop()
		}
	}()
	if err := c.initPostgres(ctx); err != nil {
		return nil, err
	}
	if err := c.StartPostgres(ctx); err != nil {
		return nil, err
	}
	if err := c.setupSchema(ctx); err != nil {
		return nil, err
	}
	if err := c.writeServerConfig(); err != nil {
		return nil, err
	}
	if err := c.StartTemporal(ctx); err != nil {
		return nil, err
	}
	if err := c.CreateNamespace(ctx, o.Namespace); err != nil {
		return nil, err
	}
	ok = true
	return c, nil
}

// pickPorts picks free loopback ports for every listener; frontend, if set, is the frontend's.
//
// They come from below Linux's ephemeral range (32768 and up by default), for two reasons: Temporal
// stores a membership port in a smallint column (a port above 32767 stops the server at start, "out of
// range for type smallint"), and a port outside the range cannot be taken by some client's outgoing
// connection while a test restarts the server or the database.
func (c *Cluster) pickPorts(frontend int) error {
	var free []int
	for len(free) < 11 {
		p, err := freeLowPort()
		if err != nil {
			return err
		}
		if !slices.Contains(free, p) && p != frontend {
			free = append(free, p)
		}
	}
	c.ports = clusterPorts{free[0], free[1], free[2], free[3], free[4], free[5], free[6], free[7], free[8], free[9], free[10]}
	if frontend != 0 {
		c.ports.Frontend = frontend
	}
	c.Address = "127.0.0.1:" + strconv.Itoa(c.ports.Frontend)
	c.MetricsURL = "http://127.0.0.1:" + strconv.Itoa(c.ports.Metrics) + "/metrics"
	return nil
}

// initPostgres creates the data directory with initdb unless it exists.
func (c *Cluster) initPostgres(ctx context.Context) error {
	if _, err := os.Stat(filepath.Join(c.pgData, "PG_VERSION")); err == nil {
		return nil
	}
	if err := os.MkdirAll(c.pgData, 0o700); err != nil {
		return err
	}
	if c.cred != nil {
		for _, p := range []string{c.pgData, c.PostgresLog} {
			if p == c.PostgresLog {
				if err := os.WriteFile(p, nil, 0o644); err != nil {
					return err
				}
			}
			if err := os.Chown(p, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
				return err
			}
		}
	}
	// trust on loopback only: the server listens on 127.0.0.1 and a socket in its own data directory.
	// A real deployment uses scram-sha-256 with the password in Temporal's config (docs/operations.md).
	out, err := c.runAs(ctx, c.cred, filepath.Join(c.opts.Binaries.PostgresBin, "initdb"),
		"-D", c.pgData, "-U", dbUser, "--auth=trust", "--encoding=UTF8", "--no-sync")
	if err != nil {
		if c.cred != nil && strings.Contains(out, "Permission denied") {
			out += "\n(the user postgres cannot reach " + c.Dir + ": put the cluster directory where every user can traverse, e.g. under /var/tmp)"
		}
		return fmt.Errorf("initdb: %w\n%s", err, out)
	}
	return nil
}

// StartPostgres starts PostgreSQL on its port and waits until it takes connections.
func (c *Cluster) StartPostgres(ctx context.Context) error {
	if c.postgres.running() {
		return nil
	}
	args := []string{"-D", c.pgData, "-p", strconv.Itoa(c.ports.Postgres), "-k", c.pgData,
		"-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200", "-c", "fsync=on"}
	p, err := startProc(filepath.Join(c.opts.Binaries.PostgresBin, "postgres"), args, c.PostgresLog, c.cred, syscall.SIGINT)
	if err != nil {
		return fmt.Errorf("starting PostgreSQL: %w", err)
	}
	c.postgres = p
	isReady := filepath.Join(c.opts.Binaries.PostgresBin, "pg_isready")
	deadline := time.Now().Add(postgresReadyTimeout)
	for {
		if !p.running() {
			return fmt.Errorf("PostgreSQL exited: %v\n%s", p.err, tailFile(c.PostgresLog, 20))
		}
		cmd := exec.CommandContext(ctx, isReady, "-h", "127.0.0.1", "-p", strconv.Itoa(c.ports.Postgres), "-U", dbUser, "-d", "postgres")
		if cmd.Run() == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("PostgreSQL not ready on port %d after %s\n%s", c.ports.Postgres, postgresReadyTimeout, tailFile(c.PostgresLog, 20))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// StopPostgres stops PostgreSQL with a fast shutdown (clients disconnected, a clean checkpoint).
func (c *Cluster) StopPostgres() { c.postgres.stop(syscall.SIGINT) }

// setupSchema runs temporal-sql-tool's schema steps for both databases, as docs/operations.md lists them,
// unless a previous start finished them.
func (c *Cluster) setupSchema(ctx context.Context) error {
	done := filepath.Join(c.Dir, "schema-"+TemporalServerVersion+".done")
	if _, err := os.Stat(done); err == nil {
		return nil
	}
	for _, db := range []struct{ name, schema string }{{dbTemporal, schemaTemporal}, {dbVisibility, schemaVisibility}} {
		for _, step := range [][]string{
			{"create-database"},
			{"setup-schema", "-v", "0.0"},
			{"update-schema", "--schema-name", db.schema},
		} {
			args := append([]string{"--plugin", "postgres12", "--ep", "127.0.0.1", "-p", strconv.Itoa(c.ports.Postgres),
				"-u", dbUser, "--db", db.name}, step...)
			if out, err := c.runAs(ctx, nil, c.opts.Binaries.SQLTool, args...); err != nil {
				return fmt.Errorf("temporal-sql-tool %s: %w\n%s", strings.Join(args, " "), err, out)
			}
		}
	}
	return os.WriteFile(done, nil, 0o644)
}

// StartTemporal starts the Temporal server and waits until its frontend answers health checks.
func (c *Cluster) StartTemporal(ctx context.Context) error {
	if c.server.running() {
		return nil
	}
	args := []string{"--root", c.Dir, "--config", "config", "--env", "shepherd", "--allow-no-auth", "start"}
	p, err := startProc(c.opts.Binaries.Server, args, c.ServerLog, nil, syscall.SIGTERM)
	if err != nil {
		return fmt.Errorf("starting the Temporal server: %w", err)
	}
	c.server = p
	deadline := time.Now().Add(serverReadyTimeout)
	for {
		if !p.running() {
			return fmt.Errorf("the Temporal server exited: %v\n%s", p.err, tailFile(c.ServerLog, 30))
		}
		if err := checkHealth(ctx, c.Address); err == nil {
			return nil
		} else if time.Now().After(deadline) {
			return fmt.Errorf("the Temporal server on %s not healthy after %s: %w\n%s", c.Address, serverReadyTimeout, err, tailFile(c.ServerLog, 30))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// StopTemporal stops the Temporal server (SIGTERM: it leaves its shards and membership cleanly).
func (c *Cluster) StopTemporal() { c.server.stop(syscall.SIGTERM) }

// RestartTemporal stops the Temporal server and starts it again on the same ports and data.
func (c *Cluster) RestartTemporal(ctx context.Context) error {
	c.StopTemporal()
	return c.StartTemporal(ctx)
}

// RestartPostgres stops PostgreSQL (fast shutdown) and starts it again; the Temporal server reconnects.
func (c *Cluster) RestartPostgres(ctx context.Context) error {
	c.StopPostgres()
	return c.StartPostgres(ctx)
}

// Stop stops the Temporal server, then PostgreSQL, and waits for both. Safe on nil and to repeat.
func (c *Cluster) Stop() {
	if c == nil {
		return
	}
	c.StopTemporal()
	c.StopPostgres()
}

// CreateNamespace creates ns and every release search attribute with the Temporal CLI (`temporal operator
// namespace create`, one `temporal operator search-attribute create` per attribute, as
// docs/operations.md tells an operator), then waits until a worker could start on it.
func (c *Cluster) CreateNamespace(ctx context.Context, ns string) error {
	cli := func(args ...string) (string, error) {
		return c.runAs(ctx, nil, c.opts.Binaries.CLI, append(args, "--address", c.Address, "--namespace", ns)...)
	}
	if _, err := cli("operator", "namespace", "describe"); err != nil {
		if out, err := cli("operator", "namespace", "create", "--retention", "72h"); err != nil &&
			!strings.Contains(out, "already") {
			return fmt.Errorf("temporal operator namespace create: %w\n%s", err, out)
		}
	}
	// A new namespace reaches the server's services with their namespace cache refresh (about 10 s); until
	// then the operator commands answer "namespace not found". An operator retries; so does this.
	dctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	for _, sa := range workflows.SearchAttributes {
		for {
			out, err := cli("operator", "search-attribute", "create", "--name", sa.Name, "--type", sa.Type)
			if err == nil {
				break
			}
			select {
			case <-dctx.Done():
				return fmt.Errorf("temporal operator search-attribute create --name %s: %w\n%s", sa.Name, err, out)
			case <-time.After(time.Second):
			}
		}
	}
	cl, err := client.DialContext(dctx, client.Options{HostPort: c.Address, Namespace: ns, Logger: nopLogger{}})
	if err != nil {
		return err
	}
	defer cl.Close()
	// ListSearchAttributes (the worker's start-up check) knows the attributes at once, but the frontend
	// maps them for starts and queries only after its namespace cache refresh: until then a start fails
	// with "no mapping defined for search attribute". A query over every attribute is ready when starts are.
	var terms []string
	for _, sa := range workflows.SearchAttributes {
		if sa.Type == "Int" {
			terms = append(terms, sa.Name+" = 0")
		} else {
			terms = append(terms, sa.Name+" = ''")
		}
	}
	query := strings.Join(terms, " AND ")
	for {
		// A query over every attribute fails until the namespace has them all and the frontend knows them.
		_, err := cl.ListWorkflow(dctx, &workflowservice.ListWorkflowExecutionsRequest{Namespace: ns, Query: query, PageSize: 1})
		if err == nil {
			return nil
		}
		select {
		case <-dctx.Done():
			return fmt.Errorf("namespace %s not ready for releases: %w", ns, err)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// freeLowPort returns a loopback port between 20000 and 32767 that is free now.
func freeLowPort() (int, error) {
	for range 200 {
		p := 20000 + rand.IntN(32768-20000)
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err == nil {
			l.Close()
			return p, nil
		}
	}
	return 0, errors.New("no free loopback port between 20000 and 32767")
}

// runAs runs a short command (as the user of cred, if set) and returns its combined output.
func (c *Cluster) runAs(ctx context.Context, cred *syscall.Credential, bin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = c.Dir
	cmd.Env = clusterEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// clusterEnv is the environment of the cluster's commands: ours, without Temporal CLI settings that
// could point the CLI at another server.
func clusterEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TEMPORAL_") {
			env = append(env, kv)
		}
	}
	// An empty config file keeps a profile in the caller's home directory out of it.
	return append(env, "TEMPORAL_CONFIG_FILE="+os.DevNull)
}

func checkHealth(ctx context.Context, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	cl, err := client.DialContext(ctx, client.Options{HostPort: addr, Logger: nopLogger{}})
	if err != nil {
		return err
	}
	defer cl.Close()
	_, err = cl.CheckHealth(ctx, &client.CheckHealthRequest{})
	return err
}

func userCredential(name string) (*syscall.Credential, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, err
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, err
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, err
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// writeServerConfig writes config/shepherd.yaml and its dynamic config for the cluster's ports.
func (c *Cluster) writeServerConfig() error {
	var b bytes.Buffer
	data := struct {
		clusterPorts
		LogLevel, Dir string
		Shards        int
	}{c.ports, c.opts.LogLevel, c.Dir, NumHistoryShards}
	if err := serverConfig.Execute(&b, data); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(c.Dir, "config", "shepherd.yaml"), b.Bytes(), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(c.Dir, "config", "dynamicconfig", "shepherd.yaml"), []byte(DynamicConfig), 0o644)
}

// DynamicConfig is the cluster's dynamic configuration: docker-compose.yml's Temporal reads the same text
// from deploy/temporal/dynamicconfig/shepherd.yaml (deploy/compose_test.go keeps them equal). Only
// Temporal's own development settings are left out, such as forcing a search-attribute cache refresh
// on every read, which Temporal says not to turn on in production.
const DynamicConfig = `# Temporal dynamic configuration for Shepherd (internal/devstack.DynamicConfig; the compose stack mounts
# deploy/temporal/dynamicconfig/shepherd.yaml, which holds the same text).
limit.maxIDLength:
  - value: 255
    constraints: {}
`

// serverConfig is Temporal's config/development-postgres12.yaml (v1.29.1) cut to what a single-process
// cluster needs, on the cluster's ports. All four services run in one process; several processes with
// --service would form a cluster over the membership ports.
var serverConfig = template.Must(template.New("temporal").Parse(`log:
  stdout: true
  level: {{.LogLevel}}

persistence:
  defaultStore: postgres-default
  visibilityStore: postgres-visibility
  numHistoryShards: {{.Shards}}
  datastores:
    postgres-default:
      sql:
        pluginName: "postgres12"
        databaseName: "temporal"
        connectAddr: "127.0.0.1:{{.Postgres}}"
        connectProtocol: "tcp"
        user: "temporal"
        password: "temporal"
        maxConns: 20
        maxIdleConns: 20
        maxConnLifetime: "1h"
    postgres-visibility:
      sql:
        pluginName: "postgres12"
        databaseName: "temporal_visibility"
        connectAddr: "127.0.0.1:{{.Postgres}}"
        connectProtocol: "tcp"
        user: "temporal"
        password: "temporal"
        maxConns: 10
        maxIdleConns: 10
        maxConnLifetime: "1h"

global:
  membership:
    maxJoinDuration: 30s
    broadcastAddress: "127.0.0.1"
  metrics:
    prometheus:
      framework: "tally"
      timerType: "histogram"
      listenAddress: "127.0.0.1:{{.Metrics}}"

services:
  frontend:
    rpc:
      grpcPort: {{.Frontend}}
      membershipPort: {{.FrontendMembership}}
      bindOnLocalHost: true
      httpPort: {{.FrontendHTTP}}
  matching:
    rpc:
      grpcPort: {{.Matching}}
      membershipPort: {{.MatchingMembership}}
      bindOnLocalHost: true
  history:
    rpc:
      grpcPort: {{.History}}
      membershipPort: {{.HistoryMembership}}
      bindOnLocalHost: true
  worker:
    rpc:
      grpcPort: {{.Worker}}
      membershipPort: {{.WorkerMembership}}
      bindOnLocalHost: true

clusterMetadata:
  enableGlobalNamespace: false
  failoverVersionIncrement: 10
  masterClusterName: "active"
  currentClusterName: "active"
  clusterInformation:
    active:
      enabled: true
      initialFailoverVersion: 1
      rpcName: "frontend"
      rpcAddress: "127.0.0.1:{{.Frontend}}"

dcRedirectionPolicy:
  policy: "noop"

dynamicConfigClient:
  filepath: "{{.Dir}}/config/dynamicconfig/shepherd.yaml"
  pollInterval: "10s"
`))

// proc is one long-running process of the cluster.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// startProc starts bin in its own process group, appending its output to logFile, as cred's user when
// set. The process gets deathSig should this process die without stopping it, so none outlives a crashed
// test run.
func startProc(bin string, args []string, logFile string, cred *syscall.Credential, deathSig syscall.Signal) (*proc, error) {
	f, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	if cred != nil {
		_ = f.Chown(int(cred.Uid), int(cred.Gid))
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = filepath.Dir(logFile)
	cmd.Env = clusterEnv()
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: deathSig, Credential: cred}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, err
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) running() bool {
	if p == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// stop sends sig to the process group and waits; SIGKILL after processStopTimeout.
func (p *proc) stop(sig syscall.Signal) {
	if !p.running() {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, sig)
	select {
	case <-p.done:
	case <-time.After(processStopTimeout):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// ServerPID is the Temporal server's process ID, 0 when it is not running (for CPU accounting).
func (c *Cluster) ServerPID() int { return c.server.pid() }

// PostgresPID is the PostgreSQL postmaster's process ID, 0 when it is not running; its backends are its
// children.
func (c *Cluster) PostgresPID() int { return c.postgres.pid() }

func (p *proc) pid() int {
	if !p.running() {
		return 0
	}
	return p.cmd.Process.Pid
}
