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

	"stepwise.dev/stepwise/internal/datastore"
	"stepwise.dev/stepwise/internal/metadata"
)

// Store is a metadata store in a SQLite database file. Its methods are safe
// for concurrent use, and any number of processes may open the same file.
type Store struct {
	db       *sql.DB
	path     string
	dir      string        // the absolute directory of the file
	writeMu  chan struct{} // one writer of this process at a time
	applied  int           // schema migrations this Open applied
	readOnly string        // why the store was opened for reading only; "" when writable
}

var _ metadata.Store = (*Store)(nil)

// busyTimeout is how long a statement waits for another connection's lock
// before SQLite gives up with SQLITE_BUSY.
const busyTimeout = 10 * time.Second

// retryFor is how long a transaction that failed with SQLITE_BUSY anyway is
// tried again.
const retryFor = time.Minute

// Open opens the store in the database file at path, creating the file and
// its schema if needed. The directory must exist. Open is cheap: a task
// process opens the store for each task.
//
// When the directory or the file cannot be written (a read-only copy of a
// datastore, a read-only file system), Open opens the database for
// reading only: every read works, and every write fails with an error
// that matches datastore.ErrReadOnly and says why. A database in WAL mode
// is read with its write-ahead log when the log's shared-memory file is
// there, and as it is in the main file (SQLite's immutable mode) when
// neither is; a log with content but no shared-memory file cannot be read
// without writing, and Open says so.
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
	fi, statErr := os.Stat(abs)
	if statErr == nil && fi.IsDir() {
		return nil, fmt.Errorf("metadata: cannot open %s: it is a directory, not a database file; name a file in it, e.g. %s", path, filepath.Join(path, "metadata.db"))
	}
	switch {
	case !datastore.Writable(dir):
		return openReadOnly(ctx, path, abs, "its directory "+dir+" cannot be written", statErr)
	case statErr == nil && !datastore.Writable(abs):
		return openReadOnly(ctx, path, abs, "the file cannot be written", statErr)
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
	s := &Store{db: db, path: path, dir: dir, writeMu: make(chan struct{}, 1)}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, s.openError(dir, err)
	}
	return s, nil
}

