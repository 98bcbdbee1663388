package activities

import (
	"testing"

	"github.com/shepherd-release/shepherd/spec"
)

// The same invalid spec gets the same message every time (Go randomises map iteration): people diff
// them, tests match them, and the workflow's InvalidSpec reason must not change on a replay.
func TestValidationMessagesAreDeterministic(t *testing.T) {
	r, err := spec.Parse([]byte(`
service: checkout
version: v2
target:
  type: exec
  exec: {deploy: "true", traffic: "true", promote: "true", rollback: "true"}
prechecks:
  - name: qa
    http:
      url: https://qa.internal/{{.Version}}
      headerEnv: {A-One: "", B-Two: " ", C-Three: "", D-Four: "", E-Five: ""}
flags:
  names: [f]
  provider:
    type: http
    url: https://flags.internal/{{.Flag}}
    headers: {A: "{{", B: "{{", C: "{{", Authorization: "x", Cookie: "y", X-Token: "z"}
    headerEnv: {A: "", B: "", C: "", D: ""}
notifications:
  - type: webhook
    urlEnv: HOOK
    templates: {started: "{{", succeeded: "{{", rolledBack: "{{", bogus1: "x", bogus2: "y", bogus3: "z"}
`))
	if err != nil {
		t.Fatal(err)
	}
	d := r.WithDefaults()
	first := ValidateSpec(d)
	if first == nil {
		t.Fatal("want problems")
	}
	for i := 0; i < 100; i++ {
		if got := ValidateSpec(d); got.Error() != first.Error() {
			t.Fatalf("run %d differs:\n%v\nfirst:\n%v", i, got, first)
		}
	}
}
