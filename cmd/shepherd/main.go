// Command shepherd runs and steers staged canary releases on Temporal. See `shepherd --help`.
package main

import (
	"context"
	"os"

	"github.com/shepherd-release/shepherd/internal/cli"
)

func main() {
	os.Exit(cli.Main(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}
