package cli

import (
	"context"
	"fmt"
	"strings"

	"stepwise.dev/stepwise/client"
)

func tagCmd(ctx context.Context, e *Env, args []string) error {
	fs := e.Flags("tag")
	pos, err := Parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) < 2 {
		return &usageError{"say add, remove or list, and the run: Flow/RunID"}
	}
	op, spec, tags := pos[0], pos[1], pos[2:]
	c, ps, err := e.open(ctx, spec)
	if err != nil {
		return err
	}
	defer c.Close()
	if ps.Run == "" || ps.Step != "" {
		return &usageError{fmt.Sprintf("tags belong to runs: write Flow/RunID or Flow/latest, not %q", spec)}
	}
	run, err := c.Flow(ps.Flow).Run(ctx, ps.Run)
	if err != nil {
		return err
	}
	switch op {
	case "list":
		if len(tags) > 0 {
			return &usageError{"list takes no tags"}
		}
	case "add", "remove":
		if len(tags) == 0 {
			return &usageError{fmt.Sprintf("name the tags to %s", op)}
		}
		if op == "add" {
			err = run.AddTags(ctx, tags...)
		} else {
			err = run.RemoveTags(ctx, tags...)
		}
		if err != nil {
			return err
		}
		if run, err = c.Flow(ps.Flow).Run(ctx, ps.Run); err != nil {
			return err
		}
	default:
		return &usageError{fmt.Sprintf("unknown tag operation %q: use add, remove or list", op)}
	}
	if e.json {
		return e.printJSON(map[string]any{"run": run.Pathspec(), "system_tags": run.SystemTags, "tags": userTags(run)})
	}
	fmt.Fprintf(e.stdout, "%s\n  system tags: %s\n  tags:        %s\n", run.Pathspec(), strings.Join(run.SystemTags, " "), strings.Join(userTags(run), " "))
	return nil
}

func userTags(r *client.Run) []string {
	out := []string{}
	for _, t := range r.Tags {
		sys := false
		for _, s := range r.SystemTags {
			sys = sys || s == t
		}
		if !sys {
			out = append(out, t)
		}
	}
	return out
}
