// Command hosting trains a linear regression with a flow, and serves its
// predictions over HTTP from the latest run that succeeded. One binary
// does both:
//
//	go run ./examples/hosting run --slope 2 --intercept 1   # train
//	go run ./examples/hosting serve &                       # serve
//	curl 'localhost:8080/predict?x=10'                      # {"y":21.0...}
//	go run ./examples/hosting run --slope 5 --intercept 0   # re-train: within 10s it answers 50
package main

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"

	"stepwise.dev/stepwise"
	_ "stepwise.dev/stepwise/backend/s3"      // s3:// datastores, for a team set-up
	_ "stepwise.dev/stepwise/backend/service" // a team's metadata service
	_ "stepwise.dev/stepwise/backend/sqlite"  // runs recorded in .stepwise/, no set-up
)

// Fit fits y = A*x + B by least squares to data generated from a known
// line with noise.
type Fit struct {
	Rows      int     `param:"rows" help:"number of points to generate"`
	Slope     float64 `param:"slope" help:"slope of the line the data comes from"`
	Intercept float64 `param:"intercept" help:"intercept of the line the data comes from"`
	Noise     float64 `param:"noise" help:"standard deviation of the noise added to y"`
	Seed      uint64  `param:"seed" help:"seed of the noise"`
	X, Y      []float64
	A, B      float64 // the fitted line
	R2        float64 // the share of the variance of y the line explains
}

// Graph declares the steps.
func (f *Fit) Graph(g *stepwise.Graph) {
	g.Step(f.Start).Next(f.Train)
	g.Step(f.Train).Next(f.End)
	g.Step(f.End)
}

// Start generates the data.
func (f *Fit) Start(context.Context) error {
	if f.Rows < 2 {
		return fmt.Errorf("--rows is %d; a line needs at least 2 points", f.Rows)
	}
	r := rand.New(rand.NewPCG(f.Seed, 1))
	for i := range f.Rows {
		x := 10 * float64(i) / float64(f.Rows)
		f.X = append(f.X, x)
		f.Y = append(f.Y, f.Slope*x+f.Intercept+f.Noise*r.NormFloat64())
	}
	return nil
}

// Train fits the line in closed form.
func (f *Fit) Train(context.Context) error {
	n := float64(len(f.X))
	var sx, sy, sxx, sxy float64
	for i := range f.X {
		sx, sy = sx+f.X[i], sy+f.Y[i]
		sxx, sxy = sxx+f.X[i]*f.X[i], sxy+f.X[i]*f.Y[i]
	}
	f.A = (n*sxy - sx*sy) / (n*sxx - sx*sx)
	f.B = (sy - f.A*sx) / n
	var res, tot float64
	for i := range f.X {
		d := f.Y[i] - (f.A*f.X[i] + f.B)
		res += d * d
		tot += (f.Y[i] - sy/n) * (f.Y[i] - sy/n)
	}
	f.R2 = 1
	if tot > 0 {
		f.R2 = 1 - res/tot
	}
	return nil
}

// End prints the line.
func (f *Fit) End(context.Context) error {
	fmt.Printf("y = %.3f*x + %.3f (r2 %.4f, %d points)\n", f.A, f.B, f.R2, len(f.X))
	return nil
}

// Predictor answers predictions from the latest trained line.
type Predictor struct {
	Fit *Fit
}

// Serves declares the flow served, and the artifacts it needs: not the
// data, only the line.
func (s *Predictor) Serves(sv *stepwise.Serving) { sv.Flow(&s.Fit, "A", "B", "R2") }

// PredictRequest is one x, or many.
type PredictRequest struct {
	X  *float64  `json:"x"`
	Xs []float64 `json:"xs"`
}

// PredictResponse is the prediction for each x asked.
type PredictResponse struct {
	Y  *float64  `json:"y,omitempty"`
	Ys []float64 `json:"ys,omitempty"`
}

// Predict answers GET /predict?x=10, GET /predict?xs=1&xs=2, or a POST of
// {"xs": [1, 2]}.
func (s *Predictor) Predict(_ context.Context, req PredictRequest) (PredictResponse, error) {
	if req.X == nil && len(req.Xs) == 0 {
		return PredictResponse{}, fmt.Errorf("give x (/predict?x=10) or xs (/predict?xs=1&xs=2): %w", stepwise.ErrBadRequest)
	}
	if len(req.Xs) > 10000 {
		return PredictResponse{}, fmt.Errorf("%d values of xs; ask for at most 10000 at once: %w", len(req.Xs), stepwise.ErrBadRequest)
	}
	var out PredictResponse
	if req.X != nil {
		y := s.Fit.A**req.X + s.Fit.B
		out.Y = &y
	}
	for _, x := range req.Xs {
		out.Ys = append(out.Ys, s.Fit.A*x+s.Fit.B)
	}
	return out, nil
}

// Line is the model served.
type Line struct {
	A  float64 `json:"a"`
	B  float64 `json:"b"`
	R2 float64 `json:"r2"`
}

// Model answers GET /model: the line and how well it fits.
func (s *Predictor) Model(context.Context) (Line, error) {
	return Line{A: round(s.Fit.A), B: round(s.Fit.B), R2: round(s.Fit.R2)}, nil
}

func round(v float64) float64 { return math.Round(v*1e6) / 1e6 }

func main() {
	stepwise.Serve(&Predictor{Fit: &Fit{Rows: 200, Slope: 2, Intercept: 1, Noise: 0.1, Seed: 1}})
}