// openReadOnly opens the database at abs for reading only; why says why
// it cannot be written.
func openReadOnly(ctx context.Context, path, abs, why string, statErr error) (*Store, error) {
	dir := filepath.Dir(abs)
	if statErr != nil {
		if errors.Is(statErr, os.ErrNotExist) {
			return nil, &datastore.ReadOnlyError{Err: statErr, Msg: fmt.Sprintf(
				"metadata: %s does not exist, and it cannot be created: %s (a read-only datastore?); run once where the datastore is writable, or copy it to a writable place and point STEPWISE_DATASTORE at the copy", path, why)}
		}
		return nil, fmt.Errorf("metadata: cannot open %s: %w", path, statErr)
	}
	base := (&url.URL{Scheme: "file", Path: abs}).String() + "?_pragma=busy_timeout(" + fmt.Sprint(busyTimeout.Milliseconds()) + ")&_pragma=foreign_keys(1)&mode=ro"
	walInfo, walErr := os.Stat(abs + "-wal")
	_, shmErr := os.Stat(abs + "-shm")
	walPending := walErr == nil && walInfo.Size() > 0
	modes := []string{""}
	if !walPending || shmErr != nil {
		// No log to read, or no way to read it: the main file as it is.
		modes = append(modes, "&immutable=1")
	}
	var firstErr error
	for _, mode := range modes {
		db, err := sql.Open("sqlite", base+mode)
		if err != nil {
			return nil, fmt.Errorf("metadata: cannot open %s: %w", path, err)
		}
		db.SetMaxIdleConns(4)
		s := &Store{db: db, path: path, dir: dir, writeMu: make(chan struct{}, 1), readOnly: why}
		v, err := schemaVersion(ctx, db)
		if err != nil {
			db.Close()
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		if mode != "" && walPending {
			db.Close()
			return nil, &datastore.ReadOnlyError{Err: firstErr, Msg: fmt.Sprintf(
				"metadata: cannot read %s for reading only: %s, and its write-ahead log %s-wal holds changes that SQLite can read only with its shared-memory file %s-shm, which is missing and cannot be created; copy the datastore (with %s-wal) to a writable place and point STEPWISE_DATASTORE at the copy",
				path, why, path, path, filepath.Base(path))}
		}
		switch err := s.checkVersion(v); {
		case err != nil:
			db.Close()
			return nil, err
		case v < len(migrations):
			db.Close()
			return nil, &datastore.ReadOnlyError{Msg: fmt.Sprintf(
				"metadata: %s has schema version %d, older than this program's %d, and cannot be upgraded: %s; open it once where it can be written (this program upgrades it), or with the Stepwise that wrote it", path, v, len(migrations), why)}
		}
		return s, nil
	}
	return nil, fmt.Errorf("metadata: cannot open %s for reading (%s): %w", path, why, firstErr)
}

// openError explains why the database could not be opened: most often a
// directory this process cannot write, or a full disk.
func (s *Store) openError(dir string, err error) error {
	err = s.translate(err)
	if strings.HasPrefix(err.Error(), "metadata: ") {
		return err
	}
	var full *datastore.DiskFullError
	if errors.As(err, &full) {
		return fmt.Errorf("metadata: cannot open %s: %w", s.path, err)
	}
	f, perr := os.CreateTemp(dir, ".stepwise-write-test-*")
	if perr != nil {
		return fmt.Errorf("metadata: cannot open %s: the directory %s is not writable (%v); make it writable by this user or choose another datastore directory: %w", s.path, dir, perr, err)
	}
	f.Close()
	os.Remove(f.Name())
	return fmt.Errorf("metadata: cannot open %s: %w", s.path, err)
}

// ReadOnly returns why the store was opened for reading only, or "" when
// it can be written.
func (s *Store) ReadOnly() string { return s.readOnly }

// hintFull is what to do about a full disk.
const hintFull = "free space on that disk, or choose another datastore directory with STEPWISE_DATASTORE (or --datastore)"

// translate turns SQLite's errors for a full disk and a read-only
// database into errors that say so: a *datastore.DiskFullError (matching
// datastore.ErrDiskFull) that names the directory, its file system and
// the space free, or a *datastore.ReadOnlyError. SQLite reports a full
// disk as "database or disk is full", or as an I/O error when the disk
// filled while it grew its shared memory or log ("disk I/O error
// (4874)"); an I/O error counts as a full disk when less than 1 MiB is
// free there. Other errors are returned as they are.
func (s *Store) translate(err error) error {
	var e *msqlite.Error
	if err == nil || !errors.As(err, &e) {
		return err
	}
	what := "write to the metadata store " + s.path
	switch e.Code() & 0xff {
	case sqlite3.SQLITE_FULL:
		return datastore.DiskFull(what, s.dir, 0, hintFull, err)
	case sqlite3.SQLITE_IOERR:
		if free, ok := datastore.FreeBytes(s.dir); ok && free < 1<<20 {
			return datastore.DiskFull(what, s.dir, 0, hintFull, err)
		}
	case sqlite3.SQLITE_READONLY:
		return &datastore.ReadOnlyError{Err: err, Msg: fmt.Sprintf(
			"cannot %s: %v: the database cannot be written (a read-only file system, or a file of another user); reading works; make %s writable, or copy the datastore to a writable place and point STEPWISE_DATASTORE at the copy", what, err, s.dir)}
	}
	return err
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
	if s.readOnly != "" {
		return &datastore.ReadOnlyError{Msg: fmt.Sprintf(
			"the metadata store %s was opened for reading only, because %s (a read-only copy of a datastore?): reading works, writing does not; make it writable, or copy the datastore to a writable place and point STEPWISE_DATASTORE at the copy", s.path, s.readOnly)}
	}
	select {
	case s.writeMu <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-s.writeMu }()
	return s.translate(retryBusy(ctx, func() error {
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if err := fn(tx); err != nil {
			tx.Rollback()
			return err
		}
		return tx.Commit()
	}))
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
