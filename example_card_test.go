package stepwise_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"stepwise.dev/stepwise"
)

// Report trains for three epochs and reports on a card.
type Report struct {
	Loss []float64
}

func (f *Report) Graph(g *stepwise.Graph) {
	g.Step(f.Start).Next(f.End)
	g.Step(f.End)
}

func (f *Report) Start(ctx context.Context) error {
	card := stepwise.CardOf(ctx).Markdown("# Training")
	for epoch := range 3 {
		f.Loss = append(f.Loss, 1/float64(epoch+1))
		// A progress card: saved now, then at most every few seconds.
		stepwise.NamedCard(ctx, "progress").Reset().
			Markdown(fmt.Sprintf("epoch %d", epoch)).
			Chart("loss", stepwise.Chart{Series: []stepwise.Series{{Name: "loss", Values: f.Loss}}}).
			Refresh(ctx)
	}
	card.Table([]struct{ Epoch, Loss any }{{0, f.Loss[0]}, {2, f.Loss[2]}}).Artifact("Loss")
	return nil
}

func (f *Report) End(context.Context) error { return nil }

// A step builds cards while it runs; `stepwise card get` writes one as an
// HTML file, and the UI shows them with the task.
func ExampleCardOf() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	os.Setenv("STEPWISE_CONFIG", filepath.Join(dir, "config.json"))

	run, err := stepwise.Run(ctx, &Report{}, &stepwise.RunOptions{Datastore: filepath.Join(dir, "ds")})
	if err != nil {
		fmt.Println(err)
		return
	}
	start, _ := run.Task(ctx, "start", "0")
	cards, _ := start.Cards(ctx)
	for _, c := range cards {
		fmt.Println(c.Name)
	}
	// Every save of a card is kept (the final one and the last 20 others):
	// the progress card as it was first saved, during the step.
	data, err := start.CardVersionJSON(ctx, -1, "progress", 1)
	if err != nil {
		fmt.Println(err)
		return
	}
	var first struct {
		Version int
		Final   bool
		Parts   []struct{ Text string }
	}
	json.Unmarshal(data, &first)
	fmt.Println(first.Version, first.Final, first.Parts[0].Text)
	// Output:
	// default
	// main
	// progress
	// 1 false epoch 0
}
