package fleet

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"
)

// instance is one version of a service, as recorded in the state file.
type instance struct {
	Version   string    `json:"version"`
	Role      Role      `json:"role"`
	PID       int       `json:"pid"`
	Port      int       `json:"port"`
	StartedAt time.Time `json:"startedAt,omitzero"`
	RetireAt  time.Time `json:"retireAt,omitzero"`

	proc *process // nil until started or adopted
}

// service is one service's desired state and instances, as recorded in the state file.
type service struct {
	Name      string               `json:"name"`
	Stable    string               `json:"stable,omitempty"`
	Canary    string               `json:"canary,omitempty"`
	Weight    int                  `json:"weight"`
	Instances map[string]*instance `json:"instances"` // by version
	// Fence is the fencing state and Journal the last writes (fence.go).
	Fence   *FenceState    `json:"fence,omitempty"`
	Journal []JournalEntry `json:"journal,omitempty"`

	split splitter
}

// stateFile is the JSON document in {StateDir}/state.json.
type stateFile struct {
	Format   int                 `json:"format"`
	Services map[string]*service `json:"services"`
}

const stateFormat = 1

type controller struct {
	cfg       Config
	log       *slog.Logger
	statePath string
	logDir    string
	probe     *http.Client

	mu       sync.Mutex // guards services and the state/file_sd files
	services map[string]*service
	ops      map[string]*sync.Mutex // per service: one change at a time, held across health waits

	stopping sync.WaitGroup // retirements in flight
}

// Run runs the fleet controller until ctx is cancelled: it recovers the fleet from the state file (adopting
// live instances, restarting missing ones), serves the admin API and the proxy, generates load and retires
// old versions. On return the instances are stopped unless cfg.KeepProcesses.
func Run(ctx context.Context, cfg Config) error {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return err
	}
	c := &controller{
		cfg:       cfg,
		log:       cfg.Logger.With("component", "fleet"),
		statePath: filepath.Join(cfg.StateDir, "state.json"),
		logDir:    filepath.Join(cfg.StateDir, "logs"),
		probe:     &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}},
		services:  map[string]*service{},
		ops:       map[string]*sync.Mutex{},
	}
	if err := os.MkdirAll(c.logDir, 0o755); err != nil {
		return fmt.Errorf("fleet: create state directory: %w", err)
	}
	// Bind first: a second controller on the same addresses fails here, before touching any instance.
	adminLn, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("fleet: admin API listen on %s: %w (is another fleet controller running? set another Listen address)", cfg.Listen, err)
	}
	defer adminLn.Close()
	proxyLn, err := net.Listen("tcp", cfg.ProxyListen)
	if err != nil {
		return fmt.Errorf("fleet: proxy listen on %s: %w (is another fleet controller running? set another ProxyListen address)", cfg.ProxyListen, err)
	}
	defer proxyLn.Close()

	defer c.shutdownInstances()
	if err := c.recover(ctx); err != nil {
		return err
	}

	base := func(net.Listener) context.Context { return ctx } // cancels in-flight health waits on shutdown
	admin := &http.Server{Handler: c.routes(), ReadHeaderTimeout: 5 * time.Second, BaseContext: base}
	proxy := &http.Server{Handler: c.newProxy(), ReadHeaderTimeout: 5 * time.Second, BaseContext: base}
	errc := make(chan error, 2)
	go func() { errc <- serve(admin, adminLn, "admin API") }()
	go func() { errc <- serve(proxy, proxyLn, "proxy") }()

	var bg sync.WaitGroup
	bgCtx, stopBG := context.WithCancel(ctx)
	bg.Go(func() { c.retireLoop(bgCtx) })
	proxyAddr := loopbackAddr(proxyLn.Addr())
	if cfg.LoadRPS > 0 {
		if proxyAddr == "" {
			c.log.Warn("load generator disabled: the proxy does not listen on loopback", "proxyListen", cfg.ProxyListen)
		} else {
			bg.Go(func() { c.runLoad(bgCtx, proxyAddr) })
		}
	}
	eps := Endpoints{Admin: "http://" + cmp.Or(loopbackAddr(adminLn.Addr()), adminLn.Addr().String()),
		Proxy: "http://" + cmp.Or(proxyAddr, proxyLn.Addr().String())}
	c.log.Info("fleet controller ready", "admin", eps.Admin, "proxy", eps.Proxy, "stateDir", cfg.StateDir,
		"fileSD", cfg.FileSD, "loadRPS", cfg.LoadRPS)
	if cfg.OnReady != nil {
		cfg.OnReady(eps)
	}

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = admin.Shutdown(sctx)
	_ = proxy.Shutdown(sctx)
	stopBG()
	bg.Wait()
	return runErr
}

