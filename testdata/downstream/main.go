// Command downstream is a flow that runs, once deployed, after each
// successful production run of the seed flow (KubeSeed), and reads that
// run's result through the client.
package main

import (
	"context"
	"fmt"
	"strings"

	"stepwise.dev/stepwise"
	_ "stepwise.dev/stepwise/backend/kubernetes"
	_ "stepwise.dev/stepwise/backend/s3"
	_ "stepwise.dev/stepwise/backend/service"
	"stepwise.dev/stepwise/client"
)

// Downstream doubles what the seed flow computed.
type Downstream struct {
	Upstream string
	Doubled  int
}

func (f *Downstream) Graph(g *stepwise.Graph) {
	g.TriggerOnFinish("KubeSeed")
	g.Step(f.Start).Next(f.End)
	g.Step(f.End)
}

// Start reads the triggering run's result, its end task's artifact Out.
func (f *Downstream) Start(ctx context.Context) error {
	f.Upstream = stepwise.CurrentTask(ctx).Trigger
	if f.Upstream == "" {
		return fmt.Errorf("this run was not triggered by a run of KubeSeed")
	}
	c, err := client.Open(ctx, client.Options{})
	if err != nil {
		return err
	}
	defer c.Close()
	flow, run, _ := strings.Cut(f.Upstream, "/")
	c.SetNamespace(client.Global)
	r, err := c.Flow(flow).Run(ctx, run)
	if err != nil {
		return err
	}
	end, err := r.EndTask(ctx)
	if err != nil {
		return err
	}
	out, err := client.Get[int](ctx, end, "Out")
	if err != nil {
		return err
	}
	f.Doubled = 2 * out
	return nil
}

func (f *Downstream) End(context.Context) error {
	fmt.Printf("triggered by %s: doubled %d\n", f.Upstream, f.Doubled)
	return nil
}

func main() { stepwise.Main(&Downstream{}) }
