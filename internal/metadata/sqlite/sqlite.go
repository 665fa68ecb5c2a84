// Package sqlite is the embedded metadata store: a single SQLite database
// file, usually .stepwise/metadata.db inside the local datastore directory.
// It needs no set-up, and the flow's launcher and every task process (each a
// process of its own) use the same file at the same time.
//
// The driver is modernc.org/sqlite, a translation of SQLite to Go, so flow
// binaries stay statically linked and need no C toolchain.
//
// How it behaves under concurrency: the database is in WAL mode, so readers
// never wait for writers. Every write is one transaction begun with BEGIN
// IMMEDIATE, which takes the database's write lock up front: a writer that
// finds the lock taken waits for it (up to a busy timeout of 10 s on every
// connection) instead of failing part-way. Writers of one process also queue
// in the process, so they do not spin on SQLite's lock, and a transaction that
// still gets SQLITE_BUSY is retried for up to a minute. A write that
// returned survives the crash of any process; with synchronous=NORMAL, a
// power failure may lose the last writes but leaves the database intact.
//
// Choices the metadata.Store interface leaves open, as this store makes them
// (the conformance suite in package metadatatest checks them):
//   - Tags are returned sorted, without duplicates; Params and both tag
//     lists are never nil. A user tag equal to one of the run's system tags
//     is kept only as the system tag.
//   - Removing a tag the run does not have does nothing; removing a system
//     tag is an error and removes nothing.
//   - CreateRun fills in a zero Started (now) and an empty Status (running).
//   - A task mirrors its latest attempt (the highest N): its status and end
//     time are that attempt's, and a successful attempt's artifacts become the
//     task's. Artifacts given with a failed attempt are not kept.
//   - StartAttempt of an attempt already started returns ErrExists.
//     FinishAttempt of an attempt never started records it all the same, so
//     the launcher can record a task process that died before it started.
//   - A cloned task has no attempts; starting one on it is an error.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	msqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"stepwise.dev/stepwise/internal/metadata"
)

// Store is a metadata store in a SQLite database file. Its methods are safe
// for concurrent use, and any number of processes may open the same file.
type Store struct {
	db      *sql.DB
	path    string
	writeMu chan struct{} // one writer of this process at a time
	applied int           // schema migrations this Open applied
}

var _ metadata.Store = (*Store)(nil)

// busyTimeout is how long a statement waits for another connection's lock
// before SQLite gives up with SQLITE_BUSY.
const busyTimeout = 10 * time.Second

// retryFor is how long a transaction that failed with SQLITE_BUSY anyway is
// tried again.
const retryFor = time.Minute

// Open opens the store in the database file at path, creating the file and
// its schema if needed. The directory must exist and be writable (SQLite
// keeps its write-ahead log beside the file). Open is cheap: a task process
// opens the store for each task.
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" {
		return nil, errors.New("metadata: no path given for the SQLite metadata store")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("metadata: cannot open %s: %w", path, err)
	}
	dir := filepath.Dir(abs)
	if fi, err := os.Stat(dir); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("metadata: cannot open %s: the directory %s does not exist; create it (mkdir -p %s) or choose another datastore directory", path, dir, dir)
		}
		return nil, fmt.Errorf("metadata: cannot open %s: %w", path, err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("metadata: cannot open %s: %s is not a directory; choose another datastore directory", path, dir)
	}
	if fi, err := os.Stat(abs); err == nil && fi.IsDir() {
		return nil, fmt.Errorf("metadata: cannot open %s: it is a directory, not a database file; name a file in it, e.g. %s", path, filepath.Join(path, "metadata.db"))
	}

	// A file: URI, so that any character in the path is escaped. Every
	// connection of the pool runs these pragmas when it opens.
	dsn := (&url.URL{Scheme: "file", Path: abs}).String() + "?" + strings.Join([]string{
		"_pragma=busy_timeout(" + fmt.Sprint(busyTimeout.Milliseconds()) + ")",
		"_pragma=journal_mode(WAL)",
		"_pragma=synchronous(NORMAL)",
		"_pragma=foreign_keys(1)",
		"_txlock=immediate", // BeginTx starts with BEGIN IMMEDIATE, unless read-only
	}, "&")
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("metadata: cannot open %s: %w", path, err)
	}
	db.SetMaxIdleConns(4)
	s := &Store{db: db, path: path, writeMu: make(chan struct{}, 1)}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, s.openError(dir, err)
	}
	return s, nil
}

