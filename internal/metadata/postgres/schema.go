package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// migration brings the schema from version N-1 to version N, where N is
// its position in migrations counted from 1.
type migration struct {
	name string
	sql  string
}

// migrations are the versions of the schema, in order. Append new ones;
// never edit one that shipped: a database records in schema_migrations the
// versions it has.
//
// Times are unix nanoseconds (UTC), NULL when unknown. Names are compared
// and ordered by bytes (COLLATE "C"), as Go orders strings, whatever the
// database's locale. Runs and tasks have an integer key that their children
// refer to.
var migrations = []migration{
	{"runs, their tags, tasks, attempts and artifacts", `
CREATE TABLE runs (
	pk                 bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	flow               text    COLLATE "C" NOT NULL,
	id                 text    COLLATE "C" NOT NULL,
	status             text    NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
	username           text    NOT NULL DEFAULT '',
	params             jsonb   NOT NULL DEFAULT '{}', -- object of strings
	started            bigint  NOT NULL,
	ended              bigint,
	code_binary_sha256 text    NOT NULL DEFAULT '',
	code_git_commit    text    NOT NULL DEFAULT '',
	code_git_dirty     boolean NOT NULL DEFAULT false,
	origin             text    NOT NULL DEFAULT '', -- the run this one resumed
	UNIQUE (flow, id)
);
-- ListRuns of a flow, and of all flows, newest first.
CREATE INDEX runs_by_flow_started ON runs (flow, started DESC, id DESC);
CREATE INDEX runs_by_started ON runs (started DESC, id DESC);

CREATE TABLE run_tags (
	run    bigint  NOT NULL REFERENCES runs (pk) ON DELETE CASCADE,
	tag    text    COLLATE "C" NOT NULL,
	system boolean NOT NULL DEFAULT false, -- a system tag cannot be removed
	PRIMARY KEY (run, tag)
);
-- Runs carrying a tag.
CREATE INDEX run_tags_by_tag ON run_tags (tag, run);

CREATE TABLE tasks (
	pk          bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	run         bigint  NOT NULL REFERENCES runs (pk) ON DELETE CASCADE,
	step        text    COLLATE "C" NOT NULL,
	id          text    COLLATE "C" NOT NULL,
	status      text    NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
	started     bigint,
	ended       bigint,
	attempt     integer NOT NULL DEFAULT -1, -- the latest attempt; -1 for a clone
	cloned_from text    NOT NULL DEFAULT '',
	UNIQUE (run, step, id)
);

CREATE TABLE attempts (
	task    bigint  NOT NULL REFERENCES tasks (pk) ON DELETE CASCADE,
	n       integer NOT NULL CHECK (n >= 0),
	status  text    NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
	started bigint,
	ended   bigint,
	error   text    NOT NULL DEFAULT '',
	PRIMARY KEY (task, n)
);

-- The artifacts of a task: those of its successful attempt, or its origin's
-- for a clone.
CREATE TABLE artifacts (
	task bigint NOT NULL REFERENCES tasks (pk) ON DELETE CASCADE,
	name text   COLLATE "C" NOT NULL,
	type text   NOT NULL DEFAULT '',
	key  text   NOT NULL DEFAULT '',
	size bigint NOT NULL DEFAULT 0,
	PRIMARY KEY (task, name)
);
`},
	{"the heartbeat of a run's runtime", `ALTER TABLE runs ADD COLUMN heartbeat bigint;`},
	{"the heartbeat of an attempt's process", `ALTER TABLE attempts ADD COLUMN heartbeat bigint;`},
	// Tasks are listed, and paged through, in order: by start time
	// (unknown first), step, then id as dotted numbers, whose order ord
	// keeps (metadata.TaskOrderKey); runs of all flows are paged through
	// by start time, id and flow.
	{"tasks and runs in the order of their listings", `
ALTER TABLE tasks ADD COLUMN ord text COLLATE "C" NOT NULL DEFAULT '';
UPDATE tasks SET ord = CASE
	WHEN id ~ '^[0-9]+(\.[0-9]+)*$' THEN (
		SELECT string_agg(lpad(length(p)::text, 3, '0') || p, '.' ORDER BY n)
		FROM (SELECT coalesce(nullif(ltrim(x, '0'), ''), '0') AS p, n
			FROM regexp_split_to_table(id, '\.') WITH ORDINALITY AS s (x, n)) q)
	ELSE '~' || id END;
CREATE INDEX tasks_in_order ON tasks (run, (coalesce(started, ` + minStarted + `)), step, ord, id);
DROP INDEX runs_by_started;
CREATE INDEX runs_by_started ON runs (started DESC, id DESC, flow DESC);
`},
}

// minStarted stands for an unknown start time in the order of tasks: it
// comes before every known one.
const minStarted = "-9223372036854775807"

// migrationLock is the key of the advisory lock that Open holds while it
// reads and migrates the schema ("stepwise" in ASCII).
const migrationLock int64 = 0x7374657077697365

// migrate brings the schema up to date. It holds a session advisory lock
// on one connection while it does, so that of several processes opening
// the database at once one migrates and the others wait, then find the
// schema up to date. Each migration runs in a transaction with the row that
// records it.
func (s *Store) migrate(ctx context.Context) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return s.wrap(err, "connecting to migrate the schema")
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, migrationLock); err != nil {
		return s.wrap(err, "waiting for the lock to migrate the schema")
	}
	defer func() {
		// A connection that cannot unlock is closed, which unlocks.
		if _, err := conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, migrationLock); err != nil {
			conn.Conn().Close(context.WithoutCancel(ctx))
		}
	}()
	_, err = conn.Exec(ctx, `
CREATE TABLE IF NOT EXISTS schema_migrations (
	version    integer     PRIMARY KEY,
	name       text        NOT NULL,
	applied_at timestamptz NOT NULL DEFAULT now()
)`)
	if err != nil {
		return s.wrap(err, "creating the table schema_migrations")
	}
	var v int
	if err := conn.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&v); err != nil {
		return s.wrap(err, "reading the schema version")
	}
	if v > len(migrations) {
		return fmt.Errorf("metadata: PostgreSQL %s has schema version %d, but this program knows versions up to %d only: a newer Stepwise migrated it; upgrade Stepwise (the metadata service and the flows' module) or point this one at another database", s.where, v, len(migrations))
	}
	for i := v; i < len(migrations); i++ {
		m := migrations[i]
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, i+1, m.name)
			return err
		})
		if err != nil {
			return s.wrap(err, "migrating the schema to version %d (%s)", i+1, m.name)
		}
		s.applied++
	}
	return nil
}
