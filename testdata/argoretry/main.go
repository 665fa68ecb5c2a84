// Command argoretry is a flow for the production tests: a step that fails
// on its first attempt and is retried, one that always fails and is
// caught, a parameter, and an end step that a later build fixes, to
// resume a failed production run with the fixed code. The tests deploy it to the test cluster through
// its generated Argo template.
package main

import (
	"context"
	"errors"
	"fmt"

	"stepwise.dev/stepwise"
	_ "stepwise.dev/stepwise/backend/kubernetes"
	_ "stepwise.dev/stepwise/backend/s3"
	_ "stepwise.dev/stepwise/backend/service"
)

// ArgoRetry records what its steps saw.
type ArgoRetry struct {
	Greeting string `param:"greeting" help:"what end prints"`
	Tries    int
	Caught   string
}

func (f *ArgoRetry) Graph(g *stepwise.Graph) {
	small := stepwise.Resources{CPU: 0.25, MemoryMB: 128}
	g.Schedule("30 2 * * 1-5", "Europe/Amsterdam")
	g.Step(f.Start).Next(f.Flaky, f.Broken)
	g.Step(f.Flaky).Resources(small).Retry(1).Next(f.Join)
	g.Step(f.Broken).Resources(small).Catch("Caught").Next(f.Join)
	g.Step(f.Join).Next(f.End)
	g.Step(f.End)
}

func (f *ArgoRetry) Start(context.Context) error { return nil }

// Flaky fails on its first attempt.
func (f *ArgoRetry) Flaky(ctx context.Context) error {
	t := stepwise.CurrentTask(ctx)
	f.Tries = t.Attempt + 1
	if t.Attempt == 0 {
		fmt.Println("first attempt: failing on purpose")
		return errors.New("the first attempt fails on purpose")
	}
	fmt.Println("second attempt: fine")
	return nil
}

// Broken always fails; its failure is caught.
func (f *ArgoRetry) Broken(context.Context) error { return errors.New("broken on purpose") }

func (f *ArgoRetry) Join(_ context.Context, in stepwise.Inputs[*ArgoRetry]) error {
	f.Tries = in.Step("flaky").Tries
	f.Caught = in.Step("broken").Caught
	return nil
}

// fixed is set when the binary is built with the fix of End:
// go build -ldflags '-X main.fixed=yes'.
var fixed string

func (f *ArgoRetry) End(context.Context) error {
	if f.Greeting == "break" && fixed != "yes" {
		return errors.New("end breaks on the greeting break (until it is fixed)")
	}
	fmt.Printf("%s: tries=%d caught=%q\n", f.Greeting, f.Tries, f.Caught)
	return nil
}

func main() { stepwise.Main(&ArgoRetry{Greeting: "hello"}) }
