package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/shepherd-release/shepherd/providers/flags"
	"github.com/shepherd-release/shepherd/providers/notify"
	"github.com/shepherd-release/shepherd/providers/precheck"
	"github.com/shepherd-release/shepherd/providers/vcs"
	"github.com/shepherd-release/shepherd/record"
	"github.com/shepherd-release/shepherd/report"
	"github.com/shepherd-release/shepherd/spec"
)

// ErrTypePrecheckFailed: a pre-release check ran and its expectation was not met.
const ErrTypePrecheckFailed = "PrecheckFailed"

// convert copies a spec section into the provider's configuration. The two share their JSON keys by
// design (a test keeps them in step), so a JSON round trip is the whole conversion.
func convert(from, to any) error {
	b, err := json.Marshal(from)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, to)
}

func precheckConfig(c spec.Precheck) (precheck.Check, error) {
	var out precheck.Check
	if c.HTTP != nil {
		out.HTTP = &precheck.HTTPCheck{}
		if err := convert(c.HTTP, out.HTTP); err != nil {
			return out, err
		}
		out.HTTP.Name = c.Name
	}
	if c.Exec != nil {
		out.Exec = &precheck.ExecCheck{}
		if err := convert(c.Exec, out.Exec); err != nil {
			return out, err
		}
		out.Exec.Name = c.Name
	}
	return out, nil
}

func flagsConfig(f spec.FlagProvider) (flags.Config, error) {
	var out flags.Config
	return out, convert(f, &out)
}

func notifyConfig(n spec.Notification) (notify.Config, error) {
	var out notify.Config
	return out, convert(n, &out)
}

func tagConfig(t spec.Tag) (vcs.Config, error) {
	var out vcs.Config
	return out, convert(t, &out)
}

// ValidateSpec validates a spec (after WithDefaults) completely: the spec's own rules and each provider's
// rules for its section. It is pure, so the CLI, the starter and the workflow all run it.
func ValidateSpec(r spec.Release) error {
	var problems []spec.FieldError
	if err := r.Validate(); err != nil {
		var verr *spec.ValidationError
		if !errors.As(err, &verr) {
			return err
		}
		problems = verr.Problems
	}
	add := func(path string, err error) {
		if err != nil {
			problems = append(problems, spec.FieldError{Path: path, Message: err.Error()})
		}
	}
	for i, c := range r.Prechecks {
		if c.HTTP == nil && c.Exec == nil {
			continue
		}
		cfg, err := precheckConfig(c)
		if err == nil {
			err = cfg.Validate()
		}
		add(fmt.Sprintf("prechecks[%d]", i), err)
	}
	if r.Flags != nil {
		cfg, err := flagsConfig(r.Flags.Provider)
		if err == nil {
			err = cfg.Validate()
		}
		add("flags.provider", err)
	}
	for i, n := range r.Notifications {
		cfg, err := notifyConfig(n)
		if err == nil {
			err = cfg.Validate()
		}
		add(fmt.Sprintf("notifications[%d]", i), err)
	}
	if r.Tag != nil {
		cfg, err := tagConfig(*r.Tag)
		if err == nil {
			err = cfg.Validate()
		}
		add("tag", err)
	}
	if len(problems) == 0 {
		return nil
	}
	return &spec.ValidationError{Problems: problems}
}

// PrecheckInput asks for one pre-release check.
type PrecheckInput struct {
	ReleaseID  string            `json:"releaseID"`
	Check      spec.Precheck     `json:"check"`
	Prometheus spec.Prometheus   `json:"prometheus"`
	Data       spec.TemplateData `json:"data"`
}

// PrecheckResult is what the check observed.
type PrecheckResult struct {
	Observed string `json:"observed"`
}

