package workflows

import (
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/shepherd-release/shepherd/activities"
	"github.com/shepherd-release/shepherd/record"
	"github.com/shepherd-release/shepherd/report"
	"github.com/shepherd-release/shepherd/spec"
)

// Notification event kinds (providers/notify's names).
const (
	eventStarted        = "started"
	eventStageEntered   = "stageEntered"
	eventApprovalNeeded = "approvalNeeded"
	eventAnalysisFailed = "analysisFailed"
	eventRolledBack     = "rolledBack"
	eventSucceeded      = "succeeded"
	eventRollbackFailed = "rollbackFailed"
	eventRollbackStuck  = "rollbackStuck"
	eventPostMortem     = "postMortem"
)

// errPrecheckFailed ends the release before anything changed: it is rejected, not rolled back.
type errPrecheckFailed struct{ reason string }

func (e errPrecheckFailed) Error() string { return e.reason }

// ErrTypePrecheckFailed is the workflow error type of a release rejected by a pre-release check.
const ErrTypePrecheckFailed = activities.ErrTypePrecheckFailed

// runPrechecks runs the spec's pre-release checks in order; sign-off gates wait for an approve with the
// named role. Nothing has changed yet, so a failure rejects the release.
func (r *release) runPrechecks(ctx workflow.Context) error {
	for _, c := range r.spec.Prechecks {
		if c.Signoff != nil {
			if err := r.awaitSignoff(ctx, c); err != nil {
				return err
			}
			continue
		}
		opts := workflow.ActivityOptions{
			StartToCloseTimeout: 5 * time.Minute,
			HeartbeatTimeout:    heartbeatTimeout,
			RetryPolicy: &temporal.RetryPolicy{
				InitialInterval: 2 * time.Second, BackoffCoefficient: 2, MaximumAttempts: 3,
				NonRetryableErrorTypes: []string{activities.ErrTypePrecheckFailed, activities.ErrTypePermanent},
			},
			Summary: "Pre-release check: " + c.Name,
		}
		in := activities.PrecheckInput{ReleaseID: r.status.ReleaseID, Check: c, Data: r.data(0)}
		var res activities.PrecheckResult
		actx := workflow.WithActivityOptions(ctx, opts)
		if err := workflow.ExecuteActivity(actx, ActivityPrecheck, in).Get(actx, &res); err != nil {
			if ctx.Err() != nil {
				return err
			}
			reason := describeError(err)
			if !strings.Contains(reason, c.Name) {
				reason = fmt.Sprintf("pre-release check %q failed: %s", c.Name, reason)
			}
			r.decide(ctx, record.KindCheck, "", "%s", reason)
			return errPrecheckFailed{reason: reason}
		}
		r.decide(ctx, record.KindCheck, "", "pre-release check %q passed (observed %s)", c.Name, orNone(res.Observed))
	}
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "no output"
	}
	return fmt.Sprintf("%q", s)
}

// awaitSignoff waits in AwaitingApproval for an approve carrying the sign-off's role.
func (r *release) awaitSignoff(ctx workflow.Context, c spec.Precheck) error {
	s := c.Signoff
	r.signoffRole = s.Role
	r.openGate("signoff:"+s.Role, []string{s.Role}, 1)
	defer func() { r.signoffRole, r.gate, r.status.Gate = "", nil, "" }()
	r.setPhase(ctx, record.PhaseAwaitingApproval, "pre-release check %q waits for sign-off by role %q", c.Name, s.Role)
	r.notify(ctx, eventApprovalNeeded, fmt.Sprintf("sign-off by %s needed before deploy (check %q)", s.Role, c.Name), nil)
	start := workflow.Now(ctx)
	got := func() bool { return r.gate.done() }
	if s.Timeout > 0 {
		ok, err := workflow.AwaitWithOptions(ctx, workflow.AwaitOptions{
			Timeout:      s.Timeout.D(),
			TimerOptions: workflow.TimerOptions{Summary: fmt.Sprintf("Sign-off timeout: %s (%s)", s.Role, s.Timeout)},
		}, got)
		if err != nil {
			return err
		}
		if !ok {
			reason := fmt.Sprintf("pre-release check %q failed: no sign-off by role %q within %s", c.Name, s.Role, s.Timeout)
			r.decide(ctx, record.KindCheck, "", "%s", reason)
			return errPrecheckFailed{reason: reason}
		}
	} else if err := workflow.Await(ctx, got); err != nil {
		return err
	}
	g := r.gate
	d := r.decide(ctx, record.KindApproval, strings.Join(g.principals(), ", "), "sign-off %q given by %s as %s after %s", c.Name, g.who(), s.Role, human(elapsed(start, workflow.Now(ctx))))
	d.Comment = g.comments()
	r.setPhase(ctx, record.PhaseValidating, "sign-off %q done", c.Name)
	return nil
}

