//go:build unix

package precheck

import (
	"os/exec"
	"syscall"
)

// killGroup runs the command in its own process group and kills the whole group on cancellation, so a
// timed-out `sh -c "curl ...; sleep 600"` leaves no orphan behind.
func killGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
}
