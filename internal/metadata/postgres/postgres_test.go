package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"stepwise.dev/stepwise/internal/metadata"
	"stepwise.dev/stepwise/internal/metadata/metadatatest"
	"stepwise.dev/stepwise/internal/testservers"
)

// openTemp opens a store in a new database, closed when the test ends.
func openTemp(t testing.TB) (*Store, string) {
	t.Helper()
	dsn := testservers.NewDatabase(t)
	s, err := Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, dsn
}

func TestConformance(t *testing.T) {
	metadatatest.Run(t, func(t *testing.T) metadata.Store {
		s, _ := openTemp(t)
		return s
	})
}

func TestMigrations(t *testing.T) {
	ctx := t.Context()
	s, dsn := openTemp(t)
	if s.applied != len(migrations) {
		t.Errorf("first Open applied %d migrations, want %d", s.applied, len(migrations))
	}
	if err := s.CreateRun(ctx, &metadata.Run{Flow: "F", ID: "1"}); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s, err := Open(ctx, dsn)
	if err != nil {
		t.Fatalf("second Open: %v", err)
	}
	if s.applied != 0 {
		t.Errorf("second Open applied %d migrations, want none", s.applied)
	}
	if _, err := s.GetRun(ctx, "F", "1"); err != nil {
		t.Errorf("run lost by the second Open: %v", err)
	}
	var n, v int
	if err := s.pool.QueryRow(ctx, `SELECT count(*), max(version) FROM schema_migrations`).Scan(&n, &v); err != nil {
		t.Fatal(err)
	}
	if n != len(migrations) || v != len(migrations) {
		t.Errorf("schema_migrations has %d rows up to version %d, want %d", n, v, len(migrations))
	}
	newer := len(migrations) + 1
	if _, err := s.pool.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, 'from the future')`, newer); err != nil {
		t.Fatal(err)
	}
	s.Close()

	_, err = Open(ctx, dsn)
	if err == nil {
		t.Fatal("Open of a database with a newer schema succeeded")
	}
	for _, want := range []string{"metadata: ", "schema version " + strconv.Itoa(newer), "newer", "upgrade"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

// TestConcurrentOpen has 10 processes' worth of stores open one new
// database at once: one migrates, the others wait and find it done.
func TestConcurrentOpen(t *testing.T) {
	dsn := testservers.NewDatabase(t)
	const n = 10
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		applied int
	)
	for i := range n {
		wg.Go(func() {
			s, err := Open(t.Context(), dsn)
			if err != nil {
				t.Errorf("Open %d: %v", i, err)
				return
			}
			defer s.Close()
			mu.Lock()
			applied += s.applied
			mu.Unlock()
			if err := s.CreateRun(t.Context(), &metadata.Run{Flow: "F", ID: strconv.Itoa(i + 1)}); err != nil {
				t.Errorf("CreateRun %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if applied != len(migrations) {
		t.Errorf("%d concurrent Opens applied %d migrations in all, want %d", n, applied, len(migrations))
	}
}

func TestOpenErrors(t *testing.T) {
	ctx := t.Context()
	if _, err := Open(ctx, ""); err == nil || !strings.Contains(err.Error(), "no PostgreSQL DSN") {
		t.Errorf("Open of no DSN: %v", err)
	}
	if _, err := Open(ctx, "postgres://u@127.0.0.1:bad/x"); err == nil || !strings.HasPrefix(err.Error(), "metadata: ") {
		t.Errorf("Open of a bad DSN: %v", err)
	}
	port, err := testservers.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err = Open(ctx, fmt.Sprintf("postgres://ann:secret@127.0.0.1:%d/stepwise?sslmode=disable", port))
	if err == nil || !strings.Contains(err.Error(), "cannot connect") || strings.Contains(err.Error(), "secret") {
		t.Errorf("Open of a server that is not there: %v", err)
	}
}

// TestInvalid checks that input PostgreSQL cannot hold is refused with
// errors that say so and mark themselves as invalid, before the database
// sees it.
func TestInvalid(t *testing.T) {
	s, _ := openTemp(t)
	ctx := t.Context()
	if err := s.CreateRun(ctx, &metadata.Run{Flow: "F", ID: "1"}); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("x", maxName+1)
	a := func(step, task string, n int) metadata.Attempt {
		return metadata.Attempt{Flow: "F", Run: "1", Step: step, Task: task, N: n, Status: metadata.Succeeded}
	}
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"NUL in flow", s.CreateRun(ctx, &metadata.Run{Flow: "F\x00", ID: "2"}), "U+0000"},
		{"bad UTF-8 in run id", s.CreateRun(ctx, &metadata.Run{Flow: "F", ID: "\xff"}), "UTF-8"},
		{"long flow", s.CreateRun(ctx, &metadata.Run{Flow: long, ID: "2"}), "characters long"},
		{"control character in flow", s.CreateRun(ctx, &metadata.Run{Flow: "F\n", ID: "2"}), "control character"},
		{"NUL in user", s.CreateRun(ctx, &metadata.Run{Flow: "F", ID: "2", User: "a\x00"}), "user"},
		{"NUL in param", s.CreateRun(ctx, &metadata.Run{Flow: "F", ID: "2", Params: map[string]string{"a": "\x00"}}), "parameter a"},
		{"NUL in param name", s.CreateRun(ctx, &metadata.Run{Flow: "F", ID: "2", Params: map[string]string{"\x00": ""}}), "parameter name"},
		{"empty tag", s.CreateRun(ctx, &metadata.Run{Flow: "F", ID: "2", Tags: []string{""}}), `tag "" is empty`},
		{"long tag", s.AddTags(ctx, "F", "1", []string{long}), "tag"},
		{"bad status", s.CreateRun(ctx, &metadata.Run{Flow: "F", ID: "2", Status: "done"}), "unknown status"},
		{"time out of range", s.CreateRun(ctx, &metadata.Run{Flow: "F", ID: "2", Started: time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)}), "out of range"},
		{"finish as running", s.FinishRun(ctx, "F", "1", metadata.Running, time.Time{}), "finishes as"},
		{"negative attempt", s.StartAttempt(ctx, a("s", "1", -1)), "numbered from 0"},
		{"huge attempt", s.StartAttempt(ctx, a("s", "1", 1<<40)), "numbered from 0"},
		{"NUL in error", s.FinishAttempt(ctx, metadata.Attempt{Flow: "F", Run: "1", Step: "s", Task: "1", Status: metadata.Failed, Error: "\x00"}, nil), "error"},
		{"unnamed artifact", s.FinishAttempt(ctx, a("s", "1", 0), []metadata.Artifact{{Key: "k"}}), "no name"},
		{"same artifact twice", s.FinishAttempt(ctx, a("s", "1", 0), []metadata.Artifact{{Name: "x"}, {Name: "x"}}), "two artifacts"},
		{"NUL in artifact key", s.FinishAttempt(ctx, a("s", "1", 0), []metadata.Artifact{{Name: "x", Key: "\x00"}}), "key"},
		{"clone without origin", s.CloneTask(ctx, &metadata.Task{Flow: "F", Run: "1", Step: "s", ID: "2"}), "ClonedFrom"},
		{"bad status filter", listErr(s.ListRuns(ctx, metadata.RunFilter{Status: "nope"})), "unknown status"},
		{"NUL in tag filter", listErr(s.ListRuns(ctx, metadata.RunFilter{Tags: []string{"\x00"}})), "U+0000"},
		{"NUL in a tag to remove", s.RemoveTags(ctx, "F", "1", []string{"\x00"}), "NUL"},
	}
	for _, tc := range tests {
		var inv interface{ Invalid() bool }
		switch {
		case tc.err == nil:
			t.Errorf("%s: no error", tc.name)
		case !errors.As(tc.err, &inv) || !inv.Invalid():
			t.Errorf("%s: error %q is not marked invalid", tc.name, tc.err)
		case !strings.HasPrefix(tc.err.Error(), "metadata: ") || !strings.Contains(tc.err.Error(), tc.want):
			t.Errorf("%s: error %q does not say %q", tc.name, tc.err, tc.want)
		}
	}
	// Nothing was recorded.
	runs, err := s.ListRuns(ctx, metadata.RunFilter{})
	if err != nil || len(runs) != 1 {
		t.Errorf("ListRuns after refused writes: %d runs, %v; want 1", len(runs), err)
	}
	if _, err := s.GetTask(ctx, "F", "1", "s", "1"); !errors.Is(err, metadata.ErrNotFound) {
		t.Errorf("GetTask after refused writes: %v, want ErrNotFound", err)
	}
	// Bounds beyond the store's range are not errors.
	runs, err = s.ListRuns(ctx, metadata.RunFilter{Since: time.Date(1, 1, 1, 0, 0, 1, 0, time.UTC), Until: time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)})
	if err != nil || len(runs) != 1 {
		t.Errorf("ListRuns with far bounds: %d runs, %v; want 1", len(runs), err)
	}
}

func listErr(_ []*metadata.Run, err error) error { return err }

// TestConflicts checks that refusals because of what is recorded are
// marked as conflicts.
func TestConflicts(t *testing.T) {
	s, _ := openTemp(t)
	ctx := t.Context()
	if err := s.CreateRun(ctx, &metadata.Run{Flow: "F", ID: "1", SystemTags: []string{"user:ann"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.CloneTask(ctx, &metadata.Task{Flow: "F", Run: "1", Step: "s", ID: "1", ClonedFrom: "F/0/s/1"}); err != nil {
		t.Fatal(err)
	}
	for _, err := range []error{
		s.RemoveTags(ctx, "F", "1", []string{"user:ann"}),
		s.StartAttempt(ctx, metadata.Attempt{Flow: "F", Run: "1", Step: "s", Task: "1"}),
		s.FinishAttempt(ctx, metadata.Attempt{Flow: "F", Run: "1", Step: "s", Task: "1", Status: metadata.Failed}, nil),
	} {
		var c interface{ Conflict() bool }
		if err == nil || !errors.As(err, &c) || !c.Conflict() || errors.Is(err, metadata.ErrExists) || errors.Is(err, metadata.ErrNotFound) {
			t.Errorf("error %v: want a conflict", err)
		}
	}
}

// TestNanoseconds checks that times are kept to the nanosecond.
func TestNanoseconds(t *testing.T) {
	s, _ := openTemp(t)
	started := time.Date(2025, 1, 2, 3, 4, 5, 987654321, time.FixedZone("X", -7*3600))
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
	runs, err := s.ListRuns(t.Context(), metadata.RunFilter{Since: started})
	if err != nil || len(runs) != 1 {
		t.Errorf("ListRuns since the run's own start: %d runs, %v; want 1", len(runs), err)
	}
}

// TestConcurrentWriters has 200 writers record one task each in one run at
// once, as the tasks of a wide foreach do.
func TestConcurrentWriters(t *testing.T) {
	s, _ := openTemp(t)
	metadatatest.ConcurrentWriters(t, s, 200)
}

func runID(i int) string { return strconv.Itoa(1_700_000_000_000_000 + i) }

// createRuns records n runs of a flow in one statement: even ones by ann,
// odd ones by bob (system tags), every tenth tagged "exp", one second apart.
func createRuns(t testing.TB, s *Store, flow string, n int) {
	t.Helper()
	ctx := context.Background()
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	_, err := s.pool.Exec(ctx, `
WITH r AS (
	INSERT INTO runs (flow, id, status, username, params, started, ended, code_binary_sha256)
	SELECT $1, (1700000000000000 + i)::text, 'succeeded', CASE WHEN i % 2 = 0 THEN 'ann' ELSE 'bob' END,
		'{"alpha": "0.5", "epochs": "10"}', $3 + i * 1000000000::bigint, $3 + (i + 60) * 1000000000::bigint, repeat('ab', 32)
	FROM generate_series(0, $2 - 1) AS i
	RETURNING pk, username, id
)
INSERT INTO run_tags (run, tag, system)
SELECT pk, 'user:' || username, true FROM r
UNION ALL
SELECT pk, 'exp', false FROM r WHERE (id::bigint - 1700000000000000) % 10 = 0`, flow, n, t0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.pool.Exec(ctx, `ANALYZE`); err != nil {
		t.Fatal(err)
	}
}

// TestListRunsMany lists 10,000 runs of a flow with and without filters,
// and checks how long each takes.
func TestListRunsMany(t *testing.T) {
	s, _ := openTemp(t)
	const n = 10000
	createRuns(t, s, "Big", n)
	createRuns(t, s, "Small", 100)
	ctx := t.Context()
	for _, c := range []struct {
		name string
		f    metadata.RunFilter
		n    int
	}{
		{"flow", metadata.RunFilter{Flow: "Big"}, n},
		{"flow+tag", metadata.RunFilter{Flow: "Big", Tags: []string{"user:ann"}}, n / 2},
		{"flow+two tags", metadata.RunFilter{Flow: "Big", Tags: []string{"user:ann", "exp"}}, n / 10},
		{"rare tag", metadata.RunFilter{Tags: []string{"exp"}}, n/10 + 10},
		{"latest in namespace", metadata.RunFilter{Flow: "Big", Tags: []string{"user:bob"}, Limit: 1}, 1},
		{"latest 10 with status", metadata.RunFilter{Flow: "Big", Status: metadata.Succeeded, Limit: 10}, 10},
		{"a page of a flow, deep in", metadata.RunFilter{Flow: "Big", Limit: 500, After: metadata.RunKey{Started: time.Date(2025, 1, 1, 0, 0, 1000, 0, time.UTC), ID: runID(1000), Flow: "Big"}}, 500},
		{"a page of all flows, deep in", metadata.RunFilter{Limit: 500, After: metadata.RunKey{Started: time.Date(2025, 1, 1, 0, 0, 1000, 0, time.UTC), ID: runID(1000), Flow: "Big"}}, 500},
		{"everything", metadata.RunFilter{}, n + 100},
	} {
		q, args, err := listRunsQuery(c.f)
		if err != nil {
			t.Fatal(err)
		}
		rows, err := s.pool.Query(ctx, "EXPLAIN "+q, args...)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, line)
		}
		rows.Close()

		start := time.Now()
		runs, err := s.ListRuns(ctx, c.f)
		took := time.Since(start)
		if err != nil || len(runs) != c.n {
			t.Fatalf("ListRuns(%s): %d runs, %v; want %d", c.name, len(runs), err, c.n)
		}
		t.Logf("ListRuns(%s): %d runs in %v; plan:\n%s", c.name, len(runs), took, strings.Join(plan, "\n"))
		if took > 30*time.Second {
			t.Errorf("ListRuns(%s) took %v", c.name, took)
		}
		if c.f.Limit > 0 && strings.Contains(strings.Join(plan, "\n"), "Seq Scan on runs") {
			t.Errorf("ListRuns(%s) reads every run:\n%s", c.name, strings.Join(plan, "\n"))
		}
		if !c.f.After.IsZero() && !strings.Contains(strings.Join(plan, "\n"), "Index Cond: (ROW(") && !strings.Contains(strings.Join(plan, "\n"), "Index Cond: ((flow = ") {
			t.Errorf("ListRuns(%s) does not start its page in an index:\n%s", c.name, strings.Join(plan, "\n"))
		}
		if c.f.Flow == "Big" && c.f.Limit == 0 {
			if want := runID(n - 1); runs[0].ID != want && len(c.f.Tags) == 0 {
				t.Errorf("ListRuns(%s) starts with %s, want %s", c.name, runs[0].ID, want)
			}
			if r := runs[len(runs)-1]; len(r.SystemTags) != 1 || r.Params["epochs"] != "10" {
				t.Errorf("ListRuns(%s): last run %+v", c.name, r)
			}
		}
	}
}

func BenchmarkListRuns10k(b *testing.B) {
	s, _ := openTemp(b)
	createRuns(b, s, "Big", 10000)
	createRuns(b, s, "Small", 100)
	metadatatest.BenchmarkListRuns(b, s)
}

// TestUpgrade opens a database at each earlier schema version, with a run
// and a running attempt in it, and checks that the store migrates it and
// records task heartbeats in it.
func TestUpgrade(t *testing.T) {
	for v := 1; v < len(migrations); v++ {
		t.Run("from version "+strconv.Itoa(v), func(t *testing.T) {
			ctx := t.Context()
			dsn := testservers.NewDatabase(t)
			conn, err := pgx.Connect(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			started := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
			stmts := []string{`CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`}
			for i, m := range migrations[:v] {
				stmts = append(stmts, m.sql, fmt.Sprintf(`INSERT INTO schema_migrations (version, name) VALUES (%d, 'old')`, i+1))
			}
			stmts = append(stmts,
				fmt.Sprintf(`INSERT INTO runs (flow, id, status, started) VALUES ('F', '1', 'running', %d)`, started),
				fmt.Sprintf(`INSERT INTO tasks (run, step, id, status, started, attempt) SELECT pk, 'start', '1', 'running', %d, 0 FROM runs`, started),
				fmt.Sprintf(`INSERT INTO attempts (task, n, status, started) SELECT pk, 0, 'running', %d FROM tasks`, started),
				fmt.Sprintf(`INSERT INTO tasks (run, step, id, status, started, attempt) SELECT pk, 'start', '10', 'running', %d, 0 FROM runs`, started),
				fmt.Sprintf(`INSERT INTO tasks (run, step, id, status, started, attempt) SELECT pk, 'start', '2', 'running', %d, 0 FROM runs`, started),
				fmt.Sprintf(`INSERT INTO tasks (run, step, id, status, started, attempt) SELECT pk, 'start', '0.10', 'running', %d, 0 FROM runs`, started),
				fmt.Sprintf(`INSERT INTO tasks (run, step, id, status, started, attempt) SELECT pk, 'start', '0.9', 'running', %d, 0 FROM runs`, started))
			for _, q := range stmts {
				if _, err := conn.Exec(ctx, q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			conn.Close(ctx)

			s, err := Open(ctx, dsn)
			if err != nil {
				t.Fatalf("Open of a database at schema version %d: %v", v, err)
			}
			defer s.Close()
			if s.applied != len(migrations)-v {
				t.Errorf("Open applied %d migrations, want %d", s.applied, len(migrations)-v)
			}
			beat := time.Unix(0, started).Add(time.Minute).UTC()
			if err := s.TaskHeartbeat(ctx, "F", "1", "start", "1", 0, beat); err != nil {
				t.Fatalf("TaskHeartbeat after the upgrade: %v", err)
			}
			k, err := s.GetTask(ctx, "F", "1", "start", "1")
			if err != nil || len(k.Attempts) != 1 || !k.Attempts[0].Heartbeat.Equal(beat) || k.Attempts[0].Status != metadata.Running {
				t.Errorf("task after the upgrade: %+v, %v", k, err)
			}
			// Tasks recorded before are listed in order.
			tasks, err := s.ListTasks(ctx, "F", "1")
			var ids []string
			for _, k := range tasks {
				ids = append(ids, k.ID)
			}
			if err != nil || !slices.Equal(ids, []string{"0.9", "0.10", "1", "2", "10"}) {
				t.Errorf("tasks after the upgrade: %v, %v; want 0.9, 0.10, 1, 2, 10", ids, err)
			}
			if r, err := s.GetRun(ctx, "F", "1"); err != nil || !r.Heartbeat.Equal(beat) {
				t.Errorf("run after the upgrade: %+v, %v", r, err)
			}
		})
	}
}
