package workflows

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/shepherd-release/shepherd/activities"
	"github.com/shepherd-release/shepherd/record"
	"github.com/shepherd-release/shepherd/spec"
)

func TestDefaultReleaseTakesFiveSoaksAndPromotes(t *testing.T) {
	h := newHarness(t, baseSpec())
	res, err := h.run()
	require.NoError(t, err)
	assert.Equal(t, record.PhaseSucceeded, res.Phase)
	assert.Equal(t, fullRelease, h.target.Calls())
	// Five 15-minute soaks: 75 minutes of workflow time, to the second.
	assert.GreaterOrEqual(t, h.elapsed(), 75*time.Minute)
	assert.Less(t, h.elapsed(), 75*time.Minute+time.Second)
	assert.Equal(t, 100, res.TrafficPercent)
	// 10 s interval × 15 min = 90 measurements per stage, each with both checks, watched by one activity
	// per stage: one decision per stage with its evidence, so the log does not grow with the soak.
	var rounds []int
	for _, d := range res.Decisions {
		if d.Kind == record.KindAnalysis {
			require.NotNil(t, d.Evidence)
			rounds = append(rounds, d.Evidence.Rounds)
			assert.Len(t, d.Measurements, 2)
			assert.Contains(t, d.Text(), "passed its analysis; 90 rounds over 15m0s: error-rate 90/90 passed (0.001), p99-latency 90/90 passed (0.12)")
		}
	}
	assert.Equal(t, []int{90, 90, 90, 90, 90}, rounds)
	assert.Equal(t, 5, h.watches, "one watch per stage")
	for _, st := range res.Stages {
		assert.Equal(t, "passed", st.Outcome, "stage %d", st.Number)
		assert.Equal(t, 15*time.Minute, st.FinishedAt.Sub(st.StartedAt), "stage %d soak", st.Number)
	}
	assert.Len(t, res.Latest, 2)
	assert.Equal(t, record.Pass, res.Latest[0].Verdict)
}

func TestInvalidSpecIsRejectedAndNothingRuns(t *testing.T) {
	s := baseSpec()
	s.Stages = []spec.Stage{{Percent: 10}, {Percent: 5}}
	s.Target = "Kubernetes!"
	h := newHarness(t, s)
	_, err := h.run()
	var appErr *temporal.ApplicationError
	require.ErrorAs(t, err, &appErr)
	assert.Equal(t, ErrTypeInvalidSpec, appErr.Type())
	assert.True(t, appErr.NonRetryable())
	assert.Contains(t, appErr.Message(), "stages[1].percent: must be greater than stages[0].percent (10)")
	assert.Contains(t, appErr.Message(), `target: "Kubernetes!" is not a provider name`)
	assert.Empty(t, h.target.Calls())
}

func TestWrongWorkflowIDIsRejected(t *testing.T) {
	h := newHarness(t, baseSpec())
	h.spec.Service = "payments"
	h.workflowID = "release:checkout:production" // payments under checkout's ID: a second release would not be refused
	_, err := h.run()
	var appErr *temporal.ApplicationError
	require.ErrorAs(t, err, &appErr)
	assert.Equal(t, ErrTypeInvalidSpec, appErr.Type())
	assert.Contains(t, appErr.Message(), `must run as workflow ID "release:payments:production"`)
	assert.Empty(t, h.target.Calls())
}

func gated(s spec.Release, stage int, timeout time.Duration, action string) spec.Release {
	s = s.WithDefaults()
	s.Stages[stage].Approval = true
	s.Stages[stage].ApprovalTimeout = spec.Duration(timeout)
	if action != "" {
		s.Stages[stage].OnApprovalTimeout = action
	}
	return s
}

