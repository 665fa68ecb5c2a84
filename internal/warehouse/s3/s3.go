// Package s3 is table storage on Amazon S3 and S3-compatible stores
// (MinIO, ...), with the run's S3 settings: the standard AWS credential
// chain and region, and the endpoint variables AWS_ENDPOINT_URL_S3 and
// AWS_ENDPOINT_URL, as for the S3 datastore.
package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	dss3 "stepwise.dev/stepwise/internal/datastore/s3"
	"stepwise.dev/stepwise/internal/warehouse"
)

// Options tune the client. Zero fields take the defaults.
type Options struct {
	Endpoint    string       // overrides AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL
	Region      string       // default: the AWS chain, else us-east-1
	HTTPClient  *http.Client // e.g. one whose transport counts requests
	MaxAttempts int          // per request, default 5
}

// FS is a tree of objects under s3://bucket/prefix.
type FS struct {
	client *s3.Client
	bucket string
	prefix string // "" or ending in "/"
}

var _ warehouse.FS = (*FS)(nil)

// New opens s3://bucket/prefix.
func New(ctx context.Context, location string, o Options) (*FS, error) {
	u, err := url.Parse(location)
	if err != nil || u.Scheme != "s3" || u.Host == "" {
		return nil, fmt.Errorf("s3: %q is not an S3 location; write s3://bucket/prefix", location)
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 5
	}
	client, err := dss3.NewClient(ctx, dss3.ClientOptions{Endpoint: o.Endpoint, Region: o.Region, MaxAttempts: o.MaxAttempts, HTTPClient: o.HTTPClient})
	if err != nil {
		return nil, err
	}
	prefix := strings.Trim(u.Path, "/")
	if prefix != "" {
		prefix += "/"
	}
	return &FS{client: client, bucket: u.Host, prefix: prefix}, nil
}

// String is s3://bucket/prefix.
func (f *FS) String() string { return "s3://" + f.bucket + "/" + strings.TrimSuffix(f.prefix, "/") }

// CreateBucket makes the bucket if it does not exist (tests and set-up).
func (f *FS) CreateBucket(ctx context.Context) error {
	_, err := f.client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(f.bucket)})
	var owned *types.BucketAlreadyOwnedByYou
	var exists *types.BucketAlreadyExists
	if err != nil && !errors.As(err, &owned) && !errors.As(err, &exists) {
		return f.wrap("create bucket", "", err)
	}
	return nil
}

func (f *FS) wrap(op, key string, err error) error {
	hint := ""
	switch dss3.RefusalOf(err) {
	case dss3.NoBucket:
		hint = "; create the bucket or fix the table's location"
	case dss3.Denied:
		hint = "; access denied: check the AWS credentials (AWS_ACCESS_KEY_ID, AWS_PROFILE, ...) and the bucket's policy"
	}
	if isNotFound(err) {
		err = fmt.Errorf("%w (%w)", warehouse.ErrNotFound, err)
	}
	return fmt.Errorf("s3: cannot %s s3://%s/%s: %w%s", op, f.bucket, key, err, hint)
}

func isNotFound(err error) bool { return dss3.IsNotFound(err) }

