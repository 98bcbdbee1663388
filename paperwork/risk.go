package paperwork

import (
	"fmt"
	"strings"
	"time"

	"github.com/shepherd-release/shepherd/providers/flags"
	"github.com/shepherd-release/shepherd/providers/notify"
	"github.com/shepherd-release/shepherd/spec"
	"github.com/shepherd-release/shepherd/workflows"
)

// Level grades a likelihood, an impact or a rating.
type Level int

// Levels, lowest first; their product rates a risk.
const (
	Low Level = iota + 1
	Medium
	High
)

// String is the level's name as the plan prints it.
func (l Level) String() string {
	switch l {
	case Low:
		return "Low"
	case Medium:
		return "Medium"
	case High:
		return "High"
	}
	return fmt.Sprintf("Level(%d)", int(l))
}

// Failure modes of the risk assessment, in the order the plan lists them.
const (
	RiskSLOBreach           = "SLO breach in the canary"
	RiskMetricsUnavailable  = "Metrics unavailable"
	RiskDeployFails         = "Deploy step fails"
	RiskRollbackFails       = "Rollback step fails"
	RiskApproverUnavailable = "Approver unavailable"
	RiskWorkerCrash         = "Worker crash"
	RiskFlagProvider        = "Flag provider failure"
	RiskPrerequisite        = "Prerequisite not met"
	RiskNobodyTold          = "Stakeholders not told"
)

// Risk is one failure mode of a release, graded from its spec.
type Risk struct {
	// Mode names the failure mode (one of the Risk* constants).
	Mode string
	// Likelihood that it happens during this release.
	Likelihood Level
	// Impact on users and on the release when it does.
	Impact Level
	// Why explains both grades from the spec, so a reviewer can argue with them.
	Why string
	// Mitigation is what Shepherd does about it, and what people can do.
	Mitigation string
}

// Rating combines likelihood and impact: High from 6 (High × Medium) up, Medium from 3, Low below.
func (r Risk) Rating() Level {
	switch s := int(r.Likelihood) * int(r.Impact); {
	case s >= 6:
		return High
	case s >= 3:
		return Medium
	default:
		return Low
	}
}

// Thresholds used to grade exposure. They are judgement calls, written down so the plan can explain them.
const (
	// slowDetection: a breach undetected for longer than this has hurt many users.
	slowDetection = 5 * time.Minute
	// longUnobserved: a paused canary left without data for longer than this is a real exposure.
	longUnobserved = 15 * time.Minute
	// longRelease: a release running longer than this likely spans worker deploys and restarts.
	longRelease = time.Hour
)

// Risks grades every failure mode for the release described by r (defaults are filled in first; r is not
// validated, Plan does that). The order is fixed, so the plan's matrix is stable from one run to the next.
func Risks(r spec.Release) []Risk {
	d := r.WithDefaults()
	return []Risk{
		sloBreachRisk(d), metricsRisk(d), deployRisk(d), rollbackRisk(d), approverRisk(d),
		workerRisk(d), flagRisk(d), prerequisiteRisk(d), notifyRisk(d),
	}
}

func detectionTime(a spec.Analysis) time.Duration {
	return time.Duration(a.FailureLimit) * a.Interval.D()
}

func inconclusiveTime(a spec.Analysis) time.Duration {
	return time.Duration(a.InconclusiveLimit) * a.Interval.D()
}

func sloBreachRisk(d spec.Release) Risk {
	r := Risk{Mode: RiskSLOBreach, Likelihood: Medium}
	first := d.Stages[0].Percent
	a := d.Analysis
	if a.Disabled {
		r.Impact = High
		r.Why = "Any new version can regress. Analysis is **disabled**: nothing detects a breach, stages advance on " +
			"soak time alone up to 100%, and a breach lasts until a person aborts."
		r.Mitigation = "None automatic. Watch the service's dashboards during every soak and abort " +
			"(`shepherd abort`); the rollback itself still puts traffic back on stable first."
		return r
	}
	detect := detectionTime(a)
	switch {
	case first >= 50:
		r.Impact = High
	case first >= 10 || detect > slowDetection:
		r.Impact = Medium
	default:
		r.Impact = Low
	}
	r.Why = fmt.Sprintf("Any new version can regress. The first stage exposes %s of traffic; a breach is detected "+
		"after %s × %s = %s.", pct(first), plural(a.FailureLimit, "failed measurement", "failed measurements"),
		dur(a.Interval.D()), dur(detect))
	r.Mitigation = fmt.Sprintf("%s measured every %s; a check failing %s rolls back automatically, traffic to "+
		"stable first. A stage passes only when its last measurement of every check passed.",
		plural(len(a.Checks), "check", "checks"), dur(a.Interval.D()), times(a.FailureLimit))
	return r
}

