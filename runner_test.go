package stepwise_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"stepwise.dev/stepwise"
	"stepwise.dev/stepwise/client"
	"stepwise.dev/stepwise/steptest"

	_ "stepwise.dev/stepwise/backend/arrow"
	_ "stepwise.dev/stepwise/backend/s3"
	_ "stepwise.dev/stepwise/backend/service"
	_ "stepwise.dev/stepwise/backend/sqlite"
)

func TestMain(m *testing.M) {
	steptest.Main(m, &Steady{}, &Driven{}, &Placed{}, &Child{}, &Flaky{}, &FlakyForeach{}, &Rendezvous{}, &Killed{}, &Kinds{}, &Merging{}, &Policies{}, &Filler{}, &Squares{}, &Report{}, &Greedy{}, &Huge{}, &Unstorable{}, &Tabular{}, &Bulky{}, &Scores{})
}

// mark appends a line to the file named by env var STEPWISE_TEST_MARKS, so
// a test can count how often a step really ran.
func mark(what string) {
	if p := os.Getenv("STEPWISE_TEST_MARKS"); p != "" {
		f, err := os.OpenFile(p, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err == nil {
			fmt.Fprintln(f, what)
			f.Close()
		}
	}
}

func marks(t *testing.T, path, what string) int {
	t.Helper()
	data, _ := os.ReadFile(path)
	n := 0
	for _, l := range strings.Split(string(data), "\n") {
		if l == what {
			n++
		}
	}
	return n
}

// Flaky fails in step b while STEPWISE_TEST_FAIL names b.
type Flaky struct {
	Seed int `param:"seed" help:"starting value"`
	X    int
	Out  int
}

func (f *Flaky) Graph(g *stepwise.Graph) {
	g.Step(f.Start).Next(f.A, f.B)
	g.Step(f.A).Next(f.Join)
	g.Step(f.B).Next(f.Join)
	g.Step(f.Join).Next(f.End)
	g.Step(f.End)
}
func (f *Flaky) Start(context.Context) error { mark("start"); f.X = f.Seed; return nil }
func (f *Flaky) A(context.Context) error     { mark("a"); f.X += 2; return nil }
func (f *Flaky) B(context.Context) error {
	mark("b")
	if os.Getenv("STEPWISE_TEST_FAIL") == "b" {
		return errors.New("b is broken (STEPWISE_TEST_FAIL=b)")
	}
	f.X += 3
	return nil
}
func (f *Flaky) Join(_ context.Context, in stepwise.Inputs[*Flaky]) error {
	f.Out = max(in.Step("a").X, in.Step("b").X)
	return nil
}
func (f *Flaky) End(context.Context) error { mark("end"); return nil }

// testEnv gives a test its own datastore, user and marks file.
func testEnv(t *testing.T, user string) (datastore, marksFile string) {
	dir := t.TempDir()
	t.Setenv("STEPWISE_USER", user)
	t.Setenv("STEPWISE_CONFIG", filepath.Join(dir, "config.json"))
	t.Setenv("STEPWISE_DATASTORE", "")
	t.Setenv("STEPWISE_METADATA", "")
	marksFile = filepath.Join(dir, "marks")
	t.Setenv("STEPWISE_TEST_MARKS", marksFile)
	if os.Getenv("STEPWISE_TEST_TEAM") != "" {
		ds := teamEnv(t)
		t.Setenv("STEPWISE_DATASTORE", ds) // for flow programs started by the tests
		return ds, marksFile
	}
	return filepath.Join(dir, "ds"), marksFile
}

func TestResumeFromFailedBranch(t *testing.T) {
	ctx := context.Background()
	ds, marksFile := testEnv(t, "ann")
	t.Setenv("STEPWISE_TEST_FAIL", "b")
	var out strings.Builder
	first, err := stepwise.Run(ctx, &Flaky{}, &stepwise.RunOptions{Datastore: ds, Params: map[string]string{"seed": "10"}, Output: &out})
	if err == nil {
		t.Fatal("first run succeeded; step b should have failed")
	}
	for _, w := range []string{"/b/0 failed", "Last output of the task:", "b is broken (STEPWISE_TEST_FAIL=b)", "resume --origin-run-id " + first.ID} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("the failed run's output lacks %q:\n%s", w, out.String())
		}
	}
	if len(first.Code.BinarySHA256) != 64 {
		t.Errorf("run records binary hash %q", first.Code.BinarySHA256)
	}
	// The commit of the code: this test binary is not stamped, so the
	// launcher asks git when it first runs it (and caches the answer).
	if err := exec.Command("git", "cat-file", "-e", first.Code.GitCommit+"^{commit}").Run(); first.Code.GitCommit == "" || err != nil {
		t.Errorf("run records git commit %q, which is not a commit of this checkout (%v)", first.Code.GitCommit, err)
	}
	if first == nil || first.Status != "failed" {
		t.Fatalf("first run = %+v, want a failed run", first)
	}
	t.Setenv("STEPWISE_TEST_FAIL", "")
	for _, step := range []string{"b", ""} { // named step, then "first failed step" of the same origin
		t.Run("resume "+step, func(t *testing.T) {
			before := marks(t, marksFile, "start")
			run, err := stepwise.Resume(ctx, &Flaky{}, &stepwise.ResumeOptions{
				RunOptions: stepwise.RunOptions{Datastore: ds}, Step: step, OriginRunID: first.ID})
			if err != nil {
				t.Fatalf("resume: %v", err)
			}
			if got := marks(t, marksFile, "start"); got != before {
				t.Errorf("start ran again during resume (%d times before, %d after)", before, got)
			}
			if run.Origin != first.ID || run.Params["seed"] != "10" {
				t.Errorf("resumed run origin %q params %v, want origin %s and seed 10", run.Origin, run.Params, first.ID)
			}
			starts, err := run.Step(ctx, "start")
			if err != nil {
				t.Fatal(err)
			}
			origStart, _ := first.Step(ctx, "start")
			if starts[0].ClonedFrom != origStart[0].Pathspec() {
				t.Errorf("start cloned from %q, want %q", starts[0].ClonedFrom, origStart[0].Pathspec())
			}
			if len(starts[0].Attempts) != 0 {
				t.Errorf("cloned start has %d attempts, want none", len(starts[0].Attempts))
			}
			for i, a := range starts[0].Artifacts {
				if o := origStart[0].Artifacts[i]; a != o {
					t.Errorf("cloned artifact %+v differs from origin %+v", a, o)
				}
			}
			end, err := run.EndTask(ctx)
			if err != nil {
				t.Fatal(err)
			}
			out, err := client.Get[int](ctx, end, "Out")
			if err != nil || out != 13 {
				t.Errorf("Out = %d, %v; want 13", out, err)
			}
		})
	}
}

