package stepwise_test

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"

	"stepwise.dev/stepwise"
	"stepwise.dev/stepwise/client"
	"stepwise.dev/stepwise/steptest"
)

// Base holds steps that flows share by embedding it.
type Base struct {
	Seen []string
}

func (b *Base) Start(context.Context) error { b.Seen = append(b.Seen, "start"); return nil }
func (b *Base) End(context.Context) error   { b.Seen = append(b.Seen, "end"); return nil }

// Child takes its start and end steps from Base, and has a list
// parameter whose default holds a comma.
type Child struct {
	Base
	Names []string `param:"names"`
	Got   []string
}

func (f *Child) Graph(g *stepwise.Graph) {
	g.Step(f.Start).Next(f.Middle) // promoted from Base
	g.Step(f.Middle).Next(f.End)
	g.Step(f.End)
}
func (f *Child) Middle(context.Context) error {
	f.Got = f.Names
	f.Seen = append(f.Seen, "middle")
	return nil
}

// TestPromotedStepsAndListParameters: steps promoted from an embedded
// struct are steps; a []string parameter keeps elements that hold commas
// through the run record, from its default and from the command line.
func TestPromotedStepsAndListParameters(t *testing.T) {
	ds, _ := testEnv(t, "ann")
	ctx := context.Background()
	var out, errOut bytes.Buffer
	if code := steptest.Command(ctx, &Child{}, []string{"check"}, &out, &errOut); code != 0 {
		t.Fatalf("check of a flow with promoted steps: exit %d\n%s", code, errOut.String())
	}
	for _, tc := range []struct {
		params map[string]string
		want   []string
	}{
		{nil, []string{"a,b", "c"}},
		{map[string]string{"names": `["x,y","z"]`}, []string{"x,y", "z"}},
		{map[string]string{"names": "p,q"}, []string{"p", "q"}},
	} {
		run, err := stepwise.Run(ctx, &Child{Names: []string{"a,b", "c"}}, &stepwise.RunOptions{Datastore: ds, Params: tc.params})
		if err != nil {
			t.Fatal(err)
		}
		end, _ := run.EndTask(ctx)
		got, _ := client.Get[[]string](ctx, end, "Got")
		seen, _ := client.Get[Base](ctx, end, "Base")
		if !slices.Equal(got, tc.want) || !slices.Equal(seen.Seen, []string{"start", "middle", "end"}) {
			t.Errorf("params %v: Got %q, Seen %q; want %q and every step", tc.params, got, seen.Seen, tc.want)
		}
	}
}

// TestWidthsAndWorkersMustBePositive: --max-num-splits and --max-workers
// of 0 or less are refused, not taken as a default.
func TestWidthsAndWorkersMustBePositive(t *testing.T) {
	testEnv(t, "ann")
	ctx := context.Background()
	for _, args := range [][]string{{"run", "--max-num-splits", "0"}, {"run", "--max-num-splits", "-1"}, {"run", "--max-workers", "0"}, {"resume", "--max-num-splits", "-5"}} {
		var out, errOut bytes.Buffer
		code := steptest.Command(ctx, &Child{}, args, &out, &errOut)
		if code != 2 || !strings.Contains(errOut.String(), "must be at least 1") {
			t.Errorf("%v: exit %d, %q; want a usage error", args, code, errOut.String())
		}
	}
	for _, o := range []stepwise.RunOptions{{MaxNumSplits: -1}, {MaxWorkers: -2}, {Tags: []string{"user:bob"}}} {
		if _, err := stepwise.Run(ctx, &Child{}, &o); err == nil || !strings.Contains(err.Error(), "bad RunOptions") {
			t.Errorf("Run with %+v: %v, want it refused", o, err)
		}
	}
}
