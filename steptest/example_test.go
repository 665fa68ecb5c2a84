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
