package datastore

import (
	"context"
	"errors"
	"io"
	"strings"
	"time"
)

// Backend is object storage: immutable-ish objects under slash-separated
// keys. Implementations must be safe for concurrent use, also by several
// processes (and machines) sharing one location.
type Backend interface {
	// Put stores size bytes read from r under key, atomically: a concurrent
	// or later reader sees the whole object or nothing (never a partial
	// one), even if the writer crashes midway. A reader that ends before
	// size bytes, or fails, makes Put fail and store nothing. An existing
	// object under key is replaced.
	Put(ctx context.Context, key string, r io.Reader, size int64) error
	// Get opens the object under key and returns its size. A missing key
	// returns an error that matches fs.ErrNotExist with errors.Is.
	Get(ctx context.Context, key string) (io.ReadCloser, int64, error)
	// Exists reports whether an object is stored under key.
	Exists(ctx context.Context, key string) (bool, error)
	// List returns the keys under prefix (prefix "a/b/" lists every key
	// below a/b/), sorted.
	List(ctx context.Context, prefix string) ([]string, error)
	// ListDirs returns, sorted and once each, the next segment of the
	// keys under prefix ("" or ending in "/") that have more segments
	// after it: for keys a/b/c, a/b/d and a/e, ListDirs("a/") is [b].
	// It reads one level, not the whole tree below. A local backend may
	// also list a folder left empty.
	ListDirs(ctx context.Context, prefix string) ([]string, error)
	// ListInfo is List with each object's size and modification time
	// (for gc), sorted by key.
	ListInfo(ctx context.Context, prefix string) ([]ObjectInfo, error)
	// Stat returns the size and modification time of the object under
	// key. A missing key returns an error that matches fs.ErrNotExist.
	Stat(ctx context.Context, key string) (ObjectInfo, error)
	// Delete removes the object under key. Deleting a missing object is
	// not an error. Readers that opened the object before may still read
	// it, or fail; they never see other bytes.
	Delete(ctx context.Context, key string) error
	// String names the location for messages, e.g. "/home/ann/proj/.stepwise".
	String() string
}

// ObjectInfo describes a stored object.
type ObjectInfo struct {
	Key     string
	Size    int64
	ModTime time.Time // when it was last written (or touched)
}

// Toucher is implemented by backends that can set an object's
// modification time to now without writing it again. PutBlob touches a
// blob it reuses when the blob is older than RefreshAge, so that gc sees
// it as fresh; backends without Touch get the blob written again.
type Toucher interface {
	Touch(ctx context.Context, key string) error
}

// Leftover is something a writer left behind when it crashed: a
// temporary file, an unfinished multipart upload. It is invisible to
// Get, List and Exists; gc removes it once it is older than its grace
// period.
type Leftover struct {
	Name    string    // for people: the path, or key and upload id
	Size    int64     // bytes it holds, 0 when unknown
	ModTime time.Time // when it was last written, or started
	Handle  string    // what RemoveLeftover needs, backend-specific
}

// LeftoverLister is implemented by backends whose writers can leave
// leftovers behind.
type LeftoverLister interface {
	// Leftovers lists every leftover, of writers alive or dead.
	Leftovers(ctx context.Context) ([]Leftover, error)
	// RemoveLeftover removes one; removing one already gone is not an
	// error.
	RemoveLeftover(ctx context.Context, l Leftover) error
}

// RangeReader is implemented by backends that read part of an object
// cheaply (S3); the store uses it to read a blob's header alone. It returns
// at most n bytes from off, and the object's whole size.
type RangeReader interface {
	GetRange(ctx context.Context, key string, off, n int64) ([]byte, int64, error)
}

// ErrCorrupt is wrapped by the errors for stored data that fails its
// checks (checksum, length, format).
var ErrCorrupt = errors.New("datastore: corrupted data")

// Store is the artifact store over a Backend: content-addressed blobs and
// task records. It is safe for concurrent use.
type Store struct {
	b Backend
}

// New returns the store over b.
func New(b Backend) *Store { return &Store{b: b} }

// Backend returns the backend the store writes to.
func (s *Store) Backend() Backend { return s.b }

// NeedsSync reports whether a backend that can trade durability for speed
// must make the object under key durable (fsync) before Put returns. Only
// the records of runs as a whole are (runs/<flow>/<run>/run.json, end.json
// and tags.json, a few per run). Blobs, task
// records and log chunks are not: fsync costs half the save speed of a blob
// and about 10 ms per task record when tasks run in parallel, and the
// damage it prevents is caught and repaired:
//
//   - Measured (BenchmarkPutBlob in package local, 2-core VM, ext4 on
//     virtio, random bytes): 1 GiB blobs save at 1120-1140 MB/s without
//     fsync and 560-625 MB/s with it. Task records: a median of 10 ms per
//     task with fsync (file and directories) with 16 tasks in parallel,
//     0.3 ms without.
//   - A process crash cannot damage anything (the rename publishes only
//     whole files, and the page cache survives). A machine crash can leave
//     a published but unsynced object short, empty or missing: GetBlob and
//     GetTask check lengths and checksums and report ErrCorrupt, PutBlob
//     looks at an existing blob's header and length before it skips
//     writing, and resume runs again a task whose record is missing or
//     damaged.
func NeedsSync(key string) bool {
	if !strings.HasPrefix(key, runsPrefix) || strings.Count(key, "/") != 3 {
		return false
	}
	name := key[strings.LastIndexByte(key, '/')+1:]
	return name == runObject || name == endObject || name == tagsObject
}

const (
	blobPrefix = "blobs/"
	runsPrefix = "runs/"
	logPrefix  = "logs/"
)