func TestApprovalGateApprovedByUpdate(t *testing.T) {
	h := newHarness(t, gated(baseSpec(), 2, 0, ""))
	var early, wrongStage, noBy, ok *outcome
	// Stage 3 waits from 30 min on; approvals that make no sense are refused before it.
	h.at(10*time.Minute, func() { early = h.update(Approve, ControlRequest{By: "alice"}) })
	h.at(40*time.Minute, func() {
		st := h.status()
		assert.Equal(t, record.PhaseAwaitingApproval, st.Phase)
		assert.Equal(t, 5, st.TrafficPercent)
		wrongStage = h.update(Approve, ControlRequest{By: "alice", Stage: 4})
		noBy = h.update(Approve, ControlRequest{Stage: 3})
		ok = h.update(Approve, ControlRequest{By: "alice", Stage: 3, Comment: "dashboards look fine"})
	})
	res, err := h.run()
	require.NoError(t, err)
	early.rejected(t, "nothing to approve: the release is Progressing at stage 1 of 5 (1%)")
	wrongStage.rejected(t, "approve is for stage 4, but the release is at stage 3 of 5 (25%)")
	noBy.rejected(t, `needs "by"`)
	assert.True(t, ok.accepted(t).Accepted)
	assert.Equal(t, record.PhaseSucceeded, res.Phase)
	assert.Equal(t, fullRelease, h.target.Calls())
	assert.Equal(t, 75*time.Minute+10*time.Minute, h.elapsed().Round(time.Second))
	approvals := decisionsOf(res, record.KindApproval)
	require.Len(t, approvals, 1)
	assert.Contains(t, approvals[0], "stage 3 approved by alice (unverified) after 10m0s")
	for _, d := range res.Decisions {
		if d.Kind == record.KindApproval {
			assert.Equal(t, "dashboards look fine", d.Comment)
			assert.Equal(t, "alice", d.By)
		}
	}
	// Rejected updates leave no trace in the decision log (they never reach history).
	assert.Empty(t, decisionsOf(res, record.KindRejection))
}

func TestApprovalGateRejectedByAbort(t *testing.T) {
	h := newHarness(t, gated(baseSpec(), 1, 0, ""))
	h.at(20*time.Minute, func() { h.signal(Abort, ControlRequest{By: "bob", Reason: "QA found a bug"}) })
	res, err := h.run()
	require.NoError(t, err)
	assert.Equal(t, record.PhaseRolledBack, res.Phase)
	assert.Equal(t, "aborted by bob: QA found a bug", res.Reason)
	assert.Equal(t, []string{"deploy v2", "health", "traffic 1", "traffic 0", "rollback"}, h.target.Calls())
}

func TestApprovalTimeout(t *testing.T) {
	t.Run("abort", func(t *testing.T) {
		h := newHarness(t, gated(baseSpec(), 0, time.Hour, spec.OnTimeoutAbort))
		res, err := h.run()
		require.NoError(t, err)
		assert.Equal(t, record.PhaseRolledBack, res.Phase)
		assert.Contains(t, res.Reason, "no approval for stage 1 within 1h0m0s")
		// Nothing was shifted yet: only the canary is removed.
		assert.Equal(t, []string{"deploy v2", "health", "rollback"}, h.target.Calls())
		assert.Equal(t, time.Hour, h.elapsed().Round(time.Second))
	})
	t.Run("proceed", func(t *testing.T) {
		h := newHarness(t, gated(baseSpec(), 0, time.Hour, spec.OnTimeoutProceed))
		res, err := h.run()
		require.NoError(t, err)
		assert.Equal(t, record.PhaseSucceeded, res.Phase)
		assert.Equal(t, fullRelease, h.target.Calls())
		assert.Equal(t, 135*time.Minute, h.elapsed().Round(time.Second))
	})
}

// blockStep makes a target step take d of workflow time, so a control can arrive while it runs.
func blockStep(h *harness, activity string, d time.Duration) {
	h.env.OnActivity(activity, mock.Anything, mock.Anything).After(d).Return(activities.StepResult{}, nil)
}

