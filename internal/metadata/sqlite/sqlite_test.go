package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"stepwise.dev/stepwise/internal/metadata"
	"stepwise.dev/stepwise/internal/metadata/metadatatest"
)

func openTemp(t testing.TB) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "metadata.db")
	s, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s, path
}

func TestConformance(t *testing.T) {
	metadatatest.Run(t, func(t *testing.T) metadata.Store {
		s, _ := openTemp(t)
		return s
	})
}

// Environment of TestHelperProcess.
const (
	helperEnvDB    = "STEPWISE_METADATA_TEST_DB"
	helperEnvIndex = "STEPWISE_METADATA_TEST_PROC"
)

const procs, tasksPerProc = 20, 50

// TestMultiProcess has 20 processes open one new database file at once,
// each create the same run, and record 50 tasks, opening the store for
// each task as a task process does.
func TestMultiProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "metadata.db")
	var wg sync.WaitGroup
	for p := range procs {
		wg.Go(func() {
			cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
			cmd.Env = append(os.Environ(), helperEnvDB+"="+path, helperEnvIndex+"="+strconv.Itoa(p))
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("process %d: %v\n%s", p, err, out)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tasks, err := s.ListTasks(t.Context(), "Multi", "1")
	if err != nil {
		t.Fatal(err)
	}
	if len(tasks) != procs*tasksPerProc {
		t.Fatalf("%d tasks recorded, want %d", len(tasks), procs*tasksPerProc)
	}
	if !slices.IsSortedFunc(tasks, metadata.CompareTasks) {
		t.Errorf("tasks are not listed in the order of metadata.CompareTasks")
	}
	seen := map[string]bool{}
	for _, k := range tasks {
		id := k.ID
		if n, err := strconv.Atoi(id); err != nil || n < 1 || n > procs*tasksPerProc || seen[id] {
			t.Fatalf("unexpected or repeated task id %q", id)
		}
		seen[id] = true
		if k.Status != metadata.Succeeded || len(k.Attempts) != 1 || len(k.Artifacts) != 3 {
			t.Fatalf("task %s: %+v", id, k)
		}
		for j, a := range k.Artifacts {
			if want := fmt.Sprintf("%s-%d", id, j); a.Key != want {
				t.Fatalf("task %s: artifact %s has key %s, want %s", id, a.Name, a.Key, want)
			}
		}
	}
}

// TestHelperProcess is one process of TestMultiProcess; it does nothing
// unless run by it.
func TestHelperProcess(t *testing.T) {
	path := os.Getenv(helperEnvDB)
	if path == "" {
		return
	}
	p, _ := strconv.Atoi(os.Getenv(helperEnvIndex))
	ctx := t.Context()
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	err = s.CreateRun(ctx, &metadata.Run{Flow: "Multi", ID: "1", User: "ann", SystemTags: []string{"user:ann"}})
	if err != nil && !errors.Is(err, metadata.ErrExists) {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for i := range tasksPerProc {
		if err := recordTask(ctx, path, "Multi", "1", strconv.Itoa(p*tasksPerProc+i+1)); err != nil {
			t.Fatal(err)
		}
	}
}

// recordTask is what a task process does: open the store, record an
// attempt with 3 artifacts, close.
func recordTask(ctx context.Context, path, flow, run, id string) error {
	s, err := Open(ctx, path)
	if err != nil {
		return err
	}
	a := metadata.Attempt{Flow: flow, Run: run, Step: "work", Task: id, Status: metadata.Running, Started: time.Now()}
	if err := s.StartAttempt(ctx, a); err != nil {
		s.Close()
		return err
	}
	a.Status, a.Ended = metadata.Succeeded, time.Now()
	arts := make([]metadata.Artifact, 3)
	for j := range arts {
		arts[j] = metadata.Artifact{Name: fmt.Sprint("a", j), Type: "int", Key: fmt.Sprintf("%s-%d", id, j), Size: 8}
	}
	if err := s.FinishAttempt(ctx, a, arts); err != nil {
		s.Close()
		return err
	}
	return s.Close()
}

func TestMigrations(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "metadata.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if s.applied != len(migrations) {
		t.Errorf("first Open applied %d migrations, want %d", s.applied, len(migrations))
	}
	if err := s.CreateRun(ctx, &metadata.Run{Flow: "F", ID: "1"}); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s, err = Open(ctx, path)
	if err != nil {
		t.Fatalf("second Open: %v", err)
	}
	if s.applied != 0 {
		t.Errorf("second Open applied %d migrations, want none", s.applied)
	}
	if _, err := s.GetRun(ctx, "F", "1"); err != nil {
		t.Errorf("run lost by the second Open: %v", err)
	}
	if v, err := schemaVersion(ctx, s.db); err != nil || v != len(migrations) {
		t.Errorf("schema version %d, %v; want %d", v, err, len(migrations))
	}
	if _, err := s.db.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", len(migrations)+1)); err != nil {
		t.Fatal(err)
	}
	s.Close()

	_, err = Open(ctx, path)
	if err == nil {
		t.Fatal("Open of a database with a newer schema succeeded")
	}
	for _, want := range []string{path, "schema version " + strconv.Itoa(len(migrations)+1), "newer", "upgrade"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	ctx := t.Context()
	dir := filepath.Join(t.TempDir(), "missing")
	_, err := Open(ctx, filepath.Join(dir, "metadata.db"))
	if err == nil || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("Open in a missing directory: %v", err)
	}

	dir = t.TempDir()
	_, err = Open(ctx, dir)
	if err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Errorf("Open of a directory: %v", err)
	}

	if os.Geteuid() == 0 {
		// Root writes anywhere, but not in /proc (Linux, like CI).
		dir = "/proc"
	} else {
		if err := os.Chmod(dir, 0o555); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod(dir, 0o755) })
	}
	_, err = Open(ctx, filepath.Join(dir, "metadata.db"))
	if err == nil || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "not writable") {
		t.Errorf("Open in an unwritable directory: %v", err)
	}
}

