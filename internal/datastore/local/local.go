// Package local is the datastore backend on a local (or shared network)
// directory: each object is a file under the directory, at its key.
//
// Put writes a temporary file ".tmp-<random>" beside the target and
// renames it over the target, so readers in any process see the whole
// object or nothing. Temporary files are invisible to List, Get and Exists;
// one left behind by a crashed writer is harmless, and Leftovers lists it
// for gc, which removes it once it is older than its grace period.
// Objects that datastore.NeedsSync names (run manifests) are fsynced, and
// so are their directories; blobs, task records and log chunks are not.
package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"stepwise.dev/stepwise/internal/datastore"
)

// tmpPrefix starts the names of files being written.
const tmpPrefix = ".tmp-"

// writeChunk bounds each write, so that cancellation is seen during long
// copies.
const writeChunk = 8 << 20

// Backend stores objects as files under a directory.
type Backend struct {
	dir string
	// sync reports whether an object must be fsynced before Put returns:
	// datastore.NeedsSync, so run manifests are and blobs are not (that
	// doc comment has the measurements; BenchmarkPutBlob/*/fsync repeats
	// them).
	sync func(key string) bool
}

var (
	_ datastore.Backend        = (*Backend)(nil)
	_ datastore.Toucher        = (*Backend)(nil)
	_ datastore.LeftoverLister = (*Backend)(nil)
)

// New opens the datastore directory dir, creating it as needed.
func New(dir string) (*Backend, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("local datastore: cannot resolve directory %q: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o777); err != nil {
		return nil, pathErr("create the datastore directory", abs, err)
	}
	return &Backend{dir: abs, sync: datastore.NeedsSync}, nil
}

// String is the directory.
func (b *Backend) String() string { return b.dir }

// checkKey rejects keys that are not relative slash-separated paths of
// plain names.
func checkKey(key string) error {
	why := ""
	switch {
	case key == "":
		why = "it is empty"
	case strings.HasPrefix(key, "/"):
		why = "it is absolute"
	case strings.ContainsAny(key, "\x00\\"):
		why = "it holds a NUL byte or a backslash"
	default:
		for _, seg := range strings.Split(key, "/") {
			switch {
			case seg == "":
				why = "it has an empty segment"
			case seg == "." || seg == "..":
				why = "it has a '" + seg + "' segment"
			case strings.HasPrefix(seg, tmpPrefix):
				why = "a segment starts with " + tmpPrefix + ", reserved for files being written"
			}
			if why != "" {
				break
			}
		}
	}
	if why != "" {
		return fmt.Errorf("local datastore: invalid key %q: %s; keys are relative slash-separated paths without '.' or '..'", key, why)
	}
	return nil
}

func (b *Backend) path(key string) string { return filepath.Join(b.dir, filepath.FromSlash(key)) }

// pathError is a failed file operation, with what to do about it.
type pathError struct {
	msg string
	err error
}

func (e *pathError) Error() string { return e.msg }
func (e *pathError) Unwrap() error { return e.err }

// Hints of the errors of file operations.
const (
	hintFull     = "free space on that disk, or choose another directory with STEPWISE_DATASTORE (or --datastore)"
	hintReadOnly = "make the directory writable for this user, or copy the datastore to a writable place and point STEPWISE_DATASTORE (or --datastore) at the copy"
)

// pathErr describes err, which happened trying to do what on path, and
// says what to do about it. A full disk is a *datastore.DiskFullError
// (matching datastore.ErrDiskFull), a file system or directory that
// cannot be written a *datastore.ReadOnlyError (matching
// datastore.ErrReadOnly); both also match the system's error.
func pathErr(what, path string, err error) error { return pathErrNeed(what, path, 0, err) }

// pathErrNeed is pathErr for a write that needed need bytes (0: unknown).
func pathErrNeed(what, path string, need int64, err error) error {
	cause := err
	var pe *fs.PathError
	if errors.As(err, &pe) {
		cause = pe.Err
	}
	var lerr *os.LinkError
	if errors.As(err, &lerr) {
		cause = lerr.Err
	}
	switch {
	case errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT):
		dir := path
		if fi, serr := os.Stat(path); serr != nil || !fi.IsDir() {
			dir = filepath.Dir(path)
		}
		full := datastore.DiskFull(what+" "+path, dir, need, hintFull, cause)
		return &pathError{msg: "local datastore: " + full.Error(), err: errors.Join(full, err)}
	case errors.Is(err, syscall.EROFS):
		ro := &datastore.ReadOnlyError{Msg: fmt.Sprintf("local datastore: cannot %s %s: %v: the datastore is on a read-only file system (reading it works); %s", what, path, cause, hintReadOnly), Err: err}
		return &pathError{msg: ro.Msg, err: ro}
	case errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM):
		ro := &datastore.ReadOnlyError{Msg: fmt.Sprintf("local datastore: cannot %s %s: %v: this user may not write there (reading works); %s", what, path, cause, hintReadOnly), Err: err}
		return &pathError{msg: ro.Msg, err: ro}
	}
	hint := ""
	if errors.Is(err, syscall.ENOTDIR) {
		hint = "; part of that path is a file, not a directory: choose another directory with STEPWISE_DATASTORE (or --datastore)"
	}
	return &pathError{msg: fmt.Sprintf("local datastore: cannot %s %s: %v%s", what, path, cause, hint), err: err}
}

func notExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// Put writes r to a temporary file beside the target and renames it over
// the target. The file is fsynced first, and the directory after, unless
// datastore.NeedsSync says the object need not be durable.
func (b *Backend) Put(ctx context.Context, key string, r io.Reader, size int64) (err error) {
	if err := checkKey(key); err != nil {
		return err
	}
	if size < 0 {
		return fmt.Errorf("local datastore: put %s: negative size %d", key, size)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("local datastore: put %s: %w", key, err)
	}
	target := b.path(key)
	dir := filepath.Dir(target)
	durable := b.sync(key)
	if err := b.mkdirs(dir, durable); err != nil {
		return err
	}
	f, tmp, err := createTemp(dir)
	if err != nil && notExist(err) {
		// gc removed the folder, empty, since mkdirs: make it again.
		if err := b.mkdirs(dir, durable); err != nil {
			return err
		}
		f, tmp, err = createTemp(dir)
	}
	if err != nil {
		return pathErr("create a file in", dir, err)
	}
	defer func() {
		if err != nil {
			if f != nil {
				f.Close()
			}
			os.Remove(tmp)
		}
	}()
	w := &limitWriter{ctx: ctx, f: f, left: size}
	bufp := copyBufs.Get().(*[]byte)
	_, err = io.CopyBuffer(w, r, *bufp)
	copyBufs.Put(bufp)
	switch {
	case w.err != nil && w.err != errFull:
		if ctx.Err() != nil {
			return fmt.Errorf("local datastore: put %s: %w", key, ctx.Err())
		}
		// Free the partial file first, so that the error tells the
		// space there is without it.
		f.Close()
		f = nil
		os.Remove(tmp)
		return pathErrNeed("write", tmp, size, w.err)
	case err != nil && err != errFull:
		return fmt.Errorf("local datastore: put %s: reading the data: %w", key, err)
	case w.left > 0:
		return fmt.Errorf("local datastore: put %s: the data ended after %d of %d bytes: %w", key, size-w.left, size, io.ErrUnexpectedEOF)
	}
	if durable {
		if err = f.Sync(); err != nil {
			return pathErr("sync", tmp, err)
		}
	}
	err = f.Close()
	f = nil
	if err != nil {
		os.Remove(tmp)
		return pathErrNeed("write", tmp, size, err)
	}
	if err = ctx.Err(); err != nil {
		return fmt.Errorf("local datastore: put %s: %w", key, err)
	}
	if err = os.Rename(tmp, target); err != nil {
		return pathErr("rename a new file to", target, err)
	}
	if durable {
		if err := syncDir(dir); err != nil {
			return pathErr("sync directory", dir, err)
		}
	}
	return nil
}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

var errFull = errors.New("local datastore: size reached")

// limitWriter writes at most left bytes to f, in writeChunk pieces,
// checking ctx before each.
type limitWriter struct {
	ctx  context.Context
	f    *os.File
	left int64
	err  error
}

func (w *limitWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		if w.left == 0 {
			w.err = errFull
			return n, errFull
		}
		if err := w.ctx.Err(); err != nil {
			w.err = err
			return n, err
		}
		c := min(int64(len(p)), int64(writeChunk), w.left)
		m, err := w.f.Write(p[:c])
		n += m
		w.left -= int64(m)
		p = p[m:]
		if err != nil {
			w.err = err
			return n, err
		}
	}
	return n, nil
}

func createTemp(dir string) (*os.File, string, error) {
	for range 100 {
		name := filepath.Join(dir, tmpPrefix+strconv.FormatUint(rand.Uint64(), 36))
		f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o666)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		return f, name, err
	}
	return nil, "", fmt.Errorf("cannot find an unused temporary name in %s", dir)
}

