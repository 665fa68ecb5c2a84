// Package s3 is the datastore backend on Amazon S3 and S3-compatible
// stores (MinIO, ...). It uses the standard AWS credential chain and
// region, and the standard endpoint variables AWS_ENDPOINT_URL_S3 and
// AWS_ENDPOINT_URL. Large objects go up as parallel multipart uploads and
// come down as parallel ranged reads; an object is visible under its key
// only once it is whole (S3 shows a PUT or a completed multipart upload
// atomically).
package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"stepwise.dev/stepwise/internal/datastore"
)

// Options tune the backend. Zero fields take the defaults.
type Options struct {
	Endpoint    string // overrides the AWS_ENDPOINT_URL_* variables
	Region      string // overrides the region chain (default us-east-1 when none is found)
	PartSize    int64  // multipart part size, default 16 MiB
	Concurrency int    // parts in flight per object, default 8
	MaxAttempts int    // per request, with backoff, default 10

	idleConns int // connections kept open per host; 0: the SDK's default
}

// Backend stores objects under a prefix of a bucket.
type Backend struct {
	client *s3.Client
	bucket string
	prefix string // "" or ending in "/"
	opts   Options
}

var (
	_ datastore.Backend        = (*Backend)(nil)
	_ datastore.Toucher        = (*Backend)(nil)
	_ datastore.LeftoverLister = (*Backend)(nil)
)

// New opens s3://bucket/prefix.
func New(ctx context.Context, rawURL string, o Options) (*Backend, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "s3" || u.Host == "" {
		return nil, fmt.Errorf("s3: %q is not an S3 location; write s3://bucket/prefix", rawURL)
	}
	o = o.withDefaults()
	client, err := newClient(ctx, o)
	if err != nil {
		return nil, err
	}
	prefix := strings.Trim(u.Path, "/")
	if prefix != "" {
		prefix += "/"
	}
	return &Backend{client: client, bucket: u.Host, prefix: prefix, opts: o}, nil
}

func (o Options) withDefaults() Options {
	if o.PartSize <= 0 {
		o.PartSize = 16 << 20
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 8
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 10
	}
	return o
}

// newClient makes the datastore's S3 client.
func newClient(ctx context.Context, o Options) (*s3.Client, error) {
	return NewClient(ctx, ClientOptions{Endpoint: o.Endpoint, Region: o.Region, MaxAttempts: o.MaxAttempts, IdleConns: o.idleConns})
}

// ClientOptions tune an S3 client. Zero fields take the environment's
// settings or the SDK's defaults.
type ClientOptions struct {
	Endpoint    string       // overrides AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL
	Region      string       // default: the AWS chain, else us-east-1
	MaxAttempts int          // per request, with backoff up to 5 s; refused connections are retried too
	IdleConns   int          // idle connections kept per host, when more than the SDK's default
	HTTPClient  *http.Client // e.g. one whose transport counts requests
}