func serve(srv *http.Server, ln net.Listener, what string) error {
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("fleet: %s: %w", what, err)
	}
	return nil
}

// loopbackAddr is a dialable loopback host:port for a listener, or "" if it does not listen on loopback.
func loopbackAddr(a net.Addr) string {
	tcp, ok := a.(*net.TCPAddr)
	if !ok {
		return ""
	}
	switch {
	case tcp.IP == nil || tcp.IP.IsUnspecified():
		return net.JoinHostPort("127.0.0.1", strconv.Itoa(tcp.Port))
	case tcp.IP.IsLoopback():
		return tcp.String()
	}
	return ""
}

// shutdownInstances waits for retirements and, unless processes are kept, stops every instance.
func (c *controller) shutdownInstances() {
	c.stopping.Wait()
	if c.cfg.KeepProcesses {
		c.log.Info("fleet controller stopped; instances keep running", "stateDir", c.cfg.StateDir)
		return
	}
	c.mu.Lock()
	var procs []*process
	for _, svc := range c.services {
		for _, inst := range svc.Instances {
			if inst.proc != nil {
				procs = append(procs, inst.proc)
			}
		}
	}
	c.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range procs {
		wg.Go(func() { p.stop(c.cfg.StopTimeout) })
	}
	wg.Wait()
	c.log.Info("fleet controller stopped; instances stopped", "count", len(procs))
}

// lockOp serialises changes to one service; health waits happen under it but outside c.mu. The operations
// below (bootstrap, deploy, traffic, promote, rollback) run under it: change takes it, so a fencing
// decision and the change it admits are one step.
func (c *controller) lockOp(name string) func() {
	c.mu.Lock()
	m := c.ops[name]
	if m == nil {
		m = &sync.Mutex{}
		c.ops[name] = m
	}
	c.mu.Unlock()
	m.Lock()
	return m.Unlock
}

// bootstrap starts the first stable version of a service.
func (c *controller) bootstrap(ctx context.Context, name, version string) (ServiceState, error) {
	c.mu.Lock()
	svc := c.services[name]
	if svc == nil {
		svc = &service{Name: name, Instances: map[string]*instance{}}
		c.services[name] = svc
	}
	switch svc.Stable {
	case version:
	case "":
		svc.Stable = version
		svc.Instances[version] = &instance{Version: version, Role: RoleStable}
	default:
		c.mu.Unlock()
		return ServiceState{}, errorf(http.StatusConflict, "service %q already runs stable version %q: bootstrap only "+
			"starts a first version; release %q with deploy, traffic and promote", name, svc.Stable, version)
	}
	err := c.saveLocked()
	c.mu.Unlock()
	if err != nil {
		return ServiceState{}, err
	}
	if err := c.ensureRunning(ctx, name, version); err != nil {
		return ServiceState{}, err
	}
	return c.state(name)
}

// deploy starts version as the canary at 0 % traffic, beside the stable version.
func (c *controller) deploy(ctx context.Context, name, version string) (ServiceState, error) {
	c.mu.Lock()
	svc := c.services[name]
	switch {
	case svc == nil || svc.Stable == "":
		c.mu.Unlock()
		return ServiceState{}, errorf(http.StatusNotFound, "service %q has no stable version in the fleet: start one first "+
			"with POST /v1/services/%s/bootstrap {\"version\": \"<current version>\"}", name, name)
	case version == svc.Stable:
		c.mu.Unlock()
		return ServiceState{}, errorf(http.StatusConflict, "%q is already the stable version of %q: nothing to deploy", version, name)
	case svc.Canary != "" && svc.Canary != version:
		c.mu.Unlock()
		return ServiceState{}, errorf(http.StatusConflict, "service %q already has canary %q at %d%%: promote or roll it back "+
			"before deploying %q", name, svc.Canary, svc.Weight, version)
	case svc.Canary == "":
		svc.Canary, svc.Weight, svc.split = version, 0, splitter{}
		inst := svc.Instances[version]
		if inst == nil { // a retiring instance of this version is reused as it is
			inst = &instance{Version: version}
			svc.Instances[version] = inst
		}
		inst.Role, inst.RetireAt = RoleCanary, time.Time{}
		if err := c.saveLocked(); err != nil {
			c.mu.Unlock()
			return ServiceState{}, err
		}
	}
	c.mu.Unlock()
	if err := c.ensureRunning(ctx, name, version); err != nil {
		return ServiceState{}, err
	}
	return c.state(name)
}

