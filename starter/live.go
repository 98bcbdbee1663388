package starter

import (
	"context"
	"fmt"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/shepherd-release/shepherd/activities"
	"github.com/shepherd-release/shepherd/spec"
	"github.com/shepherd-release/shepherd/workflows"
)

// LiveWatch reads the progress of the stage watch a release runs now (the WatchStage activity's last
// heartbeat, as the web UI shows under Pending Activities): nil when no watch runs or it has not reported
// yet. It costs no history: heartbeats are not events.
func LiveWatch(ctx context.Context, c client.Client, service, env, runID string) (*activities.WatchProgress, error) {
	id := spec.WorkflowID(service, env)
	d, err := c.DescribeWorkflow(ctx, id, runID)
	if err != nil {
		return nil, fmt.Errorf("describing release %s: %w", id, err)
	}
	for _, a := range d.RawResponse.GetPendingActivities() {
		if a.GetActivityType().GetName() != workflows.ActivityWatchStage || a.GetHeartbeatDetails() == nil {
			continue
		}
		var p activities.WatchProgress
		if err := converter.GetDefaultDataConverter().FromPayloads(a.GetHeartbeatDetails(), &p); err != nil {
			return nil, fmt.Errorf("decoding the watch's progress of %s: %w", id, err)
		}
		return &p, nil
	}
	return nil, nil
}
