package fleet

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// process is one running demo-service instance: either a child this controller started (cmd set, reaped by
// a goroutine that outlives Run when processes are kept) or one adopted from an earlier controller.
type process struct {
	pid     int
	port    int
	service string
	version string
	logPath string
	cmd     *exec.Cmd     // nil when adopted
	done    chan struct{} // closed when an own child has exited; nil when adopted
	exitErr error         // valid once done is closed
}

// startProcess starts bin with args, its output appended to logPath.
func startProcess(bin string, args []string, service, version string, port int, logPath string) (*process, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open instance log: %w", err)
	}
	defer logf.Close() // the child has its own descriptor once started
	fmt.Fprintf(logf, "--- %s fleet: starting %s %s\n", time.Now().Format(time.RFC3339), bin, strings.Join(args, " "))
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// A process group of its own: Ctrl-C on the controller's terminal does not hit the instances, so the
	// controller decides (stop them, or keep them for the next controller).
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	p := &process{pid: cmd.Process.Pid, port: port, service: service, version: version, logPath: logPath,
		cmd: cmd, done: make(chan struct{})}
	go func() {
		p.exitErr = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// adoptProcess takes over an instance started by an earlier controller.
func adoptProcess(pid, port int, service, version, logPath string) *process {
	return &process{pid: pid, port: port, service: service, version: version, logPath: logPath}
}

// alive reports whether the process is still running (a zombie counts as gone).
func (p *process) alive() bool {
	if p.cmd != nil {
		select {
		case <-p.done:
			return false
		default:
			return true
		}
	}
	return pidAlive(p.pid)
}

// exitReason describes why a process is gone, with the end of its log.
func (p *process) exitReason() string {
	why := "it exited"
	if p.cmd != nil && p.exitErr != nil {
		why = "it exited: " + p.exitErr.Error()
	}
	if tail := logTail(p.logPath, 3); tail != "" {
		why += "; last log lines: " + tail
	}
	return why + "; full log: " + p.logPath
}

// stop sends SIGTERM, waits up to timeout, then kills. An adopted pid is only signalled while it still
// runs the instance's command line, so a reused pid is never hit.
func (p *process) stop(timeout time.Duration) {
	if !p.alive() {
		return
	}
	if p.cmd != nil {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	} else {
		if !cmdlineMatches(p.pid, p.service, p.version) {
			return
		}
		_ = signalPID(p.pid, syscall.SIGTERM)
	}
	if p.waitGone(timeout) {
		return
	}
	if p.cmd != nil {
		_ = p.cmd.Process.Kill()
	} else {
		_ = signalPID(p.pid, syscall.SIGKILL)
	}
	p.waitGone(2 * time.Second)
}

// waitGone waits until the process has exited, at most timeout; it reports whether it has.
func (p *process) waitGone(timeout time.Duration) bool {
	if p.cmd != nil {
		select {
		case <-p.done:
			return true
		case <-time.After(timeout):
			return false
		}
	}
	deadline := time.Now().Add(timeout)
	for pidAlive(p.pid) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// freePort asks the kernel for a free loopback port. Another process could take it before the instance
// binds; the instance then exits and the controller retries on a new port.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free loopback port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// logTail returns the last n non-empty lines of a log file, joined with " | ", at most 600 bytes.
func logTail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	const limit = 4096
	if st, err := f.Stat(); err == nil && st.Size() > limit {
		_, _ = f.Seek(st.Size()-limit, io.SeekStart)
	}
	data, err := io.ReadAll(io.LimitReader(f, limit))
	if err != nil {
		return ""
	}
	var lines []string
	for _, l := range bytes.Split(bytes.TrimSpace(data), []byte("\n")) {
		if l = bytes.TrimSpace(l); len(l) > 0 {
			lines = append(lines, string(l))
		}
	}
	lines = lines[max(0, len(lines)-n):]
	out := strings.Join(lines, " | ")
	if len(out) > 600 {
		out = "…" + out[len(out)-600:]
	}
	return out
}

// cmdlineMatches reports whether pid runs a demo service for service and version. Where /proc is missing
// it trusts the /healthz identity check done at adoption.
func cmdlineMatches(pid int, service, version string) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		_, statErr := os.Stat("/proc/self")
		return errors.Is(statErr, os.ErrNotExist)
	}
	args := strings.Split(string(data), "\x00")
	has := func(flag, value string) bool {
		for i := 0; i+1 < len(args); i++ {
			if args[i] == flag && args[i+1] == value || args[i] == flag+"="+value {
				return true
			}
		}
		return false
	}
	return has("--service", service) && has("--version", version)
}
