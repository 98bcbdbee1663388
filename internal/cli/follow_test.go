package cli

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/mocks"

	"github.com/shepherd-release/shepherd/record"
)

// watch and start --wait outlive a Temporal restart: a failed status query is retried, said once, and
// the release is followed to its end.
func TestFollowSurvivesAServerRestart(t *testing.T) {
	defer func(d time.Duration) { retryEvery = d }(retryEvery)
	retryEvery = time.Millisecond

	c := &mocks.Client{}
	down := serviceerror.NewUnavailable("connection refused")
	c.On("QueryWorkflow", mock.Anything, "release:checkout:staging", "", "status").Return(nil, down).Times(3)
	done := record.Status{Service: "checkout", Environment: "staging", Version: "v2", Phase: record.PhaseSucceeded,
		Reason: "checkout v2 promoted in staging"}
	v := &mocks.Value{}
	v.On("Get", mock.Anything).Run(func(args mock.Arguments) { *args.Get(0).(*record.Status) = done }).Return(nil)
	c.On("QueryWorkflow", mock.Anything, "release:checkout:staging", "", "status").Return(v, nil)
	c.On("DescribeTaskQueue", mock.Anything, "shepherd", mock.Anything).Return(nil, down)

	var stdout, stderr bytes.Buffer
	g := &globals{output: "text", stdout: &stdout, stderr: &stderr}
	require.NoError(t, follow(context.Background(), g, c, "checkout", "staging", ""))
	assert.Equal(t, "Cannot read the release's status: Temporal does not answer (describing task queue \"shepherd\": connection refused)\n"+
		"  Retrying every 1ms until it answers (Ctrl-C stops watching; the release goes on without you).\n"+
		"The release's status answers again; following on.\n", stderr.String())
	assert.Contains(t, stdout.String(), "Release Succeeded: checkout v2 promoted in staging")
	c.AssertNumberOfCalls(t, "QueryWorkflow", 4)
}
