package objects

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"sync"
)

// Options tune a Bulk. Zero fields take the defaults.
type Options struct {
	// Root is where keys that are not URLs resolve: s3://bucket or
	// s3://bucket/prefix. Empty: every key must be an s3:// URL.
	Root string
	// Concurrency is the number of requests in flight, over all objects
	// and parts of one call; default 16.
	Concurrency int
	// PartSize is the size of the ranged reads a large object is cut
	// into; default 16 MiB.
	PartSize int64
	// TempDir is where temporary files go; default os.TempDir().
	TempDir string
}

// Object is an object that was read: to memory (Data) or to a temporary
// file (Path).
type Object struct {
	Key  string // as asked: relative to the root, or an s3:// URL
	URL  string // s3://bucket/key
	Size int64
	Data []byte // the content, when read to memory
	Path string // a temporary file holding the content, removed by Close
}

// Put is an object to write: Data, or the file at Path.
type Put struct {
	Key  string // relative to the root, or an s3:// URL
	Data []byte
	Path string
}

// Bulk does many object requests at once through a Conn.
type Bulk struct {
	conn Conn
	root loc // bucket "" when there is no root
	opts Options

	mu     sync.Mutex
	tmp    string // temporary directory, made on first use
	closed bool
}

// loc is a bucket and a key (or key prefix) in it.
type loc struct {
	bucket, key string
	asked       string // what the caller wrote
}

func (l loc) url() string { return "s3://" + l.bucket + "/" + l.key }

// New returns a Bulk over conn.
func New(conn Conn, o Options) (*Bulk, error) {
	if o.Concurrency <= 0 {
		o.Concurrency = 16
	}
	if o.PartSize <= 0 {
		o.PartSize = 16 << 20
	}
	b := &Bulk{conn: conn, opts: o}
	if o.Root != "" {
		r, err := parseURL(o.Root)
		if err != nil {
			return nil, fmt.Errorf("objects: root %w", err)
		}
		if r.key != "" && !strings.HasSuffix(r.key, "/") {
			r.key += "/"
		}
		b.root = r
	}
	return b, nil
}

// Root is the root location, s3://bucket/prefix/, or "".
func (b *Bulk) Root() string {
	if b.root.bucket == "" {
		return ""
	}
	return b.root.url()
}

// parseURL parses s3://bucket[/key].
func parseURL(s string) (loc, error) {
	rest, ok := strings.CutPrefix(s, "s3://")
	if !ok {
		return loc{}, fmt.Errorf("%q is not an S3 URL: write s3://bucket/key", s)
	}
	bucket, key, _ := strings.Cut(rest, "/")
	if !validBucket(bucket) {
		return loc{}, fmt.Errorf("%q does not name a valid bucket (%q): bucket names are 3 to 63 lowercase letters, digits, dots and hyphens; write s3://bucket/key", s, bucket)
	}
	if err := validKey(key); err != nil {
		return loc{}, fmt.Errorf("%q: %w", s, err)
	}
	return loc{bucket: bucket, key: key, asked: s}, nil
}

