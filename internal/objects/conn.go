// Package objects is the machinery behind stepwise.Objects: bulk work on
// objects in S3 from inside a step, with many requests in flight. Large
// objects are read as parallel ranged requests pinned to one version of
// the object, into memory or into a temporary file.
//
// The package holds no S3 client: a Conn does the requests, and the S3
// backend (imported with stepwise.dev/stepwise/backend/s3) registers one,
// so that flows that keep their data locally link no AWS SDK.
package objects

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// Info describes a stored object.
type Info struct {
	// Key is the object's key in its bucket, or, in what Bulk returns, the
	// key as the caller wrote it: relative to the root when the object is
	// under it, else its s3:// URL.
	Key     string
	URL     string // s3://bucket/key
	Size    int64
	ModTime time.Time
	ETag    string // identifies the version of the object that was read
}

// Conn makes the requests of one S3 endpoint with one set of credentials.
// Errors for a missing object wrap fs.ErrNotExist; refused credentials
// wrap ErrAccessDenied; a missing bucket wraps ErrNoBucket.
type Conn interface {
	// Open reads n bytes from off (n < 0: to the end) of an object, pinned
	// to the version etag when etag is not empty, and returns them with
	// the object's size and ETag. Reading past the end returns the bytes
	// there are; an empty object gives an empty body.
	Open(ctx context.Context, bucket, key string, off, n int64, etag string) (io.ReadCloser, Info, error)
	// Put stores size bytes from r under key, atomically: large objects go
	// up as a multipart upload that is visible only when complete.
	Put(ctx context.Context, bucket, key string, r io.Reader, size int64) error
	// List returns the objects whose keys start with prefix, sorted by key.
	List(ctx context.Context, bucket, prefix string) ([]Info, error)
}

// ConnOptions choose the endpoint and region; empty fields take the AWS
// settings of the environment, as the S3 datastore does.
type ConnOptions struct {
	Endpoint string
	Region   string
}

// Opener makes a Conn.
type Opener func(ctx context.Context, o ConnOptions) (Conn, error)

var (
	mu     sync.Mutex
	opener Opener
)

// Register makes Dial use open. The S3 backend package calls it from init.
func Register(open Opener) {
	mu.Lock()
	defer mu.Unlock()
	opener = open
}

// S3Package is the import that registers the S3 Conn.
const S3Package = "stepwise.dev/stepwise/backend/s3"

// Dial opens a Conn with the registered opener.
func Dial(ctx context.Context, o ConnOptions) (Conn, error) {
	mu.Lock()
	open := opener
	mu.Unlock()
	if open == nil {
		return nil, fmt.Errorf("objects: this program does not include the S3 backend; add import _ %q to the flow's main package", S3Package)
	}
	return open(ctx, o)
}

// Errors that Conn implementations wrap; test for them with errors.Is.
var (
	ErrAccessDenied = errors.New("access denied")
	ErrNoBucket     = errors.New("no such bucket")
	// ErrChanged: the object was replaced between two requests of one read.
	ErrChanged = errors.New("object changed during the read")
)
