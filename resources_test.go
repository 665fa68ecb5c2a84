package stepwise_test

import (
	"bytes"
	"context"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"stepwise.dev/stepwise"
	"stepwise.dev/stepwise/client"
	"stepwise.dev/stepwise/steptest"
)

// Greedy has a foreach whose tasks each want every core of the machine.
type Greedy struct {
	Items []int
	From  time.Time
	To    time.Time
}

func (f *Greedy) Graph(g *stepwise.Graph) {
	g.Step(f.Start).Foreach("Items", f.Work)
	g.Step(f.Work).Resources(stepwise.Resources{CPU: float64(runtime.NumCPU())}).Next(f.Join)
	g.Step(f.Join).Next(f.End)
	g.Step(f.End)
}
func (f *Greedy) Start(context.Context) error { f.Items = []int{1, 2, 3}; return nil }
func (f *Greedy) Work(context.Context, int) error {
	f.From = time.Now()
	time.Sleep(150 * time.Millisecond)
	f.To = time.Now()
	return nil
}
func (f *Greedy) Join(context.Context, stepwise.Inputs[*Greedy]) error { return nil }
func (f *Greedy) End(context.Context) error                            { return nil }

func TestDeclaredCPUIsNeverOversubscribed(t *testing.T) {
	ds, _ := testEnv(t, "ann")
	ctx := context.Background()
	run, err := stepwise.Run(ctx, &Greedy{}, &stepwise.RunOptions{Datastore: ds, MaxWorkers: 8})
	if err != nil {
		t.Fatal(err)
	}
	work, _ := run.Step(ctx, "work")
	type span struct{ from, to time.Time }
	var spans []span
	for _, tk := range work {
		from, _ := client.Get[time.Time](ctx, tk, "From")
		to, _ := client.Get[time.Time](ctx, tk, "To")
		spans = append(spans, span{from, to})
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].from.Before(spans[j].from) })
	for i := 1; i < len(spans); i++ {
		if spans[i].from.Before(spans[i-1].to) {
			t.Errorf("two tasks that each need all %d cores ran at once: %v and %v", runtime.NumCPU(), spans[i-1], spans[i])
		}
	}
}

// Huge needs more than any test machine has.
type Huge struct{}

func (f *Huge) Graph(g *stepwise.Graph) {
	g.Step(f.Start).Resources(stepwise.Resources{CPU: 4096, MemoryMB: 1 << 40}).Next(f.End)
	g.Step(f.End)
}
func (f *Huge) Start(context.Context) error { return nil }
func (f *Huge) End(context.Context) error   { return nil }

func TestStepBiggerThanTheMachineIsRefusedBeforeTheRun(t *testing.T) {
	ds, _ := testEnv(t, "ann")
	_, err := stepwise.Run(context.Background(), &Huge{}, &stepwise.RunOptions{Datastore: ds})
	if err == nil || !strings.Contains(err.Error(), "step start needs cpu=4096 but this machine has") || !strings.Contains(err.Error(), "memory=") {
		t.Errorf("run of a too-big step: %v", err)
	}
	var out, errOut bytes.Buffer
	if code := steptest.Command(context.Background(), &Huge{}, []string{"check"}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "cpu=4096") {
		t.Errorf("check: exit %d, %s", code, errOut.String())
	}
}
