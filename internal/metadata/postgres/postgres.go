// Package postgres is the shared metadata store: a PostgreSQL database that
// the metadata service (package service) serves to every launcher and task
// process of a team. It implements metadata.Store with pgx and a pool of
// connections, so one service process handles many concurrent writers.
//
// Give the store a database of its own (or a schema of its own, through
// search_path in the DSN): its tables have plain names (runs, tasks,
// schema_migrations...). Open brings the schema up to date with versioned
// migrations, each applied once, in a transaction, under an advisory lock,
// so several service processes may start at once on a new database.
//
// The store makes the same choices as the embedded SQLite store, which the
// conformance suite in package metadatatest checks:
//   - Times are kept to the nanosecond (as unix nanoseconds) and come back
//     in UTC. Times must lie between the years 1678 and 2262.
//   - Tags come back sorted (by bytes), without duplicates; Params and both
//     tag lists are never nil. A user tag equal to one of the run's system
//     tags is kept only as the system tag.
//   - Removing a tag the run does not have does nothing; removing a system
//     tag is an error and removes nothing.
//   - CreateRun fills in a zero Started (now) and an empty Status (running),
//     in the Run given too.
//   - A task mirrors its latest attempt (the highest N): its status and end
//     time are that attempt's, and a successful attempt's artifacts become
//     the task's. Artifacts given with a failed attempt are not kept.
//   - StartAttempt of an attempt already started returns ErrExists.
//     FinishAttempt of an attempt never started records it all the same.
//   - A cloned task has no attempts; starting one on it is an error.
//
// Names (flows, run and task ids, steps, tags, users) follow the rules of
// package names, as in SQLite. Beyond SQLite, text PostgreSQL cannot hold
// is refused up front: strings must be valid UTF-8 without NUL bytes, and
// artifact names are at most 256 characters. Errors about bad
// input have a method Invalid() bool that returns true, and refusals because
// of what is recorded (removing a system tag, an attempt on a cloned task)
// a method Conflict() bool, and failures to reach the database (down,
// restarting) a method Unavailable() bool, so that the service can answer
// 400, 409 or 503 rather than 500.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"strings"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"stepwise.dev/stepwise/internal/metadata"
)

// Store is a metadata store in a PostgreSQL database. Its methods are safe
// for concurrent use, and any number of processes may use the same database.
type Store struct {
	pool    *pgxpool.Pool
	where   string // user@host:port/database, for messages
	applied int    // schema migrations this Open applied
}

var _ metadata.Store = (*Store)(nil)

// DefaultMaxConns is the size of the connection pool when the DSN does not
// set pool_max_conns.
const DefaultMaxConns = 32

// Open connects to the PostgreSQL database that dsn names (a URL such as
// postgres://user:password@host:5432/stepwise?sslmode=require, or key=value
// pairs) and brings its schema up to date. The DSN may set pool_max_conns
// (default DefaultMaxConns) and the other pool settings of pgxpool.
func Open(ctx context.Context, dsn string) (*Store, error) {
	if strings.TrimSpace(dsn) == "" {
		return nil, errors.New("metadata: no PostgreSQL DSN given; set one such as postgres://user:password@host:5432/stepwise")
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("metadata: cannot use the PostgreSQL DSN: %w", err)
	}
	if !strings.Contains(dsn, "pool_max_conns") {
		cfg.MaxConns = DefaultMaxConns
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = 15 * time.Second
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		cfg.ConnConfig.RuntimeParams["application_name"] = "stepwise-metadata"
	}
	c := cfg.ConnConfig
	where := fmt.Sprintf("%s@%s:%d/%s", c.User, c.Host, c.Port, c.Database)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("metadata: PostgreSQL %s: %w", where, err)
	}
	s := &Store{pool: pool, where: where}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("metadata: cannot connect to PostgreSQL %s: %w; check the DSN and that the server is up and reachable", where, err)
	}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the connections.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("metadata: PostgreSQL %s does not answer: %w", s.where, err)
	}
	return nil
}

// String names the database (without the password).
func (s *Store) String() string { return "postgres " + s.where }

// maxTries is how many times a transaction that failed with a
// serialization failure or a deadlock is run.
const maxTries = 5

// write runs fn in a read-committed transaction, again when PostgreSQL
// aborted it for a deadlock or a serialization failure, or the connection
// failed (a stale connection of the pool after a restart of the server;
// every write is safe to repeat).
func (s *Store) write(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return s.run(ctx, pgx.TxOptions{}, fn)
}

// read runs fn in a read-only transaction that sees one snapshot.
func (s *Store) read(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return s.run(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, fn)
}

func (s *Store) run(ctx context.Context, opts pgx.TxOptions, fn func(tx pgx.Tx) error) error {
	delay := 5 * time.Millisecond
	for try := 1; ; try++ {
		err := pgx.BeginTxFunc(ctx, s.pool, opts, fn)
		if err == nil || try == maxTries || !(retryable(err) || unreachable(err)) || ctx.Err() != nil {
			return err
		}
		t := time.NewTimer(delay/2 + rand.N(delay))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return err
		}
		delay *= 2
	}
}

// retryable reports whether err is a deadlock or serialization failure,
// after which the whole transaction may be run again.
func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01")
}

// Kinds of refusal.
const (
	kindNotFound = iota + 1
	kindExists
	kindInvalid
	kindConflict
	kindUnavailable
)

