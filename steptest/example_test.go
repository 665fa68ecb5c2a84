package steptest_test

import (
	"context"
	"fmt"
	"os"

	"stepwise.dev/stepwise"
	"stepwise.dev/stepwise/steptest"
)

// Hello is a two-step flow.
type Hello struct{ Greeting string }

func (f *Hello) Graph(g *stepwise.Graph) {
	g.Step(f.Start).Next(f.End)
	g.Step(f.End)
}

func (f *Hello) Start(context.Context) error { f.Greeting = "hello"; return nil }
func (f *Hello) End(context.Context) error   { return nil }

// Command runs a flow program's command line in the test's process; here
// check, which validates the graph.
func ExampleCommand() {
	code := steptest.Command(context.Background(), &Hello{}, []string{"check"}, os.Stdout, os.Stderr)
	fmt.Println("exit", code)
	// Output:
	// flow Hello: 2 steps, graph OK
	// exit 0
}

// Squares fans out and sums.
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

// Step and Join run single steps in the test's process, on values the test
// makes: no run, no store.
func ExampleStep() {
	ctx := context.Background()
	a, b := &Squares{}, &Squares{}
	steptest.Step(ctx, a.Each, 3)
	steptest.Step(ctx, b.Each, 4)
	j := &Squares{}
	if err := steptest.Join(ctx, j.Join, a, b); err != nil {
		fmt.Println(err)
	}
	fmt.Println(a.Square, b.Square, j.Sum)
	fmt.Println(steptest.Step(ctx, j.Each, "three"))
	// Output:
	// 9 16 25
	// steptest: the step takes a int, not string
}

// Pair is a branch and its join.
type Pair struct{ X, Out int }

func (f *Pair) Graph(g *stepwise.Graph) {
	g.Step(f.Start).Next(f.A, f.B)
	g.Step(f.A).Next(f.Join)
	g.Step(f.B).Next(f.Join)
	g.Step(f.Join).Next(f.End)
	g.Step(f.End)
}
func (f *Pair) Start(context.Context) error { return nil }
func (f *Pair) A(context.Context) error     { f.X = 2; return nil }
func (f *Pair) B(context.Context) error     { f.X = 3; return nil }
func (f *Pair) Join(_ context.Context, in stepwise.Inputs[*Pair]) error {
	f.Out = in.Step("a").X*10 + in.Step("b").X
	return nil
}
func (f *Pair) End(context.Context) error { return nil }

// Branch runs a join after a branch, with each input named by its branch.
func ExampleBranch() {
	j := &Pair{}
	err := steptest.Branch(context.Background(), j.Join, map[string]*Pair{"a": {X: 2}, "b": {X: 3}})
	fmt.Println(j.Out, err)
	// Output: 23 <nil>
}
