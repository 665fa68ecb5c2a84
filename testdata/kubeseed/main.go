// Command kubeseed is the seed flow with its branches a and b placed on
// Kubernetes: start, join and end run where the launcher runs. The tests
// build it (statically) and run it against the test cluster.
package main

import (
	"context"
	"fmt"
	"os"

	"stepwise.dev/stepwise"
	_ "stepwise.dev/stepwise/backend/kubernetes"
	_ "stepwise.dev/stepwise/backend/s3"
	_ "stepwise.dev/stepwise/backend/service"
)

// KubeSeed splits into two branches on the cluster and joins them here.
type KubeSeed struct {
	X     int
	Out   int
	Where []string
}

func (f *KubeSeed) Graph(g *stepwise.Graph) {
	k := stepwise.Kubernetes{Labels: map[string]string{"team": "seed"}}
	g.Step(f.Start).Next(f.A, f.B)
	g.Step(f.A).Resources(stepwise.Resources{CPU: 0.5, MemoryMB: 256}).Compute(k).Next(f.Join)
	g.Step(f.B).Resources(stepwise.Resources{CPU: 0.5, MemoryMB: 256}).Compute(k).Next(f.Join)
	g.Step(f.Join).Next(f.End)
	g.Step(f.End)
}

func (f *KubeSeed) Start(context.Context) error { f.X = 0; return nil }
func (f *KubeSeed) A(context.Context) error {
	f.X += 2
	f.Where = append(f.Where, "a:"+os.Getenv("STEPWISE_POD"))
	fmt.Println("a runs in pod", os.Getenv("STEPWISE_POD"))
	return nil
}
func (f *KubeSeed) B(context.Context) error {
	f.X += 3
	f.Where = append(f.Where, "b:"+os.Getenv("STEPWISE_POD"))
	fmt.Println("b runs in pod", os.Getenv("STEPWISE_POD"))
	return nil
}
func (f *KubeSeed) Join(_ context.Context, in stepwise.Inputs[*KubeSeed]) error {
	for _, i := range in.All() {
		f.Out = max(f.Out, i.X)
		f.Where = append(f.Where, i.Where...)
	}
	return nil
}
func (f *KubeSeed) End(context.Context) error { fmt.Println(f.Out); return nil }

func main() { stepwise.Main(&KubeSeed{}) }
