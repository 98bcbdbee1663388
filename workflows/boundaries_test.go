package workflows

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/shepherd-release/shepherd/activities"
	"github.com/shepherd-release/shepherd/record"
	"github.com/shepherd-release/shepherd/spec"
)

// Tests for what happens when two things happen at once: a control request or a cancellation arriving
// while a step runs, a pause during the last measurement, a rollback step that keeps failing.

func abortBy(h *harness, who string) func() {
	return func() { h.signal(Abort, ControlRequest{By: who, Reason: "bad canary"}) }
}

// settledCalls is the target's calls once every activity goroutine has finished (a step that was not
// waited for may still land after the workflow ended).
func settledCalls(h *harness) []string {
	time.Sleep(500 * time.Millisecond)
	return h.target.Calls()
}

// An abort while a step runs must wait for the step to stop before compensating. Temporal's test
// environment resolves a cancelled activity at once whatever WaitForCancellation says, so that
// interleaving is tested on a real server: e2e TestAbortDuringATrafficShiftWaitsForIt and
// TestAbortDuringDeployWaitsForIt.

// Every target call carries a fencing sequence number that grows; a retry of one step keeps its number,
// and every rollback step's number is larger than every forward step's, so a target can refuse a late
// forward write.
func TestFencingSequenceGrowsAndRetriesKeepIt(t *testing.T) {
	h := newHarness(t, baseSpec())
	failures := 0
	h.target.hook("traffic 5", func(context.Context) error {
		if failures < 2 {
			failures++
			return errors.New("load balancer busy")
		}
		return nil
	})
	h.at(40*time.Minute, abortBy(h, "alice"))
	res, err := h.run()
	require.NoError(t, err)
	require.Equal(t, record.PhaseRolledBack, res.Phase)
	calls := h.target.Calls()
	require.Equal(t, []string{"deploy v2", "health", "traffic 1", "traffic 5", "traffic 5", "traffic 5", "traffic 25", "traffic 0", "rollback"}, calls)
	seqs := h.target.seqs
	assert.Equal(t, seqs[3], seqs[4], "a retry carries the same sequence number")
	assert.Equal(t, seqs[4], seqs[5])
	distinct := []int64{seqs[0], seqs[1], seqs[2], seqs[3], seqs[6], seqs[7], seqs[8]}
	for i := 1; i < len(distinct); i++ {
		assert.Greater(t, distinct[i], distinct[i-1], "sequence numbers grow step by step: %v", seqs)
	}
}

func TestAbortWhilePromotingIsRejectedAndThePromotionStands(t *testing.T) {
	h := newHarness(t, baseSpec())
	var abort *outcome
	h.target.hook("promote", func(context.Context) error {
		h.signal(Abort, ControlRequest{By: "mallory", Reason: "too late"})
		abort = h.update(Abort, ControlRequest{By: "bob"})
		time.Sleep(200 * time.Millisecond)
		return nil
	})
	res, err := h.run()
	require.NoError(t, err)
	assert.Equal(t, record.PhaseSucceeded, res.Phase)
	assert.Equal(t, fullRelease, settledCalls(h))
	abort.rejected(t, "too late to abort: v2 is being promoted to stable, the point of no return; to go back, start a release of the previous version (\"v1\")")
	rejected := decisionsOf(res, record.KindRejection)
	require.Len(t, rejected, 1)
	assert.Contains(t, rejected[0], "abort signal rejected: too late to abort")
}

func TestCancellationDuringPromotionLetsThePromotionFinish(t *testing.T) {
	h := newHarness(t, baseSpec())
	promoted := false
	h.target.hook("promote", func(ctx context.Context) error {
		h.env.CancelWorkflow()
		time.Sleep(300 * time.Millisecond)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		promoted = true
		return nil
	})
	res, err := h.run()
	require.NoError(t, err)
	assert.True(t, promoted, "the promote step was cancelled half-way")
	assert.Equal(t, record.PhaseSucceeded, res.Phase)
	assert.Equal(t, fullRelease, settledCalls(h))
	assert.Contains(t, strings.Join(decisionsOf(res, record.KindNotice), "\n"), "cancelled during promotion; the promotion stands")
}