// TestOddPath opens a database whose path holds characters that mean
// something in a URI.
func TestOddPath(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a b?c=d&e#f%20g")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "metadata.db")
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateRun(t.Context(), &metadata.Run{Flow: "F", ID: "1"}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := os.Stat(path); err != nil {
		t.Errorf("the database is not where it was asked to be: %v", err)
	}
}

// TestNanoseconds checks that this store keeps times to the nanosecond.
func TestNanoseconds(t *testing.T) {
	s, _ := openTemp(t)
	started := time.Date(2025, 1, 2, 3, 4, 5, 987654321, time.Local)
	if err := s.CreateRun(t.Context(), &metadata.Run{Flow: "F", ID: "1", Started: started}); err != nil {
		t.Fatal(err)
	}
	r, err := s.GetRun(t.Context(), "F", "1")
	if err != nil {
		t.Fatal(err)
	}
	if !r.Started.Equal(started) || r.Started.Location() != time.UTC {
		t.Errorf("Started = %v, want %v in UTC", r.Started, started.UTC())
	}
}

// TestListRunsPlan checks that listing runs of a flow, with or without
// tags, reads the index in order rather than sorting all the runs.
func TestListRunsPlan(t *testing.T) {
	s, _ := openTemp(t)
	for _, f := range []metadata.RunFilter{
		{Flow: "F"},
		{Flow: "F", Tags: []string{"user:ann"}, Limit: 1},
		{Flow: "F", Since: time.Now(), Status: metadata.Succeeded},
		{},
	} {
		q, args := listRunsQuery(f)
		rows, err := s.db.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+q, args...)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		text := strings.Join(plan, "\n")
		t.Logf("ListRuns(%+v) plan:\n%s", f, text)
		if strings.Contains(text, "TEMP B-TREE") || !strings.Contains(text, "INDEX runs_by_") {
			t.Errorf("ListRuns(%+v) plan:\n%s", f, text)
		}
	}
}

// TestListRunsMany lists many runs of a flow (BenchmarkListRuns10k times
// 10,000).
func TestListRunsMany(t *testing.T) {
	s, _ := openTemp(t)
	const n = 2000
	createRuns(t, s, "Big", n)
	start := time.Now()
	runs, err := s.ListRuns(t.Context(), metadata.RunFilter{Flow: "Big"})
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ListRuns of %d runs: %v", len(runs), took)
	if len(runs) != n {
		t.Fatalf("%d runs, want %d", len(runs), n)
	}
	for i, r := range runs {
		if want := runID(n - 1 - i); r.ID != want {
			t.Fatalf("run %d is %s, want %s", i, r.ID, want)
		}
	}
	runs, err = s.ListRuns(t.Context(), metadata.RunFilter{Flow: "Big", Tags: []string{"user:ann", "exp"}})
	if err != nil || len(runs) != n/10 {
		t.Fatalf("ListRuns with tags: %d runs, %v; want %d", len(runs), err, n/10)
	}
}

func runID(i int) string { return strconv.Itoa(1_700_000_000_000_000 + i) }

// createRuns records n runs of a flow through the Store, in a single
// transaction (as n calls of CreateRun would, only faster): even ones by
// ann, odd ones by bob, every tenth tagged "exp".
func createRuns(t testing.TB, s *Store, flow string, n int) {
	t.Helper()
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	ctx := context.Background()
	err := s.write(ctx, func(tx *sql.Tx) error {
		for i := range n {
			user := "ann"
			if i%2 == 1 {
				user = "bob"
			}
			var tags []string
			if i%10 == 0 {
				tags = []string{"exp"}
			}
			var pk int64
			err := tx.QueryRowContext(ctx, `INSERT INTO runs (flow, id, status, username, params, started, ended, code_binary_sha256)
VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING pk`,
				flow, runID(i), "succeeded", user, `{"alpha":"0.5","epochs":"10"}`, t0.Add(time.Duration(i)*time.Second).UnixNano(),
				t0.Add(time.Duration(i)*time.Second+time.Minute).UnixNano(), strings.Repeat("ab", 32)).Scan(&pk)
			if err != nil {
				return err
			}
			if err := insertTags(ctx, tx, pk, []string{"user:" + user}, true); err != nil {
				return err
			}
			if err := insertTags(ctx, tx, pk, tags, false); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestTaskRecordCost reports what a task process spends on metadata.
func TestTaskRecordCost(t *testing.T) {
	s, path := openTemp(t)
	if err := s.CreateRun(t.Context(), &metadata.Run{Flow: "F", ID: "1"}); err != nil {
		t.Fatal(err)
	}
	const n = 20
	start := time.Now()
	for i := range n {
		if err := recordTask(t.Context(), path, "F", "1", strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("Open+StartAttempt+FinishAttempt+Close: %v per task", time.Since(start)/n)
}

func BenchmarkListRuns10k(b *testing.B) {
	s, _ := openTemp(b)
	createRuns(b, s, "Big", 10000)
	createRuns(b, s, "Small", 100)
	metadatatest.BenchmarkListRuns(b, s)
}

func BenchmarkTaskRecord(b *testing.B) {
	s, path := openTemp(b)
	ctx := context.Background()
	if err := s.CreateRun(ctx, &metadata.Run{Flow: "F", ID: "1"}); err != nil {
		b.Fatal(err)
	}
	i := 0
	for b.Loop() {
		i++
		if err := recordTask(ctx, path, "F", "1", strconv.Itoa(i)); err != nil {
			b.Fatal(err)
		}
	}
}
