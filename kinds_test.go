package stepwise_test

import (
	"context"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"stepwise.dev/stepwise"
	"stepwise.dev/stepwise/client"
)

// Point is a nested struct artifact.
type Point struct {
	X, Y  float64
	Label string
	Next  *Point
}

// Kinds uses every transition kind: linear, branch inside a foreach,
// nested foreach, joins; and artifacts of every common kind.
type Kinds struct {
	Name    string        `param:"name" help:"a string parameter"`
	Count   int64         `param:"count" help:"an integer parameter"`
	Ratio   float64       `param:"ratio" help:"a float parameter"`
	Verbose bool          `param:"verbose" help:"a boolean parameter"`
	Wait    time.Duration `param:"wait" help:"a duration parameter"`
	Labels  []string      `param:"labels" help:"a list parameter"`
	Outer   []string
	Inner   []int
	Left    int
	Right   int
	Cells   []string
	Grid    [][]string
	Big     []float64
	Bytes   []byte
	Counts  map[string]int
	ByID    map[int]string
	Origin  Point
	Ptr     *Point
	NilPtr  *Point
	When    time.Time
	Any     any
	Array   [3]uint16
	Path    string
	Indexes []int
}

func (f *Kinds) Graph(g *stepwise.Graph) {
	g.Step(f.Start).Next(f.Prepare)
	g.Step(f.Prepare).Foreach("Outer", f.PerOuter)
	g.Step(f.PerOuter).Foreach("Inner", f.PerInner)
	g.Step(f.PerInner).Next(f.Left_, f.Right_)
	g.Step(f.Left_).Next(f.Both)
	g.Step(f.Right_).Next(f.Both)
	g.Step(f.Both).Next(f.JoinInner)
	g.Step(f.JoinInner).Next(f.JoinOuter)
	g.Step(f.JoinOuter).Next(f.End)
	g.Step(f.End)
}

var when = time.Date(2026, 11, 28, 14, 30, 0, 123456789, time.UTC)

func (f *Kinds) Start(context.Context) error {
	f.Big = make([]float64, 1<<20)
	for i := range f.Big {
		f.Big[i] = float64(i) * 0.5
	}
	f.Bytes = []byte("raw bytes \x00\x01")
	f.Counts = map[string]int{"a": 1, "b": 2}
	f.ByID = map[int]string{7: "seven", 3: "three"}
	f.Origin = Point{X: 1, Y: 2, Label: "origin", Next: &Point{X: 3}}
	f.Ptr = &Point{Label: "ptr"}
	f.When = when
	f.Any = map[string]any{"k": "v"}
	f.Array = [3]uint16{1, 2, 65535}
	return nil
}
func (f *Kinds) Prepare(context.Context) error {
	f.Outer = []string{"x", "y"}
	f.Inner = []int{1, 2, 3}
	return nil
}
func (f *Kinds) PerOuter(_ context.Context, o string) error { f.Path = o; return nil }
func (f *Kinds) PerInner(ctx context.Context, i int) error {
	f.Path += "-" + string(rune('0'+i))
	f.Indexes = stepwise.CurrentTask(ctx).Indexes
	return nil
}
func (f *Kinds) Left_(context.Context) error  { f.Left = len(f.Path); return nil }
func (f *Kinds) Right_(context.Context) error { f.Right = 2 * len(f.Path); return nil }
func (f *Kinds) Both(_ context.Context, in stepwise.Inputs[*Kinds]) error {
	f.Left, f.Right = in.Step("left_").Left, in.Step("right_").Right
	if err := in.Merge(f, "Left", "Right"); err != nil {
		return err
	}
	f.Cells = []string{f.Path}
	return nil
}
func (f *Kinds) JoinInner(_ context.Context, in stepwise.Inputs[*Kinds]) error {
	for _, t := range in.All() {
		f.Cells = append(f.Cells, t.Cells...)
	}
	return in.Merge(f, "Path", "Left", "Right", "Indexes")
}
func (f *Kinds) JoinOuter(_ context.Context, in stepwise.Inputs[*Kinds]) error {
	for _, t := range in.All() {
		f.Grid = append(f.Grid, t.Cells)
	}
	return in.Merge(f, "Cells", "Path", "Indexes")
}
func (f *Kinds) End(context.Context) error { return nil }

