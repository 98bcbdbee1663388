// Package record holds the evidence a release leaves behind: its phase, the measurements taken, the
// decisions made and why. The workflow keeps it in state (the `status` query), returns it as the result,
// and the report, notifications and dashboards read it. Pure data; no Temporal imports.
package record

import (
	"fmt"
	"time"
)

// Phase is where a release is in its life.
type Phase string

// Phases, as in the wire contract.
const (
	PhaseValidating       Phase = "Validating"
	PhaseDeploying        Phase = "Deploying"
	PhaseAwaitingApproval Phase = "AwaitingApproval"
	PhaseProgressing      Phase = "Progressing"
	PhasePaused           Phase = "Paused"
	PhasePromoting        Phase = "Promoting"
	PhaseRollingBack      Phase = "RollingBack"
	// PhaseRollbackStuck: a rollback step kept failing past its bounded retry time. The workflow stays
	// open (so no new release of the service can start) until an operator sends retry or acknowledge.
	PhaseRollbackStuck Phase = "RollbackStuck"
	// PhaseFrozen: a change freeze holds the release before a traffic shift or promotion, until it ends or
	// a break-glass approval lets the release through.
	PhaseFrozen     Phase = "Frozen"
	PhaseSucceeded  Phase = "Succeeded"
	PhaseRolledBack Phase = "RolledBack"
	PhaseFailed     Phase = "Failed"
)

// Terminal reports whether the release has ended in this phase.
func (p Phase) Terminal() bool {
	return p == PhaseSucceeded || p == PhaseRolledBack || p == PhaseFailed
}

// Verdict is the outcome of one measurement, or of a set of them.
type Verdict string

// Verdicts.
const (
	Pass         Verdict = "Pass"
	Fail         Verdict = "Fail"
	Inconclusive Verdict = "Inconclusive"
)

// Measurement is one evaluation of one check, with the evidence for its verdict.
type Measurement struct {
	Check string    `json:"check"`
	Time  time.Time `json:"time"`
	Stage int       `json:"stage"`
	// Query is the PromQL that ran (rendered).
	Query string `json:"query,omitempty"`
	// Value is nil when no number was obtained.
	Value *float64 `json:"value,omitempty"`
	Max   *float64 `json:"max,omitempty"`
	Min   *float64 `json:"min,omitempty"`
	// Baseline is the stable version's value when the check compares against it.
	Baseline *float64 `json:"baseline,omitempty"`
	// BaselineMaxRelativeIncrease is the allowed relative margin over Baseline.
	BaselineMaxRelativeIncrease float64 `json:"baselineMaxRelativeIncrease,omitempty"`
	// Error says why no usable value was obtained.
	Error   string  `json:"error,omitempty"`
	Verdict Verdict `json:"verdict"`
	// Reason explains the verdict in one line ("0.052 > max 0.01").
	Reason string `json:"reason,omitempty"`
}

// DecisionKind classifies decision-log entries.
type DecisionKind string

// Decision kinds.
const (
	KindTransition DecisionKind = "transition"
	KindApproval   DecisionKind = "approval"
	KindRejection  DecisionKind = "rejection"
	KindControl    DecisionKind = "control"
	KindAnalysis   DecisionKind = "analysis"
	KindStep       DecisionKind = "step"
	KindRollback   DecisionKind = "rollback"
	KindCheck      DecisionKind = "check"
	KindNotice     DecisionKind = "notice"
)

// Decision is one entry of the decision log: what happened, who or what caused it, and the evidence.
type Decision struct {
	Time  time.Time    `json:"time"`
	Kind  DecisionKind `json:"kind"`
	Phase Phase        `json:"phase"`
	// Stage is the 1-based stage number, 0 before the first stage.
	Stage   int    `json:"stage,omitempty"`
	By      string `json:"by,omitempty"`
	Message string `json:"message"`
	// Comment is the person's own words, for approvals and controls.
	Comment      string        `json:"comment,omitempty"`
	Measurements []Measurement `json:"measurements,omitempty"`
	// Rounds is how many analysis rounds in a row this entry stands for: consecutive rounds with the
	// same outcome are folded into one entry (its time and measurements are the latest round's), so a
	// long soak does not grow the log. 0 or 1 means one round.
	Rounds int `json:"rounds,omitempty"`
	// Since is the time of the first round folded into this entry (set when Rounds > 1).
	Since time.Time `json:"since,omitzero"`
	// Evidence is what a stage's analysis saw, on the entry that ended a watch of the stage.
	Evidence *StageEvidence `json:"evidence,omitempty"`
}