// FlakyForeach fails for element 2 while STEPWISE_TEST_FAIL is "square".
type FlakyForeach struct {
	Items  []int
	Square int
	Sum    int
}

func (f *FlakyForeach) Graph(g *stepwise.Graph) {
	g.Step(f.Start).Foreach("Items", f.Compute)
	g.Step(f.Compute).Next(f.Join)
	g.Step(f.Join).Next(f.End)
	g.Step(f.End)
}
func (f *FlakyForeach) Start(context.Context) error {
	mark("start")
	f.Items = []int{1, 2, 3, 4}
	return nil
}
func (f *FlakyForeach) Compute(_ context.Context, item int) error {
	mark("square")
	if item == 2 && os.Getenv("STEPWISE_TEST_FAIL") == "square" {
		return errors.New("cannot square 2 today")
	}
	f.Square = item * item
	return nil
}
func (f *FlakyForeach) Join(_ context.Context, in stepwise.Inputs[*FlakyForeach]) error {
	for _, t := range in.All() {
		f.Sum += t.Square
	}
	return nil
}
func (f *FlakyForeach) End(context.Context) error { return nil }

func TestResumeInsideForeach(t *testing.T) {
	ctx := context.Background()
	ds, marksFile := testEnv(t, "ann")
	t.Setenv("STEPWISE_TEST_FAIL", "square")
	if _, err := stepwise.Run(ctx, &FlakyForeach{}, &stepwise.RunOptions{Datastore: ds, MaxWorkers: 1}); err == nil {
		t.Fatal("first run succeeded; element 2 should have failed")
	}
	t.Setenv("STEPWISE_TEST_FAIL", "")
	run, err := stepwise.Resume(ctx, &FlakyForeach{}, &stepwise.ResumeOptions{RunOptions: stepwise.RunOptions{Datastore: ds}})
	if err != nil {
		t.Fatalf("resume: %v", err)
	}
	if n := marks(t, marksFile, "start"); n != 1 {
		t.Errorf("start ran %d times, want 1", n)
	}
	end, _ := run.EndTask(ctx)
	if sum, err := client.Get[int](ctx, end, "Sum"); err != nil || sum != 30 {
		t.Errorf("Sum = %d, %v; want 30", sum, err)
	}
	// Resume again from the join: the foreach tasks are cloned.
	before := marks(t, marksFile, "square")
	run2, err := stepwise.Resume(ctx, &FlakyForeach{}, &stepwise.ResumeOptions{RunOptions: stepwise.RunOptions{Datastore: ds}, Step: "join", OriginRunID: run.ID})
	if err != nil {
		t.Fatalf("resume join: %v", err)
	}
	if n := marks(t, marksFile, "square"); n != before {
		t.Errorf("square ran %d more times on resume of join, want 0", n-before)
	}
	squares, _ := run2.Step(ctx, "compute")
	if len(squares) != 4 || squares[0].ClonedFrom == "" {
		t.Errorf("resume of join: %d square tasks, first cloned from %q; want 4 cloned", len(squares), squares[0].ClonedFrom)
	}
}

