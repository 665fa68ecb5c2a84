package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

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
	if err := asInvalid(metadata.CheckNewRun(r)); err != nil {
		return err
	}
	name := r.Flow + "/" + r.ID
	r.Started = metadata.TimeOrNow(r.Started)
	started, err := nanos("run "+name+": start time", r.Started)
	if err != nil {
		return err
	}
	ended, err := nanos("run "+name+": end time", r.Ended)
	if err != nil {
		return err
	}
	texts := []string{"user", r.User, "origin", r.Origin, "binary SHA-256", r.Code.BinarySHA256, "git commit", r.Code.GitCommit}
	for i := 0; i < len(texts); i += 2 {
		if err := checkText("run "+name+": "+texts[i], texts[i+1]); err != nil {
			return err
		}
	}
	for _, k := range slices.Sorted(maps.Keys(r.Params)) {
		if err := checkText("run "+name+": parameter name", k); err != nil {
			return err
		}
		if err := checkText("run "+name+": parameter "+k, r.Params[k]); err != nil {
			return err
		}
	}
	params := []byte("{}")
	if len(r.Params) > 0 {
		if params, err = json.Marshal(r.Params); err != nil {
			return fmt.Errorf("metadata: run %s: encoding params: %w", name, err)
		}
	}
	err = s.write(ctx, func(tx pgx.Tx) error {
		var pk int64
		err := tx.QueryRow(ctx, `
INSERT INTO runs (flow, id, status, username, params, started, ended,
	code_binary_sha256, code_git_commit, code_git_dirty, origin)
VALUES ($1, $2, $3, $4, $5::text::jsonb, $6, $7, $8, $9, $10, $11)
ON CONFLICT (flow, id) DO NOTHING
RETURNING pk`,
			r.Flow, r.ID, string(r.Status), r.User, string(params), started, ended,
			r.Code.BinarySHA256, r.Code.GitCommit, r.Code.GitDirty, r.Origin).Scan(&pk)
		if errors.Is(err, pgx.ErrNoRows) {
			got, err := scanRun(tx.QueryRow(ctx, runSelect+` WHERE r.flow = $1 AND r.id = $2`, r.Flow, r.ID))
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
		// System tags first: a user tag equal to one is then left out.
		if err := insertTags(ctx, tx, pk, r.SystemTags, true); err != nil {
			return err
		}
		return insertTags(ctx, tx, pk, r.Tags, false)
	})
	return s.wrap(err, "recording run %s", name)
}

// insertTags adds tags to a run, leaving those it has alone. They are
// inserted in order, so that concurrent transactions tagging one run do not
// deadlock.
func insertTags(ctx context.Context, tx pgx.Tx, run int64, tags []string, system bool) error {
	if len(tags) == 0 {
		return nil
	}
	tags = slices.Compact(slices.Sorted(slices.Values(tags)))
	_, err := tx.Exec(ctx, `
INSERT INTO run_tags (run, tag, system) SELECT $1, t, $3 FROM unnest($2::text[]) WITH ORDINALITY AS u (t, i) ORDER BY i
ON CONFLICT DO NOTHING`, run, tags, system)
	return err
}

// FinishRun sets a run's final status (succeeded or failed) and end time
// (now when zero).
func (s *Store) FinishRun(ctx context.Context, flow, run string, status metadata.Status, ended time.Time) error {
	if err := checkRunName(flow, run); err != nil {
		return err
	}
	name := flow + "/" + run
	if status != metadata.Succeeded && status != metadata.Failed {
		return invalid("run %s: a run finishes as %s or %s, not %q", name, metadata.Succeeded, metadata.Failed, status)
	}
	end, err := nanos("run "+name+": end time", metadata.TimeOrNow(ended))
	if err != nil {
		return err
	}
	err = s.updateRun(ctx, flow, run, `status = $3, ended = $4`, string(status), end)
	return s.wrap(err, "finishing run %s", name)
}

