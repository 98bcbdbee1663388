//go:build !unix

package precheck

import "os/exec"

// killGroup is a no-op where process groups are unavailable; the shell alone is killed on cancellation.
func killGroup(cmd *exec.Cmd) {}
