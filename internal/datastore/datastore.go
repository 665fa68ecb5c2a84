package datastore

import (
	"context"
	"errors"
	"io"
	"strings"
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
	// String names the location for messages, e.g. "/home/ann/proj/.stepwise".
	String() string
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
// must make the object under key durable (fsync) before Put returns. Task
// records and other metadata must be. Log chunks need not: they are
// informative only. Blobs need not, because fsync costs half the save
// speed and the damage it prevents is caught and repaired:
//
//   - Measured (BenchmarkPutBlob in package local, 2-core VM, ext4 on
//     virtio, random bytes): 1 GiB blobs save at 1120-1140 MB/s without
//     fsync and 560-625 MB/s with it; 128 MiB blobs at 1260-1460 vs
//     810-820 MB/s. `dd conv=fsync` of 1 GiB on the same disk ran at
//     390-2600 MB/s, so with fsync the 500 MB/s target is not kept.
//   - A process crash cannot damage a blob (the rename publishes only
//     whole files, and the page cache survives). A machine crash can
//     leave a published but unsynced blob short or empty: GetBlob checks
//     lengths and SHA-256 and reports ErrCorrupt, and PutBlob looks at the
//     header and length of an existing blob before it skips writing, so
//     running the task again stores the blob again.
func NeedsSync(key string) bool {
	return !strings.HasPrefix(key, blobPrefix) && !strings.HasPrefix(key, logPrefix)
}

const (
	blobPrefix = "blobs/"
	runsPrefix = "runs/"
	logPrefix  = "logs/"
)
