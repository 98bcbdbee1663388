package cli

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	"go.temporal.io/sdk/client"

	"github.com/shepherd-release/shepherd/starter"
)

// listable is what a service argument must look like to be put into a visibility query.
var listable = regexp.MustCompile(`^[A-Za-z0-9._-]{1,128}$`)

// activeOf lists the running releases of svc in every environment, newest first. An error (no
// visibility, an odd service name) gives none: the caller then keeps the default environment.
func activeOf(ctx context.Context, c client.Client, svc string) []starter.Summary {
	if !listable.MatchString(svc) {
		return nil
	}
	rows, err := starter.List(ctx, c, fmt.Sprintf("ReleaseService = '%s' AND ExecutionStatus = 'Running'", svc), 20)
	if err != nil {
		return nil
	}
	return rows
}

// resolveEnv picks the environment of a command that names a release of svc. An --env given on the
// command line is used as it is. Without one, the service's only active release is meant, in whatever
// environment it runs; with none active, the default environment (production); with several, the
// command cannot guess and asks for --env, listing them.
func resolveEnv(ctx context.Context, c client.Client, g *globals, svc, command string) error {
	if g.envSet {
		return nil
	}
	active := activeOf(ctx, c, svc)
	switch len(active) {
	case 0:
		return nil
	case 1:
		if env := active[0].Environment; env != "" && env != g.env {
			fmt.Fprintf(g.stderr, "(the active release of %s is in %s: --env %s)\n", svc, env, env)
			g.env = env
		}
		return nil
	default:
		return severalActive(svc, command, active)
	}
}

// severalActive is the error of a command that names a service with active releases in several
// environments and no --env.
func severalActive(svc, command string, active []starter.Summary) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s has %d active releases; say which with --env:", svc, len(active))
	for _, r := range active {
		fmt.Fprintf(&b, "\n  shepherd %s %s --env %-12s # %s, %s", command, svc, r.Environment, r.Version, r.Phase)
	}
	return withHint(ExitUsage, fmt.Errorf("%s", b.String()), "")
}

// elsewhere names the active releases of svc outside env, with the command that reaches them, for an
// error that found none in env ("" when there are none).
func elsewhere(ctx context.Context, c client.Client, svc, env, command string) string {
	var out []string
	for _, r := range activeOf(ctx, c, svc) {
		if r.Environment != env && r.Environment != "" {
			out = append(out, fmt.Sprintf("%s has an active release in %s (%s, %s): shepherd %s %s --env %s",
				svc, r.Environment, r.Version, r.Phase, command, svc, r.Environment))
		}
	}
	return strings.Join(out, "; ")
}
