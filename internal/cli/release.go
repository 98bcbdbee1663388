package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"

	"github.com/shepherd-release/shepherd/activities"
	"github.com/shepherd-release/shepherd/approvals"
	"github.com/shepherd-release/shepherd/config"
	"github.com/shepherd-release/shepherd/record"
	"github.com/shepherd-release/shepherd/spec"
	"github.com/shepherd-release/shepherd/starter"
	"github.com/shepherd-release/shepherd/worker"
	"github.com/shepherd-release/shepherd/workflows"
)

// readSpec parses and validates a spec file ("-" is standard input) and returns it with defaults.
func readSpec(path string) (spec.Release, error) {
	if path == "" {
		return spec.Release{}, withHint(ExitUsage, errors.New("no spec file given"), "pass -f release.yaml (see examples/)")
	}
	data, err := readSpecFile(path)
	if err != nil {
		return spec.Release{}, specError(path, nil, err)
	}
	r, err := spec.Parse(data)
	if err != nil {
		return spec.Release{}, specError(path, data, err)
	}
	d := r.WithDefaults()
	if err := activities.ValidateSpec(d); err != nil {
		return spec.Release{}, specError(path, data, err)
	}
	return d, nil
}

// specError says what is wrong with the spec file path, and where: each problem of a validation on a line
// of its own, with the line and column of its key when the file holds it. The pointer to docs/spec.md is
// given once.
func specError(path string, data []byte, err error) error {
	msg := err.Error()
	var ve *spec.ValidationError
	if errors.As(err, &ve) && len(ve.Problems) > 0 {
		var b strings.Builder
		if n := len(ve.Problems); n == 1 {
			b.WriteString("invalid release spec:")
		} else {
			fmt.Fprintf(&b, "invalid release spec (%d problems):", n)
		}
		for _, p := range ve.Problems {
			b.WriteString("\n  ")
			if pos, ok := spec.Locate(data, p.Path); ok {
				b.WriteString(pos.String() + ": ")
			}
			b.WriteString(p.Error())
		}
		msg = b.String()
	}
	hint := "docs/spec.md lists every key"
	if strings.Contains(msg, "docs/spec.md") {
		hint = ""
	}
	return withHint(ExitUsage, fmt.Errorf("%s: %s", path, msg), hint)
}

// readSpecFile reads a spec file ("-" is standard input) without ever holding more than
// spec.MaxSpecBytes+1 bytes of it: a regular file is refused by its size before reading, anything else
// (a pipe, /dev/zero) while reading.
func readSpecFile(path string) ([]byte, error) {
	if path == "-" {
		return spec.Read(os.Stdin)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading spec: %w", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() && fi.Size() > spec.MaxSpecBytes {
		return nil, fmt.Errorf("spec is %d bytes, larger than the limit of %d bytes", fi.Size(), spec.MaxSpecBytes)
	}
	return spec.Read(f)
}

func newValidateCmd(g *globals) *cobra.Command {
	var file, configFile string
	cmd := &cobra.Command{
		Use:   "validate -f release.yaml",
		Short: "Check a release spec without starting anything",
		Long: `Parse and validate a release spec exactly as the workflow will, and print the plan it describes
(with every default filled in). With --config (or $SHEPHERD_CONFIG), also check that the worker
configuration declares every provider the spec names, as a worker's preflight does. Nothing is contacted;
nothing changes.`,
		Example: `  shepherd validate -f examples/release.yaml --config examples/shepherd.yaml
  shepherd validate -f release.json -o json   # the spec with defaults, as the workflow sees it`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			d, err := readSpec(file)
			if err != nil {
				return err
			}
			if configFile != "" {
				p, err := loadProviders(configFile, "", worker.BuildOptions{})
				if err != nil {
					return err
				}
				if err := p.Activities().CheckUses(d.Uses()); err != nil {
					return withHint(ExitUsage, fmt.Errorf("%s: %w", file, err), "name providers that "+configFile+" declares")
				}
			}
			if g.json() {
				return g.printJSON(d)
			}
			fmt.Fprintf(g.stdout, "%s is valid: workflow ID %s, at least %s of soak\n\n%s", file,
				spec.WorkflowID(d.Service, d.Environment), d.TotalSoak(), starter.PlanMarkdown(d))
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "release spec (YAML or JSON; - for stdin)")
	cmd.Flags().StringVar(&configFile, "config", os.Getenv(config.EnvVar), "also check the names against this worker configuration (default $"+config.EnvVar+")")
	return cmd
}