// traffic sets the canary's weight. 0 % for a version that is not deployed is a no-op, so a rollback can
// repeat it; 100 % for a version already promoted is one too.
func (c *controller) traffic(_ context.Context, name, version string, percent int) (ServiceState, error) {
	c.mu.Lock()
	svc := c.services[name]
	var inst *instance
	if svc != nil {
		inst = svc.Instances[version]
	}
	switch {
	case svc != nil && version == svc.Canary:
		if svc.Weight != percent {
			svc.Weight, svc.split = percent, splitter{}
			if err := c.saveLocked(); err != nil {
				c.mu.Unlock()
				return ServiceState{}, err
			}
		}
	case percent == 0 && (inst == nil || inst.Role == RoleRetiring):
	case svc == nil:
		c.mu.Unlock()
		return ServiceState{}, errorf(http.StatusNotFound, "traffic %s %d%%: service %q is not in the fleet: bootstrap it "+
			"and deploy %q first", version, percent, name, version)
	case version == svc.Stable && svc.Canary == "" && percent == 100:
	case version == svc.Stable:
		c.mu.Unlock()
		return ServiceState{}, errorf(http.StatusConflict, "traffic %s %d%%: %q is the stable version of %q; traffic "+
			"percentages apply to the canary (%s)", version, percent, version, name, describeCanary(svc))
	default:
		c.mu.Unlock()
		return ServiceState{}, errorf(http.StatusConflict, "traffic %s %d%%: %q is not deployed for %q (stable %q, %s): "+
			"deploy it before shifting traffic", version, percent, version, name, svc.Stable, describeCanary(svc))
	}
	st := c.stateLocked(svc, name)
	c.mu.Unlock()
	c.log.Info("traffic", "service", name, "version", version, "percent", percent, "weight", st.Weight)
	return st, nil
}

func describeCanary(svc *service) string {
	if svc.Canary == "" {
		return "no canary"
	}
	return fmt.Sprintf("canary %q at %d%%", svc.Canary, svc.Weight)
}