// A pause accepted in the instant the stage's watch reports that the stage passed (its last measurement
// in flight when the pause was sent) must hold the release at that stage.
func TestPauseDuringTheLastMeasurementHoldsTheStage(t *testing.T) {
	s := baseSpec()
	s.Stages = []spec.Stage{{Percent: 10, Soak: spec.Duration(5 * time.Minute)}, {Percent: 100, Soak: spec.Duration(5 * time.Minute)}}
	h := newHarness(t, s)
	paused := false
	h.watchEnds = func(n int, res activities.WatchResult) {
		if n == 1 {
			require.Equal(t, activities.WatchPassed, res.Outcome)
			paused = true
			h.signal(Pause, ControlRequest{By: "carol", Reason: "checking a dashboard"})
		}
	}
	h.at(30*time.Minute, func() { h.signal(Resume, ControlRequest{By: "carol"}) })
	res, err := h.run()
	require.NoError(t, err)
	require.True(t, paused)
	assert.Equal(t, record.PhaseSucceeded, res.Phase)
	var resumedAt, shiftedAt time.Time
	for _, d := range res.Decisions {
		switch {
		case d.Kind == record.KindControl && strings.HasPrefix(d.Message, "resume"):
			resumedAt = d.Time
		case d.Kind == record.KindStep && d.Message == "traffic on v2 is 100%":
			shiftedAt = d.Time
		}
	}
	require.False(t, resumedAt.IsZero())
	assert.True(t, shiftedAt.After(resumedAt), "traffic moved to 100%% at %s while paused (resumed at %s)", shiftedAt, resumedAt)
	// After the resume the stage is watched afresh for one interval before it passes.
	assert.Equal(t, 30*time.Minute+10*time.Second+5*time.Minute, h.elapsed().Round(time.Second))
	assert.Equal(t, 3, h.watches)
}

func TestPauseDuringATrafficShiftSaysWhereTrafficStays(t *testing.T) {
	h := newHarness(t, baseSpec())
	var pause *outcome
	h.target.hook("traffic 25", func(context.Context) error {
		pause = h.update(Pause, ControlRequest{By: "carol"})
		time.Sleep(100 * time.Millisecond)
		return nil
	})
	h.at(2*time.Hour, func() { h.signal(Resume, ControlRequest{By: "carol"}) })
	res, err := h.run()
	require.NoError(t, err)
	assert.Equal(t, record.PhaseSucceeded, res.Phase)
	assert.Contains(t, pause.accepted(t).Message, "the traffic shift to 25% in flight completes, then the soak clock stops and traffic stays at 25%")
}

// When traffic cannot be put back on stable, nothing after it runs (the canary is not removed while it
// may still take traffic); the release waits in RollbackStuck, open, until a person acts.
func TestRollbackStuckHoldsTheCanaryAndRetryFinishesTheRollback(t *testing.T) {
	h := newHarness(t, baseSpec())
	h.target.fail("traffic 25", errors.New("load balancer refused the weight"))
	h.target.fail("traffic 0", errors.New("load balancer unreachable"))
	var stuck record.Status
	var early *outcome
	// Stage 3's shift fails at 30 min; traffic to stable then fails until it is declared stuck.
	h.at(50*time.Minute, func() {
		stuck = h.status()
		early = h.update(Abort, ControlRequest{By: "dave"})
		h.env.CancelWorkflow() // cancelling does not end the wait: the service is half rolled back
	})
	h.at(90*time.Minute, func() {
		h.target.fail("traffic 0", nil)
		h.signal(Retry, ControlRequest{By: "dave", Comment: "load balancer back"})
	})
	res, err := h.run()
	require.NoError(t, err, "the rollback finished; the cancellation that arrived during it changes nothing")

	assert.Equal(t, record.PhaseRollbackStuck, stuck.Phase)
	assert.Contains(t, stuck.Decisions[len(stuck.Decisions)-1].Message, `rollback step "traffic to stable" failed: `)
	assert.NotContains(t, h.target.Calls()[:len(h.target.Calls())-2], "rollback", "the canary was removed while traffic was not back on stable")
	early.rejected(t, "already rolling back, and stuck: send retry")

	assert.Equal(t, record.PhaseRolledBack, res.Phase)
	calls := h.target.Calls()
	assert.Equal(t, []string{"traffic 0", "rollback"}, calls[len(calls)-2:])
	assert.Equal(t, 0, res.TrafficPercent)
	controls := decisionsOf(res, record.KindControl)
	require.NotEmpty(t, controls)
	assert.Contains(t, controls[len(controls)-1], "retry by dave")
}

func TestRollbackStuckAcknowledgedEndsFailedWithWhoAndWhy(t *testing.T) {
	h := newHarness(t, baseSpec())
	h.target.fail("health", errors.New("canary answers 503"))
	h.target.fail("rollback", errors.New("cluster API unreachable"))
	var noReason *outcome
	h.at(time.Hour, func() {
		noReason = h.update(Acknowledge, ControlRequest{By: "erin"})
		h.signal(Acknowledge, ControlRequest{By: "erin", Reason: "deleted the canary deployment with kubectl"})
	})
	_, err := h.run()
	var appErr *temporal.ApplicationError
	require.ErrorAs(t, err, &appErr)
	assert.Equal(t, ErrTypeRollbackFailed, appErr.Type())
	var res record.Result
	require.NoError(t, appErr.Details(&res))
	assert.Equal(t, record.PhaseFailed, res.Phase)
	assert.Contains(t, res.Reason, `rollback step "remove canary" failed: rollback of checkout v2 in production failed: cluster API unreachable`)
	assert.Contains(t, res.Reason, "acknowledged by erin: deleted the canary deployment with kubectl")
	noReason.rejected(t, `acknowledge needs "reason"`)
	assert.Equal(t, 12, count(h.target.Calls(), "health"), "health is retried by its policy")
}

