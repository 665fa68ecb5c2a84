// Command branchjoin is the seed flow: start branches into a and b, which
// run at the same time, and join keeps the larger x. Run it with
//
//	go run ./examples/branchjoin run
package main

import (
	"context"
	"fmt"

	"stepwise.dev/stepwise"
	_ "stepwise.dev/stepwise/backend/sqlite" // runs recorded in .stepwise/, no set-up
)

// BranchJoin splits into two branches and joins them.
type BranchJoin struct {
	X   int
	Out int
}

// Graph declares the steps and their transitions.
func (f *BranchJoin) Graph(g *stepwise.Graph) {
	g.Step(f.Start).Next(f.A, f.B)
	g.Step(f.A).Next(f.Join)
	g.Step(f.B).Next(f.Join)
	g.Step(f.Join).Next(f.End)
	g.Step(f.End)
}

func (f *BranchJoin) Start(context.Context) error { f.X = 0; return nil }
func (f *BranchJoin) A(context.Context) error     { f.X += 2; return nil }
func (f *BranchJoin) B(context.Context) error     { f.X += 3; return nil }

func (f *BranchJoin) Join(_ context.Context, in stepwise.Inputs[*BranchJoin]) error {
	for _, i := range in.All() {
		f.Out = max(f.Out, i.X)
	}
	return nil
}

func (f *BranchJoin) End(context.Context) error { fmt.Println(f.Out); return nil }

func main() { stepwise.Main(&BranchJoin{}) }