func TestResumeErrors(t *testing.T) {
	ctx := context.Background()
	ds, _ := testEnv(t, "ann")
	_, err := stepwise.Resume(ctx, &Flaky{}, &stepwise.ResumeOptions{RunOptions: stepwise.RunOptions{Datastore: ds}})
	if err == nil || !strings.Contains(err.Error(), "has no run in namespace user:ann") {
		t.Errorf("resume with no runs: %v", err)
	}
	first, err := stepwise.Run(ctx, &Flaky{}, &stepwise.RunOptions{Datastore: ds})
	if err != nil {
		t.Fatal(err)
	}
	_, err = stepwise.Resume(ctx, &Flaky{}, &stepwise.ResumeOptions{RunOptions: stepwise.RunOptions{Datastore: ds}, Step: "nope"})
	if err == nil || !strings.Contains(err.Error(), `flow Flaky has no step "nope"; its steps are start, a, b, join, end`) {
		t.Errorf("resume unknown step: %v", err)
	}
	_, err = stepwise.Resume(ctx, &FlakyForeach{}, &stepwise.ResumeOptions{RunOptions: stepwise.RunOptions{Datastore: ds}, OriginRunID: first.ID})
	if err == nil || !strings.Contains(err.Error(), "is a run of flow Flaky, not of FlakyForeach") {
		t.Errorf("resume run of another flow: %v", err)
	}
	_, err = stepwise.Resume(ctx, &Flaky{}, &stepwise.ResumeOptions{RunOptions: stepwise.RunOptions{Datastore: ds}})
	if err == nil || !strings.Contains(err.Error(), "succeeded in full") {
		t.Errorf("resume of a successful run without a step: %v", err)
	}
}