// Precheck runs one HTTP, exec or Prometheus pre-release check. An unmet expectation fails non-retryably
// (type PrecheckFailed) with the check, the observed value and the expectation; a transient error retries.
func (a *Activities) Precheck(ctx context.Context, in PrecheckInput) (PrecheckResult, error) {
	if q := in.Check.Prometheus; q != nil {
		return a.prometheusPrecheck(ctx, in.Check.Name, *q, in.Prometheus, in.Data)
	}
	cfg, err := precheckConfig(in.Check)
	if err != nil {
		return PrecheckResult{}, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypePermanent, err)
	}
	var observed string
	err = withHeartbeat(ctx, func(ctx context.Context) error {
		var err error
		observed, err = cfg.Run(ctx, in.Data)
		return err
	})
	switch {
	case err == nil:
		return PrecheckResult{Observed: observed}, nil
	case errors.Is(err, precheck.ErrUnmet):
		return PrecheckResult{Observed: observed}, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypePrecheckFailed, err)
	case errors.Is(err, precheck.ErrPermanent):
		return PrecheckResult{Observed: observed}, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypePermanent, err)
	default:
		return PrecheckResult{Observed: observed}, err
	}
}

func (a *Activities) prometheusPrecheck(ctx context.Context, name string, q spec.PrometheusPrecheck, p spec.Prometheus, d spec.TemplateData) (PrecheckResult, error) {
	if a.Metrics == nil {
		return PrecheckResult{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("pre-release check %q needs Prometheus, and this worker has no metrics provider", name), ErrTypePermanent, nil)
	}
	m, err := a.Metrics(p)
	if err != nil {
		return PrecheckResult{}, temporal.NewNonRetryableApplicationError(fmt.Sprintf("pre-release check %q: %v", name, err), ErrTypePermanent, err)
	}
	v, query, err := m.Evaluate(ctx, q.Query, d)
	if err != nil {
		// No data is not a pass; retry (the activity's policy bounds it), then the release is rejected.
		return PrecheckResult{}, fmt.Errorf("pre-release check %q: query %s: %w", name, query, err)
	}
	observed := fmt.Sprintf("%g", v)
	if f := finite(v); f == nil ||
		(q.Max != nil && v > *q.Max) || (q.Min != nil && v < *q.Min) {
		msg := fmt.Sprintf("pre-release check %q failed: observed %s = %s; expected%s", name, query, observed, bounds(q.Min, q.Max))
		return PrecheckResult{Observed: observed}, temporal.NewNonRetryableApplicationError(msg, ErrTypePrecheckFailed, nil)
	}
	return PrecheckResult{Observed: observed}, nil
}

func bounds(lo, hi *float64) string {
	var s string
	if lo != nil {
		s += fmt.Sprintf(" >= %g", *lo)
	}
	if hi != nil {
		s += fmt.Sprintf(" <= %g", *hi)
	}
	return s
}

// FlagsInput sets the release's flags to a rollout percent.
type FlagsInput struct {
	ReleaseID string            `json:"releaseID"`
	Flags     spec.Flags        `json:"flags"`
	Percent   int               `json:"percent"`
	Data      spec.TemplateData `json:"data"`
}

// SetFlags sets every flag of the release to Percent (0 off, 100 fully on). Setting is idempotent, so a
// retry is safe without a ledger.
func (a *Activities) SetFlags(ctx context.Context, in FlagsInput) error {
	cfg, err := flagsConfig(in.Flags.Provider)
	if err != nil {
		return temporal.NewNonRetryableApplicationError(err.Error(), ErrTypePermanent, err)
	}
	err = withHeartbeat(ctx, func(ctx context.Context) error { return flags.Set(ctx, cfg, in.Flags.Names, in.Percent, in.Data) })
	if err == nil {
		return nil
	}
	msg := fmt.Sprintf("setting flags %s to %d%% for %s: %v", strings.Join(in.Flags.Names, ", "), in.Percent, in.Data.Service, err)
	if errors.Is(err, flags.ErrPermanent) {
		return temporal.NewNonRetryableApplicationError(msg, ErrTypePermanent, err)
	}
	return errors.New(msg)
}

// NotifyInput is one message to one channel.
type NotifyInput struct {
	Channel    spec.Notification    `json:"channel"`
	Index      int                  `json:"index"`
	Kind       string               `json:"kind"`
	WorkflowID string               `json:"workflowID"`
	Stage      int                  `json:"stage,omitempty"`
	Percent    int                  `json:"percent"`
	Message    string               `json:"message,omitempty"`
	Evidence   []record.Measurement `json:"evidence,omitempty"`
	Data       spec.TemplateData    `json:"data"`
	Time       time.Time            `json:"time"`
}

