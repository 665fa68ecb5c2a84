package stepwise_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"stepwise.dev/stepwise"
	"stepwise.dev/stepwise/client"
)

// Squares fans out over three numbers and sums their squares.
type Squares struct {
	Items  []int
	Square int
	Sum    int
}

func (f *Squares) Graph(g *stepwise.Graph) {
	g.Step(f.Start).Foreach("Items", f.Each)
	g.Step(f.Each).Next(f.Join)
	g.Step(f.Join).Next(f.End)
	g.Step(f.End)
}

func (f *Squares) Start(context.Context) error            { f.Items = []int{1, 2, 3}; return nil }
func (f *Squares) Each(_ context.Context, item int) error { f.Square = item * item; return nil }
func (f *Squares) Join(_ context.Context, in stepwise.Inputs[*Squares]) error {
	for _, t := range in.All() {
		f.Sum += t.Square
	}
	return nil
}
func (f *Squares) End(context.Context) error { return nil }

// Run a flow from Go code and read its result with the client. In a test
// binary, TestMain calls steptest.Main(m, &Squares{}) so that the binary
// can run the flow's tasks.
func ExampleRun() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	os.Setenv("STEPWISE_CONFIG", filepath.Join(dir, "config.json"))

	run, err := stepwise.Run(ctx, &Squares{}, &stepwise.RunOptions{Datastore: filepath.Join(dir, "ds"), Tags: []string{"example"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	end, _ := run.EndTask(ctx)
	sum, _ := client.Get[int](ctx, end, "Sum")
	fmt.Println(run.Status, sum)
	// Output: succeeded 14
}
