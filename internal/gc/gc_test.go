package gc_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"stepwise.dev/stepwise/internal/datastore"
	"stepwise.dev/stepwise/internal/datastore/local"
	"stepwise.dev/stepwise/internal/datastore/s3"
	"stepwise.dev/stepwise/internal/gc"
	"stepwise.dev/stepwise/internal/metadata"
	"stepwise.dev/stepwise/internal/metadata/sqlite"
	"stepwise.dev/stepwise/internal/testservers"
)

var prefixes atomic.Int64

// backends are the datastores gc is tested on: a local directory and a
// real MinIO.
var backends = []struct {
	name string
	open func(t *testing.T) datastore.Backend
}{
	{"local", func(t *testing.T) datastore.Backend {
		b, err := local.New(filepath.Join(t.TempDir(), "ds"))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}},
	{"s3", func(t *testing.T) datastore.Backend {
		srv := testservers.MinIO(t)
		t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
		t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
		t.Setenv("AWS_REGION", "us-east-1")
		b, err := s3.New(context.Background(), fmt.Sprintf("s3://stepwise-gc/t%d", prefixes.Add(1)), s3.Options{Endpoint: srv.Endpoint})
		if err != nil {
			t.Fatal(err)
		}
		if err := b.CreateBucket(context.Background()); err != nil {
			t.Fatal(err)
		}
		return b
	}},
}

// world is a datastore with runs of every kind gc decides about.
type world struct {
	store *datastore.Store
	meta  *sqlite.Store
	blobs map[string]string // name -> content key
	now   time.Time
}

