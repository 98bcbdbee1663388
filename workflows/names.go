package workflows

import "go.temporal.io/sdk/temporal"

// Wire names. Stored histories, the Temporal CLI and users' scripts refer to these strings, so they never
// change when Go identifiers do.
const (
	// TaskQueue is the task queue Shepherd workers poll.
	TaskQueue = "shepherd"
	// ReleaseWorkflow is the workflow type of a release.
	ReleaseWorkflow = "Release"

	// Signal and update names; each takes a ControlRequest.
	Approve = "approve"
	Abort   = "abort"
	Pause   = "pause"
	Resume  = "resume"
	// Retry and Acknowledge apply only while RollbackStuck: retry runs the failed rollback step again;
	// acknowledge (with a reason) records that a person finished the rollback by hand and ends the release.
	Retry       = "retry"
	Acknowledge = "acknowledge"

	// StatusQuery returns a record.Status.
	StatusQuery = "status"
)

// Activity names.
const (
	ActivityPreflight  = "Preflight"
	ActivityDeploy     = "Deploy"
	ActivityHealth     = "HealthCheck"
	ActivitySetTraffic = "SetTraffic"
	ActivityPromote    = "Promote"
	ActivityRollback   = "RemoveCanary"
	ActivityMeasure    = "Measure"
	// ActivityWatchStage watches a soaking stage (one long-running activity per soak stretch).
	ActivityWatchStage = "WatchStage"
	ActivityPrecheck   = "Precheck"
	ActivitySetFlags   = "SetFlags"
	ActivityNotify     = "Notify"
	ActivityTag        = "TagRelease"
	ActivityArchive    = "ArchiveReport"
	// ActivityVerifyControl runs as a local activity from the control handlers.
	ActivityVerifyControl = "VerifyControl"
	ActivityVerifyStart   = "VerifyStart"
	ActivityCheckFreeze   = "CheckFreeze"
)

// Custom search attributes the workflow upserts. The server must know them before a release starts
// (an unknown attribute stalls the workflow task): `temporal operator search-attribute create`.
var (
	AttrService        = temporal.NewSearchAttributeKeyKeyword("ReleaseService")
	AttrEnvironment    = temporal.NewSearchAttributeKeyKeyword("ReleaseEnvironment")
	AttrVersion        = temporal.NewSearchAttributeKeyKeyword("ReleaseVersion")
	AttrPhase          = temporal.NewSearchAttributeKeyKeyword("ReleasePhase")
	AttrTrafficPercent = temporal.NewSearchAttributeKeyInt64("ReleaseTrafficPercent")
)

// SearchAttributes lists every custom search attribute with its type name as the Temporal CLI spells it.
var SearchAttributes = []struct{ Name, Type string }{
	{"ReleaseService", "Keyword"},
	{"ReleaseEnvironment", "Keyword"},
	{"ReleaseVersion", "Keyword"},
	{"ReleasePhase", "Keyword"},
	{"ReleaseTrafficPercent", "Int"},
}
