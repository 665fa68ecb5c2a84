package stepwise_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"stepwise.dev/stepwise"
	"stepwise.dev/stepwise/client"
)

// Driven has a branch, a foreach and joins of both, and a step that can be
// made to hang, for a run driven by a scheduler with no launcher.
type Driven struct {
	Hang  bool `param:"hang"`
	Left  int
	Right int
	Items []int
	Sq    int
	Sum   int
}

func (f *Driven) Graph(g *stepwise.Graph) {
	g.Step(f.Start).Next(f.Left_, f.Right_)
	g.Step(f.Left_).Next(f.Meet)
	g.Step(f.Right_).Next(f.Meet)
	g.Step(f.Meet).Foreach("Items", f.Square)
	g.Step(f.Square).Next(f.Gather)
	g.Step(f.Gather).Next(f.End)
	g.Step(f.End)
}

func (f *Driven) Start(context.Context) error {
	if f.Hang {
		fmt.Println("hanging")
		time.Sleep(time.Minute)
	}
	return nil
}
func (f *Driven) Left_(context.Context) error  { f.Left = 1; return nil }
func (f *Driven) Right_(context.Context) error { f.Right = 2; return nil }
func (f *Driven) Meet(_ context.Context, in stepwise.Inputs[*Driven]) error {
	for i := 1; i <= in.Step("left_").Left+in.Step("right_").Right+2; i++ {
		f.Items = append(f.Items, i)
	}
	return nil
}
func (f *Driven) Square(_ context.Context, item int) error {
	fmt.Println("square of", item)
	f.Sq = item * item
	return nil
}
func (f *Driven) Gather(_ context.Context, in stepwise.Inputs[*Driven]) error {
	for _, t := range in.All() {
		f.Sum += t.Sq
	}
	return in.Merge(f, "Sq")
}
func (f *Driven) End(context.Context) error { return nil }

// drive runs one command of the flow binary, as a scheduler's pod would:
// this test binary, which serves the flow's commands (steptest.Main).
func drive(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{args[0], "--flow", "Driven"}, args[1:]...)...)
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("%v: %v\n%s%s", args, err, out, stderr)
	}
	return string(out)
}

// TestRunDrivenWithoutALauncher drives a whole run (branch, foreach, joins)
// with the flow binary's create-run, task and finish-run commands only, in
// an order a scheduler would use, with no launcher process: the run
// succeeds, and is found and read as any other run.
func TestRunDrivenWithoutALauncher(t *testing.T) {
	testEnv(t, "ann")
	ctx := context.Background()
	id := strings.TrimSpace(drive(t, "create-run", "--tag", "driven"))
	task := func(step, task string, extra ...string) {
		drive(t, append([]string{"task", "--run-id", id, "--step", step, "--task-id", task, "--attempt", "0"}, extra...)...)
	}
	parallel := func(step string, tasks []string) {
		var wg sync.WaitGroup
		for _, tk := range tasks {
			wg.Go(func() { task(step, tk) })
		}
		wg.Wait()
	}
	task("start", "0")
	parallel("left_", []string{"0"})
	parallel("right_", []string{"0"})
	splits := filepath.Join(t.TempDir(), "splits.json")
	task("meet", "0", "--splits-out", splits)
	var idx []int
	data, _ := os.ReadFile(splits)
	if err := json.Unmarshal(data, &idx); err != nil || len(idx) != 5 {
		t.Fatalf("splits written by the foreach: %q, %v; want 5 indexes", data, err)
	}
	var tasks []string
	for _, i := range idx {
		tasks = append(tasks, fmt.Sprint(i))
	}
	parallel("square", tasks)
	task("gather", "0")
	task("end", "0")
	if out := drive(t, "finish-run", "--run-id", id); !strings.Contains(out, "succeeded") {
		t.Errorf("finish-run said %q", out)
	}

	c, err := client.Open(ctx, client.Options{Namespace: new(client.Global)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	run, err := c.Flow("Driven").Run(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if run.Status != client.Succeeded || run.Lost || !strings.Contains(strings.Join(run.Tags, " "), "runtime:scheduler") {
		t.Errorf("run %+v; want succeeded, not lost, tagged runtime:scheduler", run)
	}
	end, err := run.EndTask(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if sum, err := client.Get[int](ctx, end, "Sum"); err != nil || sum != 1+4+9+16+25 {
		t.Errorf("sum %d, %v; want 55", sum, err)
	}
	all, _ := run.Tasks(ctx)
	if len(all) != 1+2+1+5+1+1 {
		t.Errorf("%d tasks recorded, want 11", len(all))
	}
	sq, _ := run.Task(ctx, "square", "3")
	if logs, _ := sq.Logs(ctx, 0, "stdout"); !strings.Contains(string(logs), "square of 4") {
		t.Errorf("the task did not keep its own output: %q", logs)
	}
}

// TestDrivenTaskKilledShowsAsLost: a task whose process dies without a
// word (its machine vanished) shows as lost once its heartbeats stop.
func TestDrivenTaskKilledShowsAsLost(t *testing.T) {
	testEnv(t, "ann")
	ctx := context.Background()
	id := strings.TrimSpace(drive(t, "create-run", "--hang"))
	cmd := exec.Command(os.Args[0], "task", "--flow", "Driven", "--run-id", id, "--step", "start", "--task-id", "0", "--attempt", "0", "--heartbeat", "100ms")
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, _ := stdout.Read(buf) // "hanging": the step runs
	if !strings.Contains(string(buf[:n]), "hanging") {
		t.Fatalf("task printed %q", buf[:n])
	}
	c, err := client.Open(ctx, client.Options{Namespace: new(client.Global), LostAfter: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	time.Sleep(500 * time.Millisecond)
	run, err := c.Flow("Driven").Run(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	tk, err := run.Task(ctx, "start", "0")
	if err != nil {
		t.Fatal(err)
	}
	if tk.Status != client.Running || tk.Lost || tk.Attempts[0].Heartbeat.IsZero() {
		t.Errorf("hanging task %+v: want running with heartbeats, not lost", tk)
	}
	cmd.Process.Kill()
	cmd.Wait()
	time.Sleep(1500 * time.Millisecond)
	tk, _ = run.Task(ctx, "start", "0")
	if !tk.Lost || tk.Status != client.Running {
		t.Errorf("killed task %+v: want still running in the record, and lost", tk)
	}
	if out := drive(t, "finish-run", "--run-id", id); !strings.Contains(out, "failed") {
		t.Errorf("finish-run after the lost task said %q", out)
	}
}
