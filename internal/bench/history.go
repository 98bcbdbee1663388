package bench

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/shepherd-release/shepherd/internal/demo"
	"github.com/shepherd-release/shepherd/record"
	"github.com/shepherd-release/shepherd/spec"
	"github.com/shepherd-release/shepherd/starter"
)

// historySoaks are the per-stage soaks of the default plan whose history (c) counts: the count must not
// change with the soak.
var historySoaks = []time.Duration{2 * time.Second, 8 * time.Second}

// historyRun is one release of (c).
type historyRun struct {
	soak     time.Duration
	rounds   int // measurements of every check, over all stages
	events   int
	duration time.Duration
}

// historySpec is the default plan (five stages, two checks, default limits) with every stage soaking
// soak, measured every second; the checks are constant so the release promotes.
func historySpec(i int, soak time.Duration) spec.Release {
	limit := 0.01
	r := spec.Release{
		Service: "bench-history", Environment: "bench", Version: fmt.Sprintf("h%d", i+1), PreviousVersion: "h0",
		Description: "shepherd bench: history size of the default plan",
		Target:      benchTarget,
		Analysis: spec.Analysis{Source: demo.Metrics, Interval: spec.Duration(time.Second), Checks: []spec.Check{
			{Name: "error-rate", Query: "vector(0.001)", Max: &limit}, {Name: "p99-latency", Query: "vector(0.002)", Max: &limit}}},
	}
	for _, p := range []int{1, 5, 25, 50, 100} {
		r.Stages = append(r.Stages, spec.Stage{Percent: p, Soak: spec.Duration(soak)})
	}
	return r
}

// benchHistory measures (c): the history events of the default plan at two soak lengths.
func benchHistory(ctx context.Context, out io.Writer, c client.Client, res *Results) error {
	fmt.Fprintf(out, "\n(c) history events of the default plan (5 stages, 2 checks) at soaks of %v per stage, measured every second\n", historySoaks)
	for i, soak := range historySoaks {
		r := historySpec(i, soak)
		rctx, cancel := context.WithTimeout(ctx, 5*soak+2*time.Minute)
		st, err := starter.Start(rctx, c, r)
		if err != nil {
			cancel()
			return fmt.Errorf("history run %d: %w", i+1, err)
		}
		final, err := starter.Wait(rctx, c, st.Spec.Service, st.Spec.Environment, st.RunID)
		if err == nil && final.Phase != record.PhaseSucceeded {
			err = fmt.Errorf("ended %s, not Succeeded: %s", final.Phase, final.Reason)
		}
		if err != nil {
			cancel()
			return fmt.Errorf("history run %d: %w", i+1, err)
		}
		events, err := countEvents(rctx, c, st.WorkflowID, st.RunID)
		cancel()
		if err != nil {
			return fmt.Errorf("history run %d: %w", i+1, err)
		}
		run := historyRun{soak: soak, events: events, duration: final.EndedAt.Sub(final.StartedAt)}
		for _, d := range final.Decisions {
			if d.Evidence != nil {
				run.rounds += d.Evidence.Rounds
			}
		}
		res.history = append(res.history, run)
		fmt.Fprintf(out, "  soak %s per stage: %d measurements of each check, %d history events\n", soak, run.rounds, run.events)
	}
	return nil
}

func countEvents(ctx context.Context, c client.Client, workflowID, runID string) (int, error) {
	it := c.GetWorkflowHistory(ctx, workflowID, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	n := 0
	for it.HasNext() {
		if _, err := it.Next(); err != nil {
			return 0, fmt.Errorf("reading the history of %s: %w", workflowID, err)
		}
		n++
	}
	return n, nil
}

// historyMarkdown is (c)'s rows and verdict.
func historyMarkdown(runs []historyRun) string {
	if len(runs) == 0 {
		return ""
	}
	var b strings.Builder
	same := true
	most := 0
	b.WriteString("(c) history events of the default plan (5 stages, 2 checks, default limits; soaks shortened and measured " +
		"every second so the run is short):\n\n| Soak per stage | Measurements of each check | History events | Took |\n|---|---|---|---|\n")
	for _, r := range runs {
		fmt.Fprintf(&b, "| %s | %d | %d | %s |\n", r.soak, r.rounds, r.events, demo.FormatDuration(r.duration))
		same = same && r.events == runs[0].events
		most = max(most, r.events)
	}
	fmt.Fprintf(&b, "\nTarget: at most 300 events, the same at any soak length: %s (%d events; %s). Each stage is one `WatchStage` "+
		"activity however long it soaks, so a 15-minute or 24-hour soak records this count too.\n\n",
		verdict(same && most <= 300), most, map[bool]string{true: "equal at every soak", false: "the count changed with the soak"}[same])
	return b.String()
}