// NewClient makes an S3 client from the AWS settings of the environment
// (credential chain, region, AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL),
// each overridden by o, as every part of Stepwise that reads S3 with the
// run's settings makes it: path-style addressing for an endpoint of its
// own (S3-compatible stores on a host:port), and no SDK checksum on every
// request (what is stored carries its own: blobs their SHA-256, Parquet
// its page checksums).
func NewClient(ctx context.Context, o ClientOptions) (*s3.Client, error) {
	loadOpts := []func(*config.LoadOptions) error{
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(so *retry.StandardOptions) {
				if o.MaxAttempts > 0 {
					so.MaxAttempts = o.MaxAttempts
				}
				so.MaxBackoff = 5 * time.Second
				// Restarts of a store look like refused connections: retry them too.
				so.Retryables = append(so.Retryables, retry.RetryableConnectionError{})
			})
		}),
	}
	if o.Region != "" {
		loadOpts = append(loadOpts, config.WithRegion(o.Region))
	}
	if o.IdleConns > 0 && o.HTTPClient == nil {
		loadOpts = append(loadOpts, config.WithHTTPClient(awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
			tr.MaxIdleConns = max(tr.MaxIdleConns, o.IdleConns)
			tr.MaxIdleConnsPerHost = o.IdleConns
		})))
	}
	cfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, fmt.Errorf("s3: cannot load the AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	endpoint := o.Endpoint
	if endpoint == "" {
		endpoint = firstEnv("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
	}
	return s3.NewFromConfig(cfg, func(so *s3.Options) {
		if endpoint != "" {
			so.BaseEndpoint = aws.String(endpoint)
			so.UsePathStyle = true
		}
		if o.HTTPClient != nil {
			so.HTTPClient = o.HTTPClient
		}
		so.DisableLogOutputChecksumValidationSkipped = true
		so.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		so.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	}), nil
}

func firstEnv(names ...string) string {
	for _, n := range names {
		if v := os.Getenv(n); v != "" {
			return v
		}
	}
	return ""
}

// String is the location, s3://bucket/prefix.
func (b *Backend) String() string {
	return "s3://" + b.bucket + "/" + strings.TrimSuffix(b.prefix, "/")
}

// CreateBucket makes the bucket if it does not exist (for tests and set-up).
func (b *Backend) CreateBucket(ctx context.Context) error {
	_, err := b.client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(b.bucket)})
	var owned *types.BucketAlreadyOwnedByYou
	var exists *types.BucketAlreadyExists
	if err != nil && !errors.As(err, &owned) && !errors.As(err, &exists) {
		return b.wrap("create bucket", "", err)
	}
	return nil
}

// Bucket returns the bucket's name.
func (b *Backend) Bucket() string { return b.bucket }

// BucketExists reports whether the bucket exists (and these credentials
// may see it).
func (b *Backend) BucketExists(ctx context.Context) (bool, error) {
	_, err := b.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(b.bucket)})
	if err == nil {
		return true, nil
	}
	var nb *types.NoSuchBucket
	var ae smithy.APIError
	if errors.As(err, &nb) || isNotFound(err) || (errors.As(err, &ae) && ae.ErrorCode() == "NoSuchBucket") {
		return false, nil
	}
	return false, b.wrap("check the bucket of", "", err)
}

func (b *Backend) key(k string) (string, error) {
	if k == "" || strings.HasPrefix(k, "/") || strings.Contains("/"+k+"/", "/../") {
		return "", fmt.Errorf("s3: invalid key %q: keys are relative, slash-separated, without '..'", k)
	}
	return b.prefix + k, nil
}

func (b *Backend) wrap(op, key string, err error) error {
	hint := ""
	switch RefusalOf(err) {
	case NoBucket:
		hint = "; create the bucket ('stepwise doctor --create-bucket' does) or fix the datastore setting"
	case Denied:
		hint = "; check the AWS credentials (AWS_ACCESS_KEY_ID, AWS_PROFILE, ...)"
	}
	return fmt.Errorf("s3: cannot %s s3://%s/%s: %w%s", op, b.bucket, key, err, hint)
}

// Refusal is why S3 refused a request, as far as callers explain it.
type Refusal int

// The refusals RefusalOf tells apart.
const (
	NotRefused Refusal = iota // none of those below
	NoBucket                  // the bucket does not exist
	Denied                    // the credentials or the bucket's policy refused it
)

// RefusalOf says whether err, however wrapped, is S3's answer that the
// bucket does not exist or that access was denied.
func RefusalOf(err error) Refusal {
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return NotRefused
	}
	switch ae.ErrorCode() {
	case "NoSuchBucket":
		return NoBucket
	case "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "Forbidden", "AllAccessDisabled":
		return Denied
	}
	return NotRefused
}

func isNotFound(err error) bool { return IsNotFound(err) }

// IsNotFound says whether err is S3's answer that an object (or the
// object a HEAD asked for) does not exist.
func IsNotFound(err error) bool {
	var nk *types.NoSuchKey
	var nf *types.NotFound
	if errors.As(err, &nk) || errors.As(err, &nf) {
		return true
	}
	var ae smithy.APIError
	return errors.As(err, &ae) && (ae.ErrorCode() == "NotFound" || ae.ErrorCode() == "NoSuchKey")
}

