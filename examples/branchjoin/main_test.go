package main

import (
	"context"
	"path/filepath"
	"testing"

	"stepwise.dev/stepwise"
	"stepwise.dev/stepwise/client"
	"stepwise.dev/stepwise/steptest"
)

func TestMain(m *testing.M) { steptest.Main(m, &BranchJoin{}) }

// TestBranchJoin runs the flow through the Runner API and reads its
// artifacts through the client.
func TestBranchJoin(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	t.Setenv("STEPWISE_CONFIG", filepath.Join(dir, "config.json"))
	run, err := stepwise.Run(ctx, &BranchJoin{}, &stepwise.RunOptions{Datastore: filepath.Join(dir, "ds")})
	if err != nil {
		t.Fatal(err)
	}
	end, err := run.EndTask(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out, err := client.Get[int](ctx, end, "Out")
	if err != nil || out != 3 {
		t.Fatalf("Out = %d, %v; want 3", out, err)
	}
	for step, want := range map[string]int{"a": 2, "b": 3} {
		tasks, err := run.Step(ctx, step)
		if err != nil {
			t.Fatal(err)
		}
		if x, _ := client.Get[int](ctx, tasks[0], "X"); x != want {
			t.Errorf("%s: X = %d, want %d", step, x, want)
		}
	}
}