// promote makes the canary the stable version; the old stable keeps running for the grace period.
func (c *controller) promote(ctx context.Context, name, version string) (ServiceState, error) {
	c.mu.Lock()
	svc := c.services[name]
	switch {
	case svc == nil:
		c.mu.Unlock()
		return ServiceState{}, errorf(http.StatusNotFound, "service %q is not in the fleet: bootstrap it and deploy %q first", name, version)
	case version == svc.Stable:
		st := c.stateLocked(svc, name) // already promoted
		c.mu.Unlock()
		return st, nil
	case version != svc.Canary:
		c.mu.Unlock()
		return ServiceState{}, errorf(http.StatusConflict, "%q is not the canary of %q (stable %q, %s): deploy it before "+
			"promoting", version, name, svc.Stable, describeCanary(svc))
	}
	c.mu.Unlock()
	if err := c.ensureRunning(ctx, name, version); err != nil {
		return ServiceState{}, fmt.Errorf("not promoting an unhealthy canary: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old := svc.Stable
	svc.Stable, svc.Canary, svc.Weight, svc.split = version, "", 0, splitter{}
	svc.Instances[version].Role = RoleStable
	if o := svc.Instances[old]; o != nil {
		o.Role, o.RetireAt = RoleRetiring, time.Now().Add(c.cfg.Grace)
	}
	if err := c.saveLocked(); err != nil {
		return ServiceState{}, err
	}
	return c.stateLocked(svc, name), nil
}

// rollback removes the canary: weight 0, process stopped. Rolling back a version that is not deployed is
// a no-op, so compensations can repeat it.
func (c *controller) rollback(_ context.Context, name, version string) (ServiceState, error) {
	c.mu.Lock()
	svc := c.services[name]
	switch {
	case svc == nil:
		c.mu.Unlock()
		return ServiceState{Service: name, Instances: []InstanceState{}}, nil
	case version == svc.Stable:
		c.mu.Unlock()
		return ServiceState{}, errorf(http.StatusConflict, "%q is the stable version of %q; rollback only removes a canary "+
			"(%s). To go back to an older version, release it", version, name, describeCanary(svc))
	case version != svc.Canary:
		st := c.stateLocked(svc, name)
		c.mu.Unlock()
		return st, nil
	}
	inst := svc.Instances[version]
	delete(svc.Instances, version)
	svc.Canary, svc.Weight, svc.split = "", 0, splitter{}
	err := c.saveLocked()
	st := c.stateLocked(svc, name)
	c.mu.Unlock()
	if inst != nil && inst.proc != nil {
		inst.proc.stop(c.cfg.StopTimeout)
	}
	return st, err
}

// health checks one version: the canary by default, else the stable one.
func (c *controller) health(ctx context.Context, name, version string) (HealthState, error) {
	c.mu.Lock()
	svc := c.services[name]
	if svc == nil {
		c.mu.Unlock()
		return HealthState{}, errorf(http.StatusNotFound, "service %q is not in the fleet: bootstrap it first", name)
	}
	if version == "" {
		version = cmp.Or(svc.Canary, svc.Stable)
	}
	inst := svc.Instances[version]
	if inst == nil || inst.Role == RoleRetiring {
		msg := fmt.Sprintf("%q is not deployed for %q (stable %q, %s): deploy it first", version, name, svc.Stable, describeCanary(svc))
		c.mu.Unlock()
		return HealthState{}, errorf(http.StatusNotFound, "%s", msg)
	}
	p := inst.proc
	c.mu.Unlock()
	h := HealthState{Service: name, Version: version}
	switch {
	case p == nil:
		h.Error = fmt.Sprintf("%s %s is not running: redeploy it (POST /v1/services/%s/deploy)", name, version, name)
	case !p.alive():
		h.Error = fmt.Sprintf("%s %s is not running: %s", name, version, p.exitReason())
	default:
		if err := c.probeHealth(ctx, p); err != nil {
			h.Error = err.Error()
		}
	}
	h.Healthy = h.Error == ""
	return h, nil
}

// ensureRunning starts the instance of version if its process is not running and waits until it answers
// /healthz. An instance that exits during start-up (e.g. its port was taken meanwhile) is retried on a
// fresh port, three attempts in all.
func (c *controller) ensureRunning(ctx context.Context, name, version string) error {
	var err error
	for range 3 {
		c.mu.Lock()
		var inst *instance
		if svc := c.services[name]; svc != nil {
			inst = svc.Instances[version]
		}
		if inst == nil {
			c.mu.Unlock()
			return errorf(http.StatusConflict, "%s %s was removed while starting it", name, version)
		}
		p := inst.proc
		if p == nil || !p.alive() {
			if p, err = c.spawn(name, version); err != nil {
				c.mu.Unlock()
				return errorf(http.StatusInternalServerError, "start %s %s: %v", name, version, err)
			}
			inst.proc, inst.PID, inst.Port, inst.StartedAt = p, p.pid, p.port, time.Now().UTC()
			if err := c.saveLocked(); err != nil {
				c.mu.Unlock()
				return err
			}
		}
		c.mu.Unlock()
		if err = c.waitHealthy(ctx, p); err == nil || p.alive() || ctx.Err() != nil {
			return err
		}
	}
	return err
}

// spawn starts one instance on a free loopback port. Caller holds c.mu.
func (c *controller) spawn(name, version string) (*process, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	prof := c.cfg.profile(name, version)
	args := []string{
		"--listen", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		"--service", name,
		"--version", version,
		"--error-rate", strconv.FormatFloat(prof.ErrorRate, 'g', -1, 64),
		"--latency", prof.Latency.String(),
	}
	if c.cfg.FlagFile != "" {
		args = append(args, "--flag-file", c.cfg.FlagFile)
	}
	p, err := startProcess(c.cfg.ServiceBinary, args, name, version, port, c.logPath(name, version))
	if err != nil {
		return nil, err
	}
	c.log.Info("instance started", "service", name, "version", version, "pid", p.pid, "port", port,
		"errorRate", prof.ErrorRate, "latency", prof.Latency.String())
	return p, nil
}

func (c *controller) logPath(name, version string) string {
	return filepath.Join(c.logDir, name+"-"+version+".log")
}

// waitHealthy polls /healthz until it answers, the process exits, HealthTimeout passes or ctx ends.
func (c *controller) waitHealthy(ctx context.Context, p *process) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.HealthTimeout)
	defer cancel()
	delay := 20 * time.Millisecond
	for {
		if !p.alive() {
			return errorf(http.StatusServiceUnavailable, "%s %s did not start: %s", p.service, p.version, p.exitReason())
		}
		err := c.probeHealth(ctx, p)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return errorf(http.StatusServiceUnavailable, "%s %s (pid %d) did not answer /healthz within %s: %v; see its log %s",
				p.service, p.version, p.pid, c.cfg.HealthTimeout, err, p.logPath)
		case <-p.done: // nil for adopted processes: never ready
		case <-time.After(delay):
		}
		delay = min(delay*2, 250*time.Millisecond)
	}
}

