package sqlite

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"stepwise.dev/stepwise/internal/datastore"
	"stepwise.dev/stepwise/internal/metadata"
)

// tmpfs mounts a tmpfs with the options at a new directory (root, as CI
// runs, is needed) and returns the directory.
func tmpfs(t *testing.T, opts string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", opts, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("this test needs a small tmpfs (run as root): mount: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	return dir
}

func remountRO(t *testing.T, dir string) {
	t.Helper()
	if out, err := exec.Command("mount", "-o", "remount,ro", dir).CombinedOutput(); err != nil {
		t.Fatalf("remount read-only: %v %s", err, out)
	}
}

// record writes one run with one task into s.
func record(t *testing.T, s *Store, id string) {
	t.Helper()
	ctx := context.Background()
	if err := s.CreateRun(ctx, &metadata.Run{Flow: "F", ID: id, User: "ann", SystemTags: []string{"user:ann"}}); err != nil {
		t.Fatal(err)
	}
	a := metadata.Attempt{Flow: "F", Run: id, Step: "start", Task: "0", Status: metadata.Running, Started: time.Now()}
	if err := s.StartAttempt(ctx, a); err != nil {
		t.Fatal(err)
	}
}

// readable checks that every run in ids reads, and that writes fail
// saying that the store is read-only.
func readable(t *testing.T, s *Store, ids ...string) {
	t.Helper()
	ctx := context.Background()
	if s.ReadOnly() == "" {
		t.Error("the store was not opened read-only")
	}
	runs, err := s.ListRuns(ctx, metadata.RunFilter{})
	if err != nil || len(runs) != len(ids) {
		t.Fatalf("ListRuns = %d runs, %v; want %d", len(runs), err, len(ids))
	}
	for _, id := range ids {
		if tasks, err := s.ListTasks(ctx, "F", id); err != nil || len(tasks) != 1 {
			t.Errorf("ListTasks(%s) = %v, %v", id, tasks, err)
		}
	}
	err = s.CreateRun(ctx, &metadata.Run{Flow: "F", ID: "999"})
	if !errors.Is(err, datastore.ErrReadOnly) {
		t.Fatalf("CreateRun on a read-only store: %v; want ErrReadOnly", err)
	}
	for _, want := range []string{"metadata: recording run F/999", "opened for reading only", s.path, "copy the datastore to a writable place"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
}

// TestReadOnly opens databases on a read-only file system: one closed
// cleanly, and one copied while a writer had changes in its log.
func TestReadOnly(t *testing.T) {
	ctx := context.Background()

	t.Run("closed", func(t *testing.T) {
		dir := tmpfs(t, "size=4m")
		path := filepath.Join(dir, "metadata.db")
		s, err := Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		record(t, s, "1")
		record(t, s, "2")
		s.Close()
		remountRO(t, dir)
		s, err = Open(ctx, path)
		if err != nil {
			t.Fatalf("Open on a read-only file system: %v", err)
		}
		defer s.Close()
		readable(t, s, "1", "2")
		if _, err := Open(ctx, filepath.Join(dir, "other.db")); !errors.Is(err, datastore.ErrReadOnly) || !strings.Contains(err.Error(), "does not exist, and it cannot be created") {
			t.Errorf("Open of a missing database on a read-only file system: %v", err)
		}
	})

	// copied copies a database with its log while a writer has it open,
	// as cp -r of a datastore during a run does; drop names files not
	// copied.
	copied := func(t *testing.T, drop ...string) string {
		src := t.TempDir()
		s, err := Open(ctx, filepath.Join(src, "metadata.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		record(t, s, "1")
		dst := tmpfs(t, "size=4m")
		for _, name := range []string{"metadata.db", "metadata.db-wal", "metadata.db-shm"} {
			if fi, err := os.Stat(filepath.Join(src, "metadata.db-wal")); err != nil || fi.Size() == 0 {
				t.Fatalf("the writer's log is empty (%v): nothing to test", err)
			}
			data, err := os.ReadFile(filepath.Join(src, name))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Contains(drop, name) {
				if err := os.WriteFile(filepath.Join(dst, name), data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
		remountRO(t, dst)
		return filepath.Join(dst, "metadata.db")
	}

	t.Run("with its log", func(t *testing.T) {
		s, err := Open(ctx, copied(t))
		if err != nil {
			t.Fatalf("Open of a copy with a log: %v", err)
		}
		defer s.Close()
		readable(t, s, "1")
	})

	t.Run("log without shared memory", func(t *testing.T) {
		_, err := Open(ctx, copied(t, "metadata.db-shm"))
		if !errors.Is(err, datastore.ErrReadOnly) || !strings.Contains(err.Error(), "metadata.db-shm, which is missing") {
			t.Fatalf("Open of a log without its shared memory: %v", err)
		}
	})
}

// TestDiskFull fills a real small disk: writes fail with an error that
// says the disk is full, where, and how much is free, and what was
// written before still reads.
func TestDiskFull(t *testing.T) {
	ctx := context.Background()
	dir := tmpfs(t, "size=256k")
	s, err := Open(ctx, filepath.Join(dir, "metadata.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	big := strings.Repeat("x", 4000)
	var werr error
	n := 0
	for ; n < 1000 && werr == nil; n++ {
		werr = s.CreateRun(ctx, &metadata.Run{Flow: "F", ID: fmt.Sprint(n + 1), Params: map[string]string{"p": big}})
	}
	if werr == nil {
		t.Fatal("4 MB of runs fit on a 256 KiB disk")
	}
	if !errors.Is(werr, datastore.ErrDiskFull) {
		t.Fatalf("error %v does not match ErrDiskFull", werr)
	}
	t.Log(werr)
	for _, want := range []string{"metadata: recording run F/", "the disk holding " + dir, "tmpfs file system mounted at " + dir, "is full", "free", "free space on that disk"} {
		if !strings.Contains(werr.Error(), want) {
			t.Errorf("error lacks %q: %v", want, werr)
		}
	}
	if runs, err := s.ListRuns(ctx, metadata.RunFilter{}); err != nil || len(runs) != n-1 {
		t.Errorf("after the disk filled, ListRuns = %d runs, %v; want %d", len(runs), err, n-1)
	}

	// A new database on the full disk.
	if err := os.WriteFile(filepath.Join(dir, "filler"), make([]byte, 256<<10), 0o644); err == nil {
		t.Fatal("the filler fit")
	}
	_, err = Open(ctx, filepath.Join(dir, "new.db"))
	if !errors.Is(err, datastore.ErrDiskFull) || !strings.Contains(err.Error(), "metadata: cannot open") {
		t.Errorf("Open on a full disk: %v", err)
	}
}
