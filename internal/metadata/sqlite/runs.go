package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"stepwise.dev/stepwise/internal/metadata"
)

// CreateRun records a new run. A zero Started is set to now and an empty
// Status to running, in r too. Recording a run that is recorded already,
// the same (metadata.SameRun), does nothing, so that a retry is safe;
// ErrExists if another run has its id.
func (s *Store) CreateRun(ctx context.Context, r *metadata.Run) error {
	if r.Status == "" {
		r.Status = metadata.Running
	}
	if err := metadata.CheckNewRun(r); err != nil {
		return err
	}
	name := r.Flow + "/" + r.ID
	r.Started = metadata.TimeOrNow(r.Started)
	params := []byte("{}")
	if len(r.Params) > 0 {
		var err error
		if params, err = json.Marshal(r.Params); err != nil {
			return fmt.Errorf("metadata: run %s: encoding params: %w", name, err)
		}
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		var pk int64
		err := tx.QueryRowContext(ctx, `
INSERT INTO runs (flow, id, status, username, params, started, ended,
	code_binary_sha256, code_git_commit, code_git_dirty, origin)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (flow, id) DO NOTHING
RETURNING pk`,
			r.Flow, r.ID, string(r.Status), r.User, string(params), nanos(r.Started), nanos(r.Ended),
			r.Code.BinarySHA256, r.Code.GitCommit, r.Code.GitDirty, r.Origin).Scan(&pk)
		if errors.Is(err, sql.ErrNoRows) {
			got, err := scanRun(tx.QueryRowContext(ctx, `SELECT `+runColumns+` FROM runs r WHERE r.flow = ? AND r.id = ?`, r.Flow, r.ID))
			if err != nil {
				return err
			}
			if metadata.SameRun(got, r) {
				return nil // recorded already: a retry
			}
			return exists("run %s already exists", name)
		}
		if err != nil {
			return err
		}
		if err := insertTags(ctx, tx, pk, r.SystemTags, true); err != nil {
			return err
		}
		return insertTags(ctx, tx, pk, r.Tags, false)
	})
	return wrap(err, "recording run %s", name)
}

// insertTags adds tags to a run, leaving those it has alone.
func insertTags(ctx context.Context, tx *sql.Tx, run int64, tags []string, system bool) error {
	if len(tags) == 0 {
		return nil
	}
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO run_tags (run, tag, system) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`)
	if err != nil {
		return err
	}
	defer stmt.Close()
	for _, t := range tags {
		if _, err := stmt.ExecContext(ctx, run, t, system); err != nil {
			return err
		}
	}
	return nil
}

// FinishRun sets a run's final status (succeeded or failed) and end time
// (now when zero).
func (s *Store) FinishRun(ctx context.Context, flow, run string, status metadata.Status, ended time.Time) error {
	if err := metadata.CheckRunName(flow, run); err != nil {
		return err
	}
	name := flow + "/" + run
	if status != metadata.Succeeded && status != metadata.Failed {
		return fmt.Errorf("metadata: run %s: a run finishes as %s or %s, not %q", name, metadata.Succeeded, metadata.Failed, status)
	}
	err := s.updateRun(ctx, flow, run, `status = ?, ended = ?`, string(status), nanos(metadata.TimeOrNow(ended)))
	return wrap(err, "finishing run %s", name)
}

// updateRun sets columns of a run: set is the SET clause, with args.
func (s *Store) updateRun(ctx context.Context, flow, run, set string, args ...any) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE runs SET `+set+` WHERE flow = ? AND id = ?`, append(args, flow, run)...)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return notFound("run %s/%s does not exist", flow, run)
		}
		return nil
	})
}

// Heartbeat records that the runtime of a run is alive at time at (now when
// zero); the heartbeat only moves forward.
func (s *Store) Heartbeat(ctx context.Context, flow, run string, at time.Time) error {
	if err := metadata.CheckRunName(flow, run); err != nil {
		return err
	}
	err := s.updateRun(ctx, flow, run, `heartbeat = max(coalesce(heartbeat, 0), ?)`, nanos(metadata.TimeOrNow(at)))
	return wrap(err, "recording the heartbeat of run %s/%s", flow, run)
}