// run records a run in both stores, with one task per blob name (the
// task's record refers to that blob) and one log chunk per task.
func (w *world) run(t *testing.T, id string, started time.Time, tags []string, origin string, status metadata.Status, blobs ...string) {
	t.Helper()
	ctx := context.Background()
	r := &metadata.Run{Flow: "F", ID: id, User: "ann", SystemTags: []string{"user:ann"}, Tags: tags, Started: started, Origin: origin}
	if err := w.meta.CreateRun(ctx, r); err != nil {
		t.Fatal(err)
	}
	if err := w.store.PutRun(ctx, &datastore.RunRecord{Flow: "F", Run: id, Started: started, User: "ann", Origin: origin}); err != nil {
		t.Fatal(err)
	}
	for i, name := range blobs {
		key := w.blob(t, name)
		p := datastore.TaskPath{Flow: "F", Run: id, Step: "s", Task: fmt.Sprint(i)}
		arts := []datastore.ArtifactRef{{Name: "V", Key: key, Type: "string", Size: 1}}
		if err := w.store.PutTask(ctx, &datastore.TaskRecord{Path: p, Artifacts: arts}); err != nil {
			t.Fatal(err)
		}
		chunk := datastore.LogChunkKey(datastore.LogPrefix(p, 0, "stdout"), 0)
		if err := w.store.Backend().Put(ctx, chunk, strings.NewReader("out\n"), 4); err != nil {
			t.Fatal(err)
		}
		a := metadata.Attempt{Flow: "F", Run: id, Step: "s", Task: p.Task, Status: metadata.Running, Started: started}
		if err := w.meta.StartAttempt(ctx, a); err != nil {
			t.Fatal(err)
		}
		a.Status, a.Ended = metadata.Succeeded, started.Add(time.Second)
		if err := w.meta.FinishAttempt(ctx, a, []metadata.Artifact{{Name: "V", Key: key, Type: "string", Size: 1}}); err != nil {
			t.Fatal(err)
		}
	}
	if status != metadata.Running {
		if err := w.meta.FinishRun(ctx, "F", id, status, started.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
}

// blob stores the blob called name (its content is the name).
func (w *world) blob(t *testing.T, name string) string {
	t.Helper()
	if k, ok := w.blobs[name]; ok {
		return k
	}
	key, _, err := w.store.PutBlob(context.Background(), [][]byte{[]byte("blob " + name)})
	if err != nil {
		t.Fatal(err)
	}
	w.blobs[name] = key
	return key
}

func (w *world) exists(t *testing.T, name string) bool {
	t.Helper()
	_, err := w.store.GetBlob(context.Background(), w.blobs[name])
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return err == nil
}

func newWorld(t *testing.T, b datastore.Backend) *world {
	ctx := context.Background()
	meta, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "metadata.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { meta.Close() })
	w := &world{store: datastore.New(b), meta: meta, blobs: map[string]string{}, now: time.Now()}
	day := 24 * time.Hour
	w.run(t, "1001", w.now.Add(-60*day), nil, "", metadata.Succeeded, "old-only", "shared")
	w.run(t, "1002", w.now.Add(-1*day), nil, "", metadata.Succeeded, "shared", "young")
	w.run(t, "1003", w.now.Add(-90*day), []string{"golden"}, "", metadata.Succeeded, "tagged")
	w.run(t, "1004", w.now.Add(-40*day), nil, "", metadata.Running, "running")
	// The run is alive: its runtime says so (at the time gc will run).
	if err := meta.Heartbeat(ctx, "F", "1004", w.now.Add(3*day)); err != nil {
		t.Fatal(err)
	}
	w.run(t, "1005", w.now.Add(-50*day), nil, "", metadata.Failed, "origin-a", "origin-b")
	w.run(t, "1006", w.now.Add(-2*day), nil, "1005", metadata.Succeeded, "origin-a", "rerun")
	w.run(t, "1007", w.now.Add(-45*day), nil, "", metadata.Running, "lost") // its runtime died long ago
	// A run the metadata store does not know.
	p := datastore.TaskPath{Flow: "F", Run: "1008", Step: "s", Task: "0"}
	if err := w.store.PutTask(ctx, &datastore.TaskRecord{Path: p, Artifacts: []datastore.ArtifactRef{{Name: "V", Key: w.blob(t, "orphan"), Type: "string"}}}); err != nil {
		t.Fatal(err)
	}
	w.blob(t, "unreferenced")
	return w
}

// TestCollect runs gc over runs of every kind, on the local datastore and
// on S3: first within the grace period (nothing goes), then as a dry run
// and for real two days later.
func TestCollect(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			ctx := context.Background()
			b := be.open(t)
			w := newWorld(t, b)
			var tmp string
			if lb, ok := b.(*local.Backend); ok {
				tmp = filepath.Join(lb.String(), "blobs", "aa", ".tmp-crashed")
				os.MkdirAll(filepath.Dir(tmp), 0o755)
				if err := os.WriteFile(tmp, []byte("partial"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			o := gc.Options{Retention: 30 * 24 * time.Hour, Grace: gc.DefaultGrace, Apply: true, Now: w.now}

			// Now: everything was written within the grace period.
			rep, err := gc.Collect(ctx, w.store, w.meta, o)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Blobs.Count != 0 || rep.Logs.Count != 0 || rep.Leftovers.Count != 0 || rep.YoungBlobs.Count != 3 {
				t.Fatalf("within the grace period gc deleted %+v, %+v, %+v; young %+v", rep.Blobs, rep.Logs, rep.Leftovers, rep.YoungBlobs)
			}

			// Two days later, a dry run, then for real.
			o.Now = w.now.Add(48 * time.Hour)
			o.Apply = false
			dry, err := gc.Collect(ctx, w.store, w.meta, o)
			if err != nil {
				t.Fatal(err)
			}
			for name := range w.blobs {
				if !w.exists(t, name) {
					t.Fatalf("the dry run deleted blob %s", name)
				}
			}
			o.Apply = true
			rep, err = gc.Collect(ctx, w.store, w.meta, o)
			if err != nil {
				t.Fatal(err)
			}
			gone := []string{"lost", "old-only", "unreferenced"}
			for name := range w.blobs {
				if got, want := !w.exists(t, name), slices.Contains(gone, name); got != want {
					t.Errorf("blob %s deleted: %v, want %v", name, got, want)
				}
			}
			wantKept := map[string]int{gc.KeptYoung: 2, gc.KeptTagged: 1, gc.KeptRunning: 1, gc.KeptOrigin: 1, gc.KeptUnknown: 1}
			if !reflect.DeepEqual(rep.Kept, wantKept) || rep.Runs != 8 {
				t.Errorf("kept %v of %d runs; want %v of 8", rep.Kept, rep.Runs, wantKept)
			}
			if !reflect.DeepEqual(rep.Collected, []string{"F/1001", "F/1007"}) {
				t.Errorf("collected runs %q", rep.Collected)
			}
			wantLeft := 0
			if tmp != "" {
				wantLeft = 1
			}
			if rep.Blobs.Count != 3 || rep.Logs.Count != 3 || rep.Leftovers.Count != wantLeft || rep.Reachable.Count != 8 || rep.Freed == 0 {
				t.Errorf("report: blobs %+v, logs %+v, leftovers %+v, reachable %+v, freed %d", rep.Blobs, rep.Logs, rep.Leftovers, rep.Reachable, rep.Freed)
			}
			if dry.Blobs != rep.Blobs || dry.Logs != rep.Logs || dry.Freed != rep.Freed || dry.Applied {
				t.Errorf("the dry run reported %+v, the real one %+v", dry, rep)
			}
			if len(rep.Warnings) != 1 || !strings.Contains(rep.Warnings[0], "F/1008") || !strings.Contains(rep.Warnings[0], "rebuild-metadata") {
				t.Errorf("warnings %q", rep.Warnings)
			}
			if tmp != "" {
				if _, err := os.Stat(tmp); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("the crashed writer's file is still there: %v", err)
				}
			}

			// What was deleted says so; what is kept reads.
			_, err = w.store.GetBlob(ctx, w.blobs["old-only"])
			if !errors.Is(err, datastore.ErrCollected) || !strings.Contains(err.Error(), "collected by gc on") || !strings.Contains(err.Error(), "retention of 720h0m0s") {
				t.Errorf("reading a collected blob: %v", err)
			}
			p := datastore.TaskPath{Flow: "F", Run: "1001", Step: "s", Task: "0"}
			if _, err := w.store.ReadLog(ctx, p, 0, "stdout"); !errors.Is(err, datastore.ErrCollected) {
				t.Errorf("reading collected logs: %v", err)
			}
			if _, err := w.store.GetTask(ctx, p); err != nil {
				t.Errorf("the record of a collected run: %v", err)
			}
			p.Run = "1002"
			if out, err := w.store.ReadLog(ctx, p, 0, "stdout"); err != nil || string(out) != "out\n" {
				t.Errorf("logs of a kept run = %q, %v", out, err)
			}

			// Again: nothing more to do.
			rep, err = gc.Collect(ctx, w.store, w.meta, o)
			if err != nil || rep.Freed != 0 || rep.Blobs.Count != 0 {
				t.Errorf("second gc: %+v, %v", rep, err)
			}
		})
	}
}

// TestShortGrace: a grace period shorter than MinGrace could delete the
// blobs of a running task; it is refused while a run is running.
func TestShortGrace(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, backends[0].open(t))
	_, err := gc.Collect(ctx, w.store, w.meta, gc.Options{Retention: time.Hour, Grace: time.Minute, Now: w.now})
	if err == nil || !strings.Contains(err.Error(), "run F/1004 is running") || !strings.Contains(err.Error(), "at least "+gc.MinGrace.String()) {
		t.Fatalf("gc with a short grace period while a run runs: %v", err)
	}
	if err := w.meta.FinishRun(ctx, "F", "1004", metadata.Failed, w.now); err != nil {
		t.Fatal(err)
	}
	rep, err := gc.Collect(ctx, w.store, w.meta, gc.Options{Retention: time.Hour, Grace: 0, Now: w.now.Add(time.Second), Apply: true})
	if err != nil {
		t.Fatal(err)
	}
	// Only tagged runs and what they need are kept.
	if rep.Kept[gc.KeptTagged] != 1 || rep.Kept[gc.KeptYoung] != 0 || w.exists(t, "young") || !w.exists(t, "tagged") || !w.exists(t, "orphan") {
		t.Errorf("kept %v", rep.Kept)
	}
}

