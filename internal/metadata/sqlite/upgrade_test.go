package sqlite

import (
	"database/sql"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"stepwise.dev/stepwise/internal/metadata"
)

// TestUpgrade opens a database written at each earlier schema version, with
// a run and a running attempt in it, and checks that the store migrates it
// and records task heartbeats in it.
func TestUpgrade(t *testing.T) {
	for v := 1; v < len(migrations); v++ {
		t.Run("from version "+strconv.Itoa(v), func(t *testing.T) {
			ctx := t.Context()
			path := filepath.Join(t.TempDir(), "metadata.db")
			db, err := sql.Open("sqlite", "file:"+path)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range migrations[:v] {
				if _, err := db.ExecContext(ctx, m); err != nil {
					t.Fatal(err)
				}
			}
			started := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
			for _, q := range []string{
				`INSERT INTO runs (flow, id, status, started) VALUES ('F', '1', 'running', ?)`,
				`INSERT INTO tasks (run, step, id, status, started, attempt) VALUES (1, 'start', '1', 'running', ?, 0)`,
				`INSERT INTO attempts (task, n, status, started) VALUES (1, 0, 'running', ?)`,
				`INSERT INTO tasks (run, step, id, status, started, attempt) VALUES (1, 'start', '10', 'running', ?, 0)`,
				`INSERT INTO tasks (run, step, id, status, started, attempt) VALUES (1, 'start', '2', 'running', ?, 0)`,
			} {
				if _, err := db.ExecContext(ctx, q, started.UnixNano()); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := db.ExecContext(ctx, "PRAGMA user_version = "+strconv.Itoa(v)); err != nil {
				t.Fatal(err)
			}
			db.Close()

			s, err := Open(ctx, path)
			if err != nil {
				t.Fatalf("Open of a database at schema version %d: %v", v, err)
			}
			defer s.Close()
			if s.applied != len(migrations)-v {
				t.Errorf("Open applied %d migrations, want %d", s.applied, len(migrations)-v)
			}
			beat := started.Add(time.Minute)
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
			if err != nil || !slices.Equal(ids, []string{"1", "2", "10"}) {
				t.Errorf("tasks after the upgrade: %v, %v; want 1, 2, 10", ids, err)
			}
			if r, err := s.GetRun(ctx, "F", "1"); err != nil || !r.Heartbeat.Equal(beat) {
				t.Errorf("run after the upgrade: %+v, %v", r, err)
			}
		})
	}
}
