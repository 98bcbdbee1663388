package workflows

import (
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/shepherd-release/shepherd/activities"
)

// RegisterWorkflows registers every workflow under its wire name. The worker, the replay tests and the
// unit tests all use it, so what is replayed is what runs.
func RegisterWorkflows(r worker.WorkflowRegistry) {
	r.RegisterWorkflowWithOptions(Release, workflow.RegisterOptions{Name: ReleaseWorkflow})
}

// RegisterActivities registers a's methods under their wire names.
func RegisterActivities(r worker.ActivityRegistry, a *activities.Activities) {
	for name, fn := range map[string]any{
		ActivityPreflight:     a.Preflight,
		ActivityDeploy:        a.Deploy,
		ActivityHealth:        a.HealthCheck,
		ActivitySetTraffic:    a.SetTraffic,
		ActivityPromote:       a.Promote,
		ActivityRollback:      a.RemoveCanary,
		ActivityMeasure:       a.Measure,
		ActivityWatchStage:    a.WatchStage,
		ActivityPrecheck:      a.Precheck,
		ActivitySetFlags:      a.SetFlags,
		ActivityNotify:        a.Notify,
		ActivityTag:           a.TagRelease,
		ActivityArchive:       a.ArchiveReport,
		ActivityVerifyControl: a.VerifyControl,
		ActivityVerifyStart:   a.VerifyStart,
		ActivityCheckFreeze:   a.CheckFreeze,
	} {
		r.RegisterActivityWithOptions(fn, activity.RegisterOptions{Name: name})
	}
}