func TestAbortInEveryPhase(t *testing.T) {
	abort := ControlRequest{By: "carol", Reason: "customer escalation"}
	cases := []struct {
		name   string
		spec   spec.Release
		setup  func(h *harness)
		at     time.Duration
		phase  record.Phase
		calls  []string
		before func(h *harness)
	}{
		{name: "validating", spec: baseSpec(), at: time.Minute, phase: record.PhaseValidating,
			setup: func(h *harness) { blockStep(h, ActivityPreflight, 10*time.Minute) },
			calls: nil},
		{name: "deploying", spec: baseSpec(), at: time.Minute, phase: record.PhaseDeploying,
			setup: func(h *harness) { blockStep(h, ActivityDeploy, 10*time.Minute) },
			calls: []string{"rollback"}},
		{name: "awaiting approval", spec: gated(baseSpec(), 0, 0, ""), at: time.Minute, phase: record.PhaseAwaitingApproval,
			calls: []string{"deploy v2", "health", "rollback"}},
		{name: "progressing", spec: baseSpec(), at: 20 * time.Minute, phase: record.PhaseProgressing,
			calls: []string{"deploy v2", "health", "traffic 1", "traffic 5", "traffic 0", "rollback"}},
		{name: "paused", spec: baseSpec(), at: 40 * time.Minute, phase: record.PhasePaused,
			before: func(h *harness) {
				h.at(20*time.Minute, func() { h.signal(Pause, ControlRequest{By: "carol"}) })
			},
			calls: []string{"deploy v2", "health", "traffic 1", "traffic 5", "traffic 0", "rollback"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.spec)
			if tc.setup != nil {
				tc.setup(h)
			}
			if tc.before != nil {
				tc.before(h)
			}
			var first, second *outcome
			h.at(tc.at, func() {
				assert.Equal(t, tc.phase, h.status().Phase)
				first = h.update(Abort, abort)
				second = h.update(Abort, abort)
			})
			res, err := h.run()
			require.NoError(t, err)
			assert.Equal(t, "abort accepted; rolling back", first.accepted(t).Message)
			second.rejected(t, "already rolling back")
			assert.Equal(t, record.PhaseRolledBack, res.Phase)
			assert.Equal(t, "aborted by carol: customer escalation", res.Reason)
			assert.Equal(t, tc.calls, h.target.Calls())
			assert.NotContains(t, h.target.Calls(), "promote")
			// Nothing waits after an abort: the rollback runs at once.
			assert.Equal(t, tc.at, h.elapsed().Round(time.Second))
		})
	}
}

func TestFailedAnalysisRollsBackInReverseOrder(t *testing.T) {
	h := newHarness(t, baseSpec())
	h.metrics.value = func(check string, percent, round int) (float64, error) {
		if check == "error-rate" && percent == 25 {
			return 0.052, nil
		}
		return healthy(check, percent, round)
	}
	res, err := h.run()
	require.NoError(t, err)
	assert.Equal(t, record.PhaseRolledBack, res.Phase)
	assert.Equal(t, []string{"deploy v2", "health", "traffic 1", "traffic 5", "traffic 25", "traffic 0", "rollback"}, h.target.Calls())
	assert.Contains(t, res.Reason, "error-rate failed 1 time(s) in a row (0.052 > max 0.01)")
	// The breach was seen at the first measurement of stage 3: 30 min + 10 s.
	assert.Equal(t, 30*time.Minute+10*time.Second, h.elapsed().Round(time.Second))
	assert.Equal(t, 0, res.TrafficPercent)
	assert.Equal(t, "rolled back", res.Stages[2].Outcome)
	rb := decisionsOf(res, record.KindRollback)
	assert.Equal(t, []string{`rollback step "traffic to stable" done`, `rollback step "remove canary" done`}, rb)
	// The evidence is in the decision log.
	var evidence *record.Measurement
	for _, d := range res.Decisions {
		for i, m := range d.Measurements {
			if m.Verdict == record.Fail {
				evidence = &d.Measurements[i]
			}
		}
	}
	require.NotNil(t, evidence)
	assert.Equal(t, "error-rate", evidence.Check)
	assert.InDelta(t, 0.052, *evidence.Value, 1e-9)
	assert.InDelta(t, 0.01, *evidence.Max, 1e-9)
}

func TestFailureLimitCountsConsecutiveFailures(t *testing.T) {
	s := baseSpec()
	s.Analysis.FailureLimit = 3
	h := newHarness(t, s)
	h.metrics.value = func(check string, percent, round int) (float64, error) {
		// Stage 1 fails twice in a row, then recovers: below the limit, no rollback.
		// Stage 2 fails from its 5th measurement on: rollback after the 3rd consecutive failure.
		if check == "error-rate" && ((percent == 1 && round <= 2) || (percent == 5 && round >= 95)) {
			return 0.5, nil
		}
		return healthy(check, percent, round)
	}
	res, err := h.run()
	require.NoError(t, err)
	assert.Equal(t, record.PhaseRolledBack, res.Phase)
	assert.Contains(t, res.Reason, "error-rate failed 3 time(s) in a row")
	assert.Equal(t, 15*time.Minute+(4+3)*10*time.Second, h.elapsed().Round(time.Second))
}

