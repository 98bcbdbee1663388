package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/shepherd-release/shepherd/activities"
	"github.com/shepherd-release/shepherd/record"
	"github.com/shepherd-release/shepherd/spec"
	"github.com/shepherd-release/shepherd/starter"
)

func awaiting(timeout time.Duration, onTimeout string) record.Status {
	opened := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	return record.Status{
		Service: "checkout", Environment: "staging", Version: "v2", Phase: record.PhaseAwaitingApproval,
		Gate:  "stage:2",
		Stage: &record.StageStatus{Number: 2, Of: 3, Percent: 50, ApprovalRequired: true},
		Stages: []record.StagePlan{{Number: 1, Percent: 10}, {Number: 2, Percent: 50, Approval: true,
			ApprovalTimeout: timeout, OnApprovalTimeout: onTimeout}, {Number: 3, Percent: 100}},
		Decisions: []record.Decision{
			{Time: opened.Add(-time.Minute), Kind: record.KindTransition, Phase: record.PhaseProgressing, Stage: 1, Message: "stage 1/3: shifting"},
			{Time: opened, Kind: record.KindTransition, Phase: record.PhaseAwaitingApproval, Stage: 2, Message: "stage 2/3 (50%) waits for approval"},
		},
	}
}

// At a gate, watch and start --wait say once which command approves, with the release's --env, and when
// the gate times out.
func TestApprovalNotice(t *testing.T) {
	now := time.Date(2026, 11, 30, 9, 1, 30, 0, time.UTC)
	assert.Equal(t, "\nStage 2/3 (50%) waits for approval. To approve:\n"+
		"  shepherd approve checkout --env staging --stage 2\n"+
		"Without approval the gate times out in 8m30s (at 09:10:00 UTC); then the release is rolled back.\n\n",
		approvalNotice(awaiting(10*time.Minute, "abort"), now))
	assert.Equal(t, "\nStage 2/3 (50%) waits for approval. To approve:\n"+
		"  shepherd approve checkout --env staging --stage 2\n"+
		"Without approval the gate times out in 28m30s (at 09:30:00 UTC); then the release proceeds without it (onApprovalTimeout: proceed).\n\n",
		approvalNotice(awaiting(30*time.Minute, "proceed"), now))
	assert.Equal(t, "\nStage 2/3 (50%) waits for approval. To approve:\n"+
		"  shepherd approve checkout --env staging --stage 2\n"+
		"The gate has no timeout: the release waits until it is approved or aborted.\n\n",
		approvalNotice(awaiting(0, ""), now))
	signoff := awaiting(0, "")
	signoff.Gate, signoff.Stage = "signoff:qa", nil
	assert.Equal(t, "\nThe release waits for a sign-off by role qa before anything changes. To sign off:\n"+
		"  shepherd approve checkout --env staging --role qa\n\n", approvalNotice(signoff, now))

	var b bytes.Buffer
	renderStatus(&b, awaiting(10*time.Minute, "abort"), nil, now)
	assert.Contains(t, b.String(), "  shepherd approve checkout --env staging --stage 2\n")
	assert.Contains(t, b.String(), "(full log: shepherd history checkout --env staging)")
}

// A command that names a service with active releases in several environments does not guess.
func TestSeveralActiveReleasesAskForEnv(t *testing.T) {
	err := severalActive("checkout", "pause", []starter.Summary{
		{Environment: "production", Version: "v2.4.0", Phase: "Progressing"},
		{Environment: "staging", Version: "v2.5.0", Phase: "AwaitingApproval"},
	})
	var ee *exitError
	assert.ErrorAs(t, err, &ee)
	assert.Equal(t, ExitUsage, ee.code)
	assert.Equal(t, "checkout has 2 active releases; say which with --env:\n"+
		"  shepherd pause checkout --env production   # v2.4.0, Progressing\n"+
		"  shepherd pause checkout --env staging      # v2.5.0, AwaitingApproval", err.Error())
}

// The hints after an outcome carry the release's real --env.
func TestOutcomeHintsCarryTheEnvironment(t *testing.T) {
	err := outcomeError(record.Status{Service: "checkout", Environment: "staging", Phase: record.PhaseRolledBack, Reason: "aborted"})
	var ee *exitError
	assert.ErrorAs(t, err, &ee)
	assert.Equal(t, ExitRolledBack, ee.code)
	assert.Equal(t, "shepherd history checkout --env staging shows the evidence", ee.hint)
}

// The status of a release that ended ends with its outcome, not with the archived report's paths.
func TestStatusOfAnEndedReleaseEndsWithItsOutcome(t *testing.T) {
	st := awaiting(0, "")
	st.Phase, st.Reason, st.Gate = record.PhaseRolledBack, "aborted by bob: QA found a bug", ""
	st.Decisions = append(st.Decisions, record.Decision{Kind: record.KindNotice, Message: "report archived: /var/reports/x.md"})
	var b bytes.Buffer
	renderStatus(&b, st, nil, time.Now())
	assert.True(t, strings.HasSuffix(b.String(), "\nOutcome: RolledBack: aborted by bob: QA found a bug (full log: shepherd history checkout --env staging)\n"), b.String())
	assert.NotContains(t, b.String(), "x.md")
}

// -o json prints durations as duration strings, as a spec writes them.
func TestStatusJSONHasDurationStrings(t *testing.T) {
	st := awaiting(10*time.Minute, "abort")
	st.Stages[0].Soak = 15 * time.Minute
	st.Stage.SoakRemaining = 4200 * time.Millisecond
	st.RollbackDuration = 160 * time.Millisecond
	var b bytes.Buffer
	g := &globals{output: "json", stdout: &b}
	assert.NoError(t, g.printJSON(st))
	for _, want := range []string{`"soak": "15m0s"`, `"approvalTimeout": "10m0s"`, `"soakRemaining": "4.2s"`, `"rollbackDuration": "160ms"`, `"percent": 50`} {
		assert.Contains(t, b.String(), want)
	}
	assert.NotContains(t, b.String(), "900000000000")
}

// While a stage soaks, status shows the watch's live evidence (its last heartbeat) under the progress.
func TestStatusShowsTheLiveWatch(t *testing.T) {
	st := awaiting(0, "")
	st.Phase, st.Gate = record.PhaseProgressing, ""
	last, most := 0.002, 0.004
	now := time.Date(2026, 11, 30, 1, 0, 0, 0, time.UTC)
	live := &activities.WatchProgress{Soaked: spec.Duration(time.Minute), NextAt: now.Add(4 * time.Second),
		Evidence: record.StageEvidence{Stage: 1, Rounds: 6, Checks: []record.CheckEvidence{{Check: "error-rate", Measurements: 6, Passed: 6, Last: &last, Max: &most, Min: &last}}}}
	var b bytes.Buffer
	renderStatus(&b, st, live, now)
	assert.Contains(t, b.String(), "\nLive:     watching stage 1: 6 round(s), 1m0s soaked; error-rate 6/6 passed (last 0.002, max 0.004); next round in 4s\n")
}