// updateRun sets columns of a run: set is the SET clause, whose args are
// $3, $4...
func (s *Store) updateRun(ctx context.Context, flow, run, set string, args ...any) error {
	return s.write(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE runs SET `+set+` WHERE flow = $1 AND id = $2`, append([]any{flow, run}, args...)...)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return notFound("run %s/%s does not exist", flow, run)
		}
		return nil
	})
}

// Heartbeat records that the runtime of a run is alive at time at (now when
// zero); the heartbeat only moves forward.
func (s *Store) Heartbeat(ctx context.Context, flow, run string, at time.Time) error {
	if err := checkRunName(flow, run); err != nil {
		return err
	}
	name := flow + "/" + run
	beat, err := nanos("run "+name+": heartbeat", metadata.TimeOrNow(at))
	if err != nil {
		return err
	}
	err = s.updateRun(ctx, flow, run, `heartbeat = greatest(heartbeat, $3)`, beat)
	return s.wrap(err, "recording the heartbeat of run %s", name)
}

// runSelect reads runs r with their tags, sorted, system and user tags
// apart.
const runSelect = `
SELECT r.flow, r.id, r.status, r.username, r.params::text, r.started, r.ended,
	r.code_binary_sha256, r.code_git_commit, r.code_git_dirty, r.origin, r.heartbeat,
	coalesce(g.system_tags, '{}'), coalesce(g.tags, '{}')
FROM runs r
LEFT JOIN LATERAL (
	SELECT array_agg(t.tag ORDER BY t.tag) FILTER (WHERE t.system) AS system_tags,
		array_agg(t.tag ORDER BY t.tag) FILTER (WHERE NOT t.system) AS tags
	FROM run_tags t WHERE t.run = r.pk
) g ON true`

func scanRun(row pgx.Row) (*metadata.Run, error) {
	var (
		r         metadata.Run
		status    string
		params    string
		started   int64
		ended     *int64
		heartbeat *int64
	)
	err := row.Scan(&r.Flow, &r.ID, &status, &r.User, &params, &started, &ended,
		&r.Code.BinarySHA256, &r.Code.GitCommit, &r.Code.GitDirty, &r.Origin, &heartbeat, &r.SystemTags, &r.Tags)
	if err != nil {
		return nil, err
	}
	r.Status = metadata.Status(status)
	r.Started, r.Ended, r.Heartbeat = fromNanos(&started), fromNanos(ended), fromNanos(heartbeat)
	r.Params = map[string]string{}
	if err := json.Unmarshal([]byte(params), &r.Params); err != nil {
		return nil, fmt.Errorf("metadata: run %s/%s: decoding params: %w", r.Flow, r.ID, err)
	}
	if r.SystemTags == nil {
		r.SystemTags = []string{}
	}
	if r.Tags == nil {
		r.Tags = []string{}
	}
	return &r, nil
}

// GetRun returns a run (ErrNotFound if none).
func (s *Store) GetRun(ctx context.Context, flow, run string) (*metadata.Run, error) {
	if err := checkRunName(flow, run); err != nil {
		return nil, err
	}
	r, err := scanRun(s.pool.QueryRow(ctx, runSelect+` WHERE r.flow = $1 AND r.id = $2`, flow, run))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound("run %s/%s does not exist", flow, run)
	}
	if err != nil {
		return nil, s.wrap(err, "reading run %s/%s", flow, run)
	}
	return r, nil
}

// ListRuns returns runs matching f, newest first (by start time, then by id,
// then by flow, all descending), after f.After when it is not zero.
func (s *Store) ListRuns(ctx context.Context, f metadata.RunFilter) ([]*metadata.Run, error) {
	if err := asInvalid(metadata.CheckFilter(f)); err != nil {
		return nil, err
	}
	what := "all flows"
	if f.Flow != "" {
		what = "flow " + f.Flow
	}
	q, args, err := listRunsQuery(f)
	if err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, s.wrap(err, "listing the runs of %s", what)
	}
	defer rows.Close()
	runs := []*metadata.Run{}
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			return nil, s.wrap(err, "listing the runs of %s", what)
		}
		runs = append(runs, r)
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrap(err, "listing the runs of %s", what)
	}
	return runs, nil
}

// listRunsQuery is the query of ListRuns: runs are read in the order of an
// index (by flow or not), and each tag is a lookup in the run's tags.
func listRunsQuery(f metadata.RunFilter) (string, []any, error) {
	var (
		where []string
		args  []any
	)
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if f.Flow != "" {
		where = append(where, "r.flow = "+arg(f.Flow))
	}
	if f.Status != "" {
		where = append(where, "r.status = "+arg(string(f.Status)))
	}
	// Bounds beyond what the store holds match everything (or nothing).
	if !f.Since.IsZero() {
		where = append(where, "r.started >= "+arg(clampNanos(f.Since)))
	}
	if !f.Until.IsZero() {
		where = append(where, "r.started < "+arg(clampNanos(f.Until)))
	}
	for _, t := range slices.Compact(slices.Sorted(slices.Values(f.Tags))) {
		where = append(where, "EXISTS (SELECT 1 FROM run_tags t WHERE t.run = r.pk AND t.tag = "+arg(t)+")")
	}
	if !f.After.IsZero() {
		if err := checkText("run key", f.After.ID+f.After.Flow); err != nil {
			return "", nil, err
		}
		if f.Flow != "" { // the flow is that of every run listed
			where = append(where, "(r.started, r.id) < ("+arg(clampNanos(f.After.Started))+"::bigint, "+arg(f.After.ID)+"::text)")
		} else {
			where = append(where, "(r.started, r.id, r.flow) < ("+arg(clampNanos(f.After.Started))+"::bigint, "+arg(f.After.ID)+"::text, "+arg(f.After.Flow)+"::text)")
		}
	}
	q := runSelect
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
		q += ` LIMIT ` + arg(f.Limit)
	}
	return q, args, nil
}

// clampNanos is t in unix nanoseconds, clamped to what an int64 holds.
func clampNanos(t time.Time) int64 {
	switch {
	case t.Before(minTime):
		return minTime.UnixNano()
	case t.After(maxTime):
		return maxTime.UnixNano()
	}
	return t.UnixNano()
}

// ListFlows returns the names of all flows that have runs, sorted.
func (s *Store) ListFlows(ctx context.Context) ([]string, error) {
	return s.ListFlowsAfter(ctx, "", 0)
}

// ListFlowsAfter returns at most limit (all when 0) of the names of the
// flows that have runs, sorted, after the name after.
func (s *Store) ListFlowsAfter(ctx context.Context, after string, limit int) ([]string, error) {
	if err := checkText("flow", after); err != nil {
		return nil, err
	}
	q, args := `SELECT DISTINCT flow FROM runs WHERE flow > $1 ORDER BY flow`, []any{after}
	if limit > 0 {
		q += ` LIMIT $2`
		args = append(args, limit)
	}
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, s.wrap(err, "listing flows")
	}
	flows, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, s.wrap(err, "listing flows")
	}
	if flows == nil {
		flows = []string{}
	}
	return flows, nil
}

// runPK finds a run's key in a transaction.
func runPK(ctx context.Context, tx pgx.Tx, flow, run string) (int64, error) {
	var pk int64
	err := tx.QueryRow(ctx, `SELECT pk FROM runs WHERE flow = $1 AND id = $2`, flow, run).Scan(&pk)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, notFound("run %s/%s does not exist", flow, run)
	}
	return pk, err
}

// AddTags adds user tags to a run. Tags it has already are left as they
// are.
func (s *Store) AddTags(ctx context.Context, flow, run string, tags []string) error {
	if err := checkRunName(flow, run); err != nil {
		return err
	}
	if err := asInvalid(metadata.CheckUserTags(flow, run, tags)); err != nil {
		return err
	}
	name := flow + "/" + run
	err := s.write(ctx, func(tx pgx.Tx) error {
		pk, err := runPK(ctx, tx, flow, run)
		if err != nil {
			return err
		}
		return insertTags(ctx, tx, pk, tags, false)
	})
	return s.wrap(err, "tagging run %s", name)
}

// RemoveTags removes user tags from a run. Tags the run does not have are
// ignored; if any tag is one of its system tags, nothing is removed and the
// error says system tags cannot be removed.
func (s *Store) RemoveTags(ctx context.Context, flow, run string, tags []string) error {
	if err := checkRunName(flow, run); err != nil {
		return err
	}
	if err := asInvalid(metadata.CheckTagsToRemove(flow, run, tags)); err != nil {
		return err
	}
	name := flow + "/" + run
	for _, t := range tags {
		if err := checkText("run "+name+": tag", t); err != nil {
			return err
		}
	}
	tags = slices.Compact(slices.Sorted(slices.Values(tags)))
	err := s.write(ctx, func(tx pgx.Tx) error {
		pk, err := runPK(ctx, tx, flow, run)
		if err != nil {
			return err
		}
		if len(tags) == 0 {
			return nil
		}
		rows, err := tx.Query(ctx, `SELECT tag FROM run_tags WHERE run = $1 AND tag = ANY ($2::text[]) AND system ORDER BY tag`, pk, tags)
		if err != nil {
			return err
		}
		system, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		if len(system) > 0 {
			quoted := make([]string, len(system))
			for i, t := range system {
				quoted[i] = strconv.Quote(t)
			}
			return conflict("run %s: cannot remove %s: system tags cannot be removed, only user tags", name, strings.Join(quoted, ", "))
		}
		_, err = tx.Exec(ctx, `DELETE FROM run_tags WHERE run = $1 AND tag = ANY ($2::text[]) AND NOT system`, pk, tags)
		return err
	})
	return s.wrap(err, "untagging run %s", name)
}
