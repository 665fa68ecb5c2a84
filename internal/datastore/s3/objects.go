package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sort"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"stepwise.dev/stepwise/internal/objects"
)

// Conn is the S3 connection behind stepwise.Objects: requests to any
// bucket of one endpoint, with the credentials, region and endpoint the
// datastore backend would use.
type Conn struct {
	client *s3.Client
	opts   Options
}

var _ objects.Conn = (*Conn)(nil)

// NewConn opens a Conn. Multipart uploads use o.PartSize and
// o.Concurrency as the datastore does; idle connections are kept for 64
// requests in flight.
func NewConn(ctx context.Context, o Options) (*Conn, error) {
	o = o.withDefaults()
	o.idleConns = 64
	client, err := newClient(ctx, o)
	if err != nil {
		return nil, err
	}
	return &Conn{client: client, opts: o}, nil
}

// classify wraps the errors objects.Bulk explains.
func classify(err error) error {
	if isNotFound(err) {
		return fmt.Errorf("%w (%v)", fs.ErrNotExist, err)
	}
	switch RefusalOf(err) {
	case NoBucket:
		return fmt.Errorf("%w: %w", objects.ErrNoBucket, err)
	case Denied:
		return fmt.Errorf("%w: %w", objects.ErrAccessDenied, err)
	}
	return err
}

// Open reads a range of an object with one GET. A version given by etag
// is checked against the answer's ETag.
func (c *Conn) Open(ctx context.Context, bucket, key string, off, n int64, etag string) (io.ReadCloser, objects.Info, error) {
	in := &s3.GetObjectInput{Bucket: &bucket, Key: &key}
	if off > 0 || n >= 0 {
		rng := fmt.Sprintf("bytes=%d-", off)
		if n >= 0 {
			rng = fmt.Sprintf("bytes=%d-%d", off, off+n-1)
		}
		in.Range = &rng
	}
	out, err := c.client.GetObject(ctx, in)
	if err != nil {
		var ae smithy.APIError
		if errors.As(err, &ae) && ae.ErrorCode() == "InvalidRange" {
			// The range starts at or past the end (an empty object has no
			// byte 0): ask for the size alone.
			head, herr := c.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &bucket, Key: &key})
			if herr != nil {
				return nil, objects.Info{}, classify(herr)
			}
			return io.NopCloser(bytes.NewReader(nil)), objects.Info{Key: key, Size: aws.ToInt64(head.ContentLength), ETag: aws.ToString(head.ETag)}, nil
		}
		return nil, objects.Info{}, classify(err)
	}
	info := objects.Info{Key: key, Size: aws.ToInt64(out.ContentLength), ETag: aws.ToString(out.ETag), ModTime: aws.ToTime(out.LastModified)}
	if etag != "" && info.ETag != etag {
		// Compared here rather than sent as If-Match, which costs MinIO
		// as much again as the read itself.
		out.Body.Close()
		return nil, objects.Info{}, fmt.Errorf("the object was replaced while it was read (ETag %s, then %s): %w", etag, info.ETag, objects.ErrChanged)
	}
	if cr := aws.ToString(out.ContentRange); cr != "" {
		if i := bytes.LastIndexByte([]byte(cr), '/'); i >= 0 {
			fmt.Sscan(cr[i+1:], &info.Size)
		}
	}
	return out.Body, info, nil
}

// Put stores an object: in one request up to the part size, else as a
// parallel multipart upload.
func (c *Conn) Put(ctx context.Context, bucket, key string, r io.Reader, size int64) error {
	b := &Backend{client: c.client, bucket: bucket, opts: c.opts}
	err := b.Put(ctx, key, r, size)
	if err != nil {
		return classify(err)
	}
	return nil
}

// List returns the objects under prefix, sorted by key.
func (c *Conn) List(ctx context.Context, bucket, prefix string) ([]objects.Info, error) {
	p := s3.NewListObjectsV2Paginator(c.client, &s3.ListObjectsV2Input{Bucket: &bucket, Prefix: &prefix})
	var out []objects.Info
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, classify(err)
		}
		for _, o := range page.Contents {
			out = append(out, objects.Info{Key: aws.ToString(o.Key), Size: aws.ToInt64(o.Size), ModTime: aws.ToTime(o.LastModified), ETag: aws.ToString(o.ETag)})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}