func metricsRisk(d spec.Release) Risk {
	r := Risk{Mode: RiskMetricsUnavailable}
	a := d.Analysis
	if a.Disabled {
		r.Likelihood, r.Impact = Low, Low
		r.Why = "Analysis is disabled: the release reads no metrics (see " + RiskSLOBreach + ")."
		r.Mitigation = "Not applicable."
		return r
	}
	r.Likelihood = Medium
	why := fmt.Sprintf("Prometheus at %s is a dependency; no data, NaN and errors all count as inconclusive.",
		code(a.Prometheus.Address))
	if d.Stages[0].Percent <= 1 {
		why += fmt.Sprintf(" At %s of traffic the canary may serve too few requests for rate queries to return data.",
			pct(d.Stages[0].Percent))
	}
	unobserved := inconclusiveTime(a)
	r.Impact = Medium
	if unobserved > longUnobserved {
		r.Impact = High
	}
	r.Why = why + fmt.Sprintf(" After %d inconclusive in a row (%s) the release pauses and the canary keeps its "+
		"traffic, unobserved, until a person acts.", a.InconclusiveLimit, dur(unobserved))
	r.Mitigation = "Never promotes on missing data: inconclusive analysis pauses for a human, and a failing check " +
		"still rolls back while another has no data. Fix Prometheus, then `shepherd resume`; or abort."
	return r
}

// hasHealthCheck reports whether the target checks the new version before it gets traffic.
func hasHealthCheck(d spec.Release) bool {
	if d.Target.Type == spec.TargetExec {
		return d.Target.Exec != nil && strings.TrimSpace(d.Target.Exec.Health) != ""
	}
	return true // the local target's controller reports health
}

func deployRisk(d spec.Release) Risk {
	r := Risk{Mode: RiskDeployFails, Likelihood: Low, Impact: Low}
	var why []string
	if d.Target.Type == spec.TargetExec {
		r.Likelihood = Medium
		why = append(why, "The exec target's commands depend on the worker hosts' tools, credentials and network.")
	} else {
		why = append(why, "The local fleet controller deploys and health-checks the new version itself.")
	}
	if hasHealthCheck(d) {
		why = append(why, "Nothing receives traffic before the health check passes.")
	} else {
		r.Impact = Medium
		if d.Analysis.Disabled {
			r.Impact = High
		}
		why = append(why, fmt.Sprintf("No `target.exec.health`: a canary that deployed but does not work gets %s of "+
			"traffic before anything notices.", pct(d.Stages[0].Percent)))
	}
	r.Why = strings.Join(why, " ")
	r.Mitigation = "Deploy is retried (3 attempts; permanent errors are not retried), the health check up to 12 " +
		"times. Removing the canary is registered before deploy runs, so a half-done deploy is cleaned up."
	return r
}

// channelsFor lists the notification channels (1-based) that receive kind.
func channelsFor(d spec.Release, kind notify.EventKind) []int {
	var out []int
	for i, n := range d.Notifications {
		if wants(n, kind) {
			out = append(out, i+1)
		}
	}
	return out
}

func wants(n spec.Notification, kind notify.EventKind) bool {
	if len(n.Events) == 0 {
		return true
	}
	for _, e := range n.Events {
		if notify.EventKind(e) == kind {
			return true
		}
	}
	return false
}

func rollbackRisk(d spec.Release) Risk {
	r := Risk{Mode: RiskRollbackFails, Likelihood: Low, Impact: High}
	why := "The local controller's rollback calls are idempotent and local."
	if d.Target.Type == spec.TargetExec {
		r.Likelihood = Medium
		why = "The exec `traffic` and `rollback` commands depend on the worker hosts' tools, credentials and network."
	}
	why += " If they fail, the canary may keep its traffic with no automation left to remove it."
	if len(channelsFor(d, notify.KindRollbackStuck)) == 0 {
		why += " No notification channel receives `rollbackStuck`: only the ShepherdRollbackStuck alert tells anyone."
	}
	r.Why = why
	r.Mitigation = fmt.Sprintf("Rollback steps run on a context that cancellation cannot reach and retry with capped backoff "+
		"and no attempt limit; traffic goes to stable first and nothing after a failing step runs. After %s of "+
		"failures the release waits in RollbackStuck (open, so no new release of the service starts) for `retry` or "+
		"`acknowledge`; the runbook has the by-hand rollback.", workflows.RollbackStuckAfter)
	return r
}