// Put stores size bytes from r under key; small objects in one request,
// large ones as a parallel multipart upload that becomes visible only when
// completed.
func (b *Backend) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	k, err := b.key(key)
	if err != nil {
		return err
	}
	if size <= b.opts.PartSize {
		buf := make([]byte, size)
		if _, err := io.ReadFull(r, buf); err != nil {
			return fmt.Errorf("s3: reading data for %s: %w", key, err)
		}
		_, err := b.client.PutObject(ctx, &s3.PutObjectInput{Bucket: &b.bucket, Key: &k, Body: bytes.NewReader(buf), ContentLength: aws.Int64(size)})
		if err != nil {
			return b.wrap("put", k, err)
		}
		return nil
	}
	return b.putMultipart(ctx, k, r, size)
}

func (b *Backend) putMultipart(ctx context.Context, k string, r io.Reader, size int64) error {
	up, err := b.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &b.bucket, Key: &k})
	if err != nil {
		return b.wrap("start upload of", k, err)
	}
	abort := func(cause error) error {
		_, _ = b.client.AbortMultipartUpload(context.WithoutCancel(ctx), &s3.AbortMultipartUploadInput{Bucket: &b.bucket, Key: &k, UploadId: up.UploadId})
		return cause
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	nparts := int((size + b.opts.PartSize - 1) / b.opts.PartSize)
	parts := make([]types.CompletedPart, nparts)
	sem := make(chan struct{}, b.opts.Concurrency)
	var wg sync.WaitGroup
	var once sync.Once
	var firstErr error
	fail := func(err error) {
		once.Do(func() { firstErr = err; cancel() })
	}
	for i := 0; i < nparts; i++ {
		n := min(b.opts.PartSize, size-int64(i)*b.opts.PartSize)
		buf := make([]byte, n)
		if _, err := io.ReadFull(r, buf); err != nil {
			fail(fmt.Errorf("s3: reading data for %s: %w", k, err))
			break
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func(i int, buf []byte) {
			defer wg.Done()
			defer func() { <-sem }()
			num := int32(i + 1)
			out, err := b.client.UploadPart(ctx, &s3.UploadPartInput{Bucket: &b.bucket, Key: &k, UploadId: up.UploadId,
				PartNumber: &num, Body: bytes.NewReader(buf), ContentLength: aws.Int64(int64(len(buf)))})
			if err != nil {
				fail(b.wrap(fmt.Sprintf("upload part %d of", num), k, err))
				return
			}
			parts[i] = types.CompletedPart{ETag: out.ETag, PartNumber: &num}
		}(i, buf)
	}
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		firstErr = ctx.Err()
	}
	if firstErr != nil {
		return abort(firstErr)
	}
	_, err = b.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: &b.bucket, Key: &k, UploadId: up.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}})
	if err != nil {
		return abort(b.wrap("complete upload of", k, err))
	}
	return nil
}

// Get opens the object. One request reads a small object whole (and the
// first part of a large one); the rest of a large object is streamed with
// parallel ranged requests. A missing key matches fs.ErrNotExist.
func (b *Backend) Get(ctx context.Context, key string) (io.ReadCloser, int64, error) {
	k, err := b.key(key)
	if err != nil {
		return nil, 0, err
	}
	rng := fmt.Sprintf("bytes=0-%d", b.opts.PartSize-1)
	out, err := b.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &b.bucket, Key: &k, Range: &rng})
	if err != nil {
		var ae smithy.APIError
		if errors.As(err, &ae) && ae.ErrorCode() == "InvalidRange" {
			// An empty object has no byte 0.
			out, err = b.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &b.bucket, Key: &k})
		}
	}
	if err != nil {
		if isNotFound(err) {
			return nil, 0, fmt.Errorf("s3: s3://%s/%s: %w", b.bucket, k, fs.ErrNotExist)
		}
		return nil, 0, b.wrap("read", k, err)
	}
	size := aws.ToInt64(out.ContentLength)
	if cr := aws.ToString(out.ContentRange); cr != "" {
		if i := strings.LastIndexByte(cr, '/'); i >= 0 {
			fmt.Sscan(cr[i+1:], &size)
		}
	}
	if size <= b.opts.PartSize {
		return out.Body, size, nil
	}
	first := make([]byte, b.opts.PartSize)
	_, err = io.ReadFull(out.Body, first)
	out.Body.Close()
	if err != nil {
		return nil, 0, b.wrap("read", k, err)
	}
	return b.rangeReader(ctx, k, aws.ToString(out.ETag), size, first), size, nil
}

