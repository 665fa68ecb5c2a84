// Command linear is a linear pipeline with typed parameters: load, clean,
// train and report, one step after another.
//
//	go run ./examples/linear run --rows 500 --epochs 3 --lr 0.05
package main

import (
	"context"
	"fmt"
	"math"
	"time"

	"stepwise.dev/stepwise"
	_ "stepwise.dev/stepwise/backend/sqlite" // runs recorded in .stepwise/, no set-up
)

// Train fits y = a*x + b by gradient descent on generated data.
type Train struct {
	Rows    int           `param:"rows" help:"number of rows to generate"`
	Epochs  int           `param:"epochs" help:"passes over the data"`
	LR      float64       `param:"lr" help:"learning rate"`
	Budget  time.Duration `param:"budget" help:"time budget for training"`
	X, Y    []float64
	A, B    float64
	Loss    float64
	Trained time.Time
}

// Graph declares the steps and their transitions.
func (f *Train) Graph(g *stepwise.Graph) {
	g.Step(f.Start).Next(f.Clean)
	g.Step(f.Clean).Next(f.Fit)
	g.Step(f.Fit).Resources(stepwise.Resources{CPU: 1, MemoryMB: 256}).Next(f.End)
	g.Step(f.End)
}

func (f *Train) Start(context.Context) error {
	for i := range f.Rows {
		x := float64(i) / float64(f.Rows)
		f.X = append(f.X, x)
		f.Y = append(f.Y, 3*x+1+0.01*math.Sin(float64(i)))
	}
	return nil
}

// Clean drops rows whose y is not a number.
func (f *Train) Clean(context.Context) error {
	x, y := f.X[:0], f.Y[:0]
	for i := range f.X {
		if !math.IsNaN(f.Y[i]) {
			x, y = append(x, f.X[i]), append(y, f.Y[i])
		}
	}
	f.X, f.Y = x, y
	return nil
}

// Fit trains, and keeps a progress card of the loss after each epoch
// (stepwise card get Train/latest/fit/0); Refresh saves it at most every
// few seconds while the loop goes on.
func (f *Train) Fit(ctx context.Context) error {
	deadline := time.Now().Add(f.Budget)
	var losses []float64
	for e := 0; e < f.Epochs && time.Now().Before(deadline); e++ {
		for i := range f.X {
			d := f.A*f.X[i] + f.B - f.Y[i]
			f.A -= f.LR * d * f.X[i]
			f.B -= f.LR * d
		}
		losses = append(losses, f.mse())
		stepwise.CardOf(ctx).Reset().
			Markdown(fmt.Sprintf("# Training\nEpoch %d of %d, mean squared error %.5f", e+1, f.Epochs, losses[e])).
			Chart("loss", stepwise.Chart{Series: []stepwise.Series{{Name: "mse", Values: losses}}}).
			Refresh(ctx)
	}
	f.Loss = f.mse()
	f.Trained = time.Now()
	return ctx.Err()
}

// mse is the mean squared error of the line on the data.
func (f *Train) mse() float64 {
	var loss float64
	for i := range f.X {
		d := f.A*f.X[i] + f.B - f.Y[i]
		loss += d * d / float64(len(f.X))
	}
	return loss
}

func (f *Train) End(context.Context) error {
	fmt.Printf("y = %.3f*x + %.3f (mse %.5f, %d rows)\n", f.A, f.B, f.Loss, len(f.X))
	return nil
}

func main() { stepwise.Main(&Train{Rows: 1000, Epochs: 20, LR: 0.1, Budget: time.Minute}) }