// gate is one place where the release waits for a person.
type gate struct {
	what     string // "stage 3 (25%)" or "sign-off by qa"
	timeout  time.Duration
	onExpiry string // spec.OnTimeoutAbort or spec.OnTimeoutProceed; sign-offs always reject
	exposed  int    // traffic share of the canary while waiting
	signoff  bool
}

// gates lists every approval gate and sign-off of the release, in the order the release reaches them.
func gates(d spec.Release) []gate {
	var out []gate
	for _, c := range d.Prechecks {
		if c.Signoff != nil {
			out = append(out, gate{what: "sign-off by " + code(c.Signoff.Role), timeout: c.Signoff.Timeout.D(),
				onExpiry: spec.OnTimeoutAbort, signoff: true})
		}
	}
	for i, s := range d.Stages {
		if !s.Approval {
			continue
		}
		exposed := 0
		if i > 0 {
			exposed = d.Stages[i-1].Percent
		}
		out = append(out, gate{what: fmt.Sprintf("stage %d (%s)", i+1, pct(s.Percent)), timeout: s.ApprovalTimeout.D(),
			onExpiry: s.OnApprovalTimeout, exposed: exposed})
	}
	return out
}

// gateRisk grades waiting at one gate.
func gateRisk(g gate) (likelihood, impact Level, why string) {
	held := "nothing deployed yet"
	if !g.signoff {
		held = fmt.Sprintf("the canary holds %s of traffic meanwhile", pct(g.exposed))
	}
	impact = Low
	if !g.signoff && g.exposed > 0 {
		impact = Medium
	}
	switch {
	case g.timeout == 0:
		return High, impact, fmt.Sprintf("%s has no timeout: the release waits forever (%s)", g.what, held)
	case g.signoff:
		return Medium, Low, fmt.Sprintf("%s times out after %s and rejects the release (%s)", g.what, dur(g.timeout), held)
	case g.onExpiry == spec.OnTimeoutProceed:
		return Medium, Medium, fmt.Sprintf("%s proceeds without a person after %s", g.what, dur(g.timeout))
	default:
		return Medium, Low, fmt.Sprintf("%s rolls back after %s without approval: a delay, not an outage", g.what, dur(g.timeout))
	}
}

func approverRisk(d spec.Release) Risk {
	r := Risk{Mode: RiskApproverUnavailable, Likelihood: Low, Impact: Low}
	gs := gates(d)
	r.Mitigation = "The `approvalNeeded` notification carries the exact approve and abort commands; approval " +
		"timeouts bound the wait (`onApprovalTimeout: abort` by default). Anyone with access to the namespace can " +
		"approve from the Shepherd CLI, the Temporal CLI or the web UI (signal)."
	if len(gs) == 0 {
		r.Why = "No approval gates or sign-offs: the release advances on its checks alone."
		return r
	}
	var whys []string
	worst := Risk{Likelihood: Low, Impact: Low}
	for _, g := range gs {
		l, i, why := gateRisk(g)
		whys = append(whys, why)
		c := Risk{Likelihood: l, Impact: i}
		if worse(c, worst) {
			worst = c
		}
	}
	r.Likelihood, r.Impact = worst.Likelihood, worst.Impact
	why := strings.Join(whys, "; ") + "."
	if len(channelsFor(d, notify.KindApprovalNeeded)) == 0 {
		r.Likelihood = High
		why += " No notification channel receives `approvalNeeded`: approvers are not told they are needed."
	}
	r.Why = strings.ToUpper(why[:1]) + why[1:]
	return r
}

// worse orders risks by rating, then impact, then likelihood.
func worse(a, b Risk) bool {
	if a.Rating() != b.Rating() {
		return a.Rating() > b.Rating()
	}
	if a.Impact != b.Impact {
		return a.Impact > b.Impact
	}
	return a.Likelihood > b.Likelihood
}

// earliestDuration is the least time the release takes: every soak, no waits.
func earliestDuration(d spec.Release) time.Duration { return d.TotalSoak() }

