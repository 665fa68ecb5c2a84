package stepwise_test

import (
	"context"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"stepwise.dev/stepwise"
	"stepwise.dev/stepwise/client"
)

// Filler stores a small artifact, then a large one.
type Filler struct {
	Small string
	Large []byte
}

func (f *Filler) Graph(g *stepwise.Graph) {
	g.Step(f.Start).Next(f.Fill)
	g.Step(f.Fill).Next(f.End)
	g.Step(f.End)
}
func (f *Filler) Start(context.Context) error { f.Small = "written before"; return nil }
func (f *Filler) Fill(context.Context) error {
	f.Large = make([]byte, 8<<20)
	rand.Read(f.Large) // incompressible
	return nil
}
func (f *Filler) End(context.Context) error { return nil }

func TestFullDiskFailsClearlyAndKeepsEarlierData(t *testing.T) {
	ctx := context.Background()
	testEnv(t, "ann")
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Fatalf("this test needs a small tmpfs (run as root): mount: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", mnt).Run() })
	ds := filepath.Join(mnt, "ds")
	run, err := stepwise.Run(ctx, &Filler{}, &stepwise.RunOptions{Datastore: ds})
	if err == nil {
		t.Fatal("storing 8 MiB on a 4 MiB disk succeeded")
	}
	// The run ends failed, not left running.
	if run.Status != client.Failed {
		t.Errorf("run status %s after the disk filled, want failed", run.Status)
	}
	fill, _ := run.Step(ctx, "fill")
	msg := fill[0].Attempts[0].Error
	for _, w := range []string{"artifact Large", "no space left on device", "free space on that disk, or choose another directory"} {
		if !strings.Contains(msg, w) {
			t.Errorf("error lacks %q: %s", w, msg)
		}
	}
	start, _ := run.Step(ctx, "start")
	if v, err := client.Get[string](ctx, start[0], "Small"); err != nil || v != "written before" {
		t.Errorf("data written before the disk filled: %q, %v", v, err)
	}
	leftovers, _ := filepath.Glob(filepath.Join(ds, "blobs", "*", ".tmp-*"))
	if len(leftovers) > 0 {
		t.Errorf("half-written files left behind: %v", leftovers)
	}
}

func TestUnwritableDatastore(t *testing.T) {
	testEnv(t, "ann")
	file := filepath.Join(t.TempDir(), "a-file")
	os.WriteFile(file, []byte("x"), 0o644)
	_, err := stepwise.Run(context.Background(), &Filler{}, &stepwise.RunOptions{Datastore: filepath.Join(file, "ds")})
	if err == nil || !strings.Contains(err.Error(), file) || !strings.Contains(err.Error(), "choose another directory") {
		t.Errorf("datastore under a file: %v", err)
	}
}

func TestBadParameters(t *testing.T) {
	ds, _ := testEnv(t, "ann")
	ctx := context.Background()
	tests := []struct {
		params map[string]string
		want   string
	}{
		{map[string]string{"nope": "1"}, `flow Kinds has no parameter "nope" (it has --name, --count, --ratio, --verbose, --wait, --labels)`},
		{map[string]string{"count": "many"}, `parameter count: "many" is not an integer that fits int64`},
		{map[string]string{"ratio": "1/2"}, `parameter ratio: "1/2" is not a number`},
		{map[string]string{"verbose": "maybe"}, `parameter verbose: "maybe" is not a boolean (use true or false)`},
		{map[string]string{"wait": "5 minutes"}, `parameter wait: "5 minutes" is not a duration (use e.g. 90s, 5m, 1h30m)`},
	}
	for _, tt := range tests {
		_, err := stepwise.Run(ctx, &Kinds{}, &stepwise.RunOptions{Datastore: ds, Params: tt.params})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("params %v: %v, want %q", tt.params, err, tt.want)
		}
	}
}

