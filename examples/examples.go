// Package examples holds the example release specs and the example worker configuration. They are
// embedded so that `shepherd demo` and `shepherd dev` use the very files people read in the repository,
// and so that a test keeps every one of them valid and the specs naming only what the configuration has.
package examples

import (
	"embed"
	"io/fs"
)

// FS holds every *.yaml file of this directory.
//
//go:embed *.yaml
var FS embed.FS

// Names of the specs `shepherd demo` runs, in FS.
const (
	// DemoGood is the healthy release the demo promotes.
	DemoGood = "demo-good.yaml"
	// DemoBad is the release whose error rate makes the demo roll it back.
	DemoBad = "demo-bad.yaml"
	// WorkerConfig is the worker configuration the examples name providers from (`make dev` uses it).
	WorkerConfig = "shepherd.yaml"
)

// Specs lists the example release specs in FS (every *.yaml but WorkerConfig).
func Specs() ([]string, error) {
	names, err := fs.Glob(FS, "*.yaml")
	if err != nil {
		return nil, err
	}
	out := names[:0]
	for _, n := range names {
		if n != WorkerConfig {
			out = append(out, n)
		}
	}
	return out, nil
}
