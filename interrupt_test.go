package stepwise_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"stepwise.dev/stepwise/client"
)

var (
	sleepyOnce sync.Once
	sleepyBin  string
	sleepyErr  error
)

// sleepy builds testdata/sleepy once per test binary.
func sleepy(t *testing.T) string {
	t.Helper()
	sleepyOnce.Do(func() {
		dir, err := os.MkdirTemp("", "stepwise-sleepy-")
		if err != nil {
			sleepyErr = err
			return
		}
		sleepyBin = filepath.Join(dir, "sleepy")
		out, err := exec.Command("go", "build", "-o", sleepyBin, "./testdata/sleepy").CombinedOutput()
		if err != nil {
			sleepyErr = err
			t.Logf("%s", out)
		}
	})
	if sleepyErr != nil {
		t.Fatalf("building testdata/sleepy: %v", sleepyErr)
	}
	return sleepyBin
}

// startSleepy starts a run in dir and returns the command and its output.
func startSleepy(t *testing.T, dir string, args ...string) (*exec.Cmd, *syncBuffer) {
	t.Helper()
	cmd := exec.Command(sleepy(t), args...)
	cmd.Dir = dir
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, out
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor polls until cond holds or fails the test after limit.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// workStore is where a flow program run in work keeps its data: the
// configured datastore (team mode) or work/.stepwise.
func workStore(work string) string {
	if ds := os.Getenv("STEPWISE_DATASTORE"); ds != "" {
		return ds
	}
	return filepath.Join(work, ".stepwise")
}

func startedFiles(dir string) []string {
	m, _ := filepath.Glob(filepath.Join(dir, "started-*"))
	return m
}

func TestInterruptStopsTasksAndSaysHowToResume(t *testing.T) {
	testEnv(t, "ann")
	work, marks := t.TempDir(), t.TempDir()
	cmd, out := startSleepy(t, work, "run", "--n", "2", "--nap", "1m", "--dir", marks)
	waitFor(t, 30*time.Second, "both naps to start", func() bool { return len(startedFiles(marks)) == 2 })
	cmd.Process.Signal(syscall.SIGINT)
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("run after SIGINT: %v, want exit 1\n%s", err, out)
	}
	for _, w := range []string{"interrupted; running tasks were stopped", "resume --origin-run-id"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
	// The task processes are gone.
	for _, f := range startedFiles(marks) {
		pid := 0
		if m := regexp.MustCompile(`-(\d+)$`).FindStringSubmatch(f); m != nil {
			for _, c := range m[1] {
				pid = pid*10 + int(c-'0')
			}
		}
		if syscall.Kill(pid, 0) == nil {
			t.Errorf("task process %d still runs after the interrupt", pid)
		}
	}
	c, err := client.Open(context.Background(), client.Options{Datastore: workStore(work)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	run, err := c.Flow("Sleepy").LatestRun(context.Background())
	if err != nil || run.Status != "failed" {
		t.Errorf("interrupted run: %+v, %v; want status failed", run, err)
	}
}

func TestKill9ThenResumeCompletes(t *testing.T) {
	testEnv(t, "ann")
	work, marks := t.TempDir(), t.TempDir()
	// One worker: items run one after another, 300ms each.
	cmd, out := startSleepy(t, work, "run", "--n", "6", "--nap", "300ms", "--dir", marks, "--max-workers", "1", "--heartbeat", "100ms")
	waitFor(t, 30*time.Second, "three items to start", func() bool { return len(startedFiles(marks)) >= 3 })
	cmd.Process.Kill()
	cmd.Wait()
	ctx := context.Background()
	c, err := client.Open(ctx, client.Options{Datastore: workStore(work)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	origin, err := c.Flow("Sleepy").LatestRun(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The killed run stays marked running, and its heartbeat stops, so
	// that readers soon see it as lost.
	if origin.Status != "running" || origin.Heartbeat.Sub(origin.Started) < 300*time.Millisecond {
		t.Errorf("killed run: status %s, heartbeat %s after its start; want running, with heartbeats while it ran", origin.Status, origin.Heartbeat.Sub(origin.Started))
	}
	time.Sleep(300 * time.Millisecond)
	if again, err := c.Flow("Sleepy").Run(ctx, origin.ID); err != nil || !again.Heartbeat.Equal(origin.Heartbeat) {
		t.Errorf("the heartbeat of the killed run moved on from %v: %+v, %v", origin.Heartbeat, again, err)
	}
	done := map[string]string{} // pathspec suffix -> artifact key of Value
	tasks, _ := origin.Tasks(ctx)
	for _, tk := range tasks {
		if tk.Status == "succeeded" && tk.Step == "nap_" {
			a, _ := tk.Artifact("Value")
			done[tk.Pathspec()] = a.Key
		}
	}
	if len(done) == 0 || len(done) == 6 {
		t.Fatalf("%d items finished before the kill; the test wants some but not all\n%s", len(done), out)
	}
	res := exec.Command(sleepy(t), "resume")
	res.Dir = work
	rout, err := res.CombinedOutput()
	if err != nil {
		t.Fatalf("resume: %v\n%s", err, rout)
	}
	if !strings.Contains(string(rout), "sum 210") {
		t.Errorf("resumed run does not print sum 210:\n%s", rout)
	}
	if !strings.Contains(string(rout), "is marked running, and its runtime was alive") {
		t.Errorf("resume of a run whose runtime was alive moments ago does not say so:\n%s", rout)
	}
	run, err := c.Flow("Sleepy").LatestRun(ctx)
	if err != nil {
		t.Fatal(err)
	}
	naps, _ := run.Step(ctx, "nap_")
	cloned := 0
	for _, tk := range naps {
		if tk.ClonedFrom == "" {
			continue
		}
		cloned++
		a, _ := tk.Artifact("Value")
		if done[tk.ClonedFrom] != a.Key {
			t.Errorf("%s cloned from %s with key %s, want the origin's %s", tk.Pathspec(), tk.ClonedFrom, a.Key, done[tk.ClonedFrom])
		}
		if _, err := client.Get[int](ctx, tk, "Value"); err != nil {
			t.Errorf("artifact of cloned %s unreadable: %v", tk.Pathspec(), err)
		}
	}
	if cloned != len(done) {
		t.Errorf("%d nap tasks cloned, want the %d that finished before the kill", cloned, len(done))
	}
	starts, _ := run.Step(ctx, "start")
	if starts[0].ClonedFrom == "" {
		t.Errorf("start was not cloned from the killed run")
	}
}

func TestTwoRunsAtOnceInOneDirectory(t *testing.T) {
	testEnv(t, "ann")
	work := t.TempDir()
	a, outA := startSleepy(t, work, "run", "--n", "8", "--nap", "50ms")
	b, outB := startSleepy(t, work, "run", "--n", "8", "--nap", "50ms")
	if err := a.Wait(); err != nil {
		t.Fatalf("first run: %v\n%s", err, outA)
	}
	if err := b.Wait(); err != nil {
		t.Fatalf("second run: %v\n%s", err, outB)
	}
	idA := regexp.MustCompile(`run (\d+)`).FindStringSubmatch(outA.String())[1]
	idB := regexp.MustCompile(`run (\d+)`).FindStringSubmatch(outB.String())[1]
	if idA == idB {
		t.Fatalf("both runs got id %s", idA)
	}
	for _, o := range []string{outA.String(), outB.String()} {
		if !strings.Contains(o, "sum 360") {
			t.Errorf("a run did not print sum 360:\n%s", o)
		}
	}
}
