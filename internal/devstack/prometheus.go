package devstack

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// PrometheusVersion is the Prometheus version Shepherd pins and tests with (see the Makefile's tools).
const PrometheusVersion = "0.316.0"

// DefaultScrapeInterval is the scrape and evaluation interval of a dev Prometheus: short, so a canary's
// breach shows up in queries within a second or so.
const DefaultScrapeInterval = time.Second

// FileSDRefresh is how often Prometheus re-reads the file_sd file besides watching it for changes.
const FileSDRefresh = 10 * time.Minute

// Bounds on starting and stopping Prometheus; generous because a 2-core machine may be busy.
const (
	prometheusReadyTimeout = 60 * time.Second
	prometheusStopTimeout  = 10 * time.Second
)

// FindPrometheus returns the Prometheus server binary to use: $SHEPHERD_PROMETHEUS, else the project
// cache (CacheBin()/prometheus, built by `make tools`), else `prometheus` on PATH.
func FindPrometheus() (string, error) {
	return findBinary("prometheus", "SHEPHERD_PROMETHEUS")
}

// PrometheusOptions configure a dev Prometheus.
type PrometheusOptions struct {
	// Binary is the prometheus server; default FindPrometheus().
	Binary string
	// Port is the HTTP port on 127.0.0.1; 0 picks a free one.
	Port int
	// ScrapeInterval is the global scrape and evaluation interval (the scrape timeout equals it);
	// default DefaultScrapeInterval.
	ScrapeInterval time.Duration
	// FileSD is a file_sd_configs file (JSON or YAML target groups, e.g. the fleet's file_sd.json) that
	// Prometheus watches; it need not exist yet. Targets it lists are scraped at /metrics. Keep it in a
	// directory of its own: Prometheus watches the directory and re-reads the file, as a target update,
	// on any change in it, and it throttles target updates with a back-off that grows towards 5 s while
	// they keep coming, which delays the first scrape of a new target.
	FileSD string
	// StaticTargets are host:port addresses scraped at /metrics.
	StaticTargets []string
	// DataDir holds the generated configuration and the TSDB; empty uses a temporary directory that Stop
	// removes.
	DataDir string
	// LogFile receives Prometheus's output; default DataDir/prometheus.log.
	LogFile string
}

// Prometheus is a running Prometheus server.
type Prometheus struct {
	// URL is the base URL of the HTTP API, e.g. http://127.0.0.1:9090.
	URL string
	// LogFile is where its output goes.
	LogFile string

	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
	tempDir string
}

// StartPrometheus starts a Prometheus server on 127.0.0.1 with a generated configuration that scrapes
// opts.FileSD and opts.StaticTargets every ScrapeInterval, and waits until /-/ready answers. Target
// discovery is shortened from Prometheus's 5 s to the scrape interval, so a newly deployed canary is
// scraped within about a second.
func StartPrometheus(ctx context.Context, opts PrometheusOptions) (*Prometheus, error) {
	var err error
	if opts.Binary == "" {
		if opts.Binary, err = FindPrometheus(); err != nil {
			return nil, err
		}
	}
	if opts.ScrapeInterval <= 0 {
		opts.ScrapeInterval = DefaultScrapeInterval
	}
	if opts.ScrapeInterval < 100*time.Millisecond {
		return nil, fmt.Errorf("prometheus scrape interval %s is too short: use 100ms or more", opts.ScrapeInterval)
	}
	p := &Prometheus{}
	dir := opts.DataDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "shepherd-prometheus-"); err != nil {
			return nil, err
		}
		p.tempDir = dir
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("prometheus data directory: %w", err)
	}
	if opts.FileSD != "" {
		if opts.FileSD, err = filepath.Abs(opts.FileSD); err != nil {
			p.cleanup()
			return nil, err
		}
		// Prometheus watches the file's directory; if it is missing at start it falls back to polling.
		if err := os.MkdirAll(filepath.Dir(opts.FileSD), 0o755); err != nil {
			p.cleanup()
			return nil, fmt.Errorf("file_sd directory: %w", err)
		}
	}
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, PrometheusConfig(opts), 0o644); err != nil {
		p.cleanup()
		return nil, fmt.Errorf("writing the Prometheus configuration: %w", err)
	}
	p.LogFile = opts.LogFile
	if p.LogFile == "" {
		p.LogFile = filepath.Join(dir, "prometheus.log")
	}
	// The flag that shortens target discovery is hidden; a build that rejects it still works, slower.
	extra := []string{"--scrape.discovery-reload-interval=" + promDuration(min(opts.ScrapeInterval, time.Second))}
	fixedPort := opts.Port != 0
	for attempt := 1; ; attempt++ {
		port := opts.Port
		if port == 0 {
			if port, err = FreePort(); err != nil {
				p.cleanup()
				return nil, err
			}
		}
		addr := "127.0.0.1:" + strconv.Itoa(port)
		if err := p.start(opts.Binary, addr, cfgPath, filepath.Join(dir, "data"), extra); err != nil {
			p.cleanup()
			return nil, err
		}
		p.URL = "http://" + addr
		err = p.waitReady(ctx)
		if err == nil {
			return p, nil
		}
		p.stopProcess()
		logTail := tailFile(p.LogFile, 20)
		switch {
		case ctx.Err() != nil:
			p.cleanup()
			return nil, ctx.Err()
		case attempt < 3 && !fixedPort && strings.Contains(logTail, "address already in use"):
			continue // someone took the free port between our probe and Prometheus's bind
		case attempt < 3 && len(extra) > 0 && strings.Contains(logTail, "unknown long flag"):
			extra = nil
			continue
		}
		p.cleanup()
		hint := "see its log " + p.LogFile
		if strings.Contains(logTail, "address already in use") {
			hint = fmt.Sprintf("port %d is taken: stop the other Prometheus or pick another port", port)
		}
		return nil, fmt.Errorf("prometheus (%s) did not become ready at %s: %w (%s)\n%s", opts.Binary, p.URL, err, hint, logTail)
	}
}