// rangeReader streams a large object whose first part was read already:
// ranged requests, pinned to one version by its ETag, run ahead in parallel
// while the caller reads (and hashes) the earlier ones in order. An object replaced during the read
// gives an error, never mixed bytes.
func (b *Backend) rangeReader(ctx context.Context, k, etag string, size int64, first []byte) io.ReadCloser {
	ctx, cancel := context.WithCancel(ctx)
	n := int((size + b.opts.PartSize - 1) / b.opts.PartSize)
	r := &rangeReader{chunks: make([]chan chunk, n), cancel: cancel}
	for i := range r.chunks {
		r.chunks[i] = make(chan chunk, 1)
	}
	r.chunks[0] <- chunk{data: first}
	sem := make(chan struct{}, b.opts.Concurrency)
	go func() {
		for i := 1; i < n; i++ {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				for j := i; j < n; j++ {
					r.chunks[j] <- chunk{err: ctx.Err()}
				}
				return
			}
			start := int64(i) * b.opts.PartSize
			end := min(start+b.opts.PartSize, size)
			go func(i int) {
				rng := fmt.Sprintf("bytes=%d-%d", start, end-1)
				out, err := b.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &b.bucket, Key: &k, Range: &rng, IfMatch: &etag})
				var buf []byte
				if err == nil {
					buf = make([]byte, end-start)
					_, err = io.ReadFull(out.Body, buf)
					out.Body.Close()
				}
				if err != nil {
					err = b.wrap("read range of", k, err)
				}
				r.chunks[i] <- chunk{data: buf, err: err, release: func() { <-sem }}
			}(i)
		}
	}()
	return r
}

type chunk struct {
	data    []byte
	err     error
	release func()
}

type rangeReader struct {
	chunks []chan chunk
	next   int
	cur    []byte
	err    error
	cancel context.CancelFunc
}

func (r *rangeReader) Read(p []byte) (int, error) {
	for len(r.cur) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		if r.next == len(r.chunks) {
			return 0, io.EOF
		}
		c := <-r.chunks[r.next]
		if c.release != nil {
			c.release()
		}
		r.next++
		if c.err != nil {
			r.err = c.err
			r.cancel()
			return 0, c.err
		}
		r.cur = c.data
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	return n, nil
}

// Close stops the requests still running.
func (r *rangeReader) Close() error {
	r.cancel()
	return nil
}

// GetRange reads at most n bytes from off, and returns them with the
// object's size.
func (b *Backend) GetRange(ctx context.Context, key string, off, n int64) ([]byte, int64, error) {
	k, err := b.key(key)
	if err != nil {
		return nil, 0, err
	}
	rng := fmt.Sprintf("bytes=%d-%d", off, off+n-1)
	out, err := b.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &b.bucket, Key: &k, Range: &rng})
	if err != nil {
		if isNotFound(err) {
			return nil, 0, fmt.Errorf("s3: s3://%s/%s: %w", b.bucket, k, fs.ErrNotExist)
		}
		var ae smithy.APIError
		if errors.As(err, &ae) && ae.ErrorCode() == "InvalidRange" {
			return nil, 0, nil // empty object
		}
		return nil, 0, b.wrap("read", k, err)
	}
	defer out.Body.Close()
	data, err := io.ReadAll(io.LimitReader(out.Body, n))
	if err != nil {
		return nil, 0, b.wrap("read", k, err)
	}
	size := int64(len(data))
	if cr := aws.ToString(out.ContentRange); cr != "" {
		if i := strings.LastIndexByte(cr, '/'); i >= 0 {
			fmt.Sscan(cr[i+1:], &size)
		}
	}
	return data, size, nil
}