func validBucket(b string) bool {
	if len(b) < 3 || len(b) > 63 {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

func validKey(k string) error {
	if strings.HasPrefix(k, "/") || strings.Contains("/"+k+"/", "/../") || strings.Contains("/"+k+"/", "/./") {
		return fmt.Errorf("the key %q has an empty, '.' or '..' segment at its start; keys are slash-separated names", k)
	}
	if len(k) > 1024 {
		return fmt.Errorf("the key is %d bytes long; S3 allows 1024", len(k))
	}
	return nil
}

// resolve turns a key as the caller wrote it into a location; object is
// true for an object (its key must not be empty or end in /).
func (b *Bulk) resolve(s string, object bool) (loc, error) {
	var l loc
	switch {
	case strings.HasPrefix(s, "s3://"):
		var err error
		if l, err = parseURL(s); err != nil {
			return loc{}, err
		}
	case strings.Contains(s, "://"):
		return loc{}, fmt.Errorf("%q is not an S3 URL: write s3://bucket/key, or a key relative to the root", s)
	default:
		if b.root.bucket == "" {
			return loc{}, fmt.Errorf("key %q is relative, but there is no root to resolve it against (the run's datastore is not on S3): write s3://bucket/key or give a Root", s)
		}
		if err := validKey(s); err != nil {
			return loc{}, err
		}
		l = loc{bucket: b.root.bucket, key: b.root.key + s, asked: s}
	}
	if object && (l.key == "" || strings.HasSuffix(l.key, "/")) {
		return loc{}, fmt.Errorf("%q names a prefix, not an object: add the object's name, or read the whole prefix with GetPrefix", s)
	}
	return l, nil
}

// display is how a key under the root is shown: relative to it.
func (b *Bulk) display(bucket, key string) string {
	if b.root.bucket == bucket && strings.HasPrefix(key, b.root.key) && len(key) > len(b.root.key) {
		return key[len(b.root.key):]
	}
	return "s3://" + bucket + "/" + key
}

// explain turns a Conn's error about l into a message that names the
// object and says what to do.
func explain(op string, l loc, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("objects: cannot %s %s: it does not exist; check the key (List shows what is under a prefix): %w", op, l.url(), err)
	case errors.Is(err, ErrNoBucket):
		return fmt.Errorf("objects: cannot %s %s: the bucket %s does not exist; check the URL or the root: %w", op, l.url(), l.bucket, err)
	case errors.Is(err, ErrAccessDenied):
		return fmt.Errorf("objects: cannot %s %s: access denied; check the AWS credentials in force (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE) and that they may %s this bucket: %w", op, l.url(), op, err)
	case errors.Is(err, ErrChanged):
		return fmt.Errorf("objects: cannot %s %s: %w; read it again once its writer is done", op, l.url(), err)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("objects: %s %s: %w", op, l.url(), err)
	}
	return fmt.Errorf("objects: cannot %s %s: %w", op, l.url(), err)
}

// joinErrors reports every failure of a bulk call, the first ten in full.
func joinErrors(errs []error) error {
	var out []error
	n := 0
	for _, e := range errs {
		if e == nil {
			continue
		}
		if n++; n <= 10 {
			out = append(out, e)
		}
	}
	if n > 10 {
		out = append(out, fmt.Errorf("objects: and %d more failures", n-10))
	}
	return errors.Join(out...)
}

// Get reads the objects under keys, in parallel, to memory (toFile false)
// or to temporary files, and returns them in the order asked. Every
// failure is reported, each naming its object.
func (b *Bulk) Get(ctx context.Context, keys []string, toFile bool) ([]Object, error) {
	locs := make([]loc, len(keys))
	errs := make([]error, len(keys))
	for i, k := range keys {
		if locs[i], errs[i] = b.resolve(k, true); errs[i] != nil {
			errs[i] = fmt.Errorf("objects: %w", errs[i])
		}
	}
	if err := joinErrors(errs); err != nil {
		return nil, err
	}
	return b.get(ctx, locs, toFile)
}

func (b *Bulk) get(ctx context.Context, locs []loc, toFile bool) ([]Object, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, b.opts.Concurrency)
	objs := make([]Object, len(locs))
	errs := make([]error, len(locs))
	var wg sync.WaitGroup
	for i, l := range locs {
		wg.Go(func() {
			objs[i], errs[i] = b.getOne(ctx, sem, l, toFile)
		})
	}
	wg.Wait()
	if err := joinErrors(errs); err != nil {
		for _, o := range objs {
			if o.Path != "" {
				os.Remove(o.Path)
			}
		}
		return nil, err
	}
	return objs, nil
}

