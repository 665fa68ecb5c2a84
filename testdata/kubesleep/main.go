// Command kubesleep has one step on Kubernetes, Work, whose first attempt
// sleeps for --sleep seconds and whose retry ends at once: the tests stop,
// delete, cut off or kill what runs it meanwhile.
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"stepwise.dev/stepwise"
	_ "stepwise.dev/stepwise/backend/kubernetes"
	_ "stepwise.dev/stepwise/backend/s3"
	_ "stepwise.dev/stepwise/backend/service"
)

// KubeSleep records which pod did the work.
type KubeSleep struct {
	Sleep int `param:"sleep" help:"seconds the first attempt of Work sleeps"`
	Pod   string
}

func (f *KubeSleep) Graph(g *stepwise.Graph) {
	g.Step(f.Start).Next(f.Work)
	g.Step(f.Work).Resources(stepwise.Resources{CPU: 0.25, MemoryMB: 128}).Compute(stepwise.Kubernetes{}).Retry(1).Next(f.End)
	g.Step(f.End)
}

func (f *KubeSleep) Start(context.Context) error { return nil }

func (f *KubeSleep) Work(ctx context.Context) error {
	t := stepwise.CurrentTask(ctx)
	f.Pod = os.Getenv("STEPWISE_POD")
	fmt.Printf("work attempt %d in pod %s\n", t.Attempt, f.Pod)
	if t.Attempt == 0 {
		for i := 0; i < f.Sleep; i++ {
			fmt.Printf("working %d\n", i)
			time.Sleep(time.Second)
		}
	}
	return nil
}

func (f *KubeSleep) End(context.Context) error { fmt.Println("done by", f.Pod); return nil }

func main() { stepwise.Main(&KubeSleep{}) }
