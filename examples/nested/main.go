// Command nested runs a grid search as a nested foreach: one task per
// (learning rate, depth) pair, an inner join per learning rate and an outer
// join over all of them. Merge carries the artifacts all inputs agree on.
//
//	go run ./examples/nested run
package main

import (
	"context"
	"fmt"

	"stepwise.dev/stepwise"
	_ "stepwise.dev/stepwise/backend/sqlite" // runs recorded in .stepwise/, no set-up
)

// Grid searches learning rates and depths with a nested foreach.
type Grid struct {
	Dataset string `param:"dataset" help:"name of the data set to fit"`
	Rates   []float64
	Rate    float64
	Depths  []int
	Score   float64
	Best    string
}

// Graph declares the steps and their transitions.
func (f *Grid) Graph(g *stepwise.Graph) {
	g.Step(f.Start).Foreach("Rates", f.PerRate)
	g.Step(f.PerRate).Foreach("Depths", f.Fit)
	g.Step(f.Fit).Next(f.JoinDepths)
	g.Step(f.JoinDepths).Next(f.JoinRates)
	g.Step(f.JoinRates).Next(f.End)
	g.Step(f.End)
}

func (f *Grid) Start(context.Context) error {
	f.Rates = []float64{0.01, 0.1, 0.3}
	f.Depths = []int{2, 4, 8}
	return nil
}

func (f *Grid) PerRate(_ context.Context, rate float64) error { f.Rate = rate; return nil }

// Fit scores one (rate, depth) pair with a made-up formula.
func (f *Grid) Fit(_ context.Context, depth int) error {
	f.Score = float64(depth)*f.Rate - f.Rate*f.Rate*float64(depth*depth)/3
	f.Best = fmt.Sprintf("rate=%g depth=%d", f.Rate, depth)
	return nil
}

// JoinDepths keeps the best depth for one rate; Merge takes over Rates,
// Depths, Rate and Dataset, which all inputs share.
func (f *Grid) JoinDepths(_ context.Context, in stepwise.Inputs[*Grid]) error {
	best := in.At(0)
	for _, t := range in.All() {
		if t.Score > best.Score {
			best = t
		}
	}
	f.Score, f.Best = best.Score, best.Best
	return in.Merge(f)
}

func (f *Grid) JoinRates(_ context.Context, in stepwise.Inputs[*Grid]) error {
	best := in.At(0)
	for _, t := range in.All() {
		if t.Score > best.Score {
			best = t
		}
	}
	f.Score, f.Best = best.Score, best.Best
	return in.Merge(f, "Rate")
}

func (f *Grid) End(context.Context) error {
	fmt.Printf("best on %s: %s (score %.4f)\n", f.Dataset, f.Best, f.Score)
	return nil
}

func main() { stepwise.Main(&Grid{Dataset: "iris"}) }