var _ datastore.RangeReader = (*Backend)(nil)

// Exists reports whether key holds an object.
func (b *Backend) Exists(ctx context.Context, key string) (bool, error) {
	k, err := b.key(key)
	if err != nil {
		return false, err
	}
	_, err = b.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &b.bucket, Key: &k})
	if err != nil {
		if isNotFound(err) {
			return false, nil
		}
		return false, b.wrap("check", k, err)
	}
	return true, nil
}

// List returns the keys under prefix, sorted.
func (b *Backend) List(ctx context.Context, prefix string) ([]string, error) {
	full := b.prefix + prefix
	p := s3.NewListObjectsV2Paginator(b.client, &s3.ListObjectsV2Input{Bucket: &b.bucket, Prefix: &full})
	var keys []string
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, b.wrap("list", full, err)
		}
		for _, o := range page.Contents {
			keys = append(keys, strings.TrimPrefix(aws.ToString(o.Key), b.prefix))
		}
	}
	sort.Strings(keys)
	return keys, nil
}

// ListDirs returns the next segments of the keys under prefix that have
// more segments after it, sorted (S3's common prefixes with delimiter /).
func (b *Backend) ListDirs(ctx context.Context, prefix string) ([]string, error) {
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		return nil, fmt.Errorf("s3: invalid folder prefix %q: it must be empty or end in '/'", prefix)
	}
	full := b.prefix + prefix
	p := s3.NewListObjectsV2Paginator(b.client, &s3.ListObjectsV2Input{Bucket: &b.bucket, Prefix: &full, Delimiter: aws.String("/")})
	var names []string
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, b.wrap("list", full, err)
		}
		for _, cp := range page.CommonPrefixes {
			n := strings.TrimSuffix(strings.TrimPrefix(aws.ToString(cp.Prefix), full), "/")
			if n != "" {
				names = append(names, n)
			}
		}
	}
	sort.Strings(names)
	return names, nil
}

// ListInfo returns the objects under prefix with their sizes and
// modification times, sorted by key.
func (b *Backend) ListInfo(ctx context.Context, prefix string) ([]datastore.ObjectInfo, error) {
	full := b.prefix + prefix
	p := s3.NewListObjectsV2Paginator(b.client, &s3.ListObjectsV2Input{Bucket: &b.bucket, Prefix: &full})
	var objs []datastore.ObjectInfo
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, b.wrap("list", full, err)
		}
		for _, o := range page.Contents {
			objs = append(objs, datastore.ObjectInfo{Key: strings.TrimPrefix(aws.ToString(o.Key), b.prefix), Size: aws.ToInt64(o.Size), ModTime: aws.ToTime(o.LastModified)})
		}
	}
	sort.Slice(objs, func(i, j int) bool { return objs[i].Key < objs[j].Key })
	return objs, nil
}

// Stat returns the size and modification time of the object under key.
func (b *Backend) Stat(ctx context.Context, key string) (datastore.ObjectInfo, error) {
	k, err := b.key(key)
	if err != nil {
		return datastore.ObjectInfo{}, err
	}
	out, err := b.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &b.bucket, Key: &k})
	if err != nil {
		if isNotFound(err) {
			return datastore.ObjectInfo{}, fmt.Errorf("s3: s3://%s/%s: %w", b.bucket, k, fs.ErrNotExist)
		}
		return datastore.ObjectInfo{}, b.wrap("check", k, err)
	}
	return datastore.ObjectInfo{Key: key, Size: aws.ToInt64(out.ContentLength), ModTime: aws.ToTime(out.LastModified)}, nil
}

