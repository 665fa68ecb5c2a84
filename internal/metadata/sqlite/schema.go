package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"

	msqlite "modernc.org/sqlite"

	"stepwise.dev/stepwise/internal/metadata"
)

// migrations brings the schema from version i to version i+1 with
// migrations[i]; the database's PRAGMA user_version is its version. Append
// new migrations; never edit one that shipped.
//
// Times are unix nanoseconds (UTC), NULL when unknown. Runs and tasks have
// an integer key that their children refer to.
var migrations = []string{
	// 1: runs, their tags, tasks, attempts and artifacts.
	`
CREATE TABLE runs (
	pk                 INTEGER PRIMARY KEY,
	flow               TEXT    NOT NULL,
	id                 TEXT    NOT NULL,
	status             TEXT    NOT NULL,
	username           TEXT    NOT NULL DEFAULT '',
	params             TEXT    NOT NULL DEFAULT '{}', -- JSON object of strings
	started            INTEGER NOT NULL,
	ended              INTEGER,
	code_binary_sha256 TEXT    NOT NULL DEFAULT '',
	code_git_commit    TEXT    NOT NULL DEFAULT '',
	code_git_dirty     INTEGER NOT NULL DEFAULT 0,
	origin             TEXT    NOT NULL DEFAULT '', -- the run this one resumed
	UNIQUE (flow, id)
);
-- ListRuns of a flow, and of all flows, newest first.
CREATE INDEX runs_by_flow_started ON runs (flow, started DESC, id DESC);
CREATE INDEX runs_by_started ON runs (started DESC, id DESC);

CREATE TABLE run_tags (
	run    INTEGER NOT NULL REFERENCES runs (pk) ON DELETE CASCADE,
	tag    TEXT    NOT NULL,
	system INTEGER NOT NULL DEFAULT 0, -- 1 for a system tag, which cannot be removed
	PRIMARY KEY (run, tag)
) WITHOUT ROWID;
-- Runs carrying a tag.
CREATE INDEX run_tags_by_tag ON run_tags (tag, run);

CREATE TABLE tasks (
	pk          INTEGER PRIMARY KEY,
	run         INTEGER NOT NULL REFERENCES runs (pk) ON DELETE CASCADE,
	step        TEXT    NOT NULL,
	id          TEXT    NOT NULL,
	status      TEXT    NOT NULL,
	started     INTEGER,
	ended       INTEGER,
	attempt     INTEGER NOT NULL DEFAULT -1, -- the latest attempt; -1 for a clone
	cloned_from TEXT    NOT NULL DEFAULT '',
	UNIQUE (run, step, id)
);

CREATE TABLE attempts (
	task    INTEGER NOT NULL REFERENCES tasks (pk) ON DELETE CASCADE,
	n       INTEGER NOT NULL,
	status  TEXT    NOT NULL,
	started INTEGER,
	ended   INTEGER,
	error   TEXT    NOT NULL DEFAULT '',
	PRIMARY KEY (task, n)
) WITHOUT ROWID;

-- The artifacts of a task: those of its successful attempt, or its origin's
-- for a clone.
CREATE TABLE artifacts (
	task INTEGER NOT NULL REFERENCES tasks (pk) ON DELETE CASCADE,
	name TEXT    NOT NULL,
	type TEXT    NOT NULL DEFAULT '',
	key  TEXT    NOT NULL DEFAULT '',
	size INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (task, name)
) WITHOUT ROWID;
`,
	// 2: the heartbeat of a run's runtime.
	`ALTER TABLE runs ADD COLUMN heartbeat INTEGER;`,
	// 3: the heartbeat of an attempt's process.
	`ALTER TABLE attempts ADD COLUMN heartbeat INTEGER;`,
	// 4: tasks listed, and paged through, in order: by start time (unknown
	// first), step, then id as dotted numbers, whose order ord keeps
	// (metadata.TaskOrderKey); runs of all flows paged through by start
	// time, id and flow.
	`
ALTER TABLE tasks ADD COLUMN ord TEXT NOT NULL DEFAULT '';
UPDATE tasks SET ord = stepwise_task_order(id);
CREATE INDEX tasks_in_order ON tasks (run, coalesce(started, ` + minStarted + `), step, ord, id);
DROP INDEX runs_by_started;
CREATE INDEX runs_by_started ON runs (started DESC, id DESC, flow DESC);
`,
}

// minStarted stands for an unknown start time in the order of tasks: it
// comes before every known one.
const minStarted = "-9223372036854775807"

// The SQL function stepwise_task_order(id) is metadata.TaskOrderKey, for
// migration 4.
func init() {
	err := msqlite.RegisterDeterministicScalarFunction("stepwise_task_order", 1,
		func(_ *msqlite.FunctionContext, args []driver.Value) (driver.Value, error) {
			id, _ := args[0].(string)
			return metadata.TaskOrderKey(id), nil
		})
	if err != nil {
		panic(err)
	}
}

// schemaVersion reads the database's schema version.
func schemaVersion(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}) (int, error) {
	var v int
	err := q.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v)
	return v, err
}

// migrate brings the schema up to date. Several processes may open a new
// database at once: the version is read again inside the write transaction,
// so each migration runs once.
func (s *Store) migrate(ctx context.Context) error {
	var v int
	err := retryBusy(ctx, func() (err error) {
		v, err = schemaVersion(ctx, s.db)
		return err
	})
	if err != nil {
		return err
	}
	if err := s.checkVersion(v); err != nil || v == len(migrations) {
		return err
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		v, err := schemaVersion(ctx, tx)
		if err != nil {
			return err
		}
		if err := s.checkVersion(v); err != nil {
			return err
		}
		for i := v; i < len(migrations); i++ {
			if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
				return fmt.Errorf("metadata: %s: migrating the schema to version %d: %w", s.path, i+1, err)
			}
		}
		// PRAGMA takes no parameters; the version is a number of ours.
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", len(migrations))); err != nil {
			return err
		}
		s.applied = len(migrations) - v
		return nil
	})
}

// checkVersion refuses a database written by a newer Stepwise.
func (s *Store) checkVersion(v int) error {
	if v > len(migrations) {
		return fmt.Errorf("metadata: %s has schema version %d, but this program knows versions up to %d only: a newer Stepwise wrote it; upgrade Stepwise (rebuild the flow with the newer module) or use another datastore directory", s.path, v, len(migrations))
	}
	return nil
}
