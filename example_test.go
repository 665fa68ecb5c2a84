package stepwise_test

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"

	"stepwise.dev/stepwise"
	"stepwise.dev/stepwise/client"
	"stepwise.dev/stepwise/steptest"
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

// Fit is a flow that fits a line; its end step holds A and B.
type Fit struct{ A, B float64 }

func (f *Fit) Graph(g *stepwise.Graph) {
	g.Step(f.Start).Next(f.End)
	g.Step(f.End)
}

func (f *Fit) Start(context.Context) error { f.A, f.B = 2, 1; return nil }
func (f *Fit) End(context.Context) error   { return nil }

// Predictor answers predictions from the latest successful run of Fit.
type Predictor struct{ Fit *Fit }

// Serves names the flow served and the artifacts the service reads.
func (s *Predictor) Serves(sv *stepwise.Serving) { sv.Flow(&s.Fit, "A", "B") }

// PredictRequest is the query of GET /predict?x=3, or the body of a POST.
type PredictRequest struct {
	X float64 `json:"x"`
}

// Predict is answered at /predict.
func (s *Predictor) Predict(_ context.Context, req PredictRequest) (float64, error) {
	if math.IsInf(req.X, 0) {
		return 0, fmt.Errorf("x is infinite: %w", stepwise.ErrBadRequest) // 400
	}
	return s.Fit.A*req.X + s.Fit.B, nil
}

// A service answers HTTP requests from a flow's latest successful run; its
// program's main is stepwise.Serve(&Predictor{}), which gives it the
// commands serve and show (and the flow's run). Here show, run in the
// example's process.
func ExampleServe() {
	steptest.ServeCommand(context.Background(), &Predictor{}, []string{"show"}, os.Stdout, os.Stderr)
	// Output:
	// Service Predictor: 1 endpoint, serving flow Fit (artifacts A, B)
	//
	//   PATH      METHOD   REQUEST                       RESPONSE
	//   /predict  Predict  stepwise_test.PredictRequest  float64
	//
	// Each takes GET with query parameters or POST with a JSON body; /healthz, /readyz, /metadata and /metrics are always there.
}