// setFlags moves the release's feature flags to percent; the first call registers the compensation that
// turns them off.
func (r *release) setFlags(ctx workflow.Context, percent int, why string) error {
	f := r.spec.Flags
	if f == nil {
		return nil
	}
	if !r.saga.has("flags off") {
		r.saga.push(compensation{name: "flags off", activity: ActivitySetFlags, input: func() any { return r.flagsInput(0) }})
	}
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute,
		HeartbeatTimeout:    heartbeatTimeout,
		RetryPolicy:         ForwardRetry,
		WaitForCancellation: r.safe,
		Summary:             fmt.Sprintf("Flags %s: %d%%", strings.Join(f.Names, ", "), percent),
	})
	if err := workflow.ExecuteActivity(actx, ActivitySetFlags, r.flagsInput(percent)).Get(actx, nil); err != nil {
		return err
	}
	r.decide(ctx, record.KindStep, "", "flags %s at %d%% (%s)", strings.Join(f.Names, ", "), percent, why)
	return nil
}

func (r *release) flagsInput(percent int) activities.FlagsInput {
	return activities.FlagsInput{ReleaseID: r.status.ReleaseID, Flags: *r.spec.Flags, Percent: percent, Data: r.data(percent)}
}

// flagPercent is the flags' rollout at stage i: the schedule's entry, or the traffic percent.
func (r *release) flagPercent(i int) int {
	if s := r.spec.Flags.Schedule; len(s) > i {
		return s[i]
	}
	return r.spec.Stages[i].Percent
}

// notify sends an event to every channel without waiting: a notification never blocks or fails a release.
// Failures are recorded in the decision log once their retries are spent.
func (r *release) notify(ctx workflow.Context, kind, message string, evidence []record.Measurement) {
	if len(r.spec.Notifications) == 0 {
		return
	}
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	actx := workflow.WithActivityOptions(dctx, workflow.ActivityOptions{
		StartToCloseTimeout:    30 * time.Second,
		ScheduleToCloseTimeout: 2 * time.Minute,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: time.Second, BackoffCoefficient: 2, MaximumAttempts: 5,
			NonRetryableErrorTypes: []string{activities.ErrTypePermanent},
		},
		Summary: "Notify: " + kind,
	})
	stage, percent := 0, r.status.TrafficPercent
	if r.status.Stage != nil {
		stage = r.status.Stage.Number
		if kind == eventApprovalNeeded || kind == eventStageEntered {
			percent = r.status.Stage.Percent
		}
	}
	for i, ch := range r.spec.Notifications {
		in := activities.NotifyInput{
			Channel: ch, Index: i, Kind: kind, WorkflowID: r.status.WorkflowID, Stage: stage, Percent: percent,
			Message: message, Evidence: evidence, Data: r.data(percent), Time: workflow.Now(ctx),
		}
		f := workflow.ExecuteActivity(actx, ActivityNotify, in)
		r.notifications++
		channel := fmt.Sprintf("notification channel %s", ch)
		workflow.Go(dctx, func(gctx workflow.Context) {
			defer func() { r.notifications-- }()
			if err := f.Get(gctx, nil); err != nil {
				r.decide(gctx, record.KindNotice, "", "%s event %q not delivered: %s", channel, kind, describeError(err))
			}
		})
	}
}