// TestResumedRunKeepsOrigin: a running resume of an old run keeps all of
// the old run's blobs, also those it has not cloned yet.
func TestResumedRunKeepsOrigin(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, backends[0].open(t))
	w.run(t, "2001", w.now.Add(time.Hour), nil, "1001", metadata.Running, "shared")
	_, err := gc.Collect(ctx, w.store, w.meta, gc.Options{Retention: 30 * 24 * time.Hour, Grace: gc.DefaultGrace, Apply: true, Now: w.now.Add(48 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if !w.exists(t, "old-only") {
		t.Error("the origin of a running resume lost its blob")
	}
	for name := range w.blobs {
		if !w.exists(t, name) && name != "lost" && name != "unreferenced" {
			t.Errorf("blob %s deleted", name)
		}
	}
}

// TestCardVersions: gc keeps every version kept of the cards of a kept
// run, deletes the blobs of the versions a card dropped, and deletes the
// cards of a run it collects with their blobs, on the local datastore and
// on S3.
func TestCardVersions(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			ctx := context.Background()
			w := newWorld(t, be.open(t))
			kept := datastore.TaskPath{Flow: "F", Run: "1002", Step: "s", Task: "0"}   // young: kept
			gone := datastore.TaskPath{Flow: "F", Run: "1001", Step: "s", Task: "0"}   // old: collected
			tagged := datastore.TaskPath{Flow: "F", Run: "1003", Step: "s", Task: "0"} // tagged: kept
			put := func(p datastore.TaskPath, text string, final bool) string {
				t.Helper()
				v, err := w.store.PutCard(ctx, p, 0, "progress", datastore.CardVersion{Final: final}, []byte(text))
				if err != nil {
					t.Fatal(err)
				}
				return v.Key
			}
			keptKeys := []string{put(kept, "kept 1", false), put(kept, "kept 2", false), put(kept, "shared", true)}
			goneKeys := []string{put(gone, "gone 1", false), put(gone, "gone 2", true)}
			put(tagged, "shared", true) // the same content as a kept card's
			shared := put(gone, "shared", false)
			// A progress card of a kept run saved more often than versions
			// are kept: the versions it dropped go.
			var progress []string
			for i := range datastore.MaxCardVersions + 3 {
				v, err := w.store.PutCard(ctx, kept, 0, "long", datastore.CardVersion{}, []byte(fmt.Sprint("epoch ", i)))
				if err != nil {
					t.Fatal(err)
				}
				progress = append(progress, v.Key)
			}

			o := gc.Options{Retention: 30 * 24 * time.Hour, Grace: gc.DefaultGrace, Apply: true, Now: w.now.Add(48 * time.Hour)}
			rep, err := gc.Collect(ctx, w.store, w.meta, o)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Contains(rep.Collected, "F/1001") || slices.Contains(rep.Collected, "F/1002") {
				t.Errorf("collected runs %q", rep.Collected)
			}
			for i, k := range keptKeys {
				if _, err := w.store.GetBlob(ctx, k); err != nil {
					t.Errorf("version %d of a kept run's card: %v", i+1, err)
				}
				if data, err := w.store.GetCard(ctx, kept, 0, "progress", i+1); err != nil || len(data) == 0 {
					t.Errorf("GetCard of version %d of a kept run's card = %q, %v", i+1, data, err)
				}
			}
			for i, k := range goneKeys {
				if _, err := w.store.GetBlob(ctx, k); !errors.Is(err, datastore.ErrCollected) {
					t.Errorf("version %d of a collected run's card is still there: %v", i+1, err)
				}
			}
			for i, k := range progress {
				_, err := w.store.GetBlob(ctx, k)
				if dropped := i < 3; dropped != errors.Is(err, datastore.ErrCollected) || !dropped && err != nil {
					t.Errorf("version %d of a card that keeps its last %d: dropped %v, read: %v", i+1, datastore.MaxCardVersions, dropped, err)
				}
			}
			if _, err := w.store.GetBlob(ctx, shared); err != nil {
				t.Errorf("a blob a collected card shares with a kept one: %v", err)
			}
			if _, err := w.store.GetCard(ctx, gone, 0, "progress", 0); !errors.Is(err, datastore.ErrCollected) {
				t.Errorf("reading the card of a collected run: %v; want ErrCollected", err)
			}
			if refs, err := w.store.ListCards(ctx, gone); err != nil || len(refs) != 0 {
				t.Errorf("the collected run still lists cards %+v (%v)", refs, err)
			}
		})
	}
}