// Rollback steps have no attempt limit: only time (RollbackStuckAfter) or an error a retry cannot fix
// calls a person. (The test environment caps unlimited attempts at 10, so this is checked on the policy.)
func TestRollbackStepsRetryWithoutAttemptLimit(t *testing.T) {
	assert.Zero(t, RollbackRetry.MaximumAttempts)
	assert.Equal(t, 30*time.Second, RollbackRetry.MaximumInterval)
	r := &release{safe: true, spec: baseSpec().WithDefaults(), targetTimeout: 5 * time.Minute}
	assert.Equal(t, 5*time.Minute+30*time.Second+5*time.Minute+30*time.Second, r.rollbackStuckAfter(),
		"a step may take two attempts of its timeout before it is declared stuck")
}

func TestRetryAndAcknowledgeApplyOnlyWhileStuck(t *testing.T) {
	h := newHarness(t, baseSpec())
	var retry, ack *outcome
	h.at(5*time.Minute, func() {
		retry = h.update(Retry, ControlRequest{By: "dave"})
		ack = h.update(Acknowledge, ControlRequest{By: "dave", Reason: "x"})
	})
	res, err := h.run()
	require.NoError(t, err)
	assert.Equal(t, record.PhaseSucceeded, res.Phase)
	retry.rejected(t, "retry applies only while RollbackStuck")
	ack.rejected(t, "acknowledge applies only while RollbackStuck")
}

func TestControlRequestsAreBounded(t *testing.T) {
	h := newHarness(t, baseSpec())
	var longBy, longReason *outcome
	h.at(5*time.Minute, func() {
		longBy = h.update(Pause, ControlRequest{By: strings.Repeat("m", MaxControlBy+1)})
		longReason = h.update(Pause, ControlRequest{By: "mallory", Reason: strings.Repeat("x", MaxControlText+1)})
		for i := 0; i < 3*maxRecordedRejections; i++ {
			h.signal(Resume, ControlRequest{By: "mallory", Comment: strings.Repeat("y", 2*MaxControlText)})
		}
	})
	res, err := h.run()
	require.NoError(t, err)
	longBy.rejected(t, `"by" and "role" are limited to 128 bytes`)
	longReason.rejected(t, `"reason" and "comment" are limited to 4096 bytes each`)
	rejected := decisionsOf(res, record.KindRejection)
	assert.Len(t, rejected, maxRecordedRejections, "rejections recorded per stage are capped")
	assert.Equal(t, 2*maxRecordedRejections, res.UnrecordedRejections)
	for _, d := range res.Decisions {
		if d.Kind == record.KindRejection {
			assert.LessOrEqual(t, len(d.Message), 300)
			assert.LessOrEqual(t, len(d.Comment), rejectionTextCut+len("…"))
		}
	}
}

// The status and the result stay well under Temporal's 2 MiB payload limit for the largest release the
// validator accepts (every stage, every check with the longest query), even when every round's outcome
// differs from the one before: a stage's evidence is bounded whatever its number of rounds.
func TestLargestAcceptedReleaseKeepsItsResultSmall(t *testing.T) {
	s := baseSpec()
	s.Analysis.Interval = spec.Duration(time.Second)
	s.Analysis.FailureLimit = 2
	s.Stages = nil
	for p := 1; p <= spec.MaxStages; p++ {
		s.Stages = append(s.Stages, spec.Stage{Percent: p * 100 / spec.MaxStages, Soak: spec.Duration(10 * time.Minute)})
	}
	for i := 0; i < spec.MaxChecks; i++ {
		limit := 0.5
		q := fmt.Sprintf("check_%02d{", i) + strings.Repeat("x", spec.MaxQueryBytes-20) + "}"
		s.Analysis.Checks = append(s.Analysis.Checks, spec.Check{Name: fmt.Sprintf("check-%02d", i), Query: q, Max: &limit})
	}
	d := s.WithDefaults()
	require.NoError(t, d.Validate())

	h := newHarness(t, s)
	h.env.SetTestTimeout(5 * time.Minute)
	h.metrics.value = func(_ string, _, round int) (float64, error) {
		if round%2 == 1 {
			return 1, nil // fails, below the failure limit; each stage's last round passes
		}
		return 0.1, nil
	}
	res, err := h.run()
	require.NoError(t, err)
	require.Equal(t, record.PhaseSucceeded, res.Phase)
	b, err := json.Marshal(res)
	require.NoError(t, err)
	rounds := 0
	for _, dec := range res.Decisions {
		if dec.Evidence != nil {
			rounds += dec.Evidence.Rounds
			assert.Equal(t, record.MaxNotable, len(dec.Evidence.Notable))
			assert.Positive(t, dec.Evidence.NotableDropped)
		}
	}
	t.Logf("result: %d decisions, %d rounds of %d checks, %d bytes", len(res.Decisions), rounds, len(d.Analysis.Checks), len(b))
	assert.Equal(t, spec.MaxStages*600, rounds, "every stage measured every second of its soak")
	assert.Less(t, len(b), 1<<20, "the result must stay well under Temporal's 2 MiB payload limit")
}
