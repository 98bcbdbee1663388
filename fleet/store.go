package fleet

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
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

// saveLocked writes the state file and the file_sd file, each atomically. Caller holds c.mu.
func (c *controller) saveLocked() error {
	data, err := json.MarshalIndent(stateFile{Format: stateFormat, Services: c.services}, "", "  ")
	if err != nil {
		return errorf(http.StatusInternalServerError, "encode fleet state: %v", err)
	}
	if err := writeAtomic(c.statePath, data); err != nil {
		return errorf(http.StatusInternalServerError, "record fleet state: %v (check permissions and free space of %s)",
			err, c.cfg.StateDir)
	}
	// Rewrite the targets only when they change: Prometheus backs off its discovery on every write it
	// sees, so rewriting on each traffic shift would delay the scrape of a new canary.
	sd := c.fileSDLocked()
	if old, err := os.ReadFile(c.cfg.FileSD); err == nil && bytes.Equal(old, sd) {
		return nil
	}
	if err := writeAtomic(c.cfg.FileSD, sd); err != nil {
		return errorf(http.StatusInternalServerError, "write Prometheus file_sd targets: %v (check FileSD %s)", err, c.cfg.FileSD)
	}
	return nil
}

// sdGroup is one entry of a Prometheus file_sd file.
type sdGroup struct {
	Targets []string          `json:"targets"`
	Labels  map[string]string `json:"labels"`
}

// fileSDLocked lists every instance with a port, one group each, labelled with service and version (the
// same values the metrics carry, so the labels agree whatever honor_labels says). Roles are left out on
// purpose: a label that changes at promotion would split the version's series in two.
func (c *controller) fileSDLocked() []byte {
	groups := []sdGroup{}
	for _, name := range slices.Sorted(maps.Keys(c.services)) {
		svc := c.services[name]
		for _, v := range slices.Sorted(maps.Keys(svc.Instances)) {
			if inst := svc.Instances[v]; inst.Port != 0 {
				groups = append(groups, sdGroup{
					Targets: []string{net.JoinHostPort("127.0.0.1", strconv.Itoa(inst.Port))},
					Labels:  map[string]string{"service": name, "version": v},
				})
			}
		}
	}
	data, _ := json.MarshalIndent(groups, "", "  ")
	return append(data, '\n')
}

// writeAtomic replaces path with data via a temporary file in the same directory and a rename, so readers
// (Prometheus, the next controller) never see a half-written file.
func writeAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(data); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o644) // Prometheus may run as another user
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	return err
}

// loadState reads the state file; a missing one is an empty fleet.
func loadState(path string) (map[string]*service, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]*service{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("fleet: read state file: %w", err)
	}
	var doc stateFile
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("fleet: state file %s is not valid JSON (%v): fix it, or delete it with the instances "+
			"stopped to start an empty fleet", path, err)
	}
	if doc.Format != stateFormat {
		return nil, fmt.Errorf("fleet: state file %s has format %d, this controller reads format %d: delete it with the "+
			"instances stopped to start an empty fleet", path, doc.Format, stateFormat)
	}
	if doc.Services == nil {
		doc.Services = map[string]*service{}
	}
	for name, svc := range doc.Services {
		if svc == nil {
			delete(doc.Services, name)
			continue
		}
		svc.Name = name
		if svc.Instances == nil {
			svc.Instances = map[string]*instance{}
		}
		for v, inst := range svc.Instances {
			if inst == nil {
				delete(svc.Instances, v)
				continue
			}
			inst.Version = v
		}
	}
	return doc.Services, nil
}

// recover loads the state file, adopts instances that still run and answer as themselves, stops expired
// or unresponsive ones, and restarts the missing ones. It runs before the API serves.
func (c *controller) recover(ctx context.Context) error {
	services, err := loadState(c.statePath)
	if err != nil {
		return err
	}
	now := time.Now()
	type key struct{ service, version string }
	var restart []key
	var stale []*process
	adopted := 0
	c.mu.Lock()
	c.services = services
	for name, svc := range services {
		for v, inst := range svc.Instances {
			p := c.adopt(ctx, name, inst)
			switch {
			case inst.Role == RoleRetiring && (p == nil || !now.Before(inst.RetireAt)):
				// Past its grace period, or already gone: no reason to bring it back.
				delete(svc.Instances, v)
				if p != nil {
					stale = append(stale, p)
				}
			case p != nil:
				inst.proc = p
				adopted++
			default:
				restart = append(restart, key{name, v})
			}
		}
		if svc.Canary != "" && svc.Instances[svc.Canary] == nil {
			svc.Canary, svc.Weight = "", 0
		}
	}
	err = c.saveLocked()
	c.mu.Unlock()
	if err != nil {
		return fmt.Errorf("fleet: %w", err)
	}
	for _, p := range stale {
		p.stop(c.cfg.StopTimeout)
	}
	var wg sync.WaitGroup
	for _, k := range restart {
		wg.Go(func() {
			defer c.lockOp(k.service)()
			if err := c.ensureRunning(ctx, k.service, k.version); err != nil {
				c.log.Warn("could not restart instance; its health check will fail until it is redeployed",
					"service", k.service, "version", k.version, "error", err)
			}
		})
	}
	wg.Wait()
	if len(services) > 0 {
		c.log.Info("fleet recovered from state file", "path", c.statePath, "adopted", adopted,
			"restarted", len(restart), "stopped", len(stale))
	}
	return nil
}

// adopt returns the recorded process if it still runs and answers /healthz as this service, version and
// pid. A process that runs the instance's command line but does not answer is stopped; a pid now used by
// an unrelated process is left alone.
func (c *controller) adopt(ctx context.Context, name string, inst *instance) *process {
	if inst.PID <= 0 || inst.Port <= 0 || !pidAlive(inst.PID) {
		return nil
	}
	p := adoptProcess(inst.PID, inst.Port, name, inst.Version, c.logPath(name, inst.Version))
	if err := c.probeHealth(ctx, p); err != nil {
		if cmdlineMatches(p.pid, name, inst.Version) {
			c.log.Warn("recorded instance runs but does not answer; stopping it", "service", name,
				"version", inst.Version, "pid", p.pid, "error", err)
			p.stop(c.cfg.StopTimeout)
		}
		return nil
	}
	c.log.Info("adopted running instance", "service", name, "version", inst.Version, "pid", p.pid,
		"port", p.port, "role", cmp.Or(string(inst.Role), "?"))
	return p
}