func TestNamespacesAndTags(t *testing.T) {
	ctx := context.Background()
	ds, _ := testEnv(t, "ann")
	var ids = map[string][]string{}
	for _, u := range []string{"ann", "bob", "ann"} {
		t.Setenv("STEPWISE_USER", u)
		run, err := stepwise.Run(ctx, &Flaky{}, &stepwise.RunOptions{Datastore: ds, Tags: []string{"exp-" + u}})
		if err != nil {
			t.Fatal(err)
		}
		ids[u] = append(ids[u], run.ID)
	}
	t.Setenv("STEPWISE_USER", "ann")
	c, err := client.Open(ctx, client.Options{Datastore: ds})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Namespace() != "user:ann" {
		t.Fatalf("default namespace %q, want user:ann", c.Namespace())
	}
	runs, err := c.Flow("Flaky").Runs(ctx, client.Filter{})
	if err != nil || len(runs) != 2 {
		t.Fatalf("ann sees %d runs (%v), want 2", len(runs), err)
	}
	latest, err := c.Flow("Flaky").LatestRun(ctx)
	if err != nil || latest.ID != ids["ann"][1] {
		t.Errorf("LatestRun = %v, %v; want %s", latest, err, ids["ann"][1])
	}
	// bob's run is refused until the namespace is switched.
	_, err = c.Task(ctx, "Flaky/"+ids["bob"][0]+"/end")
	var nsErr *client.NamespaceError
	if !errors.As(err, &nsErr) || !strings.Contains(err.Error(), `SetNamespace("user:bob")`) {
		t.Errorf("reading bob's run from ann's namespace: %v", err)
	}
	c.SetNamespace("user:bob")
	if latest, err = c.Flow("Flaky").LatestRun(ctx); err != nil || latest.ID != ids["bob"][0] {
		t.Errorf("bob's LatestRun = %v, %v", latest, err)
	}
	c.SetNamespace(client.Global)
	if runs, _ = c.Flow("Flaky").Runs(ctx, client.Filter{}); len(runs) != 3 {
		t.Errorf("global namespace sees %d runs, want 3", len(runs))
	}
	if runs, _ = c.Flow("Flaky").Runs(ctx, client.Filter{Tags: []string{"exp-bob"}}); len(runs) != 1 || runs[0].ID != ids["bob"][0] {
		t.Errorf("tag filter exp-bob: %d runs", len(runs))
	}
	// Tags after the fact; system tags stay.
	r := runs[0]
	if err := r.AddTags(ctx, "golden"); err != nil {
		t.Fatal(err)
	}
	if runs, _ = c.Flow("Flaky").Runs(ctx, client.Filter{Tags: []string{"golden", "user:bob"}}); len(runs) != 1 {
		t.Errorf("after tag add, filter golden+user:bob gives %d runs", len(runs))
	}
	if err := r.RemoveTags(ctx, "user:bob"); err == nil || !strings.Contains(err.Error(), "system tag") {
		t.Errorf("removing a system tag: %v", err)
	}
	if err := r.RemoveTags(ctx, "golden"); err != nil {
		t.Fatal(err)
	}
	if runs, _ = c.Flow("Flaky").Runs(ctx, client.Filter{Tags: []string{"golden"}}); len(runs) != 0 {
		t.Errorf("after tag remove, %d runs still tagged golden", len(runs))
	}
}

// Rendezvous proves that a and b run at the same time, as separate
// processes: each waits until the other has started.
type Rendezvous struct {
	Dir  string
	PidA int
	PidB int
}

