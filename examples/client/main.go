// Command client reads runs with the client API: the latest run of a flow
// in your namespace, then in everyone's.
//
//	go run ./examples/branchjoin run
//	go run ./examples/client --flow BranchJoin
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"stepwise.dev/stepwise/client"

	_ "stepwise.dev/stepwise/backend/s3"      // reads s3:// datastores
	_ "stepwise.dev/stepwise/backend/service" // and a team's metadata service
	_ "stepwise.dev/stepwise/backend/sqlite"  // and local ones
)

func main() {
	flow := flag.String("flow", "BranchJoin", "flow to look at")
	ns := flag.String("namespace", "", "namespace to read first (default: yours)")
	flag.Parse()
	if err := report(context.Background(), os.Stdout, *flow, *ns); err != nil {
		fmt.Fprintln(os.Stderr, "client:", err)
		os.Exit(1)
	}
}

// report prints the latest run of flow in a namespace, then globally.
func report(ctx context.Context, w io.Writer, flow, ns string) error {
	c, err := client.Open(ctx, client.Options{})
	if err != nil {
		return err
	}
	defer c.Close()
	if ns != "" {
		c.SetNamespace(ns)
	}
	run, err := c.Flow(flow).LatestRun(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintln(w, c.Namespace(), run.ID, run.Tags)

	c.SetNamespace(client.Global)
	run, err = c.Flow(flow).LatestRun(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintln(w, "global", run.ID, run.Tags)
	if end, err := run.EndTask(ctx); err == nil {
		for _, a := range end.Artifacts {
			v, err := end.Raw(ctx, a.Name)
			if err != nil {
				return err
			}
			fmt.Fprintf(w, "  %s = %v\n", a.Name, v)
		}
	}
	return nil
}