// probeHealth asks the instance's /healthz and checks that it answers as this service, version and pid.
func (c *controller) probeHealth(ctx context.Context, p *process) error {
	var h struct {
		Service string `json:"service"`
		Version string `json:"version"`
		PID     int    `json:"pid"`
	}
	url := "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(p.port)) + "/healthz"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := c.probe.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		return fmt.Errorf("GET %s: not a demo service answer: %w", url, err)
	}
	if h.Service != p.service || h.Version != p.version || h.PID != p.pid {
		return fmt.Errorf("GET %s answers as %s %s pid %d, not %s %s pid %d", url, h.Service, h.Version, h.PID,
			p.service, p.version, p.pid)
	}
	return nil
}

// retireLoop stops retiring instances whose grace period has passed.
func (c *controller) retireLoop(ctx context.Context) {
	t := time.NewTicker(min(max(c.cfg.Grace/5, 20*time.Millisecond), 500*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			c.retireDue(now)
		}
	}
}

func (c *controller) retireDue(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	changed := false
	for _, svc := range c.services {
		for v, inst := range svc.Instances {
			if inst.Role != RoleRetiring || now.Before(inst.RetireAt) {
				continue
			}
			delete(svc.Instances, v)
			changed = true
			if p := inst.proc; p != nil {
				c.log.Info("retiring old version", "service", svc.Name, "version", v, "pid", p.pid)
				c.stopping.Go(func() { p.stop(c.cfg.StopTimeout) })
			}
		}
	}
	if changed {
		if err := c.saveLocked(); err != nil {
			c.log.Error("could not record retirement", "error", err)
		}
	}
}

// list is every service's state, by name.
func (c *controller) list() []ServiceState {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := []ServiceState{}
	for _, name := range slices.Sorted(maps.Keys(c.services)) {
		out = append(out, c.stateLocked(c.services[name], name))
	}
	return out
}

// state is one service's state, or 404.
func (c *controller) state(name string) (ServiceState, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	svc := c.services[name]
	if svc == nil {
		return ServiceState{}, errorf(http.StatusNotFound, "service %q is not in the fleet: start it with "+
			"POST /v1/services/%s/bootstrap {\"version\": \"v1\"}", name, name)
	}
	return c.stateLocked(svc, name), nil
}

func (c *controller) stateLocked(svc *service, name string) ServiceState {
	st := ServiceState{Service: name, Stable: svc.Stable, Canary: svc.Canary, Weight: svc.Weight, Instances: []InstanceState{},
		Fence: cloneFence(svc.Fence)}
	for _, inst := range svc.Instances {
		is := InstanceState{Version: inst.Version, Role: inst.Role, PID: inst.PID, StartedAt: inst.StartedAt,
			RetireAt: inst.RetireAt, Log: c.logPath(name, inst.Version), Alive: inst.proc != nil && inst.proc.alive()}
		if inst.Port != 0 {
			is.Address = net.JoinHostPort("127.0.0.1", strconv.Itoa(inst.Port))
		}
		st.Instances = append(st.Instances, is)
	}
	order := map[Role]int{RoleStable: 0, RoleCanary: 1, RoleRetiring: 2}
	slices.SortFunc(st.Instances, func(a, b InstanceState) int {
		return cmp.Or(cmp.Compare(order[a.Role], order[b.Role]), cmp.Compare(a.Version, b.Version))
	})
	return st
}
