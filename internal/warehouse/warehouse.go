// Package warehouse is the object access under tables: a small file
// system interface (list, open for ranged reads, put whole, delete) with
// a local-directory implementation here and an S3 one in
// internal/warehouse/s3, chosen by the location's scheme from a registry
// that the S3 backend package joins when imported (so a flow that keeps
// its tables on local disk does not carry the AWS SDK).
package warehouse

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
)

// ErrNotFound is returned (wrapped) for a missing object.
var ErrNotFound = fs.ErrNotExist

// Object is one listed object: its key relative to the FS's root, with
// '/' separators, and its size.
type Object struct {
	Key  string
	Size int64
}

// File is an open object: ranged reads and its size.
type File interface {
	io.ReaderAt
	Size() int64
	Close() error
}

// FS is a tree of objects under one root (a directory, or a bucket and
// prefix).
type FS interface {
	// List returns every object under prefix ("" for all; "a/" for a
	// directory), sorted by key.
	List(ctx context.Context, prefix string) ([]Object, error)
	// Open opens an object for ranged reads; a missing one is an error
	// wrapping ErrNotFound.
	Open(ctx context.Context, key string) (File, error)
	// Put stores size bytes of r under key, whole or not at all: a reader
	// never sees a partial object.
	Put(ctx context.Context, key string, r io.Reader, size int64) error
	// Delete removes the objects; missing ones are not an error.
	Delete(ctx context.Context, keys []string) error
	// String is the root's location (a directory or s3://bucket/prefix).
	String() string
}

// Opener opens the FS of a location of its scheme.
type Opener func(ctx context.Context, location string) (FS, error)

var (
	mu      sync.Mutex
	openers = map[string]Opener{}
)

// S3Package is the package whose import adds s3:// locations.
const S3Package = "stepwise.dev/stepwise/backend/s3"

// Register makes locations with the scheme (s3 for s3://bucket/prefix)
// open with open. Backend packages call it from init.
func Register(scheme string, open Opener) {
	mu.Lock()
	defer mu.Unlock()
	openers[scheme] = open
}

// Open opens the FS rooted at a location: a local directory (a path or
// file:///path) or a URL of a registered scheme.
func Open(ctx context.Context, location string) (FS, error) {
	if i := strings.Index(location, "://"); i >= 0 && !strings.HasPrefix(location, "file://") {
		scheme := location[:i]
		mu.Lock()
		open := openers[scheme]
		mu.Unlock()
		if open == nil {
			if scheme == "s3" {
				return nil, fmt.Errorf("table location %s: this program does not include S3 access; add import _ %q to the flow's main package", location, S3Package)
			}
			return nil, fmt.Errorf("table location %q: unknown scheme %q; use a directory, file:///dir or s3://bucket/prefix", location, scheme)
		}
		return open(ctx, location)
	}
	dir, err := filepath.Abs(strings.TrimPrefix(location, "file://"))
	if err != nil {
		return nil, fmt.Errorf("table location %q: %w", location, err)
	}
	return &Local{Dir: dir}, nil
}

// Local is an FS on a local directory. Put writes a temporary file and
// renames it, so a reader sees a whole file or none.
type Local struct {
	Dir string
}

var _ FS = (*Local)(nil)

// String is the directory.
func (l *Local) String() string { return l.Dir }

func (l *Local) path(key string) (string, error) {
	if key == "" || strings.HasPrefix(key, "/") || strings.Contains(key, "\\") || strings.Contains(key, "\x00") {
		return "", fmt.Errorf("table: invalid object key %q", key)
	}
	for _, seg := range strings.Split(key, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return "", fmt.Errorf("table: invalid object key %q", key)
		}
	}
	return filepath.Join(l.Dir, filepath.FromSlash(key)), nil
}

// List walks the directory under prefix.
func (l *Local) List(ctx context.Context, prefix string) ([]Object, error) {
	var out []Object
	err := filepath.WalkDir(l.Dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == l.Dir && errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(l.Dir, p)
		key := filepath.ToSlash(rel)
		if !strings.HasPrefix(key, prefix) || strings.Contains(d.Name(), ".tmp-") {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		out = append(out, Object{Key: key, Size: info.Size()})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("table: cannot list %s: %w", l.Dir, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

type localFile struct {
	*os.File
	size int64
}

func (f localFile) Size() int64 { return f.size }

// Open opens a file.
func (l *Local) Open(ctx context.Context, key string) (File, error) {
	p, err := l.path(key)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("table: cannot open %s: %w", p, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("table: cannot open %s: %w", p, err)
	}
	return localFile{f, st.Size()}, nil
}

var tmpSeq atomic.Int64

// Put writes a temporary file beside the target, syncs it and renames it.
func (l *Local) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	p, err := l.path(key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("table: cannot create %s: %w", filepath.Dir(p), err)
	}
	tmp := fmt.Sprintf("%s.tmp-%d-%d", p, os.Getpid(), tmpSeq.Add(1))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("table: cannot write %s: %w", p, err)
	}
	n, err := io.Copy(f, r)
	if err == nil && size >= 0 && n != size {
		err = fmt.Errorf("wrote %d bytes, expected %d", n, size)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, p)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("table: cannot write %s: %w", p, err)
	}
	return nil
}

// Delete removes files, then the directories they leave empty.
func (l *Local) Delete(ctx context.Context, keys []string) error {
	var errs []error
	dirs := map[string]bool{}
	for _, k := range keys {
		p, err := l.path(k)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("table: cannot delete %s: %w", p, err))
		}
		for d := filepath.Dir(p); len(d) > len(l.Dir); d = filepath.Dir(d) {
			dirs[d] = true
		}
	}
	// Deepest first; a directory still holding files stays.
	ds := make([]string, 0, len(dirs))
	for d := range dirs {
		ds = append(ds, d)
	}
	sort.Slice(ds, func(i, j int) bool { return len(ds[i]) > len(ds[j]) })
	for _, d := range ds {
		os.Remove(d)
	}
	return errors.Join(errs...)
}

// Counting wraps an FS and counts the objects opened, for tests and
// benchmarks that prove what a read skipped.
type Counting struct {
	FS
	opened atomic.Int64
	mu     sync.Mutex
	keys   []string
}

// Open counts and opens.
func (c *Counting) Open(ctx context.Context, key string) (File, error) {
	c.opened.Add(1)
	c.mu.Lock()
	c.keys = append(c.keys, key)
	c.mu.Unlock()
	return c.FS.Open(ctx, key)
}

// Opened returns the keys opened so far, sorted.
func (c *Counting) Opened() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := append([]string(nil), c.keys...)
	sort.Strings(out)
	return out
}