// List lists every object under prefix.
func (f *FS) List(ctx context.Context, prefix string) ([]warehouse.Object, error) {
	var out []warehouse.Object
	p := s3.NewListObjectsV2Paginator(f.client, &s3.ListObjectsV2Input{Bucket: &f.bucket, Prefix: aws.String(f.prefix + prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, f.wrap("list", f.prefix+prefix, err)
		}
		for _, o := range page.Contents {
			out = append(out, warehouse.Object{Key: strings.TrimPrefix(aws.ToString(o.Key), f.prefix), Size: aws.ToInt64(o.Size)})
		}
	}
	return out, nil
}

type file struct {
	f    *FS
	ctx  context.Context
	key  string
	size int64
}

func (o *file) Size() int64  { return o.size }
func (o *file) Close() error { return nil }

// ReadAt reads len(p) bytes at off with one ranged GET.
func (o *file) ReadAt(p []byte, off int64) (int, error) {
	return o.ReadAtProgress(p, off, nil)
}

// progressStep is how many bytes ReadAtProgress reads between reports.
const progressStep = 256 << 10

// ReadAtProgress is ReadAt that reports, as the response arrives, how
// many bytes of p are filled, so that a reader can start on the first
// bytes while the rest arrive (while they are still in the CPU's cache).
func (o *file) ReadAtProgress(p []byte, off int64, progress func(n int)) (int, error) {
	if off >= o.size {
		return 0, io.EOF
	}
	want := int64(len(p))
	if off+want > o.size {
		want = o.size - off
	}
	if want == 0 {
		return 0, nil
	}
	out, err := o.f.client.GetObject(o.ctx, &s3.GetObjectInput{Bucket: &o.f.bucket, Key: aws.String(o.f.prefix + o.key),
		Range: aws.String(fmt.Sprintf("bytes=%d-%d", off, off+want-1))})
	if err != nil {
		var ae smithy.APIError
		if errors.As(err, &ae) && ae.ErrorCode() == "InvalidRange" {
			return 0, fmt.Errorf("s3: s3://%s/%s%s is shorter than the %d bytes expected (it changed since its size was recorded; rewrite it): %w (%w)", o.f.bucket, o.f.prefix, o.key, o.size, io.ErrUnexpectedEOF, err)
		}
		return 0, o.f.wrap("read", o.f.prefix+o.key, err)
	}
	defer out.Body.Close()
	var n int
	for n < int(want) && err == nil {
		var k int
		k, err = io.ReadFull(out.Body, p[n:min(int(want), n+progressStep)])
		n += k
		if progress != nil && k > 0 {
			progress(n)
		}
	}
	if err != nil {
		return n, fmt.Errorf("s3: cannot read s3://%s/%s%s at %d: %w", o.f.bucket, o.f.prefix, o.key, off, err)
	}
	if want < int64(len(p)) {
		return n, io.EOF
	}
	return n, nil
}

// Open finds the object's size (one HEAD) and returns it for ranged reads.
func (f *FS) Open(ctx context.Context, key string) (warehouse.File, error) {
	out, err := f.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &f.bucket, Key: aws.String(f.prefix + key)})
	if err != nil {
		return nil, f.wrap("open", f.prefix+key, err)
	}
	return &file{f: f, ctx: ctx, key: key, size: aws.ToInt64(out.ContentLength)}, nil
}

// OpenSize returns the object for ranged reads without a HEAD, for a
// caller that knows its size (from a manifest or a listing). A missing
// object shows at the first read, as an error wrapping ErrNotFound.
func (f *FS) OpenSize(ctx context.Context, key string, size int64) (warehouse.File, error) {
	return &file{f: f, ctx: ctx, key: key, size: size}, nil
}

// Put stores the object with one PUT (S3 shows it whole or not at all).
func (f *FS) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	var body io.ReadSeeker
	if rs, ok := r.(io.ReadSeeker); ok {
		body = rs
	} else {
		data, err := io.ReadAll(r)
		if err != nil {
			return fmt.Errorf("s3: reading data for %s: %w", key, err)
		}
		body, size = bytes.NewReader(data), int64(len(data))
	}
	_, err := f.client.PutObject(ctx, &s3.PutObjectInput{Bucket: &f.bucket, Key: aws.String(f.prefix + key), Body: body, ContentLength: aws.Int64(size)})
	if err != nil {
		return f.wrap("put", f.prefix+key, err)
	}
	return nil
}

// Delete removes objects, up to 1,000 per request.
func (f *FS) Delete(ctx context.Context, keys []string) error {
	for len(keys) > 0 {
		n := min(len(keys), 1000)
		objs := make([]types.ObjectIdentifier, n)
		for i, k := range keys[:n] {
			objs[i] = types.ObjectIdentifier{Key: aws.String(f.prefix + k)}
		}
		out, err := f.client.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: &f.bucket, Delete: &types.Delete{Objects: objs, Quiet: aws.Bool(true)}})
		if err != nil {
			return f.wrap("delete objects under", f.prefix, err)
		}
		if len(out.Errors) > 0 {
			e := out.Errors[0]
			return fmt.Errorf("s3: cannot delete s3://%s/%s: %s", f.bucket, aws.ToString(e.Key), aws.ToString(e.Message))
		}
		keys = keys[n:]
	}
	return nil
}

func init() {
	warehouse.Register("s3", func(ctx context.Context, location string) (warehouse.FS, error) {
		return New(ctx, location, Options{})
	})
}
