package rebuild_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"stepwise.dev/stepwise/internal/datastore"
	"stepwise.dev/stepwise/internal/datastore/local"
	"stepwise.dev/stepwise/internal/metadata"
	"stepwise.dev/stepwise/internal/metadata/sqlite"
	"stepwise.dev/stepwise/internal/rebuild"
)

func open(t *testing.T, dir string) (*datastore.Store, *sqlite.Store) {
	t.Helper()
	b, err := local.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	meta, err := sqlite.Open(context.Background(), filepath.Join(dir, "metadata.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { meta.Close() })
	return datastore.New(b), meta
}

func key(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }

// setTime gives an object a modification time.
func setTime(t *testing.T, dir, key string, at time.Time) {
	t.Helper()
	if err := os.Chtimes(filepath.Join(dir, key), at, at); err != nil {
		t.Fatal(err)
	}
}

func putLog(t *testing.T, s *datastore.Store, dir string, p datastore.TaskPath, attempt int, text string, at time.Time) {
	t.Helper()
	k := datastore.LogChunkKey(datastore.LogPrefix(p, attempt, "stdout"), 0)
	if err := s.Backend().Put(context.Background(), k, strings.NewReader(text), int64(len(text))); err != nil {
		t.Fatal(err)
	}
	setTime(t, dir, k, at)
}

func putTask(t *testing.T, s *datastore.Store, dir string, rec *datastore.TaskRecord, at time.Time) {
	t.Helper()
	if err := s.PutTask(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	setTime(t, dir, datastore.TaskObjectKey(rec.Path), at)
}

// TestRebuild writes the datastore records of three runs (one that
// succeeded after a retry, one resumed from it that failed, one with an
// old record and no end) and checks what Rebuild makes of them.
func TestRebuild(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, meta := open(t, dir)
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	at := func(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }

	// Run 100: start, then train (failed once, then succeeded), then end.
	if err := s.PutRun(ctx, &datastore.RunRecord{Flow: "Train", Run: "100", Params: map[string]string{"lr": "0.1"}, Started: t0,
		User: "ann", SystemTags: []string{"user:ann", "runtime:local"}, Tags: []string{"nightly"},
		Code: datastore.Code{BinarySHA256: key("bin"), GitCommit: "c0ffee"}}); err != nil {
		t.Fatal(err)
	}
	p := func(run, step, task string) datastore.TaskPath {
		return datastore.TaskPath{Flow: "Train", Run: run, Step: step, Task: task}
	}
	arts := []datastore.ArtifactRef{{Name: "X", Key: key("x"), Type: "int", Size: 2}}
	putLog(t, s, dir, p("100", "start", "1"), 0, "hi\n", at(1))
	putTask(t, s, dir, &datastore.TaskRecord{Path: p("100", "start", "1"), Artifacts: arts}, at(2))
	putLog(t, s, dir, p("100", "train", "2"), 0, "boom\n", at(3))
	putLog(t, s, dir, p("100", "train", "2"), 1, "ok\n", at(5))
	putTask(t, s, dir, &datastore.TaskRecord{Path: p("100", "train", "2"), Attempt: 1, Artifacts: []datastore.ArtifactRef{{Name: "Model", Key: key("m"), Type: "[]float64", Size: 800}}}, at(6))
	putTask(t, s, dir, &datastore.TaskRecord{Path: p("100", "end", "3"), Artifacts: arts}, at(7))
	if err := s.PutRunEnd(ctx, &datastore.RunEnd{Flow: "Train", Run: "100", Status: "succeeded", Ended: at(8)}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutRunTags(ctx, &datastore.RunTags{Flow: "Train", Run: "100", Tags: []string{"golden", "nightly"}}); err != nil {
		t.Fatal(err)
	}

	// Run 200 resumed 100: start cloned, train failed, no end task.
	if err := s.PutRun(ctx, &datastore.RunRecord{Flow: "Train", Run: "200", Params: map[string]string{"lr": "0.1"}, Started: at(100),
		User: "bob", SystemTags: []string{"user:bob"}, Origin: "100"}); err != nil {
		t.Fatal(err)
	}
	putTask(t, s, dir, &datastore.TaskRecord{Path: p("200", "start", "1"), Artifacts: arts, ClonedFrom: "Train/100/start/1"}, at(101))
	putLog(t, s, dir, p("200", "train", "2"), 0, "boom again\n", at(102))
	if err := s.PutRunEnd(ctx, &datastore.RunEnd{Flow: "Train", Run: "200", Status: "failed", Ended: at(103)}); err != nil {
		t.Fatal(err)
	}

	// Run 300: a record as older launchers wrote it (no user), one task
	// done, one running, no end.
	old := `{"flow":"Train","run":"300","params":{"lr":"0.5"},"started":"2026-03-01T12:10:00Z","max_splits":10000}`
	if err := s.Backend().Put(ctx, datastore.RunObjectKey("Train", "300"), strings.NewReader(old), int64(len(old))); err != nil {
		t.Fatal(err)
	}
	setTime(t, dir, datastore.RunObjectKey("Train", "300"), at(600))
	putTask(t, s, dir, &datastore.TaskRecord{Path: p("300", "start", "1"), Artifacts: arts}, at(601))
	putLog(t, s, dir, p("300", "train", "2"), 0, "working\n", at(602))

	// The check refuses the empty metadata store, naming the command.
	err := rebuild.Check(ctx, s, meta)
	var me *rebuild.MissingError
	if !errors.Is(err, rebuild.ErrMissingRuns) || !errors.As(err, &me) || me.Runs != 3 || me.Example != "Train/300" {
		t.Fatalf("Check = %v; want a MissingError of 3 runs", err)
	}
	for _, want := range []string{"stepwise rebuild-metadata", dir, filepath.Join(dir, "metadata.db"), "Train"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Check error %q lacks %q", err, want)
		}
	}

	rep, err := rebuild.Rebuild(ctx, s, meta, rebuild.Options{DefaultUser: "carol"})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Runs != 3 || rep.Skipped != 0 || rep.Tasks != 7 || rep.Attempts != 7 || rep.Artifacts != 5 {
		t.Errorf("report %+v", rep)
	}
	if err := rebuild.Check(ctx, s, meta); err != nil {
		t.Errorf("Check after Rebuild: %v", err)
	}

	// Runs.
	r100, err := meta.GetRun(ctx, "Train", "100")
	if err != nil {
		t.Fatal(err)
	}
	want := &metadata.Run{Flow: "Train", ID: "100", Status: metadata.Succeeded, User: "ann", SystemTags: []string{"runtime:local", "user:ann"},
		Tags: []string{"golden", "nightly"}, Params: map[string]string{"lr": "0.1"}, Started: t0, Ended: at(8),
		Code: metadata.Code{BinarySHA256: key("bin"), GitCommit: "c0ffee"}}
	if !reflect.DeepEqual(r100, want) {
		t.Errorf("run 100 = %+v\nwant %+v", r100, want)
	}
	r200, _ := meta.GetRun(ctx, "Train", "200")
	if r200.Status != metadata.Failed || !r200.Ended.Equal(at(103)) || r200.Origin != "100" || r200.User != "bob" {
		t.Errorf("run 200 = %+v", r200)
	}
	r300, _ := meta.GetRun(ctx, "Train", "300")
	if r300.Status != metadata.Running || r300.User != "carol" || !reflect.DeepEqual(r300.SystemTags, []string{"user:carol"}) ||
		!r300.Heartbeat.Equal(at(602)) || r300.Params["lr"] != "0.5" || !r300.Lost(time.Now()) {
		t.Errorf("run 300 = %+v", r300)
	}
	if len(rep.Warnings) != 2 || !strings.Contains(rep.Warnings[0], "Train/300: its record names no user") || !strings.Contains(rep.Warnings[1], "no record says how it ended") {
		t.Errorf("warnings %q", rep.Warnings)
	}

	// Tasks and attempts.
	tasks, err := meta.ListTasks(ctx, "Train", "100")
	if err != nil || len(tasks) != 3 {
		t.Fatalf("tasks of 100: %v, %v", tasks, err)
	}
	for _, task := range tasks {
		if task.Status != metadata.Succeeded {
			t.Errorf("task %s/%s: %s", task.Step, task.ID, task.Status)
		}
		if task.Step == "train" {
			if len(task.Attempts) != 2 || task.Attempts[0].Status != metadata.Failed || task.Attempts[1].Status != metadata.Succeeded ||
				!task.Attempts[0].Started.Equal(at(3)) || !task.Attempts[1].Ended.Equal(at(6)) {
				t.Errorf("attempts of train: %+v", task.Attempts)
			}
			if len(task.Artifacts) != 1 || task.Artifacts[0].Key != key("m") || task.Artifacts[0].Size != 800 {
				t.Errorf("artifacts of train: %+v", task.Artifacts)
			}
		}
	}
	clone, err := meta.GetTask(ctx, "Train", "200", "start", "1")
	if err != nil || clone.ClonedFrom != "Train/100/start/1" || len(clone.Attempts) != 0 || len(clone.Artifacts) != 1 {
		t.Errorf("cloned task: %+v, %v", clone, err)
	}
	failed, err := meta.GetTask(ctx, "Train", "200", "train", "2")
	if err != nil || failed.Status != metadata.Failed || !strings.Contains(failed.Attempts[0].Error, "rebuilt") {
		t.Errorf("failed task: %+v, %v", failed, err)
	}
	running, err := meta.GetTask(ctx, "Train", "300", "train", "2")
	if err != nil || running.Status != metadata.Running {
		t.Errorf("task of a run that has not ended: %+v, %v", running, err)
	}

	// Again: nothing to do.
	rep, err = rebuild.Rebuild(ctx, s, meta, rebuild.Options{})
	if err != nil || rep.Runs != 0 || rep.Skipped != 3 {
		t.Errorf("second Rebuild = %+v, %v", rep, err)
	}
}

// TestCheck: a new store passes, and so does a metadata store with runs;
// a zero-length metadata file over a datastore with runs does not.
func TestCheck(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, meta := open(t, dir)
	if err := rebuild.Check(ctx, s, meta); err != nil {
		t.Fatalf("Check of a new store: %v", err)
	}
	// A datastore folder with nothing in it is no run either.
	if err := os.MkdirAll(filepath.Join(dir, "runs", "F"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := rebuild.Check(ctx, s, meta); err != nil {
		t.Fatalf("Check with an empty flow folder: %v", err)
	}
	if err := meta.CreateRun(ctx, &metadata.Run{Flow: "F", ID: "1"}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutRun(ctx, &datastore.RunRecord{Flow: "F", Run: "1", Started: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := rebuild.Check(ctx, s, meta); err != nil {
		t.Fatalf("Check of a store in step: %v", err)
	}
	meta.Close()

	// The metadata file is cut to zero bytes.
	if err := os.Truncate(filepath.Join(dir, "metadata.db"), 0); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dir, "metadata.db-wal"))
	os.Remove(filepath.Join(dir, "metadata.db-shm"))
	s, meta = open(t, dir)
	if err := rebuild.Check(ctx, s, meta); !errors.Is(err, rebuild.ErrMissingRuns) {
		t.Fatalf("Check over a zero-length metadata file: %v", err)
	}
	if _, err := rebuild.Rebuild(ctx, s, meta, rebuild.Options{}); err != nil {
		t.Fatal(err)
	}
	if r, err := meta.GetRun(ctx, "F", "1"); err != nil || r.Status != metadata.Running {
		t.Fatalf("rebuilt run: %+v, %v", r, err)
	}
}
