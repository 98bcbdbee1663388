package testenv

import (
	"context"
	"fmt"
	"os/exec"
	"time"
)

// Module is this module's import path; GoBuild takes packages below it.
const Module = "github.com/shepherd-release/shepherd"

// GoBuild builds the main package pkg (e.g. Module+"/cmd/demo-service") into out, so tests run the real
// binaries as separate processes. It works from any directory inside the module.
func GoBuild(out, pkg string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	b, err := exec.CommandContext(ctx, "go", "build", "-o", out, pkg).CombinedOutput()
	if err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	return nil
}
