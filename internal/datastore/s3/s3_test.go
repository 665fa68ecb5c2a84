package s3_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"stepwise.dev/stepwise/internal/datastore"
	"stepwise.dev/stepwise/internal/datastore/s3"
	"stepwise.dev/stepwise/internal/datastore/storetest"
	"stepwise.dev/stepwise/internal/testservers"
)

var n atomic.Int64

// newBackend gives each test its own prefix in one bucket of a real MinIO.
func newBackend(t *testing.T) *s3.Backend {
	srv := testservers.MinIO(t)
	t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
	t.Setenv("AWS_REGION", "us-east-1")
	// Small parts so that the suite exercises multipart uploads and
	// parallel ranged reads with its 16 MiB objects.
	b, err := s3.New(context.Background(), fmt.Sprintf("s3://stepwise-test/t%d", n.Add(1)), s3.Options{Endpoint: srv.Endpoint, PartSize: 5 << 20, Concurrency: 4})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.CreateBucket(context.Background()); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) datastore.Backend { return newBackend(t) })
}

func TestBadLocation(t *testing.T) {
	for _, u := range []string{"s3:/bucket", "http://bucket/x", "s3://"} {
		if _, err := s3.New(context.Background(), u, s3.Options{}); err == nil {
			t.Errorf("New(%q) succeeded", u)
		}
	}
}