// Notify sends one event to one channel. The idempotency key (release, event, stage, channel) travels as
// the Idempotency-Key header so receivers can drop a retry's duplicate.
func (a *Activities) Notify(ctx context.Context, in NotifyInput) error {
	cfg, err := notifyConfig(in.Channel)
	if err != nil {
		return temporal.NewNonRetryableApplicationError(err.Error(), ErrTypePermanent, err)
	}
	if !cfg.Wants(notify.EventKind(in.Kind)) {
		return nil
	}
	d := in.Data
	ev := notify.Event{
		Kind: notify.EventKind(in.Kind), ReleaseID: d.ReleaseID, WorkflowID: in.WorkflowID,
		Service: d.Service, Environment: d.Environment, Version: d.Version, PreviousVersion: d.PreviousVersion,
		Stage: in.Stage, Percent: in.Percent, Message: in.Message, Evidence: in.Evidence, Time: in.Time,
	}
	if ev.Kind == notify.KindApprovalNeeded {
		ev.ApproveCommand = fmt.Sprintf("shepherd approve %s --env %s --stage %d", d.Service, d.Environment, in.Stage)
		if in.Stage == 0 {
			ev.ApproveCommand = fmt.Sprintf("shepherd approve %s --env %s --role ROLE", d.Service, d.Environment)
		}
		ev.AbortCommand = fmt.Sprintf("shepherd abort %s --env %s --reason REASON", d.Service, d.Environment)
	}
	key := fmt.Sprintf("%s/%d", notify.IdempotencyKey(ev), in.Index)
	err = notify.Send(ctx, cfg, ev, key)
	if err != nil && errors.Is(err, notify.ErrPermanent) {
		return temporal.NewNonRetryableApplicationError(err.Error(), ErrTypePermanent, err)
	}
	return err
}

// TagInput tags a promoted release.
type TagInput struct {
	Tag   spec.Tag          `json:"tag"`
	Data  spec.TemplateData `json:"data"`
	Notes string            `json:"notes"`
}

// TagResult says whether a tag was created (false: it already existed at the same commit).
type TagResult struct {
	Created bool `json:"created"`
}

// TagRelease creates the annotated git tag; idempotent when the tag already points at the same commit.
func (a *Activities) TagRelease(ctx context.Context, in TagInput) (TagResult, error) {
	cfg, err := tagConfig(in.Tag)
	if err != nil {
		return TagResult{}, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypePermanent, err)
	}
	var created bool
	err = withHeartbeat(ctx, func(ctx context.Context) error {
		var err error
		created, err = vcs.Tag(ctx, cfg, in.Data, in.Notes)
		return err
	})
	if err != nil && errors.Is(err, vcs.ErrPermanent) {
		return TagResult{}, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypePermanent, err)
	}
	return TagResult{Created: created}, err
}

// ArchiveInput is the final record of a release and its spec.
type ArchiveInput struct {
	Result record.Result `json:"result"`
	Spec   spec.Release  `json:"spec"`
}

// ArchiveResult lists the files written.
type ArchiveResult struct {
	Paths []string `json:"paths"`
}

// ArchiveReport writes the release report (JSON and Markdown, plus a post-mortem record when the release
// rolled back or needed a person) into the worker's report directory. Rewriting is idempotent.
func (a *Activities) ArchiveReport(ctx context.Context, in ArchiveInput) (ArchiveResult, error) {
	// The engine metrics hear of the end here: this activity runs once at the end of every release.
	if a.Observer != nil {
		a.once(in.Result.ReleaseID+"/observed-end", func() { a.Observer.ReleaseEnded(in.Result) })
	}
	if a.ReportDir == "" {
		return ArchiveResult{}, temporal.NewNonRetryableApplicationError(
			"this worker has no report directory configured (shepherd worker --report-dir)", ErrTypePermanent, nil)
	}
	specJSON, err := json.Marshal(in.Spec)
	if err != nil {
		return ArchiveResult{}, err
	}
	paths, err := report.Archive(a.ReportDir, in.Result, specJSON)
	if err != nil {
		return ArchiveResult{}, fmt.Errorf("archiving the report of %s in %s: %w", in.Result.ReleaseID, a.ReportDir, err)
	}
	activity.GetLogger(ctx).Info("Report archived", "releaseID", in.Result.ReleaseID, "paths", paths)
	return ArchiveResult{Paths: paths}, nil
}