// mkdirs creates dir and its missing parents up to and including b.dir;
// when durable, it fsyncs the parent of each directory it creates.
func (b *Backend) mkdirs(dir string, durable bool) error {
	if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
		return nil
	}
	var missing []string
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			break
		}
		missing = append(missing, d)
		if d == b.dir || d == filepath.Dir(d) {
			break
		}
	}
	for _, d := range slices.Backward(missing) {
		if err := os.Mkdir(d, 0o777); err != nil && !errors.Is(err, fs.ErrExist) {
			return pathErr("create directory", d, err)
		}
		if durable {
			if err := syncDir(filepath.Dir(d)); err != nil {
				return pathErr("sync directory", filepath.Dir(d), err)
			}
		}
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// Get opens the file of key. A missing key matches fs.ErrNotExist.
func (b *Backend) Get(ctx context.Context, key string) (io.ReadCloser, int64, error) {
	if err := checkKey(key); err != nil {
		return nil, 0, err
	}
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	p := b.path(key)
	f, err := os.Open(p)
	if err != nil {
		if notExist(err) {
			return nil, 0, fmt.Errorf("local datastore %s: no object %s: %w", b.dir, key, fs.ErrNotExist)
		}
		return nil, 0, pathErr("open", p, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, pathErr("stat", p, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, 0, fmt.Errorf("local datastore %s: no object %s (%s is a %s): %w", b.dir, key, p, fi.Mode().Type(), fs.ErrNotExist)
	}
	return f, fi.Size(), nil
}

// Exists reports whether a file is stored at key.
func (b *Backend) Exists(ctx context.Context, key string) (bool, error) {
	if err := checkKey(key); err != nil {
		return false, err
	}
	if err := ctx.Err(); err != nil {
		return false, err
	}
	p := b.path(key)
	fi, err := os.Stat(p)
	if err != nil {
		if notExist(err) {
			return false, nil
		}
		return false, pathErr("stat", p, err)
	}
	return fi.Mode().IsRegular(), nil
}

// checkPrefix accepts "" and keys cut anywhere.
func checkPrefix(prefix string) error {
	i := strings.LastIndex(prefix, "/")
	if i < 0 || prefix == "/" {
		if strings.HasPrefix(prefix, "/") || strings.ContainsAny(prefix, "\x00\\") {
			return fmt.Errorf("local datastore: invalid list prefix %q", prefix)
		}
		return nil
	}
	if err := checkKey(prefix[:i]); err != nil {
		return fmt.Errorf("local datastore: invalid list prefix %q: %w", prefix, err)
	}
	if strings.ContainsAny(prefix[i:], "\x00\\") {
		return fmt.Errorf("local datastore: invalid list prefix %q", prefix)
	}
	return nil
}

// List returns the keys under prefix, sorted; files being written are not
// listed.
func (b *Backend) List(ctx context.Context, prefix string) ([]string, error) {
	var keys []string
	err := b.walk(ctx, prefix, func(key, _ string, _ fs.DirEntry) error {
		keys = append(keys, key)
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.Sort(keys)
	return keys, nil
}

// ListInfo returns the objects under prefix with their sizes and
// modification times, sorted by key; files being written are not listed.
func (b *Backend) ListInfo(ctx context.Context, prefix string) ([]datastore.ObjectInfo, error) {
	var objs []datastore.ObjectInfo
	err := b.walk(ctx, prefix, func(key, p string, d fs.DirEntry) error {
		fi, err := d.Info()
		if err != nil {
			if notExist(err) {
				return nil // removed while listing
			}
			return err
		}
		objs = append(objs, datastore.ObjectInfo{Key: key, Size: fi.Size(), ModTime: fi.ModTime()})
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(objs, func(a, b datastore.ObjectInfo) int { return strings.Compare(a.Key, b.Key) })
	return objs, nil
}

// walk calls fn for each regular file under prefix that is not being
// written, with its key and path.
func (b *Backend) walk(ctx context.Context, prefix string, fn func(key, path string, d fs.DirEntry) error) error {
	if err := checkPrefix(prefix); err != nil {
		return err
	}
	base := prefix[:strings.LastIndex(prefix, "/")+1] // the directory part, "" or ending in "/"
	root := b.path(base)
	if base == "" {
		root = b.dir
	}
	count := 0
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if count++; count%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if err != nil {
			if notExist(err) {
				return nil // removed while listing, or no such prefix
			}
			return err
		}
		if p == root {
			return nil
		}
		rel, err := filepath.Rel(b.dir, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if d.IsDir() {
			if !strings.HasPrefix(key+"/", prefix) && !strings.HasPrefix(prefix, key+"/") {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasPrefix(d.Name(), tmpPrefix) || !d.Type().IsRegular() || !strings.HasPrefix(key, prefix) {
			return nil
		}
		return fn(key, p, d)
	})
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return pathErr("list", root, err)
	}
	return nil
}

// Stat returns the size and modification time of the file of key.
func (b *Backend) Stat(ctx context.Context, key string) (datastore.ObjectInfo, error) {
	if err := checkKey(key); err != nil {
		return datastore.ObjectInfo{}, err
	}
	if err := ctx.Err(); err != nil {
		return datastore.ObjectInfo{}, err
	}
	p := b.path(key)
	fi, err := os.Stat(p)
	if err != nil {
		if notExist(err) {
			return datastore.ObjectInfo{}, fmt.Errorf("local datastore %s: no object %s: %w", b.dir, key, fs.ErrNotExist)
		}
		return datastore.ObjectInfo{}, pathErr("stat", p, err)
	}
	if !fi.Mode().IsRegular() {
		return datastore.ObjectInfo{}, fmt.Errorf("local datastore %s: no object %s (%s is a %s): %w", b.dir, key, p, fi.Mode().Type(), fs.ErrNotExist)
	}
	return datastore.ObjectInfo{Key: key, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// Delete removes the file of key, then the folders above it that it
// leaves empty (never the datastore directory itself). A missing file is
// not an error.
func (b *Backend) Delete(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	p := b.path(key)
	if err := os.Remove(p); err != nil && !notExist(err) {
		return pathErr("remove", p, err)
	}
	b.pruneDirs(filepath.Dir(p))
	return nil
}

// pruneDirs removes dir and its parents below b.dir while they are empty.
// A writer that finds its folder gone creates it again (see Put).
func (b *Backend) pruneDirs(dir string) {
	for d := dir; d != b.dir && strings.HasPrefix(d, b.dir+string(filepath.Separator)); d = filepath.Dir(d) {
		if os.Remove(d) != nil {
			return
		}
	}
}

// Touch sets the modification time of the file of key to now.
func (b *Backend) Touch(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	p := b.path(key)
	now := time.Now()
	if err := os.Chtimes(p, now, now); err != nil {
		if notExist(err) {
			return fmt.Errorf("local datastore %s: no object %s: %w", b.dir, key, fs.ErrNotExist)
		}
		return pathErr("touch", p, err)
	}
	return nil
}

// Leftovers lists the temporary files of writers (.tmp-*) anywhere in
// the datastore directory.
func (b *Backend) Leftovers(ctx context.Context) ([]datastore.Leftover, error) {
	var out []datastore.Leftover
	count := 0
	err := filepath.WalkDir(b.dir, func(p string, d fs.DirEntry, err error) error {
		if count++; count%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if err != nil {
			if notExist(err) {
				return nil
			}
			return err
		}
		if d.IsDir() || !strings.HasPrefix(d.Name(), tmpPrefix) {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			if notExist(err) {
				return nil
			}
			return err
		}
		out = append(out, datastore.Leftover{Name: p, Size: fi.Size(), ModTime: fi.ModTime(), Handle: p})
		return nil
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, pathErr("list", b.dir, err)
	}
	return out, nil
}

// RemoveLeftover removes a temporary file that Leftovers listed.
func (b *Backend) RemoveLeftover(ctx context.Context, l datastore.Leftover) error {
	p := filepath.Clean(l.Handle)
	if !strings.HasPrefix(p, b.dir+string(filepath.Separator)) || !strings.HasPrefix(filepath.Base(p), tmpPrefix) {
		return fmt.Errorf("local datastore %s: %q is not a temporary file of this datastore", b.dir, l.Handle)
	}
	if err := os.Remove(p); err != nil && !notExist(err) {
		return pathErr("remove", p, err)
	}
	return nil
}

// ListDirs returns the folders directly under prefix ("" or ending in
// "/"), sorted: one directory read. A folder left empty is listed too.
func (b *Backend) ListDirs(ctx context.Context, prefix string) ([]string, error) {
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		return nil, fmt.Errorf("local datastore: invalid folder prefix %q: it must be empty or end in '/'", prefix)
	}
	if err := checkPrefix(prefix); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	dir := b.dir
	if prefix != "" {
		dir = b.path(strings.TrimSuffix(prefix, "/"))
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		if notExist(err) {
			return nil, nil
		}
		return nil, pathErr("list", dir, err)
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() && !strings.HasPrefix(e.Name(), tmpPrefix) {
			names = append(names, e.Name())
		}
	}
	return names, nil // os.ReadDir sorts by name
}