// openError explains why the database could not be opened: most often a
// directory this process cannot write.
func (s *Store) openError(dir string, err error) error {
	if strings.HasPrefix(err.Error(), "metadata: ") {
		return err
	}
	f, perr := os.CreateTemp(dir, ".stepwise-write-test-*")
	if perr != nil {
		return fmt.Errorf("metadata: cannot open %s: the directory %s is not writable (%v); make it writable by this user or choose another datastore directory: %w", s.path, dir, perr, err)
	}
	f.Close()
	os.Remove(f.Name())
	return fmt.Errorf("metadata: cannot open %s: %w", s.path, err)
}

// Close closes the database.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("metadata: closing %s: %w", s.path, err)
	}
	return nil
}

// Path returns the path the store was opened with.
func (s *Store) Path() string { return s.path }

// write runs fn in one write transaction (BEGIN IMMEDIATE), retried while
// SQLite reports the database busy.
func (s *Store) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	select {
	case s.writeMu <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-s.writeMu }()
	return retryBusy(ctx, func() error {
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if err := fn(tx); err != nil {
			tx.Rollback()
			return err
		}
		return tx.Commit()
	})
}

// read runs fn in one read transaction, a consistent snapshot that does not
// block writers.
func (s *Store) read(ctx context.Context, fn func(tx *sql.Tx) error) error {
	return retryBusy(ctx, func() error {
		tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
		if err != nil {
			return err
		}
		defer tx.Rollback()
		return fn(tx)
	})
}

// retryBusy calls fn until it succeeds, fails other than with SQLITE_BUSY,
// or retryFor has passed.
func retryBusy(ctx context.Context, fn func() error) error {
	start := time.Now()
	delay := time.Millisecond
	for {
		err := fn()
		if err == nil || !isBusy(err) || time.Since(start) > retryFor {
			return err
		}
		t := time.NewTimer(delay/2 + rand.N(delay))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return err
		}
		delay = min(2*delay, 100*time.Millisecond)
	}
}

// isBusy reports whether err is SQLite's "database is locked".
func isBusy(err error) bool {
	var e *msqlite.Error
	if !errors.As(err, &e) {
		return false
	}
	code := e.Code() & 0xff
	return code == sqlite3.SQLITE_BUSY || code == sqlite3.SQLITE_LOCKED
}

// sentinel is an error that reads as its own message and matches a
// sentinel error of package metadata with errors.Is.
type sentinel struct {
	msg string
	err error
}

func (e *sentinel) Error() string { return e.msg }
func (e *sentinel) Unwrap() error { return e.err }

func notFound(format string, args ...any) error {
	return &sentinel{msg: "metadata: " + fmt.Sprintf(format, args...), err: metadata.ErrNotFound}
}

func exists(format string, args ...any) error {
	return &sentinel{msg: "metadata: " + fmt.Sprintf(format, args...), err: metadata.ErrExists}
}

// wrap prefixes a database error with what was being done.
func wrap(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	var s *sentinel
	if errors.As(err, &s) || strings.HasPrefix(err.Error(), "metadata: ") {
		return err
	}
	return fmt.Errorf("metadata: %s: %w", fmt.Sprintf(format, args...), err)
}

// nanos converts a time to what the database stores: unix nanoseconds, or
// NULL for the zero time.
func nanos(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixNano()
}

// fromNanos converts a stored time back, in UTC.
func fromNanos(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return time.Unix(0, n.Int64).UTC()
}
