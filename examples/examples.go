// Package examples holds the example release specs. They are embedded so that `shepherd demo` runs the
// very files people read in the repository, and so that a test keeps every one of them valid.
package examples

import "embed"

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
)
