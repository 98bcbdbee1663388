package starter

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/mocks"

	"github.com/shepherd-release/shepherd/spec"
)

// execSpec is a valid spec on the exec target; tests change what they need.
func execSpec(t *testing.T) spec.Release {
	t.Helper()
	r, err := spec.Parse([]byte(`
service: checkout
environment: staging
version: v2
previousVersion: v1
target:
  type: exec
  exec: {deploy: "true", traffic: "true", promote: "true", rollback: "true"}
stages: [{percent: 50, soak: 1m}, {percent: 100, soak: 1m}]
analysis: {disabled: true}
`))
	require.NoError(t, err)
	return r
}

// A spec built in Go (not read from a file) is held to the same size bound before it is sent.
func TestStartRefusesAnOversizedSpec(t *testing.T) {
	c := mocks.NewClient(t) // no ExecuteWorkflow expected: the spec never reaches the server
	s := execSpec(t)
	s.Description = strings.Repeat("x", spec.MaxSpecBytes)
	_, err := Start(context.Background(), c, s)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "larger than the limit of 1048576 bytes")
}