// runColumns are the columns scanRun reads; tags come as one string of
// "1tag" (system) and "0tag" (user) joined with \x1f, which tags cannot
// hold.
const runColumns = `r.flow, r.id, r.status, r.username, r.params, r.started, r.ended,
	r.code_binary_sha256, r.code_git_commit, r.code_git_dirty, r.origin, r.heartbeat,
	(SELECT group_concat(t.system || t.tag, char(31)) FROM run_tags t WHERE t.run = r.pk)`

type scanner interface{ Scan(...any) error }

func scanRun(sc scanner) (*metadata.Run, error) {
	var (
		r              metadata.Run
		status, params string
		started, ended sql.NullInt64
		heartbeat      sql.NullInt64
		tags           sql.NullString
	)
	err := sc.Scan(&r.Flow, &r.ID, &status, &r.User, &params, &started, &ended,
		&r.Code.BinarySHA256, &r.Code.GitCommit, &r.Code.GitDirty, &r.Origin, &heartbeat, &tags)
	if err != nil {
		return nil, err
	}
	r.Status = metadata.Status(status)
	r.Started, r.Ended, r.Heartbeat = fromNanos(started), fromNanos(ended), fromNanos(heartbeat)
	r.Params = map[string]string{}
	if params != "{}" && params != "" {
		if err := json.Unmarshal([]byte(params), &r.Params); err != nil {
			return nil, fmt.Errorf("metadata: run %s/%s: decoding params: %w", r.Flow, r.ID, err)
		}
	}
	r.SystemTags, r.Tags = []string{}, []string{}
	if tags.Valid {
		for t := range strings.SplitSeq(tags.String, "\x1f") {
			if len(t) < 2 {
				continue
			}
			if t[0] == '1' {
				r.SystemTags = append(r.SystemTags, t[1:])
			} else {
				r.Tags = append(r.Tags, t[1:])
			}
		}
		slices.Sort(r.SystemTags)
		slices.Sort(r.Tags)
	}
	return &r, nil
}

// GetRun returns a run (ErrNotFound if none).
func (s *Store) GetRun(ctx context.Context, flow, run string) (*metadata.Run, error) {
	if err := metadata.CheckRunName(flow, run); err != nil {
		return nil, err
	}
	var r *metadata.Run
	err := retryBusy(ctx, func() (err error) {
		row := s.db.QueryRowContext(ctx, `SELECT `+runColumns+` FROM runs r WHERE r.flow = ? AND r.id = ?`, flow, run)
		r, err = scanRun(row)
		return err
	})
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("run %s/%s does not exist", flow, run)
	}
	if err != nil {
		return nil, wrap(err, "reading run %s/%s", flow, run)
	}
	return r, nil
}

// ListRuns returns runs matching f, newest first (by start time, then by id,
// then by flow, all descending), after f.After when it is not zero.
func (s *Store) ListRuns(ctx context.Context, f metadata.RunFilter) ([]*metadata.Run, error) {
	if err := metadata.CheckFilter(f); err != nil {
		return nil, err
	}
	q, args := listRunsQuery(f)
	var runs []*metadata.Run
	err := retryBusy(ctx, func() error {
		runs = nil
		rows, err := s.db.QueryContext(ctx, q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			r, err := scanRun(rows)
			if err != nil {
				return err
			}
			runs = append(runs, r)
		}
		return rows.Err()
	})
	if err != nil {
		what := "all flows"
		if f.Flow != "" {
			what = "flow " + f.Flow
		}
		return nil, wrap(err, "listing the runs of %s", what)
	}
	return runs, nil
}

// ListFlows returns the names of all flows that have runs, sorted.
func (s *Store) ListFlows(ctx context.Context) ([]string, error) {
	return s.ListFlowsAfter(ctx, "", 0)
}

// ListFlowsAfter returns at most limit (all when 0) of the names of the
// flows that have runs, sorted, after the name after.
func (s *Store) ListFlowsAfter(ctx context.Context, after string, limit int) ([]string, error) {
	q, args := `SELECT DISTINCT flow FROM runs WHERE flow > ? ORDER BY flow`, []any{after}
	if limit > 0 {
		q += ` LIMIT ?`
		args = append(args, limit)
	}
	var flows []string
	err := retryBusy(ctx, func() error {
		flows = nil
		rows, err := s.db.QueryContext(ctx, q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var f string
			if err := rows.Scan(&f); err != nil {
				return err
			}
			flows = append(flows, f)
		}
		return rows.Err()
	})
	return flows, wrap(err, "listing flows")
}