func (f *Rendezvous) Graph(g *stepwise.Graph) {
	g.Step(f.Start).Next(f.A, f.B)
	g.Step(f.A).Next(f.Join)
	g.Step(f.B).Next(f.Join)
	g.Step(f.Join).Next(f.End)
	g.Step(f.End)
}
func (f *Rendezvous) Start(context.Context) error { f.Dir = os.Getenv("STEPWISE_TEST_DIR"); return nil }
func (f *Rendezvous) meet(me, other string) error {
	os.WriteFile(filepath.Join(f.Dir, me), nil, 0o644)
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if _, err := os.Stat(filepath.Join(f.Dir, other)); err == nil {
			return nil
		}
	}
	return fmt.Errorf("%s never saw %s start: they did not run at the same time", me, other)
}
func (f *Rendezvous) A(context.Context) error { f.PidA = os.Getpid(); return f.meet("a", "b") }
func (f *Rendezvous) B(context.Context) error { f.PidB = os.Getpid(); return f.meet("b", "a") }
func (f *Rendezvous) Join(_ context.Context, in stepwise.Inputs[*Rendezvous]) error {
	f.PidA, f.PidB = in.Step("a").PidA, in.Step("b").PidB
	return nil
}
func (f *Rendezvous) End(context.Context) error { return nil }

func TestBranchesRunInParallelProcesses(t *testing.T) {
	ctx := context.Background()
	ds, _ := testEnv(t, "ann")
	t.Setenv("STEPWISE_TEST_DIR", t.TempDir())
	run, err := stepwise.Run(ctx, &Rendezvous{}, &stepwise.RunOptions{Datastore: ds})
	if err != nil {
		t.Fatal(err)
	}
	end, _ := run.EndTask(ctx)
	a, _ := client.Get[int](ctx, end, "PidA")
	b, _ := client.Get[int](ctx, end, "PidB")
	if a == 0 || b == 0 || a == b || a == os.Getpid() || b == os.Getpid() {
		t.Errorf("pids a=%d b=%d test=%d: want two distinct task processes", a, b, os.Getpid())
	}
}

// Killed prints a line, then waits to be killed.
type Killed struct{}

func (f *Killed) Graph(g *stepwise.Graph) {
	g.Step(f.Start).Next(f.End)
	g.Step(f.End)
}
func (f *Killed) Start(ctx context.Context) error {
	fmt.Println("hello before the kill")
	fmt.Fprintln(os.Stderr, "a warning before the kill")
	os.WriteFile(os.Getenv("STEPWISE_TEST_PIDFILE"), []byte(fmt.Sprint(os.Getpid())), 0o644)
	time.Sleep(time.Minute)
	return nil
}
func (f *Killed) End(context.Context) error { return nil }

func TestKilledTaskKeepsItsLogs(t *testing.T) {
	ctx := context.Background()
	ds, _ := testEnv(t, "ann")
	pidfile := filepath.Join(t.TempDir(), "pid")
	t.Setenv("STEPWISE_TEST_PIDFILE", pidfile)
	go func() {
		for i := 0; i < 2000; i++ {
			if data, err := os.ReadFile(pidfile); err == nil && len(data) > 0 {
				var pid int
				fmt.Sscan(string(data), &pid)
				syscall.Kill(pid, syscall.SIGKILL)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	run, err := stepwise.Run(ctx, &Killed{}, &stepwise.RunOptions{Datastore: ds})
	if err == nil || !strings.Contains(err.Error(), "killed by signal 9") {
		t.Fatalf("run: %v, want the task killed", err)
	}
	tasks, _ := run.Step(ctx, "start")
	if tasks[0].Status != "failed" || len(tasks[0].Attempts) != 1 || !strings.Contains(tasks[0].Attempts[0].Error, "killed") {
		t.Errorf("killed task: status %s attempts %+v", tasks[0].Status, tasks[0].Attempts)
	}
	out, err := tasks[0].Logs(ctx, 0, "stdout")
	if err != nil || !strings.Contains(string(out), "hello before the kill") {
		t.Errorf("stdout of killed task = %q, %v", out, err)
	}
	errOut, _ := tasks[0].Logs(ctx, 0, "stderr")
	if !strings.Contains(string(errOut), "a warning before the kill") {
		t.Errorf("stderr of killed task = %q", errOut)
	}
}