func TestInconclusivePausesThenResume(t *testing.T) {
	h := newHarness(t, baseSpec())
	h.metrics.value = func(check string, percent, round int) (float64, error) {
		if percent == 5 && round >= 91 && round <= 93 { // 3 rounds without data at stage 2
			return 0, errors.New("query returned no series")
		}
		return healthy(check, percent, round)
	}
	var approve, resume *outcome
	h.at(25*time.Minute, func() {
		st := h.status()
		assert.Equal(t, record.PhasePaused, st.Phase)
		assert.Equal(t, 5, st.TrafficPercent, "a pause keeps traffic where it is")
		assert.Equal(t, 14*time.Minute+30*time.Second, st.Stage.SoakRemaining)
		approve = h.update(Approve, ControlRequest{By: "dave"})
		resume = h.update(Resume, ControlRequest{By: "dave", Comment: "Prometheus is back"})
	})
	res, err := h.run()
	require.NoError(t, err)
	approve.rejected(t, "nothing to approve")
	assert.Equal(t, "resume accepted", resume.accepted(t).Message)
	assert.Equal(t, record.PhaseSucceeded, res.Phase)
	assert.Equal(t, fullRelease, h.target.Calls())
	// Paused from 15.5 min to 25 min; the soak clock stood still meanwhile.
	assert.Equal(t, 75*time.Minute+9*time.Minute+30*time.Second, h.elapsed().Round(time.Second))
	paused := decisionsOf(res, record.KindAnalysis)
	assert.True(t, containsAll(paused, "pausing for a human: analysis inconclusive: error-rate inconclusive 3 time(s) in a row"))
}

func TestPauseResumeDuringSoakStopsTheClock(t *testing.T) {
	h := newHarness(t, baseSpec())
	var pause, again *outcome
	h.at(20*time.Minute, func() {
		pause = h.update(Pause, ControlRequest{By: "erin", Reason: "incident elsewhere"})
		again = h.update(Pause, ControlRequest{By: "erin"})
	})
	h.at(50*time.Minute, func() {
		st := h.status()
		assert.Equal(t, record.PhasePaused, st.Phase)
		assert.Equal(t, 10*time.Minute, st.Stage.SoakRemaining)
		h.signal(Resume, ControlRequest{By: "erin"})
	})
	res, err := h.run()
	require.NoError(t, err)
	pause.accepted(t)
	again.rejected(t, "already paused")
	assert.Equal(t, record.PhaseSucceeded, res.Phase)
	assert.Equal(t, 105*time.Minute, h.elapsed().Round(time.Second))
}

func TestRejectedSignalIsRecordedAndChangesNothing(t *testing.T) {
	h := newHarness(t, baseSpec())
	h.at(5*time.Minute, func() { h.signal(Resume, ControlRequest{By: "frank"}) })
	h.at(6*time.Minute, func() { h.signal(Approve, ControlRequest{By: "frank", Stage: 1}) })
	res, err := h.run()
	require.NoError(t, err)
	assert.Equal(t, record.PhaseSucceeded, res.Phase)
	rejected := decisionsOf(res, record.KindRejection)
	require.Len(t, rejected, 2)
	assert.Contains(t, rejected[0], "resume signal rejected: the release is Progressing, not Paused")
	assert.Contains(t, rejected[1], "approve signal rejected: nothing to approve")
	assert.Equal(t, 75*time.Minute, h.elapsed().Round(time.Second))
}

func TestCancellationStillRunsCompensations(t *testing.T) {
	h := newHarness(t, baseSpec())
	h.at(20*time.Minute, func() { h.env.CancelWorkflow() })
	_, err := h.run()
	var canceled *temporal.CanceledError
	require.ErrorAs(t, err, &canceled)
	var res record.Result
	require.NoError(t, canceled.Details(&res))
	assert.Equal(t, record.PhaseRolledBack, res.Phase)
	assert.Equal(t, "workflow cancelled", res.Reason)
	assert.Equal(t, []string{"deploy v2", "health", "traffic 1", "traffic 5", "traffic 0", "rollback"}, h.target.Calls())
}

func TestFailedStepRollsBack(t *testing.T) {
	h := newHarness(t, baseSpec())
	h.target.failures["traffic 25"] = errors.New("load balancer refused the weight")
	res, err := h.run()
	require.NoError(t, err)
	assert.Equal(t, record.PhaseRolledBack, res.Phase)
	assert.Contains(t, res.Reason, "step failed: traffic to 25% of checkout v2 in production failed: load balancer refused the weight")
	calls := h.target.Calls()
	assert.Equal(t, 3, count(calls, "traffic 25"))
	assert.Equal(t, []string{"traffic 0", "rollback"}, calls[len(calls)-2:])
}