func acquire(ctx context.Context, sem chan struct{}) error {
	select {
	case sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// getOne reads one object: its first part with one request, whose
// answer also tells the object's size and version; as soon as that answer
// starts, the other parts are requested in parallel while the first one's
// body is read.
func (b *Bulk) getOne(ctx context.Context, sem chan struct{}, l loc, toFile bool) (Object, error) {
	obj := Object{Key: l.asked, URL: l.url()}
	if err := acquire(ctx, sem); err != nil {
		return obj, explain("read", l, err)
	}
	body, info, err := b.conn.Open(ctx, l.bucket, l.key, 0, b.opts.PartSize, "")
	if err != nil {
		<-sem
		return obj, explain("read", l, err)
	}
	obj.Size = info.Size
	first := min(info.Size, b.opts.PartSize)
	var dst sink
	var file *os.File
	if toFile {
		if file, err = b.tempFile(l.key); err != nil {
			body.Close()
			<-sem
			return obj, err
		}
		obj.Path = file.Name()
		dst = fileSink{file}
	} else {
		obj.Data = make([]byte, info.Size)
		dst = byteSink(obj.Data)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rest := make(chan error, 1)
	if info.Size > first {
		go func() { rest <- b.readPartsAt(ctx, sem, l, info.ETag, first, info.Size-first, dst, 0) }()
	} else {
		rest <- nil
	}
	if toFile {
		err = fileSink{file}.readAt(body, 0, first)
	} else {
		_, err = io.ReadFull(body, obj.Data[:first])
	}
	body.Close()
	<-sem
	if err != nil {
		cancel()
	}
	if rerr := <-rest; err == nil {
		err = rerr
	}
	if file != nil {
		if cerr := file.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("writing %s: %w", obj.Path, cerr)
		}
	}
	if err != nil {
		if obj.Path != "" {
			os.Remove(obj.Path)
		}
		return Object{}, explain("read", l, err)
	}
	return obj, nil
}

// sink is where an object's bytes go.
type sink interface {
	// readAt fills [off, off+n) from r.
	readAt(r io.Reader, off, n int64) error
}

// byteSink is a buffer of the object's size: parts are read straight into
// their place.
type byteSink []byte

func (s byteSink) readAt(r io.Reader, off, n int64) error {
	_, err := io.ReadFull(r, s[off:off+n])
	return err
}

// fileSink is a temporary file: parts are copied to their offset.
type fileSink struct{ f *os.File }

func (s fileSink) readAt(r io.Reader, off, n int64) error {
	m, err := io.Copy(io.NewOffsetWriter(s.f, off), io.LimitReader(r, n))
	if err == nil && m != n {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// readPartsAt reads n bytes from off of the object version etag, in parts
// of PartSize read in parallel, into dst at the same offsets minus base.
func (b *Bulk) readPartsAt(ctx context.Context, sem chan struct{}, l loc, etag string, off, n int64, dst sink, base int64) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	fail := func(err error) { once.Do(func() { first = err; cancel() }) }
	for start := off; start < off+n; start += b.opts.PartSize {
		size := min(b.opts.PartSize, off+n-start)
		if err := acquire(ctx, sem); err != nil {
			fail(err)
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			body, _, err := b.conn.Open(ctx, l.bucket, l.key, start, size, etag)
			if err == nil {
				err = dst.readAt(body, start-base, size)
				body.Close()
			}
			if err != nil {
				fail(fmt.Errorf("bytes %d-%d: %w", start, start+size-1, err))
			}
		})
	}
	wg.Wait()
	return first
}

// GetRange reads n bytes from off of the object under key; a range
// longer than PartSize is read as parallel ranged requests. A range
// past the object's end returns the bytes there are.
func (b *Bulk) GetRange(ctx context.Context, key string, off, n int64) ([]byte, error) {
	l, err := b.resolve(key, true)
	if err != nil {
		return nil, fmt.Errorf("objects: %w", err)
	}
	if off < 0 || n < 0 {
		return nil, fmt.Errorf("objects: cannot read %s from %d for %d bytes: offset and length must not be negative", l.url(), off, n)
	}
	if n == 0 {
		return []byte{}, nil
	}
	sem := make(chan struct{}, b.opts.Concurrency)
	firstN := min(n, b.opts.PartSize)
	body, info, err := b.conn.Open(ctx, l.bucket, l.key, off, firstN, "")
	if err != nil {
		return nil, explain("read", l, err)
	}
	end := min(off+n, info.Size)
	if end <= off {
		body.Close()
		return []byte{}, nil
	}
	out := make([]byte, end-off)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rest := make(chan error, 1)
	if end-off > firstN {
		go func() { rest <- b.readPartsAt(ctx, sem, l, info.ETag, off+firstN, end-off-firstN, byteSink(out), off) }()
	} else {
		rest <- nil
	}
	_, err = io.ReadFull(body, out[:min(firstN, end-off)])
	body.Close()
	if err != nil {
		cancel()
	}
	if rerr := <-rest; err == nil {
		err = rerr
	}
	if err != nil {
		return nil, explain("read", l, err)
	}
	return out, nil
}

// List returns the objects whose keys start with prefix (relative to the
// root, or an s3:// URL), sorted by key.
func (b *Bulk) List(ctx context.Context, prefix string) ([]Info, error) {
	l, err := b.resolve(prefix, false)
	if err != nil && prefix == "" && b.root.bucket != "" {
		l, err = b.root, nil
	}
	if err != nil {
		return nil, fmt.Errorf("objects: %w", err)
	}
	infos, err := b.conn.List(ctx, l.bucket, l.key)
	if err != nil {
		return nil, explain("list", l, err)
	}
	for i := range infos {
		infos[i].URL = "s3://" + l.bucket + "/" + infos[i].Key
		infos[i].Key = b.display(l.bucket, infos[i].Key)
	}
	return infos, nil
}

// GetPrefix reads every object under prefix, in parallel.
func (b *Bulk) GetPrefix(ctx context.Context, prefix string, toFile bool) ([]Object, error) {
	infos, err := b.List(ctx, prefix)
	if err != nil {
		return nil, err
	}
	locs := make([]loc, len(infos))
	for i, in := range infos {
		l, err := parseURL(in.URL)
		if err != nil {
			return nil, fmt.Errorf("objects: listing %s gave %w", prefix, err)
		}
		l.asked = in.Key
		locs[i] = l
	}
	return b.get(ctx, locs, toFile)
}

// Put writes objects in parallel and returns their URLs in order. Each
// object is written atomically: readers see it whole or not at all.
func (b *Bulk) Put(ctx context.Context, puts []Put) ([]string, error) {
	locs := make([]loc, len(puts))
	errs := make([]error, len(puts))
	for i, p := range puts {
		locs[i], errs[i] = b.resolve(p.Key, true)
		switch {
		case errs[i] != nil:
			errs[i] = fmt.Errorf("objects: %w", errs[i])
		case p.Data != nil && p.Path != "":
			errs[i] = fmt.Errorf("objects: put %s: give Data or Path, not both", locs[i].url())
		}
	}
	if err := joinErrors(errs); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, b.opts.Concurrency)
	urls := make([]string, len(puts))
	var wg sync.WaitGroup
	for i, p := range puts {
		l := locs[i]
		urls[i] = l.url()
		wg.Go(func() {
			if err := acquire(ctx, sem); err != nil {
				errs[i] = explain("write", l, err)
				return
			}
			defer func() { <-sem }()
			errs[i] = b.putOne(ctx, l, p)
		})
	}
	wg.Wait()
	if err := joinErrors(errs); err != nil {
		return nil, err
	}
	return urls, nil
}

func (b *Bulk) putOne(ctx context.Context, l loc, p Put) error {
	if p.Path == "" {
		if err := b.conn.Put(ctx, l.bucket, l.key, bytes.NewReader(p.Data), int64(len(p.Data))); err != nil {
			return explain("write", l, err)
		}
		return nil
	}
	f, err := os.Open(p.Path)
	if err != nil {
		return fmt.Errorf("objects: cannot write %s from %s: %w", l.url(), p.Path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("objects: cannot write %s from %s: %w", l.url(), p.Path, err)
	}
	if err := b.conn.Put(ctx, l.bucket, l.key, f, fi.Size()); err != nil {
		return explain("write", l, err)
	}
	return nil
}

// tempFile makes a temporary file in the Bulk's directory, named after
// the key's last segment.
func (b *Bulk) tempFile(key string) (*os.File, error) {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil, errors.New("objects: the object store is closed; open another to read to files")
	}
	if b.tmp == "" {
		dir, err := os.MkdirTemp(b.opts.TempDir, "stepwise-objects-")
		if err != nil {
			b.mu.Unlock()
			return nil, fmt.Errorf("objects: cannot make a temporary directory: %w; set TempDir to a writable directory with room", err)
		}
		b.tmp = dir
	}
	dir := b.tmp
	b.mu.Unlock()
	base := path.Base(key)
	if len(base) > 100 {
		base = base[len(base)-100:]
	}
	f, err := os.CreateTemp(dir, "*-"+strings.ReplaceAll(base, "*", "_"))
	if err != nil {
		return nil, fmt.Errorf("objects: cannot make a temporary file for %s: %w", key, err)
	}
	return f, nil
}

// Close removes the temporary files made by Get and GetPrefix.
func (b *Bulk) Close() error {
	b.mu.Lock()
	dir := b.tmp
	b.tmp, b.closed = "", true
	b.mu.Unlock()
	if dir == "" {
		return nil
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("objects: cannot remove the temporary files in %s: %w", dir, err)
	}
	return nil
}