// afterwards runs once the release has ended: the VCS tag on success, the terminal notifications, and the
// archived report (with a post-mortem record when needed). Failures here are recorded, never change the
// outcome, and run on a context the workflow's cancellation cannot reach.
func (r *release) afterwards(ctx workflow.Context, evidence []record.Measurement) {
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	switch r.status.Phase {
	case record.PhaseSucceeded:
		r.tag(dctx)
		r.notify(dctx, eventSucceeded, r.status.Reason, nil)
	case record.PhaseRolledBack:
		r.notify(dctx, eventRolledBack, r.status.Reason, evidence)
	case record.PhaseFailed:
		if r.rollbackFailed {
			r.notify(dctx, eventRollbackFailed, r.status.Reason, evidence)
		}
	}
	if r.needsPostMortem(dctx) {
		r.notify(dctx, eventPostMortem, r.status.Reason, evidence)
	}
	_ = workflow.Await(dctx, func() bool { return r.notifications == 0 })
	r.archive(dctx)
}

// needsPostMortem asks report.NeedsPostMortem through a recorded side effect: its answer decides whether a
// notification is sent, so a later change of that rule must not change a running release on replay.
func (r *release) needsPostMortem(ctx workflow.Context) bool {
	if !r.safe {
		return report.NeedsPostMortem(r.status)
	}
	var needs bool
	status := r.status
	if err := workflow.SideEffect(ctx, func(workflow.Context) any { return report.NeedsPostMortem(status) }).Get(&needs); err != nil {
		r.logger.Warn("Reading the post-mortem decision failed", "error", err)
	}
	return needs
}

func (r *release) tag(ctx workflow.Context) {
	t := r.spec.Tag
	if t == nil {
		return
	}
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 3 * time.Minute,
		HeartbeatTimeout:    heartbeatTimeout,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: 2 * time.Second, BackoffCoefficient: 2, MaximumAttempts: 3,
			NonRetryableErrorTypes: []string{activities.ErrTypePermanent}},
		Summary: "Tag the release in git",
	})
	var res activities.TagResult
	err := workflow.ExecuteActivity(actx, ActivityTag, activities.TagInput{Tag: *t, Data: r.data(100), Notes: r.tagNotes()}).Get(actx, &res)
	switch {
	case err != nil:
		r.decide(ctx, record.KindNotice, "", "tagging the release failed: %s", describeError(err))
	case res.Created:
		r.decide(ctx, record.KindStep, "", "tagged the release in %s", t.Repo)
	default:
		r.decide(ctx, record.KindStep, "", "release tag already present in %s", t.Repo)
	}
}

// tagNotes are the annotated tag's message: version, stages, measurements, approvers.
func (r *release) tagNotes() string {
	var b strings.Builder
	s := r.status
	fmt.Fprintf(&b, "%s %s released to %s by Shepherd\n\nRelease: %s\nPrevious version: %s\n\nStages:\n",
		s.Service, s.Version, s.Environment, s.ReleaseID, orNone(s.PreviousVersion))
	for _, p := range s.Stages {
		fmt.Fprintf(&b, "- %d: %d%% for %s, %s\n", p.Number, p.Percent, p.Soak, p.Outcome)
	}
	if len(s.Latest) > 0 {
		b.WriteString("\nLast measurements:\n")
		for _, m := range s.Latest {
			fmt.Fprintf(&b, "- %s = %s (%s)\n", m.Check, valueText(m), m.Reason)
		}
	}
	var approvers []string
	for _, d := range s.Decisions {
		if d.Kind == record.KindApproval && d.By != "" {
			approvers = append(approvers, d.By+": "+d.Message)
		}
	}
	if len(approvers) > 0 {
		b.WriteString("\nApprovals:\n- " + strings.Join(approvers, "\n- ") + "\n")
	}
	return b.String()
}

func (r *release) archive(ctx workflow.Context) {
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumAttempts: 3,
			NonRetryableErrorTypes: []string{activities.ErrTypePermanent}},
		Summary: "Archive the release report",
	})
	var res activities.ArchiveResult
	if err := workflow.ExecuteActivity(actx, ActivityArchive, activities.ArchiveInput{Result: r.status, Spec: r.spec}).Get(actx, &res); err != nil {
		r.decide(ctx, record.KindNotice, "", "archiving the report failed: %s", describeError(err))
		return
	}
	r.decide(ctx, record.KindNotice, "", "report archived: %s", strings.Join(res.Paths, ", "))
}
