package stepwise

import (
	"context"
	"strings"

	"stepwise.dev/stepwise/internal/objects"
)

// ObjectsOptions choose where and how Objects works. Zero fields take the
// defaults.
type ObjectsOptions struct {
	// Root is where keys that are not s3:// URLs resolve, e.g.
	// "s3://ml-data/images". Default: inside a step of a run whose
	// datastore is on S3, the run's own place in it,
	// DATASTORE/objects/FLOW/RUN_ID/; otherwise none, and every key must be
	// an s3:// URL.
	Root string
	// Endpoint and Region override the AWS settings of the environment
	// (AWS_ENDPOINT_URL_S3, AWS_REGION, ...), which are the datastore's.
	Endpoint, Region string
	// Concurrency is the number of requests in flight in one call, over
	// all its objects and parts; default 16.
	Concurrency int
	// PartSize is the size of the ranged reads a large object is cut
	// into, read in parallel; default 16 MiB.
	PartSize int64
	// TempDir is where Download puts its files; default os.TempDir().
	TempDir string
}

// ObjectStore does bulk work on objects in S3 from inside a step: many
// objects, or whole prefixes, read and written in parallel, large objects
// read as parallel ranged requests, to memory or to temporary files. Get
// one with Objects and Close it when done: Close removes the temporary
// files. It is safe for concurrent use.
//
// Keys are relative to the store's Root, or s3://bucket/key URLs, which
// may name any bucket the credentials reach. Every call reports every
// object that failed, each error naming the object and what to do: a
// missing object matches fs.ErrNotExist, refused credentials
// ErrAccessDenied (both with errors.Is).
type ObjectStore struct {
	b *objects.Bulk
}

// Object is an object that was read: to memory (Data, by Get and
// GetPrefix) or to a temporary file (Path, by Download and
// DownloadPrefix, removed by Close).
type Object = objects.Object

// ObjectInfo describes a stored object, as List returns it.
type ObjectInfo = objects.Info

// PutObject is an object for Put to write: Data, or the file at Path.
type PutObject = objects.Put

// ErrAccessDenied is matched (errors.Is) by the errors of ObjectStore calls
// the store refused for the credentials in force.
var ErrAccessDenied = objects.ErrAccessDenied

// Objects opens an ObjectStore with the run's S3 settings: the endpoint,
// credentials and region the S3 datastore uses (the AWS credential chain,
// AWS_REGION, AWS_ENDPOINT_URL_S3), and by default a root inside the
// run's datastore (see ObjectsOptions.Root). o may be nil. The program
// needs the S3 backend: import _ "stepwise.dev/stepwise/backend/s3".
func Objects(ctx context.Context, o *ObjectsOptions) (*ObjectStore, error) {
	var opts ObjectsOptions
	if o != nil {
		opts = *o
	}
	if opts.Root == "" {
		t := CurrentTask(ctx)
		if strings.HasPrefix(t.Datastore, "s3://") && t.RunID != "" {
			opts.Root = strings.TrimSuffix(t.Datastore, "/") + "/objects/" + t.Flow + "/" + t.RunID + "/"
		}
	}
	conn, err := objects.Dial(ctx, objects.ConnOptions{Endpoint: opts.Endpoint, Region: opts.Region})
	if err != nil {
		return nil, err
	}
	b, err := objects.New(conn, objects.Options{Root: opts.Root, Concurrency: opts.Concurrency, PartSize: opts.PartSize, TempDir: opts.TempDir})
	if err != nil {
		return nil, err
	}
	return &ObjectStore{b: b}, nil
}

// Root is the location keys resolve against, s3://bucket/prefix/, or ""
// when there is none.
func (s *ObjectStore) Root() string { return s.b.Root() }

// Get reads the objects under keys into memory, in parallel, and returns
// them in the order of keys.
func (s *ObjectStore) Get(ctx context.Context, keys ...string) ([]Object, error) {
	return s.b.Get(ctx, keys, false)
}

// Download reads the objects under keys into temporary files, in
// parallel, and returns them (with Path set) in the order of keys. Close
// removes the files.
func (s *ObjectStore) Download(ctx context.Context, keys ...string) ([]Object, error) {
	return s.b.Get(ctx, keys, true)
}

// GetPrefix reads every object whose key starts with prefix into memory,
// in parallel, sorted by key.
func (s *ObjectStore) GetPrefix(ctx context.Context, prefix string) ([]Object, error) {
	return s.b.GetPrefix(ctx, prefix, false)
}

// DownloadPrefix reads every object whose key starts with prefix into
// temporary files, in parallel, sorted by key. Close removes the files.
func (s *ObjectStore) DownloadPrefix(ctx context.Context, prefix string) ([]Object, error) {
	return s.b.GetPrefix(ctx, prefix, true)
}

// GetRange reads n bytes from byte off of the object under key (fewer at
// its end); a long range is read as parallel ranged requests.
func (s *ObjectStore) GetRange(ctx context.Context, key string, off, n int64) ([]byte, error) {
	return s.b.GetRange(ctx, key, off, n)
}

// List returns the objects whose keys start with prefix, sorted by key;
// their Keys are relative to the root when they are under it.
func (s *ObjectStore) List(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	return s.b.List(ctx, prefix)
}

// Put writes objects in parallel and returns their s3:// URLs in order.
// Each object appears whole or not at all; large ones go up as parallel
// multipart uploads.
func (s *ObjectStore) Put(ctx context.Context, objs ...PutObject) ([]string, error) {
	return s.b.Put(ctx, objs)
}

// Close removes the temporary files of Download and DownloadPrefix.
func (s *ObjectStore) Close() error { return s.b.Close() }
