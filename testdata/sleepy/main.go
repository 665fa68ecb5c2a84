// Command sleepy is a flow for the interruption tests: each element of its
// foreach sleeps for --nap, and records that it finished.
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"stepwise.dev/stepwise"
	_ "stepwise.dev/stepwise/backend/s3"
	_ "stepwise.dev/stepwise/backend/service"
	_ "stepwise.dev/stepwise/backend/sqlite"
)

// Sleepy fans out over N items that each take a nap.
type Sleepy struct {
	N     int           `param:"n" help:"items"`
	Nap   time.Duration `param:"nap" help:"how long each item sleeps"`
	Dir   string        `param:"dir" help:"where items leave a file when they start"`
	Items []int
	Value int
	Sum   int
}

func (f *Sleepy) Graph(g *stepwise.Graph) {
	g.Step(f.Start).Foreach("Items", f.Nap_)
	g.Step(f.Nap_).Next(f.Join)
	g.Step(f.Join).Next(f.End)
	g.Step(f.End)
}

func (f *Sleepy) Start(context.Context) error {
	for i := 1; i <= f.N; i++ {
		f.Items = append(f.Items, i)
	}
	return nil
}

func (f *Sleepy) Nap_(ctx context.Context, item int) error {
	if f.Dir != "" {
		os.WriteFile(filepath.Join(f.Dir, fmt.Sprintf("started-%d-%d", item, os.Getpid())), nil, 0o644)
	}
	fmt.Printf("item %d naps for %s\n", item, f.Nap)
	select {
	case <-time.After(f.Nap):
	case <-ctx.Done():
		return ctx.Err()
	}
	f.Value = item * 10
	return nil
}

func (f *Sleepy) Join(_ context.Context, in stepwise.Inputs[*Sleepy]) error {
	for _, t := range in.All() {
		f.Sum += t.Value
	}
	return nil
}

func (f *Sleepy) End(context.Context) error { fmt.Println("sum", f.Sum); return nil }

func main() { stepwise.Main(&Sleepy{N: 4, Nap: 10 * time.Millisecond}) }