func workerRisk(d spec.Release) Risk {
	r := Risk{Mode: RiskWorkerCrash, Likelihood: Low, Impact: Medium}
	total := earliestDuration(d)
	if total > longRelease || len(gates(d)) > 0 {
		r.Likelihood = Medium
		r.Why = fmt.Sprintf("The release runs at least %s (plus any approval waits), long enough to span worker "+
			"deploys and restarts.", dur(total))
	} else {
		r.Why = fmt.Sprintf("The release runs at least %s.", dur(total))
	}
	r.Why += " While no worker runs, analysis and automatic rollback stop and the canary keeps its traffic."
	r.Mitigation = "State and timers are durable in Temporal: another worker continues at the same point. Steps " +
		"carry a fencing token (release ID + a sequence number that only grows) and targets are idempotent per step, so " +
		"a retry on another worker repeats nothing and a late write is refused. Run at least two workers; alerts " +
		"ShepherdWorkerDown and ShepherdNoWorkers."
	return r
}

func flagRisk(d spec.Release) Risk {
	r := Risk{Mode: RiskFlagProvider, Likelihood: Low, Impact: Low}
	f := d.Flags
	if f == nil {
		r.Why = "No feature flags follow this release."
		r.Mitigation = "Not applicable."
		return r
	}
	r.Impact = Medium
	if f.Provider.Type == flags.TypeHTTP {
		r.Likelihood = Medium
		r.Why = "The flag service's API is a network dependency."
	} else {
		r.Why = fmt.Sprintf("The flag file %s is written on the worker.", code(f.Provider.Path))
	}
	r.Why += fmt.Sprintf(" A failed update of %s rolls the release back; a failed turn-off during a rollback may "+
		"leave them on.", plural(len(f.Names), "flag", "flags"))
	r.Mitigation = "Flags are created off at deploy; writes are absolute, so retries are safe. On rollback, " +
		"traffic goes to stable before flags are turned off; a flag step that keeps failing holds the rollback in " +
		"RollbackStuck (canary at 0% traffic) until a person sends retry or acknowledge."
	return r
}

func prerequisiteRisk(d spec.Release) Risk {
	r := Risk{Mode: RiskPrerequisite, Likelihood: Medium, Impact: Medium}
	var names []string
	for _, c := range d.Prechecks {
		if c.Signoff == nil {
			names = append(names, code(c.Name))
		}
	}
	r.Mitigation = "Pre-release checks run before anything changes; any failure rejects the release with its reason."
	if len(names) == 0 {
		r.Why = "No automated pre-release checks: nothing verifies the artifact, capacity or dependencies before " +
			"deploy, so a missing artifact fails the deploy step and a capacity shortfall shows only under traffic."
		return r
	}
	r.Likelihood, r.Impact = Low, Low
	r.Why = fmt.Sprintf("%s before any change: %s.", plural(len(names), "check runs", "checks run"), joinAnd(names))
	return r
}

func notifyRisk(d spec.Release) Risk {
	r := Risk{Mode: RiskNobodyTold, Likelihood: Low, Impact: Low}
	r.Mitigation = "Notifications never block the release; each is retried, and an undelivered one is recorded " +
		"in the decision log. `shepherd list` and the Temporal UI show every release."
	if len(d.Notifications) == 0 {
		r.Likelihood, r.Impact = High, Medium
		r.Why = "No notification channels are configured: nobody is told the release started, needs approval, " +
			"rolled back or failed to roll back."
		return r
	}
	var missing []string
	for _, k := range []notify.EventKind{notify.KindRollbackStuck, notify.KindRolledBack} {
		if len(channelsFor(d, k)) == 0 {
			missing = append(missing, code(string(k)))
		}
	}
	if len(gates(d)) > 0 && len(channelsFor(d, notify.KindApprovalNeeded)) == 0 {
		missing = append(missing, code(string(notify.KindApprovalNeeded)))
	}
	if len(missing) > 0 {
		r.Likelihood, r.Impact = Medium, Medium
		r.Why = fmt.Sprintf("%s configured, but no channel receives %s.",
			plural(len(d.Notifications), "channel is", "channels are"), joinAnd(missing))
		return r
	}
	r.Why = fmt.Sprintf("%s receive the events that need people.", plural(len(d.Notifications), "channel", "channels"))
	return r
}