// Delete removes the object under key; a missing one is not an error.
func (b *Backend) Delete(ctx context.Context, key string) error {
	k, err := b.key(key)
	if err != nil {
		return err
	}
	if _, err := b.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &b.bucket, Key: &k}); err != nil && !isNotFound(err) {
		return b.wrap("delete", k, err)
	}
	return nil
}

// Touch gives the object under key a new modification time by copying
// it onto itself (on the server, no data through this process). Objects
// over 5 GiB cannot be copied so; Touch fails for them, and PutBlob
// writes the blob again instead.
func (b *Backend) Touch(ctx context.Context, key string) error {
	k, err := b.key(key)
	if err != nil {
		return err
	}
	src := b.bucket + "/" + url.PathEscape(k)
	src = strings.ReplaceAll(src, "%2F", "/")
	_, err = b.client.CopyObject(ctx, &s3.CopyObjectInput{Bucket: &b.bucket, Key: &k, CopySource: &src,
		MetadataDirective: types.MetadataDirectiveReplace,
		Metadata:          map[string]string{"stepwise-touched": time.Now().UTC().Format(time.RFC3339)}})
	if err != nil {
		if isNotFound(err) {
			return fmt.Errorf("s3: s3://%s/%s: %w", b.bucket, k, fs.ErrNotExist)
		}
		return b.wrap("touch", k, err)
	}
	return nil
}

// Leftovers lists the multipart uploads under the prefix that were
// started and never completed nor aborted (a writer that crashed, or one
// still writing). It lists the uploads of the whole bucket and keeps
// those under the prefix: MinIO lists uploads by a whole key only.
func (b *Backend) Leftovers(ctx context.Context) ([]datastore.Leftover, error) {
	var out []datastore.Leftover
	in := &s3.ListMultipartUploadsInput{Bucket: &b.bucket}
	for {
		page, err := b.client.ListMultipartUploads(ctx, in)
		if err != nil {
			return nil, b.wrap("list unfinished uploads in", b.prefix, err)
		}
		for _, u := range page.Uploads {
			key, id := aws.ToString(u.Key), aws.ToString(u.UploadId)
			if !strings.HasPrefix(key, b.prefix) {
				continue
			}
			out = append(out, datastore.Leftover{Name: "s3://" + b.bucket + "/" + key + " (unfinished upload " + id + ")",
				ModTime: aws.ToTime(u.Initiated), Handle: key + "\n" + id})
		}
		if !aws.ToBool(page.IsTruncated) {
			return out, nil
		}
		in.KeyMarker, in.UploadIdMarker = page.NextKeyMarker, page.NextUploadIdMarker
	}
}

// RemoveLeftover aborts an unfinished multipart upload, freeing its parts.
func (b *Backend) RemoveLeftover(ctx context.Context, l datastore.Leftover) error {
	key, id, ok := strings.Cut(l.Handle, "\n")
	if !ok || !strings.HasPrefix(key, b.prefix) {
		return fmt.Errorf("s3: %q is not an unfinished upload of %s", l.Name, b)
	}
	_, err := b.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &b.bucket, Key: &key, UploadId: &id})
	if err != nil {
		var ae smithy.APIError
		if errors.As(err, &ae) && ae.ErrorCode() == "NoSuchUpload" {
			return nil
		}
		return b.wrap("abort the unfinished upload "+id+" of", key, err)
	}
	return nil
}

// PresignGet returns a URL that reads the object under key with a plain
// HTTP GET, without credentials, until ttl has passed: how a pod fetches
// the flow's binary with nothing but wget.
func (b *Backend) PresignGet(ctx context.Context, key string, ttl time.Duration) (string, error) {
	k, err := b.key(key)
	if err != nil {
		return "", err
	}
	req, err := s3.NewPresignClient(b.client).PresignGetObject(ctx, &s3.GetObjectInput{Bucket: &b.bucket, Key: &k}, s3.WithPresignExpires(ttl))
	if err != nil {
		return "", b.wrap("presign", key, err)
	}
	return req.URL, nil
}