// runPK finds a run's key in a transaction.
func runPK(ctx context.Context, tx *sql.Tx, flow, run string) (int64, error) {
	var pk int64
	err := tx.QueryRowContext(ctx, `SELECT pk FROM runs WHERE flow = ? AND id = ?`, flow, run).Scan(&pk)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, notFound("run %s/%s does not exist", flow, run)
	}
	return pk, err
}

// AddTags adds user tags to a run. Tags it has already are left as they
// are.
func (s *Store) AddTags(ctx context.Context, flow, run string, tags []string) error {
	if err := metadata.CheckRunName(flow, run); err != nil {
		return err
	}
	if err := metadata.CheckUserTags(flow, run, tags); err != nil {
		return err
	}
	name := flow + "/" + run
	err := s.write(ctx, func(tx *sql.Tx) error {
		pk, err := runPK(ctx, tx, flow, run)
		if err != nil {
			return err
		}
		return insertTags(ctx, tx, pk, tags, false)
	})
	return wrap(err, "tagging run %s", name)
}

// RemoveTags removes user tags from a run. Tags the run does not have are
// ignored; if any tag is one of its system tags, nothing is removed and the
// error says system tags cannot be removed.
func (s *Store) RemoveTags(ctx context.Context, flow, run string, tags []string) error {
	if err := metadata.CheckRunName(flow, run); err != nil {
		return err
	}
	if err := metadata.CheckTagsToRemove(flow, run, tags); err != nil {
		return err
	}
	name := flow + "/" + run
	err := s.write(ctx, func(tx *sql.Tx) error {
		pk, err := runPK(ctx, tx, flow, run)
		if err != nil {
			return err
		}
		var system []string
		for _, t := range tags {
			var sys bool
			err := tx.QueryRowContext(ctx, `SELECT system FROM run_tags WHERE run = ? AND tag = ?`, pk, t).Scan(&sys)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return err
			}
			if sys && !slices.Contains(system, t) {
				system = append(system, t)
			}
		}
		if len(system) > 0 {
			quoted := make([]string, len(system))
			for i, t := range system {
				quoted[i] = fmt.Sprintf("%q", t)
			}
			return fmt.Errorf("metadata: run %s: cannot remove %s: system tags cannot be removed, only user tags", name, strings.Join(quoted, ", "))
		}
		for _, t := range tags {
			if _, err := tx.ExecContext(ctx, `DELETE FROM run_tags WHERE run = ? AND tag = ? AND system = 0`, pk, t); err != nil {
				return err
			}
		}
		return nil
	})
	return wrap(err, "untagging run %s", name)
}

// listRunsQuery is the query of ListRuns. Runs are read in the order of an
// index; each tag is a lookup in the run's tags.
func listRunsQuery(f metadata.RunFilter) (string, []any) {
	var (
		where []string
		args  []any
	)
	if f.Flow != "" {
		where = append(where, "r.flow = ?")
		args = append(args, f.Flow)
	}
	if f.Status != "" {
		where = append(where, "r.status = ?")
		args = append(args, string(f.Status))
	}
	if !f.Since.IsZero() {
		where = append(where, "r.started >= ?")
		args = append(args, f.Since.UnixNano())
	}
	if !f.Until.IsZero() {
		where = append(where, "r.started < ?")
		args = append(args, f.Until.UnixNano())
	}
	for _, t := range slices.Compact(slices.Sorted(slices.Values(f.Tags))) {
		where = append(where, "EXISTS (SELECT 1 FROM run_tags t WHERE t.run = r.pk AND t.tag = ?)")
		args = append(args, t)
	}
	if !f.After.IsZero() {
		if f.Flow != "" { // the flow is that of every run listed
			where = append(where, "(r.started, r.id) < (?, ?)")
			args = append(args, f.After.Started.UnixNano(), f.After.ID)
		} else {
			where = append(where, "(r.started, r.id, r.flow) < (?, ?, ?)")
			args = append(args, f.After.Started.UnixNano(), f.After.ID, f.After.Flow)
		}
	}
	q := `SELECT ` + runColumns + ` FROM runs r`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	// Runs of one flow are in the order of the index by flow; of all
	// flows, in that of the index by start time.
	if f.Flow != "" {
		q += ` ORDER BY r.started DESC, r.id DESC`
	} else {
		q += ` ORDER BY r.started DESC, r.id DESC, r.flow DESC`
	}
	if f.Limit > 0 {
		q += ` LIMIT ?`
		args = append(args, f.Limit)
	}
	return q, args
}
