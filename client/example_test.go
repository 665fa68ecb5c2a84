package client_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"stepwise.dev/stepwise"
	"stepwise.dev/stepwise/client"
	"stepwise.dev/stepwise/steptest"

	_ "stepwise.dev/stepwise/backend/sqlite" // the examples keep runs in a local directory
)

// Hello is the flow the examples read.
type Hello struct {
	Greeting string
}

func (f *Hello) Graph(g *stepwise.Graph) {
	g.Step(f.Start).Next(f.End)
	g.Step(f.End)
}

func (f *Hello) Start(context.Context) error { f.Greeting = "hello"; return nil }
func (f *Hello) End(context.Context) error   { return nil }

// TestMain lets this test binary run Hello's tasks.
func TestMain(m *testing.M) { steptest.Main(m, &Hello{}) }

// datastore runs Hello twice, as ann and as bob, in a new datastore, and
// returns it with a function that removes it.
func datastore() (string, func()) {
	dir, _ := os.MkdirTemp("", "client-example")
	os.Setenv("STEPWISE_CONFIG", filepath.Join(dir, "config.json"))
	ds := filepath.Join(dir, "ds")
	for _, user := range []string{"ann", "bob"} {
		os.Setenv("STEPWISE_USER", user)
		if _, err := stepwise.Run(context.Background(), &Hello{}, &stepwise.RunOptions{Datastore: ds, Tags: []string{"demo"}}); err != nil {
			panic(err)
		}
	}
	os.Setenv("STEPWISE_USER", "ann")
	return ds, func() { os.RemoveAll(dir) }
}

// Read the latest run of a flow, in your namespace and in everyone's.
func ExampleFlow_LatestRun() {
	ds, cleanup := datastore()
	defer cleanup()
	ctx := context.Background()

	c, err := client.Open(ctx, client.Options{Datastore: ds}) // namespace user:ann
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	run, _ := c.Flow("Hello").LatestRun(ctx)
	fmt.Println(run.User, run.Status, run.Tags)

	c.SetNamespace(client.Global)
	run, _ = c.Flow("Hello").LatestRun(ctx)
	fmt.Println(run.User, run.Status, run.Tags)
	// Output:
	// ann succeeded [demo user:ann]
	// bob succeeded [demo user:bob]
}

// Read an artifact with its type.
func ExampleGet() {
	ds, cleanup := datastore()
	defer cleanup()
	ctx := context.Background()

	c, _ := client.Open(ctx, client.Options{Datastore: ds})
	defer c.Close()
	run, _ := c.Flow("Hello").LatestSuccessfulRun(ctx)
	end, _ := run.EndTask(ctx)
	greeting, err := client.Get[string](ctx, end, "Greeting")
	fmt.Println(greeting, err)
	_, err = client.Get[int](ctx, end, "Greeting")
	fmt.Println("read as int:", err != nil) // an error that names both types
	// Output:
	// hello <nil>
	// read as int: true
}

// List runs across flows, filtered by tag.
func ExampleClient_Runs() {
	ds, cleanup := datastore()
	defer cleanup()
	ctx := context.Background()

	c, _ := client.Open(ctx, client.Options{Datastore: ds})
	defer c.Close()
	c.SetNamespace(client.Global)
	runs, _ := c.Runs(ctx, client.Filter{Tags: []string{"demo"}})
	for _, r := range runs {
		fmt.Println(r.Flow, r.User)
	}
	// Output:
	// Hello bob
	// Hello ann
}

// A pathspec names a flow, a run, a step or a task.
func ExampleParsePathspec() {
	ps, err := client.ParsePathspec("BranchJoin/1764340315123456/start/1")
	fmt.Println(ps.Flow, ps.Run, ps.Step, ps.Task, err)
	_, err = client.ParsePathspec("BranchJoin/latest")
	fmt.Println(err)
	// Output:
	// BranchJoin 1764340315123456 start 1 <nil>
	// pathspec "BranchJoin/latest": run id "latest" has the character 'l' at position 1: a run id is a decimal number without leading zeros, at most 19 digits (the microseconds since 1970 when the run started, such as 1764340315123456); copy the id from 'stepwise runs'; write Flow/RunID/step/TaskID, e.g. BranchJoin/1764340315123456/start/0
}