func TestCorruptedBlobIsDetected(t *testing.T) {
	ctx := context.Background()
	ds, _ := testEnv(t, "ann")
	run, err := stepwise.Run(ctx, &Flaky{}, &stepwise.RunOptions{Datastore: ds, Params: map[string]string{"seed": "7"}})
	if err != nil {
		t.Fatal(err)
	}
	end, _ := run.EndTask(ctx)
	a, _ := end.Artifact("Out")
	blob := filepath.Join(ds, "blobs", a.Key[:2], a.Key)
	data, err := os.ReadFile(blob)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)-1] ^= 0xff
	os.WriteFile(blob, data, 0o644)
	_, err = client.Get[int](ctx, end, "Out")
	if err == nil || !strings.Contains(err.Error(), a.Key) || !strings.Contains(err.Error(), "corrupt") {
		t.Errorf("reading a corrupted blob: %v", err)
	}
	// Other artifacts are still readable.
	if seed, err := client.Get[int](ctx, end, "Seed"); err != nil || seed != 7 {
		t.Errorf("Seed = %d, %v", seed, err)
	}
	// Out (10) is stored once with b's X (also 10): a resume of the join
	// reads it and fails, naming the damaged blob.
	var out strings.Builder
	_, err = stepwise.Resume(ctx, &Flaky{}, &stepwise.ResumeOptions{RunOptions: stepwise.RunOptions{Datastore: ds, Output: &out}, Step: "join", OriginRunID: run.ID})
	if err == nil || !strings.Contains(out.String(), a.Key) || !strings.Contains(out.String(), "corrupt") {
		t.Errorf("resume over a corrupted blob: %v\n%s", err, out.String())
	}
}

func TestCorruptedTaskRecordIsDetected(t *testing.T) {
	ctx := context.Background()
	ds, _ := testEnv(t, "ann")
	run, err := stepwise.Run(ctx, &Flaky{}, &stepwise.RunOptions{Datastore: ds})
	if err != nil {
		t.Fatal(err)
	}
	rec := filepath.Join(ds, "runs", "Flaky", run.ID, "start", "0", "task.json")
	data, err := os.ReadFile(rec)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(rec, []byte(strings.Replace(string(data), `"start"`, `"strat"`, 1)), 0o644)
	// Reading it is an error that names it.
	var out strings.Builder
	resumed, err := stepwise.Resume(ctx, &Flaky{}, &stepwise.ResumeOptions{RunOptions: stepwise.RunOptions{Datastore: ds, Output: &out}, Step: "a", OriginRunID: run.ID})
	if err != nil {
		t.Fatalf("resume over a corrupted task record: %v", err)
	}
	// Resume says so, and runs that task again instead of reusing it.
	if !strings.Contains(out.String(), "Flaky/"+run.ID+"/start/0 of the origin run cannot be reused") || !strings.Contains(out.String(), "corrupt") {
		t.Errorf("resume did not report the damaged record:\n%s", out.String())
	}
	starts, _ := resumed.Step(ctx, "start")
	if starts[0].ClonedFrom != "" || starts[0].Status != "succeeded" {
		t.Errorf("start of the resumed run: cloned from %q, status %s; want it run again", starts[0].ClonedFrom, starts[0].Status)
	}
}

// Unstorable has a field that no encoding can store.
type Unstorable struct {
	Name  string
	Hooks chan int
}

func (f *Unstorable) Graph(g *stepwise.Graph) {
	g.Step(f.Start).Next(f.End)
	g.Step(f.End)
}
func (f *Unstorable) Start(context.Context) error { f.Name = "x"; return nil }
func (f *Unstorable) End(context.Context) error   { return nil }

func TestUnstorableFieldNamesFieldAndType(t *testing.T) {
	ds, _ := testEnv(t, "ann")
	run, err := stepwise.Run(context.Background(), &Unstorable{}, &stepwise.RunOptions{Datastore: ds})
	if err == nil {
		t.Fatal("a flow with a channel field ran")
	}
	start, _ := run.Step(context.Background(), "start")
	if msg := start[0].Attempts[0].Error; !strings.Contains(msg, "field Hooks (chan int) cannot be stored as an artifact: codec: cannot encode a value of type chan int") {
		t.Errorf("error %q", msg)
	}
}
