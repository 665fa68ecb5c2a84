package cli

import (
	"context"
	"fmt"
)

func flowsCmd(ctx context.Context, e *Env, args []string) error {
	fs := e.Flags("flows")
	pos, err := Parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return &usageError{fmt.Sprintf("unexpected argument %q", pos[0])}
	}
	c, err := e.client(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	flows, err := c.Flows(ctx)
	if err != nil {
		return err
	}
	if e.json {
		if flows == nil {
			flows = []string{}
		}
		return e.printJSON(flows)
	}
	if len(flows) == 0 {
		fmt.Fprintf(e.stderr, "no flows in namespace %s (use --namespace global to see everyone's)\n", nsName(c.Namespace()))
		return nil
	}
	for _, f := range flows {
		fmt.Fprintln(e.stdout, f)
	}
	return nil
}

func nsName(ns string) string {
	if ns == "" {
		return "global"
	}
	return ns
}