// refusal is an error of the store's own: a message that names what it is
// about, and its kind.
type refusal struct {
	kind int
	msg  string
	err  error // what it wraps, if anything
}

// Error returns the message.
func (e *refusal) Error() string { return e.msg }

// Unwrap returns the error the refusal wraps, such as a *names.Error.
func (e *refusal) Unwrap() error { return e.err }

// Is makes not-found and exists refusals match metadata.ErrNotFound and
// metadata.ErrExists.
func (e *refusal) Is(target error) bool {
	return (e.kind == kindNotFound && target == metadata.ErrNotFound) ||
		(e.kind == kindExists && target == metadata.ErrExists)
}

// Invalid reports whether the error is about bad input.
func (e *refusal) Invalid() bool { return e.kind == kindInvalid }

// Conflict reports whether the request conflicts with what is recorded.
func (e *refusal) Conflict() bool { return e.kind == kindConflict }

// Unavailable reports whether the database could not be reached (it is
// down, restarting, or refuses connections): the same request may work in
// a moment, and the service answers 503.
func (e *refusal) Unavailable() bool { return e.kind == kindUnavailable }

func refuse(kind int, format string, args ...any) error {
	return &refusal{kind: kind, msg: "metadata: " + fmt.Sprintf(format, args...)}
}

func notFound(format string, args ...any) error { return refuse(kindNotFound, format, args...) }
func exists(format string, args ...any) error   { return refuse(kindExists, format, args...) }
func invalid(format string, args ...any) error  { return refuse(kindInvalid, format, args...) }
func conflict(format string, args ...any) error { return refuse(kindConflict, format, args...) }

// wrap prefixes a database error with what was being done; the store's own
// errors pass as they are.
func (s *Store) wrap(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	var r *refusal
	if errors.As(err, &r) {
		return err
	}
	if unreachable(err) {
		return &refusal{kind: kindUnavailable, err: err,
			msg: fmt.Sprintf("metadata: %s: PostgreSQL %s cannot be reached: %v", fmt.Sprintf(format, args...), s.where, err)}
	}
	return fmt.Errorf("metadata: %s (PostgreSQL %s): %w", fmt.Sprintf(format, args...), s.where, err)
}

// unreachable reports whether err says that the database could not be
// reached or went away: a refused or lost connection, a server shutting
// down or starting, too many connections. Errors PostgreSQL answers with
// for other reasons (a wrong password, a missing database, a bad query)
// are not.
func unreachable(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "57P01", "57P02", "57P03", "53300": // admin or crash shutdown, cannot connect now, too many connections
			return true
		}
		return strings.HasPrefix(pe.Code, "08") // connection exception
	}
	var (
		ce *pgconn.ConnectError
		ne net.Error
	)
	return errors.As(err, &ce) || errors.As(err, &ne) || pgconn.SafeToRetry(err) || pgconn.Timeout(err) ||
		errors.Is(err, pgconn.ErrConnClosed) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// maxName is the most characters a name or tag may have.
const maxName = 256

// checkText rejects a string PostgreSQL cannot store: not UTF-8, or holding
// a NUL byte.
func checkText(what, s string) error {
	if !utf8.ValidString(s) {
		return invalid("%s %q is not valid UTF-8", what, s)
	}
	if strings.IndexByte(s, 0) >= 0 {
		return invalid("%s %q holds a NUL byte", what, s)
	}
	return nil
}

// checkName is the store's own rule for an artifact name that is not
// empty: text PostgreSQL can store, at most maxName characters, and no
// control characters.
func checkName(what, v string) error {
	if err := checkText(what, v); err != nil {
		return err
	}
	if n := utf8.RuneCountInString(v); n > maxName {
		return invalid("%s %.40q... is %d characters long, more than %d", what, v, n, maxName)
	}
	for _, r := range v {
		if unicode.IsControl(r) {
			return invalid("%s %q holds a control character", what, v)
		}
	}
	return nil
}

// checkRunName rejects a flow name or run id that package names does not
// allow.
func checkRunName(flow, run string) error {
	return asInvalid(metadata.CheckRunName(flow, run))
}

// checkTaskName rejects a flow name, run id, step name or task id that
// package names does not allow.
func checkTaskName(flow, run, step, task string) error {
	return asInvalid(metadata.CheckTaskName(flow, run, step, task))
}

// asInvalid marks an error of the checks of package metadata as one about
// bad input.
func asInvalid(err error) error {
	if err == nil {
		return nil
	}
	return &refusal{kind: kindInvalid, msg: err.Error(), err: err}
}

// The times the store can hold, as int64 unix nanoseconds.
var (
	minTime = time.Unix(0, math.MinInt64)
	maxTime = time.Unix(0, math.MaxInt64)
)

// nanos converts a time to what the database stores: unix nanoseconds, or
// NULL for the zero time.
func nanos(what string, t time.Time) (any, error) {
	if t.IsZero() {
		return nil, nil
	}
	if t.Before(minTime) || t.After(maxTime) {
		return nil, invalid("%s %s is out of range: times must lie between the years 1678 and 2262", what, t.Format(time.RFC3339))
	}
	return t.UnixNano(), nil
}

// fromNanos converts a stored time back, in UTC.
func fromNanos(n *int64) time.Time {
	if n == nil {
		return time.Time{}
	}
	return time.Unix(0, *n).UTC()
}