// Text is the message, with the number of rounds it stands for when several were folded into it.
func (d Decision) Text() string {
	if d.Rounds > 1 {
		return fmt.Sprintf("%s (%d rounds in a row since %s UTC)", d.Message, d.Rounds, d.Since.UTC().Format(time.TimeOnly))
	}
	return d.Message
}

// StageStatus describes the current stage.
type StageStatus struct {
	// Number is 1-based.
	Number  int `json:"number"`
	Of      int `json:"of"`
	Percent int `json:"percent"`
	// SoakStartedAt is zero until traffic reached the stage percent.
	SoakStartedAt time.Time `json:"soakStartedAt,omitzero"`
	// SoakEndsAt is when the soak ends if nothing pauses it; zero while paused or not soaking.
	SoakEndsAt time.Time `json:"soakEndsAt,omitzero"`
	// SoakRemaining is the soak time left (frozen while paused).
	SoakRemaining time.Duration `json:"soakRemaining"`
	// ApprovalRequired says the stage has an approval gate; Approved whether it was passed.
	ApprovalRequired bool `json:"approvalRequired,omitempty"`
	Approved         bool `json:"approved,omitempty"`
	// ApprovedBy lists who has approved the stage's gate so far (verified principals, or typed names
	// where unsigned approvals are accepted); ApprovalsNeeded how many more distinct approvers it needs.
	ApprovedBy      string `json:"approvedBy,omitempty"`
	ApprovalsNeeded int    `json:"approvalsNeeded,omitempty"`
}

// Status is the answer of the `status` query.
type Status struct {
	ReleaseID       string    `json:"releaseID"`
	WorkflowID      string    `json:"workflowID"`
	Service         string    `json:"service"`
	Environment     string    `json:"environment"`
	Version         string    `json:"version"`
	PreviousVersion string    `json:"previousVersion,omitempty"`
	Phase           Phase     `json:"phase"`
	Reason          string    `json:"reason,omitempty"`
	StartedAt       time.Time `json:"startedAt"`
	EndedAt         time.Time `json:"endedAt,omitzero"`
	// Stage is nil before the first stage.
	Stage          *StageStatus `json:"stage,omitempty"`
	Stages         []StagePlan  `json:"stages"`
	TrafficPercent int          `json:"trafficPercent"`
	// Gate names the approval gate the release waits at, as a signed approval must name it ("stage:3",
	// "signoff:qa"); empty when none.
	Gate string `json:"gate,omitempty"`
	// Latest holds the most recent measurement of each check, in check order.
	Latest    []Measurement `json:"latest,omitempty"`
	Decisions []Decision    `json:"decisions"`
	// RollbackDuration is the time from the rollback decision to the last compensation, once rolled back.
	RollbackDuration time.Duration `json:"rollbackDuration,omitempty"`
	// TrafficRestoredAfter is the time from the rollback decision until traffic was back on stable.
	TrafficRestoredAfter time.Duration `json:"trafficRestoredAfter,omitempty"`
	// UnrecordedRejections counts rejected control signals not written to the decision log because a
	// stage already recorded its limit of them (a flood of bad signals must not grow the status).
	UnrecordedRejections int `json:"unrecordedRejections,omitempty"`
}

// StagePlan is a stage of the plan and what became of it.
type StagePlan struct {
	Number   int           `json:"number"`
	Percent  int           `json:"percent"`
	Soak     time.Duration `json:"soak"`
	Approval bool          `json:"approval,omitempty"`
	// ApprovalTimeout bounds the wait at the approval gate (0: none); OnApprovalTimeout is what happens
	// then, "abort" or "proceed".
	ApprovalTimeout   time.Duration `json:"approvalTimeout,omitempty"`
	OnApprovalTimeout string        `json:"onApprovalTimeout,omitempty"`
	StartedAt         time.Time     `json:"startedAt,omitzero"`
	FinishedAt        time.Time     `json:"finishedAt,omitzero"`
	// Outcome is "", "passed", "rolled back", "aborted".
	Outcome string `json:"outcome,omitempty"`
}

// Result is the workflow's result: the final status, which holds the terminal phase, the reason, the
// decision log and the rollback duration.
type Result = Status
