package maintain

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"stepwise.dev/stepwise/internal/cli"
	"strings"
	"testing"

	"stepwise.dev/stepwise/internal/metadata"
	"stepwise.dev/stepwise/internal/metadata/sqlite"
)

// maintenanceEnv builds an example flow into a temporary directory and
// points the settings at a new local datastore there (no config file);
// it returns the binary and the datastore directory.
func maintenanceEnv(t *testing.T, example string) (bin, ds string) {
	t.Helper()
	dir := t.TempDir()
	bin = filepath.Join(dir, example)
	if out, err := exec.Command("go", "build", "-o", bin, "../../examples/"+example).CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ds = filepath.Join(dir, "ds")
	t.Setenv("STEPWISE_DATASTORE", ds)
	t.Setenv("STEPWISE_CONFIG", filepath.Join(dir, "missing-config.json"))
	t.Setenv("STEPWISE_METADATA", "")
	t.Setenv("STEPWISE_USER", "ann")
	return bin, ds
}

// flowRun runs the flow program with args and returns the run id it
// printed.
func flowRun(t *testing.T, bin string, args ...string) string {
	t.Helper()
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, out)
	}
	m := regexp.MustCompile(`run (\d+)`).FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("%s %s printed no run id:\n%s", filepath.Base(bin), strings.Join(args, " "), out)
	}
	return m[1]
}

// maint runs a command of Maintenance or Inspect.
func maint(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmds := append(slices.Clone(Commands), cli.Inspect...)
	code := cli.Run(context.Background(), cli.Options{Prog: "stepwise", Commands: cmds}, args, &out, &errOut)
	return out.String(), errOut.String(), code
}

// history is what the metadata store says about every run: runs and their
// tasks, without the times a rebuild can only approximate.
type history struct {
	Runs  []metadata.Run
	Tasks map[string][]string // run id -> "step/id status attempts artifacts"
}

func readHistory(t *testing.T, path string) history {
	t.Helper()
	ctx := context.Background()
	meta, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer meta.Close()
	runs, err := meta.ListRuns(ctx, metadata.RunFilter{})
	if err != nil {
		t.Fatal(err)
	}
	h := history{Tasks: map[string][]string{}}
	for _, r := range runs {
		tasks, err := meta.ListTasks(ctx, r.Flow, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, task := range tasks {
			var arts []string
			for _, a := range task.Artifacts {
				arts = append(arts, a.Name+"="+a.Key[:12])
			}
			var atts []string
			for _, a := range task.Attempts {
				atts = append(atts, string(a.Status))
			}
			line := []string{task.Step + "/" + task.ID, string(task.Status), strings.Join(arts, ",")}
			if r.Origin == "" {
				// The attempts, and whether the task is a clone, are
				// compared for runs that ran. In a resumed run they
				// are rebuilt from cloned_from in the task record.
				line = append(line, strings.Join(atts, ","), task.ClonedFrom)
			}
			h.Tasks[r.ID] = append(h.Tasks[r.ID], strings.Join(line, " "))
		}
		run := *r
		run.Ended, run.Heartbeat = run.Ended.Round(0), run.Heartbeat.Round(0)
		if !run.Ended.IsZero() {
			run.Ended = run.Started // the rebuilt end is when the end task's record was written
		}
		run.Heartbeat = run.Started
		h.Runs = append(h.Runs, run)
		slices.Sort(h.Tasks[r.ID])
	}
	return h
}

// TestRebuildMetadata: a zero-length metadata.db loses nothing. After real
// runs (one resumed from the other), the metadata file is cut to zero bytes;
// rebuild-metadata brings back the same runs, tasks, attempts, artifacts
// and tags, and dump reads them again.
func TestRebuildMetadata(t *testing.T) {
	bin, ds := maintenanceEnv(t, "foreach")
	first := flowRun(t, bin, "run", "--n", "5", "--tag", "nightly")
	second := flowRun(t, bin, "resume", "join", "--origin-run-id", first)
	dbPath := filepath.Join(ds, "metadata.db")
	before := readHistory(t, dbPath)
	if len(before.Runs) != 2 || len(before.Tasks[first]) < 8 {
		t.Fatalf("before: %+v", before)
	}

	for _, name := range []string{"metadata.db-wal", "metadata.db-shm"} {
		os.Remove(filepath.Join(ds, name))
	}
	if err := os.Truncate(dbPath, 0); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := maint(t, "rebuild-metadata")
	if code != 0 {
		t.Fatalf("rebuild-metadata: exit %d\n%s%s", code, out, errOut)
	}
	if !strings.Contains(out, "Rebuilt 2 run(s)") || !strings.Contains(out, "0 run(s) were there already") {
		t.Errorf("rebuild-metadata printed:\n%s", out)
	}
	after := readHistory(t, dbPath)
	if !reflect.DeepEqual(after.Runs, before.Runs) {
		t.Errorf("runs after the rebuild:\n%+v\nbefore:\n%+v", after.Runs, before.Runs)
	}
	if !reflect.DeepEqual(after.Tasks, before.Tasks) {
		for id := range before.Tasks {
			t.Errorf("run %s: tasks after the rebuild:\n%s\nbefore:\n%s", id, strings.Join(after.Tasks[id], "\n"), strings.Join(before.Tasks[id], "\n"))
		}
	}
	out, errOut, code = maint(t, "dump", "Foreach/"+second+"/end")
	if code != 0 || !regexp.MustCompile(`Sum\s+int\s+\S+ B\s+55`).MatchString(out) {
		t.Errorf("dump after the rebuild: exit %d\n%s%s", code, out, errOut)
	}

	// Again: nothing to do.
	out, _, code = maint(t, "rebuild-metadata", "--json")
	if code != 0 || !strings.Contains(out, `"skipped": 2`) {
		t.Errorf("second rebuild-metadata: exit %d\n%s", code, out)
	}
}
