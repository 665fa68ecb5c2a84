package stepwise_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"stepwise.dev/stepwise"
	"stepwise.dev/stepwise/internal/compute"
	"stepwise.dev/stepwise/internal/compute/local"
	"stepwise.dev/stepwise/internal/graph"
)

// fakeBackend is a second compute backend: it runs tasks through the
// local one, and records what it was asked to start and stop.
type fakeBackend struct {
	inner    compute.Backend
	mu       sync.Mutex
	started  []string
	settings []string
	stops    []time.Duration
}

var fake = func() *fakeBackend {
	inner, err := local.New(local.Options{})
	if err != nil {
		panic(err)
	}
	f := &fakeBackend{inner: inner}
	compute.Register("fake", func(context.Context, compute.Env) (compute.Backend, error) { return f, nil })
	return f
}()

func (f *fakeBackend) Name() string              { return "fake" }
func (f *fakeBackend) Capacity() graph.Resources { return graph.Resources{CPU: 1} }
func (f *fakeBackend) Check(s *graph.Step) error {
	if s.Resources.GPU > 0 {
		return errors.New("step " + s.Name + " asks for a GPU, and the fake backend has none")
	}
	return nil
}
func (f *fakeBackend) Start(ctx context.Context, s compute.Spec) (compute.Handle, error) {
	f.mu.Lock()
	f.started = append(f.started, s.Step+"/"+s.Task)
	f.settings = append(f.settings, string(s.Settings))
	f.mu.Unlock()
	h, err := f.inner.Start(ctx, s)
	if err != nil {
		return nil, err
	}
	return &fakeHandle{Handle: h, f: f}, nil
}

func (f *fakeBackend) reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.started, f.settings, f.stops = nil, nil, nil
}

type fakeHandle struct {
	compute.Handle
	f *fakeBackend
}

func (h *fakeHandle) Stop(grace time.Duration) {
	h.f.mu.Lock()
	h.f.stops = append(h.f.stops, grace)
	h.f.mu.Unlock()
	h.Handle.Stop(grace)
}

// Placed runs its middle step on the fake backend, or waits there for
// its context to end.
type Placed struct {
	Wait bool `param:"wait"`
	Out  string
}

func (f *Placed) Graph(g *stepwise.Graph) {
	g.Step(f.Start).Next(f.Middle)
	g.Step(f.Middle).Compute(stepwise.FakeCompute{}).Next(f.End)
	g.Step(f.End)
}
func (f *Placed) Start(context.Context) error { return nil }
func (f *Placed) Middle(ctx context.Context) error {
	f.Out = "middle ran"
	if f.Wait {
		mark("waiting")
		<-ctx.Done()
		return ctx.Err()
	}
	return nil
}
func (f *Placed) End(context.Context) error { return nil }

// TestSecondComputeBackend proves the compute seam with a second backend:
// a step placed on it in the graph starts there, with its settings, while
// the others stay local; and a run stopped from outside stops its tasks
// on it with a grace period.
func TestSecondComputeBackend(t *testing.T) {
	ds, marksFile := testEnv(t, "ann")
	ctx := context.Background()
	fake.reset()
	run, err := stepwise.Run(ctx, &Placed{}, &stepwise.RunOptions{Datastore: ds})
	if err != nil {
		t.Fatal(err)
	}
	fake.mu.Lock()
	started, settings := slices.Clone(fake.started), slices.Clone(fake.settings)
	fake.mu.Unlock()
	if !slices.Equal(started, []string{"middle/0"}) || len(settings) != 1 || !strings.Contains(settings[0], `"zone":"test"`) {
		t.Errorf("the fake backend started %v with settings %v; want only middle/0, with its settings", started, settings)
	}
	if run.Status != "succeeded" {
		t.Errorf("run %s", run.Status)
	}

	// --compute local runs everything locally, whatever the graph says.
	fake.reset()
	if _, err := stepwise.Run(ctx, &Placed{}, &stepwise.RunOptions{Datastore: ds, Compute: "local"}); err != nil {
		t.Fatal(err)
	}
	if len(fake.started) != 0 {
		t.Errorf("with Compute local the fake backend still started %v", fake.started)
	}

	// Stopping the run stops the task on the fake backend, with grace.
	fake.reset()
	rctx, cancel := context.WithCancel(ctx)
	go func() {
		waitFor(t, 30*time.Second, "the middle step to wait", func() bool { return marks(t, marksFile, "waiting") > 0 })
		cancel()
	}()
	began := time.Now()
	_, err = stepwise.Run(rctx, &Placed{}, &stepwise.RunOptions{Datastore: ds, Params: map[string]string{"wait": "true"}})
	if !errors.Is(err, stepwise.ErrInterrupted) {
		t.Fatalf("stopped run: %v, want ErrInterrupted", err)
	}
	fake.mu.Lock()
	stops := slices.Clone(fake.stops)
	fake.mu.Unlock()
	if len(stops) != 1 || stops[0] <= 0 {
		t.Errorf("the fake backend was asked to stop %v, want once with a grace period", stops)
	}
	if took := time.Since(began); took > 20*time.Second {
		t.Errorf("stopping took %s", took)
	}

	// A step the backend cannot run is refused before the run.
	_, err = stepwise.Run(ctx, &Placed{}, &stepwise.RunOptions{Datastore: ds, Compute: "nowhere"})
	if err == nil || !strings.Contains(err.Error(), `unknown backend "nowhere"`) || !strings.Contains(err.Error(), "the backends of this program are fake, ") || !strings.Contains(err.Error(), "local") {
		t.Errorf("unknown backend: %v", err)
	}
}