// PrometheusConfig renders the configuration StartPrometheus uses, as JSON (which is valid YAML).
func PrometheusConfig(opts PrometheusOptions) []byte {
	iv := opts.ScrapeInterval
	if iv <= 0 {
		iv = DefaultScrapeInterval
	}
	s := promDuration(iv)
	job := map[string]any{"job_name": "shepherd", "scrape_interval": s, "scrape_timeout": s}
	if len(opts.StaticTargets) > 0 {
		job["static_configs"] = []any{map[string]any{"targets": opts.StaticTargets}}
	}
	if opts.FileSD != "" {
		// Changes reach Prometheus at once through its inotify watch; the periodic re-read is only a
		// fallback. It must not be short: every re-read counts as a target update (see FileSD).
		job["file_sd_configs"] = []any{map[string]any{"files": []string{opts.FileSD}, "refresh_interval": promDuration(FileSDRefresh)}}
	}
	cfg := map[string]any{
		"global": map[string]any{"scrape_interval": s, "scrape_timeout": s, "evaluation_interval": s},
	}
	if len(opts.StaticTargets) > 0 || opts.FileSD != "" {
		cfg["scrape_configs"] = []any{job}
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		panic(err) // maps of strings and slices always marshal
	}
	return append(b, '\n')
}

// promDuration formats d for Prometheus, which takes no fractional durations ("1.5s") but always
// accepts milliseconds.
func promDuration(d time.Duration) string {
	return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
}

func (p *Prometheus) start(bin, addr, cfgPath, dataDir string, extra []string) error {
	logf, err := os.OpenFile(p.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("prometheus log file: %w", err)
	}
	args := append([]string{
		"--config.file=" + cfgPath,
		"--storage.tsdb.path=" + dataDir,
		"--storage.tsdb.retention.time=1d",
		"--web.listen-address=" + addr,
		"--log.level=warn",
	}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group, and a SIGTERM should this process die without stopping it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("starting %s: %w", bin, err)
	}
	p.cmd, p.exited = cmd, make(chan struct{})
	go func() {
		p.waitErr = cmd.Wait()
		logf.Close()
		close(p.exited)
	}()
	return nil
}

// waitReady polls /-/ready until it answers 200, the process exits, ctx ends or the timeout passes.
func (p *Prometheus) waitReady(ctx context.Context) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(prometheusReadyTimeout)
	var last error
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL+"/-/ready", nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Errorf("/-/ready answered %s", resp.Status)
		} else {
			last = err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %s: %w", prometheusReadyTimeout, last)
		}
		select {
		case <-p.exited:
			return fmt.Errorf("prometheus exited: %v", p.waitErr)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Stop ends Prometheus (SIGTERM, then SIGKILL after 10 s), waits for it and removes its temporary
// directory if it made one. It is safe to call more than once, and on nil.
func (p *Prometheus) Stop() {
	if p == nil {
		return
	}
	p.stopProcess()
	p.cleanup()
}

func (p *Prometheus) stopProcess() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	select {
	case <-p.exited:
		return
	default:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(prometheusStopTimeout):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.exited
	}
}

func (p *Prometheus) cleanup() {
	if p.tempDir != "" {
		_ = os.RemoveAll(p.tempDir)
		p.tempDir = ""
	}
}

// tailFile returns the last n lines of the file at path, or a note saying why it cannot.
func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// PID is the Prometheus server's process ID, 0 when it is not running (for CPU accounting).
func (p *Prometheus) PID() int {
	if p == nil || p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	select {
	case <-p.exited:
		return 0
	default:
		return p.cmd.Process.Pid
	}
}
