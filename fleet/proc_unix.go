//go:build unix

package fleet

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
)

func sysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

func signalPID(pid int, sig syscall.Signal) error { return syscall.Kill(pid, sig) }

// pidAlive reports whether pid runs; a zombie (exited, not yet reaped) counts as gone.
func pidAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true // no procfs (macOS): signal 0 is all we know
	}
	// The state follows the command name, which is in parentheses and may itself contain ") ".
	if i := strings.LastIndexByte(string(stat), ')'); i >= 0 && i+2 < len(stat) {
		switch stat[i+2] {
		case 'Z', 'X':
			return false
		}
	}
	return true
}