func newStartCmd(g *globals) *cobra.Command {
	var file, key string
	var wait bool
	cmd := &cobra.Command{
		Use:   "start -f release.yaml [--wait]",
		Short: "Start a release",
		Long: `Validate the spec and start its release workflow. At most one release per service and
environment is active at a time; a second start is refused and names the active release.
With --wait, follow the release to its end (as watch does) and exit with its outcome.
With --key, the start is signed with your SSH key (ssh-keygen -Y sign): the release records who started
it, verified, and where the operators require four eyes you may not approve its gates (there, an
unsigned start is refused).

Exit codes:
  0  started (with --wait: promoted)
  1  anything else: Temporal unreachable, a signing error, ...
  2  invalid spec or usage (the spec's problems are listed with their field paths)
  3  with --wait: rolled back
  4  with --wait: failed (rejected before any change, or the rollback did not finish)
  5  refused: another release of the service is active in that environment`,
		Example: `  shepherd start -f release.yaml
  shepherd start -f release.yaml --wait     # exit 0 promoted, 3 rolled back, 4 failed`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			d, err := readSpec(file)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if key != "" {
				claim := approvals.Claim{WorkflowID: spec.WorkflowID(d.Service, d.Environment), Gate: d.StartGate(),
					Action: "start", Expires: time.Now().Add(15 * time.Minute).UTC().Truncate(time.Second)}
				sig, err := sshKeygenSign(ctx, key, claim.Payload())
				if err != nil {
					return err
				}
				d.StartedBy = &approvals.Signed{Claim: claim, Signature: sig}
			}
			c, err := dial(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			st, err := starter.Start(ctx, c, d)
			if errors.Is(err, starter.ErrAlreadyActive) {
				return withHint(ExitRejected, err, "")
			}
			if err != nil {
				return err
			}
			if g.json() && !wait {
				return g.printJSON(map[string]string{"workflowID": st.WorkflowID, "runID": st.RunID})
			}
			if !g.json() {
				fmt.Fprintf(g.stdout, "Started release of %s %s in %s\n  workflow: %s  run: %s\n  %s\n",
					d.Service, d.Version, d.Environment, st.WorkflowID, st.RunID, uiLink(st.WorkflowID, st.RunID))
			}
			if n, err := starter.Pollers(ctx, c); err == nil && n == 0 {
				fmt.Fprintf(g.stderr, "Warning: %s\n", noWorker)
			}
			if !wait {
				if !g.json() {
					fmt.Fprintf(g.stdout, "Follow it with: shepherd watch %s --env %s\n", d.Service, d.Environment)
				}
				return nil
			}
			return follow(ctx, g, c, d.Service, d.Environment, st.RunID)
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "release spec (YAML or JSON; - for stdin)")
	cmd.Flags().BoolVar(&wait, "wait", false, "follow the release until it ends; the exit code is its outcome")
	cmd.Flags().StringVar(&key, "key", "", "sign the start with this SSH private key (who started it, for four eyes)")
	return cmd
}

// uiLink is the Temporal web UI page of a run; SHEPHERD_UI_URL overrides the local dev server's UI.
func uiLink(workflowID, runID string) string {
	base := os.Getenv("SHEPHERD_UI_URL")
	if base == "" {
		base = "http://localhost:8233"
	}
	ns := os.Getenv("TEMPORAL_NAMESPACE")
	if ns == "" {
		ns = client.DefaultNamespace
	}
	return fmt.Sprintf("%s/namespaces/%s/workflows/%s/%s", base, ns, urlPathEscape(workflowID), runID)
}

func newStatusCmd(g *globals) *cobra.Command {
	return newQueryCmd(g, &cobra.Command{
		Use:   "status SERVICE",
		Short: "Show a release's phase, stage, traffic and latest checks",
		Example: `  shepherd status checkout
  shepherd status checkout --env staging -o json`,
	}, func(ctx context.Context, c client.Client, st record.Status) error {
		live := liveWatch(ctx, c, st)
		if g.json() {
			if live == nil {
				return g.printJSON(st)
			}
			return g.printJSON(struct {
				record.Status
				Watch *activities.WatchProgress `json:"watch"`
			}{st, live})
		}
		renderStatus(g.stdout, st, live, time.Now())
		return nil
	})
}

// liveWatch is the running stage watch's progress (its last heartbeat), nil when none runs or it cannot
// be read: the status is complete without it.
func liveWatch(ctx context.Context, c client.Client, st record.Status) *activities.WatchProgress {
	if st.Phase != record.PhaseProgressing || st.Stage == nil || st.Stage.SoakEndsAt.IsZero() {
		return nil
	}
	run := st.ReleaseID[strings.LastIndex(st.ReleaseID, "/")+1:]
	live, err := starter.LiveWatch(ctx, c, st.Service, st.Environment, run)
	if err != nil || live == nil || live.Evidence.Stage != st.Stage.Number {
		return nil
	}
	return live
}

func newHistoryCmd(g *globals) *cobra.Command {
	return newQueryCmd(g, &cobra.Command{
		Use:   "history SERVICE",
		Short: "Print a release's decision log: every transition, approval, measurement and rollback step",
		Example: `  shepherd history checkout
  shepherd history checkout --run 4f1c... -o json`,
	}, func(_ context.Context, _ client.Client, st record.Status) error {
		if g.json() {
			return g.printJSON(st.Decisions)
		}
		renderDecisions(g.stdout, st.Decisions)
		return nil
	})
}

// releaseRunE is the RunE of a command that acts on one release: it reads the service argument, dials
// Temporal, finds the release's environment (resolveEnv) and hands the client and service to fn. When
// fn finds no release there, the error names the service's active releases elsewhere.
func releaseRunE(g *globals, fn func(ctx context.Context, c client.Client, svc string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		svc, err := serviceArg(args)
		if err != nil {
			return err
		}
		c, err := dial(cmd.Context())
		if err != nil {
			return err
		}
		defer c.Close()
		g.envSet = cmd.Flags().Changed("env")
		if err := resolveEnv(cmd.Context(), c, g, svc, cmd.Name()); err != nil {
			return err
		}
		err = fn(cmd.Context(), c, svc)
		if errors.Is(err, starter.ErrNoRelease) {
			if other := elsewhere(cmd.Context(), c, svc, g.env, cmd.Name()); other != "" {
				return withHint(ExitError, err, other)
			}
		}
		return err
	}
}

// newQueryCmd completes cmd as a command that asks one release for its status and shows it.
func newQueryCmd(g *globals, cmd *cobra.Command, show func(context.Context, client.Client, record.Status) error) *cobra.Command {
	var runID string
	cmd.Args = cobra.ArbitraryArgs
	cmd.RunE = releaseRunE(g, func(ctx context.Context, c client.Client, svc string) error {
		st, err := starter.Status(ctx, c, svc, g.env, runID)
		if err != nil && !errors.Is(err, starter.ErrNoRelease) {
			if n, perr := starter.Pollers(ctx, c); perr == nil && n == 0 {
				return withHint(ExitError, err, noWorker)
			}
		}
		if err != nil {
			return err
		}
		return show(ctx, c, st)
	})
	cmd.Flags().StringVar(&runID, "run", "", "a particular run (default: the latest)")
	return cmd
}

func newWatchCmd(g *globals) *cobra.Command {
	var runID string
	cmd := &cobra.Command{
		Use:   "watch SERVICE",
		Short: "Follow a release live until it ends; the exit code is its outcome",
		Long: `Print the release's progress as it happens: stage, traffic, time left in the soak, latest check
values and each new decision. Exits 0 when promoted, 3 when rolled back, 4 when failed.`,
		Example: `  shepherd watch checkout
  shepherd watch checkout -o json   # one JSON status per change`,
		Args: cobra.ArbitraryArgs,
		RunE: releaseRunE(g, func(ctx context.Context, c client.Client, svc string) error {
			return follow(ctx, g, c, svc, g.env, runID)
		}),
	}
	cmd.Flags().StringVar(&runID, "run", "", "a particular run (default: the latest)")
	return cmd
}

// follow polls the status query, printing new decisions and progress, until the release ends.
func follow(ctx context.Context, g *globals, c client.Client, svc, env, runID string) error {
	seen := 0
	var last string
	var lastPrinted time.Time
	stuckHinted := false
	gateHinted := ""
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	lost := false
	for {
		qctx, cancel := context.WithTimeout(ctx, statusTimeout)
		st, err := starter.Status(qctx, c, svc, env, runID)
		cancel()
		if err != nil {
			// The release goes on without us: a server restart or a worker gap is waited out, with a word
			// about it; only a release that does not exist, or Ctrl-C, ends the watch.
			if errors.Is(err, starter.ErrNoRelease) || ctx.Err() != nil {
				return err
			}
			if !lost {
				lost = true
				fmt.Fprintf(g.stderr, "Cannot read the release's status: %s\n  Retrying every %s until it answers (Ctrl-C stops watching; the release goes on without you).\n",
					whyNoStatus(ctx, c, err), retryEvery)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(retryEvery):
			}
			continue
		}
		if lost {
			lost = false
			fmt.Fprintln(g.stderr, "The release's status answers again; following on.")
		}
		if g.json() {
			if line := fmt.Sprint(st.Phase, st.TrafficPercent, len(st.Decisions)); line != last {
				last = line
				if err := g.printJSON(st); err != nil {
					return err
				}
			}
		} else {
			if seen < len(st.Decisions) {
				renderDecisions(g.stdout, st.Decisions[seen:])
				seen = len(st.Decisions)
			}
			if st.Phase == record.PhaseRollbackStuck && !stuckHinted {
				stuckHinted = true
				fmt.Fprintf(g.stdout, "\nThe rollback is stuck and waits for you (docs/runbooks.md#rollback-stuck):\n"+
					"  after fixing the cause:           shepherd retry %s --env %s\n"+
					"  after finishing it by hand:       shepherd acknowledge %s --env %s --reason \"what you did\"\n\n",
					svc, env, svc, env)
			} else if st.Phase != record.PhaseRollbackStuck {
				stuckHinted = false
			}
			// An approval gate is announced once, with the command that passes it and its timeout.
			awaiting := st.Phase == record.PhaseAwaitingApproval && st.Gate != ""
			if awaiting && st.Gate != gateHinted {
				gateHinted = st.Gate
				fmt.Fprint(g.stdout, approvalNotice(st, time.Now()))
			} else if !awaiting {
				gateHinted = ""
			}
			// A progress line when something other than the countdown changed, or every 30 s while a soak
			// counts down (a gate waiting for a person is not repeated).
			key := progressLine(st, time.Time{})
			if !st.Phase.Terminal() && (key != last || (!awaiting && time.Since(lastPrinted) >= 30*time.Second)) {
				last, lastPrinted = key, time.Now()
				fmt.Fprintln(g.stdout, "  "+progressLine(st, time.Now()))
				if live := liveWatch(ctx, c, st); live != nil {
					fmt.Fprintln(g.stdout, "    "+live.Line(time.Now()))
				}
			}
		}
		if st.Phase.Terminal() {
			if !g.json() {
				fmt.Fprintf(g.stdout, "\nRelease %s: %s\n", st.Phase, st.Reason)
				if st.Phase == record.PhaseRolledBack {
					fmt.Fprintf(g.stdout, "Traffic back on stable %s after the decision; rollback took %s.\n",
						st.TrafficRestoredAfter.Round(time.Millisecond), st.RollbackDuration.Round(time.Millisecond))
				}
			}
			return outcomeError(st)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// Watching: one status query may take statusTimeout; after a failed one, the next comes retryEvery later.
const statusTimeout = 10 * time.Second

var retryEvery = 2 * time.Second

// whyNoStatus says why a status query failed: Temporal cannot be reached, or no worker polls the task
// queue (queries are answered by workers), or else the error itself.
func whyNoStatus(ctx context.Context, c client.Client, err error) string {
	dctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	n, perr := starter.Pollers(dctx, c)
	switch {
	case perr != nil:
		return fmt.Sprintf("Temporal does not answer (%v)", perr)
	case n == 0:
		return noWorker
	default:
		return err.Error()
	}
}

// noWorker is what a command says when no worker polls Shepherd's task queue.
var noWorker = fmt.Sprintf("no worker polls task queue %q in this namespace: the release waits, and status "+
	"queries fail, until one does (start one: shepherd worker --config shepherd.yaml)", workflows.TaskQueue)

// outcomeError maps a terminal phase to the exit code.
func outcomeError(st record.Status) error {
	switch st.Phase {
	case record.PhaseSucceeded:
		return nil
	case record.PhaseRolledBack:
		return withHint(ExitRolledBack, fmt.Errorf("release rolled back: %s", st.Reason), "shepherd history "+st.Service+" --env "+st.Environment+" shows the evidence")
	default:
		return withHint(ExitFailed, fmt.Errorf("release failed: %s", st.Reason), "see docs/runbooks.md")
	}
}

var controlHelp = map[string]struct{ short, long, example string }{
	workflows.Approve: {"Approve the stage (or sign-off) that is awaiting approval",
		"Approve the gate the release waits at. --stage guards against approving the wrong stage.\n\n" +
			"Where the workers' operators require it (everywhere but the environments they list as unsigned), an\n" +
			"approval must be signed: --key signs it with your SSH key (ssh-keygen -Y sign, as git signs commits;\n" +
			"passphrases and ssh-agent work as usual). The signature covers this release's run, its gate and an\n" +
			"expiry (--valid-for), so it cannot be replayed elsewhere; the record shows the identity the\n" +
			"operators' allowed_signers file gives your key, not a typed name. To sign elsewhere: --print-payload,\n" +
			"sign its output with `ssh-keygen -Y sign -n shepherd-approval -f KEY`, and send it with --signature.\n" +
			"Unsigned approvals (where accepted) are recorded as unverified; --role then names your role.",
		`  shepherd approve checkout --stage 3 --key ~/.ssh/id_ed25519 --comment "dashboards look fine"
  shepherd approve checkout --print-payload > payload.json   # sign it elsewhere, then:
  shepherd approve checkout --payload payload.json --signature payload.json.sig
  shepherd approve checkout --env staging --role qa --comment "regression suite green"   # unsigned, where allowed`},
	workflows.Abort: {"Abort the release and roll it back",
		"Abort in any phase but Promoting: traffic goes back to stable, then the canary is removed. A step in\n" +
			"flight is stopped first (a few seconds at most). Promotion is the point of no return: to go back\n" +
			"after it, start a release of the previous version.",
		`  shepherd abort checkout --reason "error budget burning"`},
	workflows.Pause: {"Pause the soak: the clock stops, traffic stays where it is",
		"Pause while a stage soaks. Analysis stops; resume continues with the soak time that was left.",
		`  shepherd pause checkout --reason "incident in a dependency"`},
	workflows.Resume: {"Resume a paused release",
		"Resume a release paused by a person or by inconclusive analysis; the failure counters start afresh.",
		`  shepherd resume checkout --comment "Prometheus is back"`},
	workflows.Retry: {"Run the failed rollback step again (release in RollbackStuck)",
		"A rollback step kept failing, so the release waits in RollbackStuck with nothing after that step run\n" +
			"(the canary is never removed while it may still take traffic). Fix the cause, then retry: the\n" +
			"step runs again, with its retries, and the rollback continues.",
		`  shepherd retry checkout --comment "load balancer API is back"`},
	workflows.Acknowledge: {"End a stuck rollback that you finished by hand (release in RollbackStuck)",
		"Record that you finished the rollback by hand (say what you did in --reason) and end the release:\n" +
			"it closes Failed with your name and reason in the report. Nothing more runs on the target.",
		`  shepherd acknowledge checkout --reason "set weights to 0 and deleted checkout-canary by hand"`},
}

func newControlCmd(g *globals, name string) *cobra.Command {
	var req workflows.ControlRequest
	var sign signFlags
	h := controlHelp[name]
	cmd := &cobra.Command{
		Use:     name + " SERVICE",
		Short:   h.short,
		Long:    h.long + "\nSent as a Temporal update: the answer says at once whether the release accepted it, and why not.",
		Example: h.example,
		Args:    cobra.ArbitraryArgs,
		RunE: releaseRunE(g, func(ctx context.Context, c client.Client, svc string) error {
			if name == workflows.Approve || name == workflows.Resume {
				done, err := sign.apply(ctx, c, g, svc, name, &req)
				if err != nil || done {
					return err
				}
			}
			resp, err := starter.Control(ctx, c, svc, g.env, name, req)
			if errors.Is(err, starter.ErrRejected) {
				return withHint(ExitRejected, err, "shepherd status "+svc+" --env "+g.env+" shows where the release is")
			}
			if err != nil {
				return err
			}
			if g.json() {
				return g.printJSON(resp)
			}
			fmt.Fprintf(g.stdout, "%s: %s (phase %s)\n", name, resp.Message, resp.Phase)
			return nil
		}),
	}
	cmd.Flags().StringVar(&req.By, "by", whoami(), "who is asking (recorded in the decision log)")
	cmd.Flags().StringVar(&req.Reason, "reason", "", "why (recorded in the decision log)")
	cmd.Flags().StringVar(&req.Comment, "comment", "", "a comment (recorded in the decision log)")
	cmd.Flags().IntVar(&req.Stage, "stage", 0, "only if the release is at this stage number (1-based)")
	if name == workflows.Approve {
		cmd.Flags().StringVar(&req.Role, "role", "", "your role, for an unsigned approval where a gate names roles, e.g. qa")
	}
	if name == workflows.Approve || name == workflows.Resume {
		sign.register(cmd)
	}
	return cmd
}

func newListCmd(g *globals) *cobra.Command {
	var all bool
	var query string
	var limit int
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List active and recent releases",
		Long: `List releases from Temporal visibility, newest first: running ones by default, all with --all.
--query adds a visibility filter over the release search attributes (ReleaseService, ReleaseEnvironment,
ReleaseVersion, ReleasePhase, ReleaseTrafficPercent).`,
		Example: `  shepherd list
  shepherd list --all --query "ReleaseService = 'checkout'"
  shepherd list --query "ReleasePhase = 'AwaitingApproval'" -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := dial(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			q := query
			if !all {
				q = joinQuery(q, "ExecutionStatus = 'Running'")
			}
			rows, err := starter.List(cmd.Context(), c, q, limit)
			if err != nil {
				return err
			}
			if g.json() {
				if rows == nil {
					rows = []starter.Summary{}
				}
				return g.printJSON(rows)
			}
			renderList(g.stdout, rows)
			return nil
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "include ended releases")
	cmd.Flags().StringVar(&query, "query", "", "extra visibility query")
	cmd.Flags().IntVar(&limit, "limit", 50, "at most this many releases")
	return cmd
}

func joinQuery(a, b string) string {
	if a == "" {
		return b
	}
	return "(" + a + ") AND " + b
}
