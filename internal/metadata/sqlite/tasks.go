package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"stepwise.dev/stepwise/internal/metadata"
)

// checkAttempt checks an attempt's names and number.
func checkAttempt(a metadata.Attempt) error {
	if err := metadata.CheckTaskName(a.Flow, a.Run, a.Step, a.Task); err != nil {
		return err
	}
	if a.N < 0 {
		return fmt.Errorf("metadata: task %s: attempt %d: attempts are numbered from 0", metadata.TaskPathspec(a.Flow, a.Run, a.Step, a.Task), a.N)
	}
	return nil
}

// taskRow is what a write needs to know of an existing task.
type taskRow struct {
	pk         int64
	attempt    int
	clonedFrom string
}

// findTask looks a task up; ok is false when there is none.
func findTask(ctx context.Context, tx *sql.Tx, run int64, step, task string) (t taskRow, ok bool, err error) {
	err = tx.QueryRowContext(ctx, `SELECT pk, attempt, cloned_from FROM tasks WHERE run = ? AND step = ? AND id = ?`,
		run, step, task).Scan(&t.pk, &t.attempt, &t.clonedFrom)
	if errors.Is(err, sql.ErrNoRows) {
		return t, false, nil
	}
	return t, err == nil, err
}

// StartAttempt records that an attempt started (creating the task on its
// first attempt); the attempt is running whatever a.Status says, and a
// zero a.Started is now. The task becomes running unless it already has a
// later attempt. Starting an attempt that is running with the same start
// time does nothing, so that a retry is safe; an attempt already started
// otherwise gives ErrExists.
func (s *Store) StartAttempt(ctx context.Context, a metadata.Attempt) error {
	if err := checkAttempt(a); err != nil {
		return err
	}
	name := metadata.TaskPathspec(a.Flow, a.Run, a.Step, a.Task)
	a.Started = metadata.TimeOrNow(a.Started)
	err := s.write(ctx, func(tx *sql.Tx) error {
		run, err := runPK(ctx, tx, a.Flow, a.Run)
		if err != nil {
			return err
		}
		t, ok, err := findTask(ctx, tx, run, a.Step, a.Task)
		if ok && t.clonedFrom == "" {
			var (
				status  string
				started sql.NullInt64
			)
			err := tx.QueryRowContext(ctx, `SELECT status, started FROM attempts WHERE task = ? AND n = ?`, t.pk, a.N).Scan(&status, &started)
			switch {
			case errors.Is(err, sql.ErrNoRows):
			case err != nil:
				return err
			case status == string(metadata.Running) && fromNanos(started).Equal(a.Started):
				return nil // recorded already: a retry
			default:
				return exists("task %s: attempt %d was already started", name, a.N)
			}
		}
		switch {
		case err != nil:
			return err
		case !ok:
			err = tx.QueryRowContext(ctx, `
INSERT INTO tasks (run, step, id, ord, status, started, attempt) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING pk`,
				run, a.Step, a.Task, metadata.TaskOrderKey(a.Task), string(metadata.Running), nanos(a.Started), a.N).Scan(&t.pk)
			if err != nil {
				return err
			}
		case t.clonedFrom != "":
			return fmt.Errorf("metadata: task %s was cloned from %s; a cloned task has no attempts", name, t.clonedFrom)
		case a.N >= t.attempt:
			_, err := tx.ExecContext(ctx, `UPDATE tasks SET status = ?, ended = NULL, attempt = ? WHERE pk = ?`,
				string(metadata.Running), a.N, t.pk)
			if err != nil {
				return err
			}
		}
		res, err := tx.ExecContext(ctx, `
INSERT INTO attempts (task, n, status, started) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING`,
			t.pk, a.N, string(metadata.Running), nanos(a.Started))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return exists("task %s: attempt %d was already started", name, a.N)
		}
		return nil
	})
	return wrap(err, "recording the start of task %s attempt %d", name, a.N)
}