func TestEveryTransitionKindAndValueKind(t *testing.T) {
	ctx := context.Background()
	ds, _ := testEnv(t, "ann")
	run, err := stepwise.Run(ctx, &Kinds{Name: "default", Count: 1}, &stepwise.RunOptions{Datastore: ds, Params: map[string]string{
		"name": "kinds", "count": "42", "ratio": "0.25", "verbose": "true", "wait": "1m30s", "labels": "p,q"}})
	if err != nil {
		t.Fatal(err)
	}
	end, err := run.EndTask(ctx)
	if err != nil {
		t.Fatal(err)
	}
	check := func(name string, want any) {
		t.Helper()
		got := reflect.New(reflect.TypeOf(want))
		v, err := getAny(ctx, end, name, got.Interface())
		if err != nil {
			t.Errorf("%s: %v", name, err)
			return
		}
		if !reflect.DeepEqual(v, want) {
			t.Errorf("%s = %#v, want %#v", name, v, want)
		}
	}
	check("Name", "kinds")
	check("Count", int64(42))
	check("Ratio", 0.25)
	check("Verbose", true)
	check("Wait", 90*time.Second)
	check("Labels", []string{"p", "q"})
	check("Grid", [][]string{{"x-1", "x-2", "x-3"}, {"y-1", "y-2", "y-3"}})
	check("Bytes", []byte("raw bytes \x00\x01"))
	check("Counts", map[string]int{"a": 1, "b": 2})
	check("ByID", map[int]string{7: "seven", 3: "three"})
	check("Origin", Point{X: 1, Y: 2, Label: "origin", Next: &Point{X: 3}})
	check("Ptr", &Point{Label: "ptr"})
	check("NilPtr", (*Point)(nil))
	check("Array", [3]uint16{1, 2, 65535})
	if v, err := client.Get[any](ctx, end, "Any"); err != nil || !reflect.DeepEqual(v, map[string]any{"k": "v"}) && !reflect.DeepEqual(v, map[any]any{"k": "v"}) {
		t.Errorf("Any = %#v, %v", v, err)
	}
	big, err := client.Get[[]float64](ctx, end, "Big")
	if err != nil || len(big) != 1<<20 || big[12345] != 6172.5 {
		t.Errorf("Big: len %d, %v", len(big), err)
	}
	got, err := client.Get[time.Time](ctx, end, "When")
	if err != nil || !got.Equal(when) {
		t.Errorf("When = %v, %v; want %v", got, err, when)
	}
	// A wrong type is an error, not a panic.
	if _, err := client.Get[string](ctx, end, "Count"); err == nil || !strings.Contains(err.Error(), "cannot be read as string") {
		t.Errorf("reading an int64 as string: %v", err)
	}
	// Tasks per step: 1 start, 1 prepare, 2 outer, 6 inner, 6+6 branches, 6 both, 2 inner joins, 1 outer join, 1 end.
	want := map[string]int{"start": 1, "prepare": 1, "per_outer": 2, "per_inner": 6, "left_": 6, "right_": 6, "both": 6, "join_inner": 2, "join_outer": 1, "end": 1}
	tasks, _ := run.Tasks(ctx)
	gotN := map[string]int{}
	for _, tk := range tasks {
		gotN[tk.Step]++
	}
	if !reflect.DeepEqual(gotN, want) {
		t.Errorf("tasks per step %v, want %v", gotN, want)
	}
	// The big artifact is stored once although every task carries it.
	keys := map[string]bool{}
	for _, tk := range tasks {
		if a, err := tk.Artifact("Big"); err == nil {
			keys[a.Key] = true
		}
	}
	if len(keys) != 1 {
		t.Errorf("Big has %d distinct keys across tasks, want 1", len(keys))
	}
	inner, _ := run.Step(ctx, "per_inner")
	for _, tk := range inner {
		path, _ := client.Get[string](ctx, tk, "Path")
		idx, _ := client.Get[[]int](ctx, tk, "Indexes")
		want := []int{strings.Index("xy", path[:1]), int(path[2] - '1')}
		if !reflect.DeepEqual(idx, want) {
			t.Errorf("task %s (%s) has foreach indexes %v, want %v", tk.Pathspec(), path, idx, want)
		}
	}
}

