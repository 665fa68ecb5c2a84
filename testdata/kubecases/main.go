// Command kubecases runs, in parallel branches on Kubernetes, one step for
// each outcome the backend turns a pod into: an exit 1 then a retry, a
// timeout, an OOM kill, a step placed on the node with a GPU, and a step
// asking for more GPUs than any node has. Steps that end badly catch their
// error, so that one run shows every outcome.
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

// KubeCases holds what each branch saw.
type KubeCases struct {
	Tries      int
	TimeoutErr string
	OOMErr     string
	GPUPod     string
	GPUErr     string
	Memory     [][]byte
}

func (f *KubeCases) Graph(g *stepwise.Graph) {
	k := stepwise.Kubernetes{}
	small := stepwise.Resources{CPU: 0.25, MemoryMB: 128}
	g.Step(f.Start).Next(f.ExitOnce, f.Slow, f.Greedy, f.OneGPU, f.TooManyGPU)
	g.Step(f.ExitOnce).Resources(small).Compute(k).Retry(1).Next(f.Join)
	g.Step(f.Slow).Resources(small).Compute(k).Timeout(5 * time.Second).Catch("TimeoutErr").Next(f.Join)
	g.Step(f.Greedy).Resources(stepwise.Resources{CPU: 0.25, MemoryMB: 48}).Compute(k).Catch("OOMErr").Next(f.Join)
	g.Step(f.OneGPU).Resources(stepwise.Resources{CPU: 0.25, MemoryMB: 128, GPU: 1}).Compute(k).Next(f.Join)
	g.Step(f.TooManyGPU).Resources(stepwise.Resources{CPU: 0.25, MemoryMB: 128, GPU: 4}).Compute(k).Catch("GPUErr").Next(f.Join)
	g.Step(f.Join).Next(f.End)
	g.Step(f.End)
}

func (f *KubeCases) Start(context.Context) error { return nil }

// ExitOnce fails (its process exits with status 1) on its first attempt.
func (f *KubeCases) ExitOnce(ctx context.Context) error {
	t := stepwise.CurrentTask(ctx)
	f.Tries = t.Attempt + 1
	if t.Attempt == 0 {
		fmt.Println("first attempt: exit 1")
		return fmt.Errorf("the first attempt fails on purpose")
	}
	fmt.Println("second attempt: fine")
	return nil
}

// Slow outlives its 3-second timeout.
func (f *KubeCases) Slow(context.Context) error {
	fmt.Println("sleeping past the timeout")
	time.Sleep(2 * time.Minute)
	return nil
}

// Greedy touches far more memory than its 48 MB limit.
func (f *KubeCases) Greedy(context.Context) error {
	for i := 0; i < 64; i++ {
		b := make([]byte, 16<<20)
		for j := range b {
			b[j] = byte(j)
		}
		f.Memory = append(f.Memory, b)
	}
	return nil
}

// OneGPU needs the node with a GPU.
func (f *KubeCases) OneGPU(context.Context) error {
	f.GPUPod = os.Getenv("STEPWISE_POD")
	return nil
}

// TooManyGPU asks for more GPUs than any node has.
func (f *KubeCases) TooManyGPU(context.Context) error { return nil }

func (f *KubeCases) Join(_ context.Context, in stepwise.Inputs[*KubeCases]) error {
	f.Tries = in.Step("exit_once").Tries
	f.TimeoutErr = in.Step("slow").TimeoutErr
	f.OOMErr = in.Step("greedy").OOMErr
	f.GPUPod = in.Step("one_gpu").GPUPod
	f.GPUErr = in.Step("too_many_gpu").GPUErr
	return nil
}

func (f *KubeCases) End(context.Context) error {
	fmt.Printf("tries=%d\ntimeout=%s\noom=%s\ngpu pod=%s\ngpus=%s\n", f.Tries, f.TimeoutErr, f.OOMErr, f.GPUPod, f.GPUErr)
	return nil
}

func main() { stepwise.Main(&KubeCases{}) }