// FinishAttempt records the end of an attempt, with its status (succeeded
// or failed), end time (now when zero) and error. Unless the task already
// has a later attempt, the task takes the attempt's status and end time,
// and on success its artifacts; artifacts of a failed attempt are not kept.
// An attempt that was never started is recorded all the same.
func (s *Store) FinishAttempt(ctx context.Context, a metadata.Attempt, artifacts []metadata.Artifact) error {
	if err := checkAttempt(a); err != nil {
		return err
	}
	name := metadata.TaskPathspec(a.Flow, a.Run, a.Step, a.Task)
	if a.Status != metadata.Succeeded && a.Status != metadata.Failed {
		return fmt.Errorf("metadata: task %s: attempt %d finishes as %s or %s, not %q", name, a.N, metadata.Succeeded, metadata.Failed, a.Status)
	}
	a.Ended = metadata.TimeOrNow(a.Ended)
	if a.Status == metadata.Succeeded {
		if err := metadata.CheckArtifacts(nil, name, artifacts); err != nil {
			return err
		}
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		run, err := runPK(ctx, tx, a.Flow, a.Run)
		if err != nil {
			return err
		}
		t, ok, err := findTask(ctx, tx, run, a.Step, a.Task)
		switch {
		case err != nil:
			return err
		case !ok:
			t.attempt = a.N
			err = tx.QueryRowContext(ctx, `
INSERT INTO tasks (run, step, id, ord, status, started, attempt) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING pk`,
				run, a.Step, a.Task, metadata.TaskOrderKey(a.Task), string(a.Status), nanos(a.Started), a.N).Scan(&t.pk)
			if err != nil {
				return err
			}
		case t.clonedFrom != "":
			return fmt.Errorf("metadata: task %s was cloned from %s; a cloned task has no attempts", name, t.clonedFrom)
		}
		_, err = tx.ExecContext(ctx, `
INSERT INTO attempts (task, n, status, started, ended, error) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (task, n) DO UPDATE SET status = excluded.status, ended = excluded.ended,
	error = excluded.error, started = coalesce(attempts.started, excluded.started)`,
			t.pk, a.N, string(a.Status), nanos(a.Started), nanos(a.Ended), a.Error)
		if err != nil {
			return err
		}
		if a.N < t.attempt {
			return nil // a later attempt speaks for the task
		}
		_, err = tx.ExecContext(ctx, `UPDATE tasks SET status = ?, ended = ?, attempt = ? WHERE pk = ?`,
			string(a.Status), nanos(a.Ended), a.N, t.pk)
		if err != nil || a.Status != metadata.Succeeded {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM artifacts WHERE task = ?`, t.pk); err != nil {
			return err
		}
		return insertArtifacts(ctx, tx, t.pk, artifacts)
	})
	return wrap(err, "recording the end of task %s attempt %d", name, a.N)
}

// TaskHeartbeat records that the process of an attempt is alive at time at
// (now when zero), and moves the run's heartbeat forward to at too; both
// only move forward. ErrNotFound if there is no such attempt.
func (s *Store) TaskHeartbeat(ctx context.Context, flow, run, step, task string, attempt int, at time.Time) error {
	a := metadata.Attempt{Flow: flow, Run: run, Step: step, Task: task, N: attempt}
	if err := checkAttempt(a); err != nil {
		return err
	}
	name := metadata.TaskPathspec(flow, run, step, task)
	beat := nanos(metadata.TimeOrNow(at))
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `
UPDATE attempts SET heartbeat = max(coalesce(heartbeat, 0), ?)
WHERE n = ? AND task = (SELECT k.pk FROM tasks k JOIN runs r ON k.run = r.pk
	WHERE r.flow = ? AND r.id = ? AND k.step = ? AND k.id = ?)`,
			beat, attempt, flow, run, step, task)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return notFound("task %s has no attempt %d", name, attempt)
		}
		_, err = tx.ExecContext(ctx, `UPDATE runs SET heartbeat = ? WHERE flow = ? AND id = ? AND (heartbeat IS NULL OR heartbeat < ?)`, beat, flow, run, beat)
		return err
	})
	return wrap(err, "recording the heartbeat of task %s attempt %d", name, attempt)
}

func insertArtifacts(ctx context.Context, tx *sql.Tx, task int64, arts []metadata.Artifact) error {
	if len(arts) == 0 {
		return nil
	}
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO artifacts (task, name, type, key, size) VALUES (?, ?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	defer stmt.Close()
	for _, a := range arts {
		if _, err := stmt.ExecContext(ctx, task, a.Name, a.Type, a.Key, a.Size); err != nil {
			return err
		}
	}
	return nil
}

// CloneTask records a task copied from an origin run by resume: succeeded
// (whatever t.Status says), with t's start and end times, ClonedFrom and
// artifacts, and no attempts (t.Attempts is ignored). Recording the same
// clone again (metadata.SameClone) does nothing, so that a retry is safe;
// ErrExists if the task exists otherwise.
func (s *Store) CloneTask(ctx context.Context, t *metadata.Task) error {
	if err := metadata.CheckTaskName(t.Flow, t.Run, t.Step, t.ID); err != nil {
		return err
	}
	name := metadata.TaskPathspec(t.Flow, t.Run, t.Step, t.ID)
	if t.ClonedFrom == "" {
		return fmt.Errorf("metadata: task %s: a cloned task needs ClonedFrom, the pathspec of its origin", name)
	}
	if err := metadata.CheckArtifacts(nil, name, t.Artifacts); err != nil {
		return err
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		run, err := runPK(ctx, tx, t.Flow, t.Run)
		if err != nil {
			return err
		}
		var pk int64
		err = tx.QueryRowContext(ctx, `
INSERT INTO tasks (run, step, id, ord, status, started, ended, attempt, cloned_from) VALUES (?, ?, ?, ?, ?, ?, ?, -1, ?)
ON CONFLICT DO NOTHING RETURNING pk`,
			run, t.Step, t.ID, metadata.TaskOrderKey(t.ID), string(metadata.Succeeded), nanos(t.Started), nanos(t.Ended), t.ClonedFrom).Scan(&pk)
		if errors.Is(err, sql.ErrNoRows) {
			got, err := readTasks(ctx, tx, taskQuery{flow: t.Flow, run: t.Run, step: t.Step, id: t.ID})
			if err != nil {
				return err
			}
			if len(got) == 1 && metadata.SameClone(got[0], t) {
				return nil // recorded already: a retry
			}
			return exists("task %s already exists", name)
		}
		if err != nil {
			return err
		}
		return insertArtifacts(ctx, tx, pk, t.Artifacts)
	})
	return wrap(err, "recording clone %s of %s", name, t.ClonedFrom)
}

// GetTask returns a task with its attempts (by number) and artifacts (by
// name).
func (s *Store) GetTask(ctx context.Context, flow, run, step, task string) (*metadata.Task, error) {
	if err := metadata.CheckTaskName(flow, run, step, task); err != nil {
		return nil, err
	}
	name := metadata.TaskPathspec(flow, run, step, task)
	var t *metadata.Task
	err := s.read(ctx, func(tx *sql.Tx) error {
		tasks, err := readTasks(ctx, tx, taskQuery{flow: flow, run: run, step: step, id: task})
		if err != nil {
			return err
		}
		if len(tasks) == 0 {
			return notFound("task %s does not exist", name)
		}
		t = tasks[0]
		return nil
	})
	if err != nil {
		return nil, wrap(err, "reading task %s", name)
	}
	return t, nil
}

// ListTasks returns the tasks of a run, with their attempts and artifacts,
// by start time, then step, then task id as dotted numbers
// (metadata.CompareTasks). ErrNotFound if the run does not exist.
func (s *Store) ListTasks(ctx context.Context, flow, run string) ([]*metadata.Task, error) {
	return s.ListTasksAfter(ctx, flow, run, metadata.TaskKey{}, 0)
}

// ListTasksAfter returns at most limit (all when 0) of the tasks of a run
// that come after the task at after, in the order of ListTasks.
func (s *Store) ListTasksAfter(ctx context.Context, flow, run string, after metadata.TaskKey, limit int) ([]*metadata.Task, error) {
	if err := metadata.CheckRunName(flow, run); err != nil {
		return nil, err
	}
	var tasks []*metadata.Task
	err := s.read(ctx, func(tx *sql.Tx) error {
		if _, err := runPK(ctx, tx, flow, run); err != nil {
			return err
		}
		var err error
		tasks, err = readTasks(ctx, tx, taskQuery{flow: flow, run: run, after: after, limit: limit})
		return err
	})
	if err != nil {
		return nil, wrap(err, "listing the tasks of run %s/%s", flow, run)
	}
	return tasks, nil
}

// taskQuery selects tasks: those of a run, or one when step and id are
// set; after a task and at most limit of them (all when 0).
type taskQuery struct {
	flow, run, step, id string
	after               metadata.TaskKey
	limit               int
}

// taskOrder is the order of tasks k in SQL: that of metadata.CompareTasks.
const taskOrder = `coalesce(k.started, ` + minStarted + `), k.step, k.ord, k.id`

// readTasks reads the tasks q selects, in order, with their attempts and
// artifacts, in three queries.
func readTasks(ctx context.Context, tx *sql.Tx, q taskQuery) ([]*metadata.Task, error) {
	cond := `r.flow = ? AND r.id = ?`
	args := []any{q.flow, q.run}
	if q.step != "" {
		cond += ` AND k.step = ? AND k.id = ?`
		args = append(args, q.step, q.id)
	}
	if !q.after.IsZero() {
		started := int64(math.MinInt64 + 1)
		if !q.after.Started.IsZero() {
			started = q.after.Started.UnixNano()
		}
		cond += ` AND (` + taskOrder + `) > (?, ?, ?, ?)`
		args = append(args, started, q.after.Step, metadata.TaskOrderKey(q.after.ID), q.after.ID)
	}
	sel := `SELECT k.pk, r.flow, r.id, k.step, k.id, k.status, k.started, k.ended, k.cloned_from
FROM runs r JOIN tasks k ON k.run = r.pk WHERE ` + cond + ` ORDER BY ` + taskOrder
	if q.limit > 0 {
		sel += ` LIMIT ?`
		args = append(args, q.limit)
	}
	byPK := map[int64]*metadata.Task{}
	var (
		tasks []*metadata.Task
		pks   []int64
	)
	err := query(ctx, tx, sel, args,
		func(rows *sql.Rows) error {
			var (
				pk             int64
				t              metadata.Task
				status         string
				started, ended sql.NullInt64
			)
			if err := rows.Scan(&pk, &t.Flow, &t.Run, &t.Step, &t.ID, &status, &started, &ended, &t.ClonedFrom); err != nil {
				return err
			}
			t.Status = metadata.Status(status)
			t.Started, t.Ended = fromNanos(started), fromNanos(ended)
			byPK[pk] = &t
			tasks = append(tasks, &t)
			pks = append(pks, pk)
			return nil
		})
	if err != nil || len(tasks) == 0 {
		return tasks, err
	}
	// The keys of the tasks, as one JSON array: any number of them is one
	// parameter.
	keys, err := json.Marshal(pks)
	if err != nil {
		return nil, err
	}
	in := ` IN (SELECT value FROM json_each(?))`
	err = query(ctx, tx, `SELECT a.task, a.n, a.status, a.started, a.ended, a.error, a.heartbeat FROM attempts a WHERE a.task`+in+` ORDER BY a.task, a.n`,
		[]any{string(keys)},
		func(rows *sql.Rows) error {
			var (
				pk                        int64
				a                         metadata.Attempt
				status                    string
				started, ended, heartbeat sql.NullInt64
			)
			if err := rows.Scan(&pk, &a.N, &status, &started, &ended, &a.Error, &heartbeat); err != nil {
				return err
			}
			t := byPK[pk]
			a.Flow, a.Run, a.Step, a.Task = t.Flow, t.Run, t.Step, t.ID
			a.Status = metadata.Status(status)
			a.Started, a.Ended, a.Heartbeat = fromNanos(started), fromNanos(ended), fromNanos(heartbeat)
			t.Attempts = append(t.Attempts, a)
			return nil
		})
	if err != nil {
		return nil, err
	}
	err = query(ctx, tx, `SELECT f.task, f.name, f.type, f.key, f.size FROM artifacts f WHERE f.task`+in+` ORDER BY f.task, f.name`,
		[]any{string(keys)},
		func(rows *sql.Rows) error {
			var (
				pk int64
				a  metadata.Artifact
			)
			if err := rows.Scan(&pk, &a.Name, &a.Type, &a.Key, &a.Size); err != nil {
				return err
			}
			byPK[pk].Artifacts = append(byPK[pk].Artifacts, a)
			return nil
		})
	if err != nil {
		return nil, err
	}
	return tasks, nil
}

// query calls fn for each row of a query.
func query(ctx context.Context, tx *sql.Tx, q string, args []any, fn func(*sql.Rows) error) error {
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}
