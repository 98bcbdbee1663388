// Package fleet is the local demo fleet controller: one process that runs versions of the demo service as
// child processes, splits traffic between a stable and a canary version behind a weighted reverse proxy,
// generates load so metrics exist, publishes scrape targets for Prometheus (file_sd) and exposes an admin
// HTTP API that the "local" deploy target drives. Its state survives a restart of the controller.
package fleet

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"
)

// Defaults used when Config leaves a field zero.
const (
	// DefaultListen is the admin API address; it matches providers/local.DefaultController.
	DefaultListen = "127.0.0.1:9300"
	// DefaultProxyListen is the weighted reverse proxy's address.
	DefaultProxyListen = "127.0.0.1:9380"
	// DefaultStateDir holds the state file, the file_sd file and the instances' logs.
	DefaultStateDir = ".shepherd/fleet"
	// DefaultLoadRPS is the load generator's rate per service.
	DefaultLoadRPS = 20
	// MaxLoadRPS bounds the load generator's rate per service, whatever Config.LoadRPS says.
	MaxLoadRPS = 200
	// DefaultGrace is how long an old stable version keeps running after a promotion.
	DefaultGrace = 10 * time.Second
	// DefaultHealthTimeout bounds the wait for a started instance to answer /healthz.
	DefaultHealthTimeout = 15 * time.Second
	// DefaultStopTimeout is how long an instance gets to exit after SIGTERM before it is killed.
	DefaultStopTimeout = 5 * time.Second
)

// Profile is the behaviour a version of the demo service is started with.
type Profile struct {
	// ErrorRate is the probability in [0, 1] that a request fails with 500.
	ErrorRate float64
	// Latency is the mean request latency.
	Latency time.Duration
}

// DefaultProfile is a healthy version: no errors, 20ms mean latency (p99 well under the default 500ms).
var DefaultProfile = Profile{ErrorRate: 0, Latency: 20 * time.Millisecond}

// Endpoints are the base URLs the controller serves on, reported once it is ready.
type Endpoints struct {
	// Admin is the admin API's base URL, e.g. http://127.0.0.1:9300.
	Admin string
	// Proxy is the weighted reverse proxy's base URL; requests go to {Proxy}/{service}/.
	Proxy string
}

// Config configures the fleet controller.
type Config struct {
	// Listen is the admin API address; default 127.0.0.1:9300.
	Listen string
	// ProxyListen is the weighted reverse proxy's address; default 127.0.0.1:9380.
	ProxyListen string
	// ServiceBinary is the demo-service executable (go build -o bin/demo-service ./cmd/demo-service);
	// required.
	ServiceBinary string
	// StateDir holds state.json, the instances' logs and, by default, the file_sd file; default
	// .shepherd/fleet. Delete it (with the controller stopped) to start from an empty fleet.
	StateDir string
	// FileSD is the Prometheus file_sd JSON file listing every instance; default {StateDir}/file_sd.json.
	FileSD string
	// Profiles sets the behaviour per version: a key "service/version" wins over a key "version"; versions
	// in neither get DefaultProfile. Profiles apply when an instance starts.
	Profiles map[string]Profile
	// LoadRPS is the load generator's rate per service through the proxy; default 20, at most 200;
	// negative disables the load generator.
	LoadRPS float64
	// FlagFile, when set, is passed to every instance as --flag-file (a flagd-format JSON file).
	FlagFile string
	// Grace is how long the old stable version keeps running after a promotion; default 10s.
	Grace time.Duration
	// HealthTimeout bounds the wait for a started instance to answer /healthz; default 15s.
	HealthTimeout time.Duration
	// StopTimeout is how long an instance gets between SIGTERM and SIGKILL; default 5s.
	StopTimeout time.Duration
	// KeepProcesses leaves the instances running when the controller stops, for the next controller to
	// adopt. By default they are stopped, and the next controller starts them again from the state file.
	KeepProcesses bool
	// Logger receives the controller's log; default slog.Default().
	Logger *slog.Logger
	// OnReady, if set, is called once the listeners are bound and the fleet is recovered, with the actual
	// addresses (useful with port 0).
	OnReady func(Endpoints)
}

// withDefaults fills in defaults and checks what cannot work, with a hint at the fix.
func (c Config) withDefaults() (Config, error) {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.ProxyListen == "" {
		c.ProxyListen = DefaultProxyListen
	}
	if c.StateDir == "" {
		c.StateDir = DefaultStateDir
	}
	if c.FileSD == "" {
		c.FileSD = filepath.Join(c.StateDir, "file_sd.json")
	}
	switch {
	case c.LoadRPS == 0:
		c.LoadRPS = DefaultLoadRPS
	case c.LoadRPS > MaxLoadRPS:
		c.LoadRPS = MaxLoadRPS
	}
	if c.Grace <= 0 {
		c.Grace = DefaultGrace
	}
	if c.HealthTimeout <= 0 {
		c.HealthTimeout = DefaultHealthTimeout
	}
	if c.StopTimeout <= 0 {
		c.StopTimeout = DefaultStopTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.ServiceBinary == "" {
		return c, errors.New("fleet: ServiceBinary is required: build it with `go build -o bin/demo-service ./cmd/demo-service`")
	}
	bin, err := filepath.Abs(c.ServiceBinary)
	if err != nil {
		return c, fmt.Errorf("fleet: service binary %s: %w", c.ServiceBinary, err)
	}
	st, err := os.Stat(bin)
	if err != nil {
		return c, fmt.Errorf("fleet: service binary: %w (build it with `go build -o bin/demo-service ./cmd/demo-service`)", err)
	}
	if st.IsDir() || st.Mode().Perm()&0o111 == 0 {
		return c, fmt.Errorf("fleet: service binary %s is not an executable file", bin)
	}
	c.ServiceBinary = bin
	for key, p := range c.Profiles {
		if p.ErrorRate < 0 || p.ErrorRate > 1 || p.Latency < 0 {
			return c, fmt.Errorf("fleet: profile %q: error rate must be in [0, 1] and latency not negative", key)
		}
	}
	return c, nil
}

// profile is the behaviour for one version of one service.
func (c Config) profile(service, version string) Profile {
	if p, ok := c.Profiles[service+"/"+version]; ok {
		return p
	}
	if p, ok := c.Profiles[version]; ok {
		return p
	}
	return DefaultProfile
}
