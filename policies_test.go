package stepwise_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"stepwise.dev/stepwise"
	"stepwise.dev/stepwise/client"
)

// Policies has a step for each failure policy.
type Policies struct {
	Mode      string `param:"mode" help:"retry, timeout, catch, panic or wide"`
	Attempts  int
	Caught    string
	Items     []int
	AfterCalm bool
}

func (f *Policies) Graph(g *stepwise.Graph) {
	g.Step(f.Start).Next(f.Flaky)
	g.Step(f.Flaky).Retry(2).Next(f.Slow)
	g.Step(f.Slow).Timeout(4 * time.Second).Next(f.Risky)
	g.Step(f.Risky).Catch("Caught").Next(f.Fan)
	g.Step(f.Fan).Foreach("Items", f.Each)
	g.Step(f.Each).Next(f.Gather)
	g.Step(f.Gather).Next(f.End)
	g.Step(f.End)
}

func (f *Policies) Start(context.Context) error { return nil }

// Flaky fails on its first two attempts in retry mode.
func (f *Policies) Flaky(ctx context.Context) error {
	f.Attempts = stepwise.CurrentTask(ctx).Attempt + 1
	if f.Mode == "retry" && f.Attempts < 3 {
		return fmt.Errorf("flaky source, attempt %d", f.Attempts)
	}
	return nil
}

// Slow sleeps past its timeout in timeout mode.
func (f *Policies) Slow(ctx context.Context) error {
	if f.Mode == "timeout" {
		time.Sleep(time.Minute)
	}
	return nil
}

func (f *Policies) Risky(context.Context) error {
	switch f.Mode {
	case "catch":
		return errors.New("the model diverged")
	case "panic":
		var m map[string]int
		m["boom"]++ // a nil map write panics
	}
	return nil
}

func (f *Policies) Fan(context.Context) error {
	n := 3
	if f.Mode == "wide" {
		n = 11
	}
	f.Items = make([]int, n)
	return nil
}
func (f *Policies) Each(context.Context) error { return nil }
func (f *Policies) Gather(_ context.Context, in stepwise.Inputs[*Policies]) error {
	return in.Merge(f)
}
func (f *Policies) End(context.Context) error { f.AfterCalm = true; return nil }

func runPolicies(t *testing.T, mode string) (*client.Run, error) {
	t.Helper()
	ds, _ := testEnv(t, "ann")
	return stepwise.Run(context.Background(), &Policies{}, &stepwise.RunOptions{Datastore: ds, MaxNumSplits: 10, Params: map[string]string{"mode": mode},
		RetryDelay: 20 * time.Millisecond, HeartbeatInterval: 200 * time.Millisecond})
}

func TestRetrySucceedsOnThirdAttempt(t *testing.T) {
	run, err := runPolicies(t, "retry")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tasks, _ := run.Step(ctx, "flaky")
	tk := tasks[0]
	if len(tk.Attempts) != 3 || tk.Attempts[0].Status != "failed" || tk.Attempts[1].Status != "failed" || tk.Attempts[2].Status != "succeeded" {
		t.Fatalf("attempts %+v, want failed, failed, succeeded", tk.Attempts)
	}
	if !strings.Contains(tk.Attempts[1].Error, "flaky source, attempt 2") {
		t.Errorf("attempt 1 error %q", tk.Attempts[1].Error)
	}
	if n, _ := client.Get[int](ctx, tk, "Attempts"); n != 3 {
		t.Errorf("the task's artifacts come from attempt %d, want the successful third", n)
	}
}

// TestTimeoutKillsSleepingStep also checks that the runtime records its
// heartbeat while a task runs long.
func TestTimeoutKillsSleepingStep(t *testing.T) {
	start := time.Now()
	run, err := runPolicies(t, "timeout")
	if err == nil || !strings.Contains(err.Error(), "timed out after 4s") {
		t.Fatalf("run error %v, want a timeout", err)
	}
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("run took %s: the sleeping step was not killed", took)
	}
	tasks, _ := run.Step(context.Background(), "slow")
	if tasks[0].Status != "failed" || !strings.Contains(tasks[0].Attempts[0].Error, "timed out") {
		t.Errorf("slow task %+v", tasks[0])
	}
	if run.Status != "failed" {
		t.Errorf("run status %s, want failed", run.Status)
	}
	if beat := run.Heartbeat.Sub(run.Started); beat < 3*time.Second || run.Lost {
		t.Errorf("run of %s: last heartbeat %s after its start (lost: %v); want one during the 4s of the slow step", run.Ended.Sub(run.Started), beat, run.Lost)
	}
}

func TestCatchStoresTheErrorAndGoesOn(t *testing.T) {
	run, err := runPolicies(t, "catch")
	if err != nil {
		t.Fatalf("caught failure still failed the run: %v", err)
	}
	ctx := context.Background()
	end, _ := run.EndTask(ctx)
	caught, _ := client.Get[string](ctx, end, "Caught")
	if !strings.Contains(caught, "the model diverged") {
		t.Errorf("Caught = %q", caught)
	}
	if ok, _ := client.Get[bool](ctx, end, "AfterCalm"); !ok || run.Status != "succeeded" {
		t.Errorf("the flow did not end successfully: %s", run.Status)
	}
	risky, _ := run.Step(ctx, "risky")
	if a := risky[0].Attempts; len(a) != 2 || a[0].Status != "failed" || a[1].Status != "succeeded" {
		t.Errorf("risky attempts %+v, want the failure then the caught record", a)
	}
}

func TestPanicBecomesAFailedTaskWithItsStack(t *testing.T) {
	// Risky catches its failures, so the run goes on; the panic is the
	// failed first attempt, with the stack in its log.
	run, err := runPolicies(t, "panic")
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	ctx := context.Background()
	risky, _ := run.Step(ctx, "risky")
	tk := risky[0]
	if a := tk.Attempts; len(a) != 2 || a[0].Status != "failed" || !strings.Contains(a[0].Error, "assignment to entry in nil map") {
		t.Errorf("task %s attempts %+v, want the panic as failed attempt 0", tk.Pathspec(), tk.Attempts)
	}
	log, _ := tk.Logs(ctx, 0, "stderr")
	if !strings.Contains(string(log), "step risky panicked") || !strings.Contains(string(log), "policies_test.go") {
		t.Errorf("the stack trace is not in the task's log:\n%s", log)
	}
	end, _ := run.EndTask(ctx)
	if caught, _ := client.Get[string](ctx, end, "Caught"); !strings.Contains(caught, "panicked") {
		t.Errorf("Caught = %q", caught)
	}
}

func TestForeachWidthCap(t *testing.T) {
	run, err := runPolicies(t, "wide")
	if err == nil {
		t.Fatal("a foreach past the cap ran")
	}
	fan, _ := run.Step(context.Background(), "fan")
	if msg := fan[0].Attempts[0].Error; !strings.Contains(msg, "foreach over Items has 11 elements, more than the limit of 10 tasks; raise it with --max-num-splits") {
		t.Errorf("fan error %q", msg)
	}
}
