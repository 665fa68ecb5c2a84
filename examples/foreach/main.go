// Command foreach fans out over N items, squares each in its own task and
// sums the squares in a join:
//
//	go run ./examples/foreach run --n 1000
package main

import (
	"context"
	"fmt"

	"stepwise.dev/stepwise"
	_ "stepwise.dev/stepwise/backend/sqlite" // runs recorded in .stepwise/, no set-up
)

// Foreach squares 1..N in parallel tasks and sums the squares.
type Foreach struct {
	N      int `param:"n" help:"how many items to square"`
	Items  []int
	Square int
	Sum    int
}

// Graph declares the steps and their transitions.
func (f *Foreach) Graph(g *stepwise.Graph) {
	g.Step(f.Start).Foreach("Items", f.SquareItem)
	g.Step(f.SquareItem).Next(f.Join)
	g.Step(f.Join).Next(f.End)
	g.Step(f.End)
}

func (f *Foreach) Start(context.Context) error {
	for i := 1; i <= f.N; i++ {
		f.Items = append(f.Items, i)
	}
	return nil
}

func (f *Foreach) SquareItem(_ context.Context, item int) error { f.Square = item * item; return nil }

// Join sums the squares, and shows them in a card (stepwise card get
// Foreach/latest/join/0).
func (f *Foreach) Join(ctx context.Context, in stepwise.Inputs[*Foreach]) error {
	type row struct{ Item, Square int }
	var rows []row
	var squares []float64
	for _, t := range in.All() {
		f.Sum += t.Square
		rows = append(rows, row{len(rows) + 1, t.Square})
		squares = append(squares, float64(t.Square))
	}
	stepwise.CardOf(ctx).
		Markdown(fmt.Sprintf("# Squares of 1..%d\nTheir sum is **%d**.", len(rows), f.Sum)).
		Chart("squares", stepwise.Chart{Series: []stepwise.Series{{Name: "square", Values: squares}}}).
		Table(rows).
		Artifact("Sum")
	return nil
}

func (f *Foreach) End(context.Context) error {
	fmt.Printf("sum of squares of 1..%d = %d\n", f.N, f.Sum)
	return nil
}

func main() { stepwise.Main(&Foreach{N: 10}) }
