package postgres

import (
	"context"
	"errors"
	"math"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"stepwise.dev/stepwise/internal/metadata"
)

// checkAttempt checks an attempt's names, number and error message.
func checkAttempt(a metadata.Attempt) error {
	if err := checkTaskName(a.Flow, a.Run, a.Step, a.Task); err != nil {
		return err
	}
	name := metadata.TaskPathspec(a.Flow, a.Run, a.Step, a.Task)
	if a.N < 0 || a.N > math.MaxInt32 {
		return invalid("task %s: attempt %d: attempts are numbered from 0 to %d", name, a.N, math.MaxInt32)
	}
	return checkText("task "+name+": error", a.Error)
}

// taskRow is what a write needs to know of an existing task.
type taskRow struct {
	pk         int64
	attempt    int
	clonedFrom string
}

// lockTask finds a task and locks it for the transaction, creating it with
// the given status, start time and attempt when it does not exist; created
// says which.
func lockTask(ctx context.Context, tx pgx.Tx, run int64, a metadata.Attempt, status metadata.Status, started any) (t taskRow, created bool, err error) {
	err = tx.QueryRow(ctx, `
INSERT INTO tasks (run, step, id, ord, status, started, attempt) VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (run, step, id) DO NOTHING RETURNING pk`,
		run, a.Step, a.Task, metadata.TaskOrderKey(a.Task), string(status), started, a.N).Scan(&t.pk)
	if err == nil {
		t.attempt = a.N
		return t, true, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return t, false, err
	}
	err = tx.QueryRow(ctx, `SELECT pk, attempt, cloned_from FROM tasks WHERE run = $1 AND step = $2 AND id = $3 FOR UPDATE`,
		run, a.Step, a.Task).Scan(&t.pk, &t.attempt, &t.clonedFrom)
	return t, false, err
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
	started, err := nanos("task "+name+": start time", metadata.TimeOrNow(a.Started))
	if err != nil {
		return err
	}
	err = s.write(ctx, func(tx pgx.Tx) error {
		run, err := runPK(ctx, tx, a.Flow, a.Run)
		if err != nil {
			return err
		}
		t, created, err := lockTask(ctx, tx, run, a, metadata.Running, started)
		if err == nil && !created && t.clonedFrom == "" {
			var (
				status string
				begun  *int64
			)
			err := tx.QueryRow(ctx, `SELECT status, started FROM attempts WHERE task = $1 AND n = $2`, t.pk, a.N).Scan(&status, &begun)
			switch {
			case errors.Is(err, pgx.ErrNoRows):
			case err != nil:
				return err
			case status == string(metadata.Running) && begun != nil && started != nil && *begun == started.(int64):
				return nil // recorded already: a retry
			default:
				return exists("task %s: attempt %d was already started", name, a.N)
			}
		}
		switch {
		case err != nil:
			return err
		case created:
		case t.clonedFrom != "":
			return conflict("task %s was cloned from %s; a cloned task has no attempts", name, t.clonedFrom)
		case a.N >= t.attempt:
			_, err := tx.Exec(ctx, `UPDATE tasks SET status = $1, ended = NULL, attempt = $2 WHERE pk = $3`,
				string(metadata.Running), a.N, t.pk)
			if err != nil {
				return err
			}
		}
		tag, err := tx.Exec(ctx, `INSERT INTO attempts (task, n, status, started) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`,
			t.pk, a.N, string(metadata.Running), started)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return exists("task %s: attempt %d was already started", name, a.N)
		}
		return nil
	})
	return s.wrap(err, "recording the start of task %s attempt %d", name, a.N)
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
		return invalid("task %s: attempt %d finishes as %s or %s, not %q", name, a.N, metadata.Succeeded, metadata.Failed, a.Status)
	}
	started, err := nanos("task "+name+": start time", a.Started)
	if err != nil {
		return err
	}
	ended, err := nanos("task "+name+": end time", metadata.TimeOrNow(a.Ended))
	if err != nil {
		return err
	}
	if a.Status == metadata.Succeeded {
		if err := checkArtifacts(name, artifacts); err != nil {
			return err
		}
	}
	err = s.write(ctx, func(tx pgx.Tx) error {
		run, err := runPK(ctx, tx, a.Flow, a.Run)
		if err != nil {
			return err
		}
		t, _, err := lockTask(ctx, tx, run, a, a.Status, started)
		switch {
		case err != nil:
			return err
		case t.clonedFrom != "":
			return conflict("task %s was cloned from %s; a cloned task has no attempts", name, t.clonedFrom)
		}
		_, err = tx.Exec(ctx, `
INSERT INTO attempts (task, n, status, started, ended, error) VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (task, n) DO UPDATE SET status = excluded.status, ended = excluded.ended,
	error = excluded.error, started = coalesce(attempts.started, excluded.started)`,
			t.pk, a.N, string(a.Status), started, ended, a.Error)
		if err != nil {
			return err
		}
		if a.N < t.attempt {
			return nil // a later attempt speaks for the task
		}
		_, err = tx.Exec(ctx, `UPDATE tasks SET status = $1, ended = $2, attempt = $3 WHERE pk = $4`,
			string(a.Status), ended, a.N, t.pk)
		if err != nil || a.Status != metadata.Succeeded {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM artifacts WHERE task = $1`, t.pk); err != nil {
			return err
		}
		return insertArtifacts(ctx, tx, t.pk, artifacts)
	})
	return s.wrap(err, "recording the end of task %s attempt %d", name, a.N)
}

// TaskHeartbeat records that the process of an attempt is alive at time at
// (now when zero), and moves the run's heartbeat forward to at too; both
// only move forward. ErrNotFound if there is no such attempt.
func (s *Store) TaskHeartbeat(ctx context.Context, flow, run, step, task string, attempt int, at time.Time) error {
	if err := checkAttempt(metadata.Attempt{Flow: flow, Run: run, Step: step, Task: task, N: attempt}); err != nil {
		return err
	}
	name := metadata.TaskPathspec(flow, run, step, task)
	beat, err := nanos("task "+name+": heartbeat", metadata.TimeOrNow(at))
	if err != nil {
		return err
	}
	err = s.write(ctx, func(tx pgx.Tx) error {
		var runPK int64
		err := tx.QueryRow(ctx, `
UPDATE attempts a SET heartbeat = greatest(a.heartbeat, $1)
FROM tasks k JOIN runs r ON k.run = r.pk
WHERE a.task = k.pk AND a.n = $2 AND r.flow = $3 AND r.id = $4 AND k.step = $5 AND k.id = $6
RETURNING r.pk`, beat, attempt, flow, run, step, task).Scan(&runPK)
		if errors.Is(err, pgx.ErrNoRows) {
			return notFound("task %s has no attempt %d", name, attempt)
		}
		if err != nil {
			return err
		}
		// Many tasks of a run beat at once: a run already ahead is not
		// written (nor locked).
		_, err = tx.Exec(ctx, `UPDATE runs SET heartbeat = $1 WHERE pk = $2 AND (heartbeat IS NULL OR heartbeat < $1)`, beat, runPK)
		return err
	})
	return s.wrap(err, "recording the heartbeat of task %s attempt %d", name, attempt)
}

// checkArtifacts rejects artifacts without a name, with the same name, or
// with text PostgreSQL cannot store.
func checkArtifacts(task string, arts []metadata.Artifact) error {
	return asInvalid(metadata.CheckArtifacts(checkArtifact, task, arts))
}

// checkArtifact is the store's own rule for an artifact with a name: a name
// checkName accepts, and type and key PostgreSQL can store.
func checkArtifact(a metadata.Artifact) error {
	if err := checkName("artifact name", a.Name); err != nil {
		return err
	}
	if err := checkText("artifact "+a.Name+": type", a.Type); err != nil {
		return err
	}
	return checkText("artifact "+a.Name+": key", a.Key)
}

// insertArtifacts adds artifacts to a task, in one statement.
func insertArtifacts(ctx context.Context, tx pgx.Tx, task int64, arts []metadata.Artifact) error {
	if len(arts) == 0 {
		return nil
	}
	names, types, keys := make([]string, len(arts)), make([]string, len(arts)), make([]string, len(arts))
	sizes := make([]int64, len(arts))
	for i, a := range arts {
		names[i], types[i], keys[i], sizes[i] = a.Name, a.Type, a.Key, a.Size
	}
	_, err := tx.Exec(ctx, `
INSERT INTO artifacts (task, name, type, key, size)
SELECT $1, u.name, u.type, u.key, u.size FROM unnest($2::text[], $3::text[], $4::text[], $5::bigint[]) AS u (name, type, key, size)`,
		task, names, types, keys, sizes)
	return err
}

// CloneTask records a task copied from an origin run by resume: succeeded
// (whatever t.Status says), with t's start and end times, ClonedFrom and
// artifacts, and no attempts (t.Attempts is ignored). Recording the same
// clone again (metadata.SameClone) does nothing, so that a retry is safe;
// ErrExists if the task exists otherwise.
func (s *Store) CloneTask(ctx context.Context, t *metadata.Task) error {
	if err := checkTaskName(t.Flow, t.Run, t.Step, t.ID); err != nil {
		return err
	}
	name := metadata.TaskPathspec(t.Flow, t.Run, t.Step, t.ID)
	if t.ClonedFrom == "" {
		return invalid("task %s: a cloned task needs ClonedFrom, the pathspec of its origin", name)
	}
	if err := checkText("task "+name+": origin", t.ClonedFrom); err != nil {
		return err
	}
	if err := checkArtifacts(name, t.Artifacts); err != nil {
		return err
	}
	started, err := nanos("task "+name+": start time", t.Started)
	if err != nil {
		return err
	}
	ended, err := nanos("task "+name+": end time", t.Ended)
	if err != nil {
		return err
	}
	err = s.write(ctx, func(tx pgx.Tx) error {
		run, err := runPK(ctx, tx, t.Flow, t.Run)
		if err != nil {
			return err
		}
		var pk int64
		err = tx.QueryRow(ctx, `
INSERT INTO tasks (run, step, id, ord, status, started, ended, attempt, cloned_from) VALUES ($1, $2, $3, $4, $5, $6, $7, -1, $8)
ON CONFLICT DO NOTHING RETURNING pk`,
			run, t.Step, t.ID, metadata.TaskOrderKey(t.ID), string(metadata.Succeeded), started, ended, t.ClonedFrom).Scan(&pk)
		if errors.Is(err, pgx.ErrNoRows) {
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
	return s.wrap(err, "recording clone %s of %s", name, t.ClonedFrom)
}

// GetTask returns a task with its attempts (by number) and artifacts (by
// name).
func (s *Store) GetTask(ctx context.Context, flow, run, step, task string) (*metadata.Task, error) {
	if err := checkTaskName(flow, run, step, task); err != nil {
		return nil, err
	}
	name := metadata.TaskPathspec(flow, run, step, task)
	var t *metadata.Task
	err := s.read(ctx, func(tx pgx.Tx) error {
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
		return nil, s.wrap(err, "reading task %s", name)
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
	if err := checkRunName(flow, run); err != nil {
		return nil, err
	}
	var tasks []*metadata.Task
	err := s.read(ctx, func(tx pgx.Tx) error {
		if _, err := runPK(ctx, tx, flow, run); err != nil {
			return err
		}
		var err error
		tasks, err = readTasks(ctx, tx, taskQuery{flow: flow, run: run, after: after, limit: limit})
		return err
	})
	if err != nil {
		return nil, s.wrap(err, "listing the tasks of run %s/%s", flow, run)
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
func readTasks(ctx context.Context, tx pgx.Tx, q taskQuery) ([]*metadata.Task, error) {
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	cond := `r.flow = ` + arg(q.flow) + ` AND r.id = ` + arg(q.run)
	if q.step != "" {
		cond += ` AND k.step = ` + arg(q.step) + ` AND k.id = ` + arg(q.id)
	}
	if !q.after.IsZero() {
		started := int64(math.MinInt64 + 1)
		if !q.after.Started.IsZero() {
			started = q.after.Started.UnixNano()
		}
		cond += ` AND (` + taskOrder + `) > (` + arg(started) + `::bigint, ` + arg(q.after.Step) + `::text, ` +
			arg(metadata.TaskOrderKey(q.after.ID)) + `::text, ` + arg(q.after.ID) + `::text)`
	}
	sel := `SELECT k.pk, r.flow, r.id, k.step, k.id, k.status, k.started, k.ended, k.cloned_from
FROM runs r JOIN tasks k ON k.run = r.pk WHERE ` + cond + ` ORDER BY ` + taskOrder
	if q.limit > 0 {
		sel += ` LIMIT ` + arg(q.limit)
	}
	byPK := map[int64]*metadata.Task{}
	tasks := []*metadata.Task{}
	var pks []int64
	err := query(ctx, tx, sel, args,
		func(rows pgx.Rows) error {
			var (
				pk             int64
				t              metadata.Task
				status         string
				started, ended *int64
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
	err = query(ctx, tx, `SELECT a.task, a.n, a.status, a.started, a.ended, a.error, a.heartbeat FROM attempts a
WHERE a.task = ANY ($1::bigint[]) ORDER BY a.task, a.n`, []any{pks},
		func(rows pgx.Rows) error {
			var (
				pk                        int64
				a                         metadata.Attempt
				status                    string
				started, ended, heartbeat *int64
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
	err = query(ctx, tx, `SELECT f.task, f.name, f.type, f.key, f.size FROM artifacts f
WHERE f.task = ANY ($1::bigint[]) ORDER BY f.task, f.name`, []any{pks},
		func(rows pgx.Rows) error {
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
func query(ctx context.Context, tx pgx.Tx, q string, args []any, fn func(pgx.Rows) error) error {
	rows, err := tx.Query(ctx, q, args...)
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