func TestStatusQueryDuringSoak(t *testing.T) {
	h := newHarness(t, baseSpec())
	h.at(37*time.Minute, func() {
		st := h.status()
		assert.Equal(t, record.PhaseProgressing, st.Phase)
		assert.Equal(t, "release:checkout:production", st.WorkflowID)
		require.NotNil(t, st.Stage)
		assert.Equal(t, 3, st.Stage.Number)
		assert.Equal(t, 25, st.Stage.Percent)
		assert.Equal(t, 25, st.TrafficPercent)
		assert.True(t, h.start.Add(30*time.Minute).Equal(st.Stage.SoakStartedAt))
		assert.True(t, h.start.Add(45*time.Minute).Equal(st.Stage.SoakEndsAt))
		require.Len(t, st.Latest, 2)
		assert.Equal(t, "error-rate", st.Latest[0].Check)
		assert.Equal(t, record.Pass, st.Latest[0].Verdict)
		assert.Contains(t, st.Latest[0].Reason, "<= max 0.01")
	})
	_, err := h.run()
	require.NoError(t, err)
}

func count(xs []string, x string) int {
	n := 0
	for _, v := range xs {
		if v == x {
			n++
		}
	}
	return n
}

func containsAll(msgs []string, sub string) bool {
	for _, m := range msgs {
		if strings.Contains(m, sub) {
			return true
		}
	}
	return false
}

func TestMisspeltKeyFromARawStartIsRejected(t *testing.T) {
	h := newHarness(t, baseSpec())
	h.workflowID = "release:checkout:production"
	h.env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: h.workflowID})
	h.env.ExecuteWorkflow(ReleaseWorkflow, map[string]any{
		"service": "checkout", "version": "v2",
		"target": map[string]any{"type": "exec", "exec": map[string]any{"deploy": "d", "traffic": "t", "promote": "p", "rollback": "r"}},
		"stages": []any{map[string]any{"percent": 100, "soke": "1m"}},
	})
	require.True(t, h.env.IsWorkflowCompleted())
	var appErr *temporal.ApplicationError
	require.ErrorAs(t, h.env.GetWorkflowError(), &appErr)
	assert.Equal(t, ErrTypeInvalidSpec, appErr.Type())
	assert.Contains(t, appErr.Message(), `unknown key "soke"`)
	assert.Empty(t, h.target.Calls())
}

func TestDurationsArePrintedForPeople(t *testing.T) {
	for in, want := range map[time.Duration]string{
		8*time.Minute + 20453509527*time.Nanosecond: "8m20s",
		14968897892 * time.Nanosecond:               "15s",
		4234 * time.Millisecond:                     "4.2s",
		119892382 * time.Nanosecond:                 "120ms",
	} {
		assert.Equal(t, want, human(in).String(), "%s", in)
	}
}

// A release that is not promoted closes as a failed workflow, so the Temporal UI's list shows Failed for
// it and Completed only for promoted releases; the error is typed, non-retryable and carries the record.
func TestRolledBackReleaseClosesAsAFailedWorkflow(t *testing.T) {
	h := newHarness(t, baseSpec())
	h.at(20*time.Minute, func() { h.signal(Abort, ControlRequest{By: "bob", Reason: "QA found a bug"}) })
	h.env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: "release:checkout:production"})
	h.env.ExecuteWorkflow(ReleaseWorkflow, h.spec)
	require.True(t, h.env.IsWorkflowCompleted())
	var appErr *temporal.ApplicationError
	require.ErrorAs(t, h.env.GetWorkflowError(), &appErr)
	assert.Equal(t, ErrTypeRolledBack, appErr.Type())
	assert.True(t, appErr.NonRetryable())
	assert.Equal(t, "release rolled back: aborted by bob: QA found a bug", appErr.Message())
	var res record.Result
	require.NoError(t, appErr.Details(&res))
	assert.Equal(t, record.PhaseRolledBack, res.Phase)
	assert.Equal(t, "aborted by bob: QA found a bug", res.Reason)
	assert.False(t, res.EndedAt.IsZero())
}