func getAny(ctx context.Context, t *client.Task, name string, ptr any) (any, error) {
	switch ptr.(type) {
	case *string:
		return client.Get[string](ctx, t, name)
	case *int64:
		return client.Get[int64](ctx, t, name)
	case *float64:
		return client.Get[float64](ctx, t, name)
	case *bool:
		return client.Get[bool](ctx, t, name)
	case *time.Duration:
		return client.Get[time.Duration](ctx, t, name)
	case *[]string:
		return client.Get[[]string](ctx, t, name)
	case *[][]string:
		return client.Get[[][]string](ctx, t, name)
	case *[]byte:
		return client.Get[[]byte](ctx, t, name)
	case *map[string]int:
		return client.Get[map[string]int](ctx, t, name)
	case *map[int]string:
		return client.Get[map[int]string](ctx, t, name)
	case *Point:
		return client.Get[Point](ctx, t, name)
	case **Point:
		return client.Get[*Point](ctx, t, name)
	case *[3]uint16:
		return client.Get[[3]uint16](ctx, t, name)
	}
	return nil, errors.New("no getter")
}

// Merging has branches that agree on Shared and disagree on Mine.
type Merging struct {
	Shared string
	Mine   string
	Set    bool
}

func (f *Merging) Graph(g *stepwise.Graph) {
	g.Step(f.Start).Next(f.A, f.B)
	g.Step(f.A).Next(f.Join)
	g.Step(f.B).Next(f.Join)
	g.Step(f.Join).Next(f.End)
	g.Step(f.End)
}
func (f *Merging) Start(context.Context) error { f.Shared = "same"; return nil }
func (f *Merging) A(context.Context) error     { f.Mine = "a"; return nil }
func (f *Merging) B(context.Context) error     { f.Mine = "b"; return nil }
func (f *Merging) Join(_ context.Context, in stepwise.Inputs[*Merging]) error {
	if os.Getenv("STEPWISE_TEST_MERGE") == "set" {
		f.Mine = "joined"
		f.Set = true
	}
	return in.Merge(f)
}
func (f *Merging) End(context.Context) error { return nil }

func TestMerge(t *testing.T) {
	ctx := context.Background()
	ds, _ := testEnv(t, "ann")
	run, err := stepwise.Run(ctx, &Merging{}, &stepwise.RunOptions{Datastore: ds})
	if err == nil {
		t.Fatal("merge of disagreeing inputs succeeded")
	}
	joins, _ := run.Step(ctx, "join")
	msg := joins[0].Attempts[0].Error
	if !strings.Contains(msg, "cannot merge artifact(s) Mine: the join's inputs (from a, b) hold different values") {
		t.Errorf("merge error = %q", msg)
	}
	t.Setenv("STEPWISE_TEST_MERGE", "set")
	run, err = stepwise.Run(ctx, &Merging{}, &stepwise.RunOptions{Datastore: ds})
	if err != nil {
		t.Fatalf("merge with the conflict set by the join: %v", err)
	}
	end, _ := run.EndTask(ctx)
	if s, _ := client.Get[string](ctx, end, "Shared"); s != "same" {
		t.Errorf("Shared = %q, want same", s)
	}
	if s, _ := client.Get[string](ctx, end, "Mine"); s != "joined" {
		t.Errorf("Mine = %q, want joined", s)
	}
}
