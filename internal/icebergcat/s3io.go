package icebergcat

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path"
	"sync"
	"time"

	icebergio "github.com/apache/iceberg-go/io"

	"stepwise.dev/stepwise/internal/warehouse"
)

// s3IO is the Iceberg library's file access for s3:// warehouses, over
// the S3 access of tables (stepwise.dev/stepwise/backend/s3, which the
// flow imports for S3 anyway): the run's S3 settings and error hints, as
// tables and the datastore have them. It stands in for the library's Go
// CDK backend, so a flow whose Iceberg warehouse is a directory links no
// S3 client at all.
type s3IO struct {
	ctx context.Context

	mu      sync.Mutex
	buckets map[string]warehouse.FS
}

var (
	_ icebergio.ReadFileIO  = (*s3IO)(nil)
	_ icebergio.WriteFileIO = (*s3IO)(nil)
)

func init() {
	for _, scheme := range []string{"s3", "s3a"} {
		icebergio.Register(scheme, func(ctx context.Context, _ *url.URL, _ map[string]string) (icebergio.IO, error) {
			return &s3IO{ctx: context.WithoutCancel(ctx), buckets: map[string]warehouse.FS{}}, nil
		})
	}
}

// object returns the FS of name's bucket and the key in it.
func (s *s3IO) object(op, name string) (warehouse.FS, string, error) {
	u, err := url.Parse(name)
	if err != nil || u.Scheme != "s3" && u.Scheme != "s3a" || u.Host == "" {
		return nil, "", &fs.PathError{Op: op, Path: name, Err: fmt.Errorf("%w: not an s3://bucket/key location", fs.ErrInvalid)}
	}
	key := path.Clean(u.Path)[1:]
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.buckets[u.Host]
	if f == nil {
		if f, err = warehouse.Open(s.ctx, "s3://"+u.Host); err != nil {
			return nil, "", err
		}
		s.buckets[u.Host] = f
	}
	return f, key, nil
}

// pathError keeps fs.ErrNotExist visible to the library, with our
// message.
func pathError(op, name string, err error) error {
	if errors.Is(err, warehouse.ErrNotFound) {
		return &fs.PathError{Op: op, Path: name, Err: fmt.Errorf("%w: %v", fs.ErrNotExist, err)}
	}
	return err
}

func (s *s3IO) Open(name string) (icebergio.File, error) {
	f, key, err := s.object("open", name)
	if err != nil {
		return nil, err
	}
	o, err := f.Open(s.ctx, key)
	if err != nil {
		return nil, pathError("open", name, err)
	}
	return newS3File(o, name), nil
}

func (s *s3IO) ReadFile(name string) ([]byte, error) {
	f, err := s.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, f.(*s3File).Size())
	if n, err := f.ReadAt(b, 0); err != nil && !(err == io.EOF && n == len(b)) {
		return nil, err
	}
	return b, nil
}

func (s *s3IO) Remove(name string) error {
	f, key, err := s.object("remove", name)
	if err != nil {
		return err
	}
	return f.Delete(s.ctx, []string{key})
}

func (s *s3IO) WriteFile(name string, p []byte) error {
	f, key, err := s.object("write", name)
	if err != nil {
		return err
	}
	return f.Put(s.ctx, key, bytes.NewReader(p), int64(len(p)))
}

// Create writes to a temporary file, stored with one PUT by Close: S3
// shows an object whole or not at all.
func (s *s3IO) Create(name string) (icebergio.FileWriter, error) {
	f, key, err := s.object("create", name)
	if err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp("", "stepwise-iceberg-*")
	if err != nil {
		return nil, fmt.Errorf("iceberg: a temporary file for %s: %w", name, err)
	}
	return &s3Writer{s: s, f: f, key: key, tmp: tmp}, nil
}

type s3Writer struct {
	s   *s3IO
	f   warehouse.FS
	key string
	tmp *os.File
}

func (w *s3Writer) Write(p []byte) (int, error)         { return w.tmp.Write(p) }
func (w *s3Writer) ReadFrom(r io.Reader) (int64, error) { return io.Copy(w.tmp, r) }

func (w *s3Writer) Close() error {
	defer os.Remove(w.tmp.Name())
	defer w.tmp.Close()
	size, err := w.tmp.Seek(0, io.SeekCurrent)
	if err == nil {
		_, err = w.tmp.Seek(0, io.SeekStart)
	}
	if err != nil {
		return fmt.Errorf("iceberg: rewinding the temporary file of s3://%s: %w", w.key, err)
	}
	return w.f.Put(w.s.ctx, w.key, io.LimitReader(w.tmp, size), size)
}

// s3File is an object read through ranged GETs, with the io/fs methods the
// library expects of a file; io.SectionReader does the reads and seeks.
type s3File struct {
	*io.SectionReader
	f    warehouse.File
	name string
}

func newS3File(f warehouse.File, name string) *s3File {
	return &s3File{SectionReader: io.NewSectionReader(f, 0, f.Size()), f: f, name: name}
}

func (f *s3File) Close() error { return f.f.Close() }

func (f *s3File) Stat() (fs.FileInfo, error) {
	return fileInfo{name: path.Base(f.name), size: f.Size()}, nil
}

type fileInfo struct {
	name string
	size int64
}

func (i fileInfo) Name() string       { return i.name }
func (i fileInfo) Size() int64        { return i.size }
func (i fileInfo) Mode() fs.FileMode  { return 0o444 }
func (i fileInfo) ModTime() time.Time { return time.Time{} }
func (i fileInfo) IsDir() bool        { return false }
func (i fileInfo) Sys() any           { return nil }
