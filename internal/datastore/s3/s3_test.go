package s3_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

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

// TestLeftovers: an upload a crashed writer never finished is listed, and
// removing it aborts it; uploads of other prefixes are left alone.
func TestLeftovers(t *testing.T) {
	ctx := context.Background()
	b, other := newBackend(t), newBackend(t)
	before := time.Now().Add(-2 * time.Second)
	id, err := b.StartUpload(ctx, "blobs/ab/crashed")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.StartUpload(ctx, "blobs/ab/elsewhere"); err != nil {
		t.Fatal(err)
	}
	left, err := b.Leftovers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 1 || !strings.Contains(left[0].Name, "blobs/ab/crashed") || !strings.Contains(left[0].Name, id) || left[0].ModTime.Before(before) {
		t.Fatalf("Leftovers = %+v; want the one unfinished upload %s", left, id)
	}
	if err := b.RemoveLeftover(ctx, left[0]); err != nil {
		t.Fatal(err)
	}
	if err := b.RemoveLeftover(ctx, left[0]); err != nil {
		t.Fatalf("removing it twice: %v", err)
	}
	if left, err := b.Leftovers(ctx); err != nil || len(left) != 0 {
		t.Fatalf("Leftovers after removal = %+v, %v", left, err)
	}
	if left, err := other.Leftovers(ctx); err != nil || len(left) != 1 {
		t.Fatalf("the other prefix's Leftovers = %+v, %v; want its upload kept", left, err)
	}
	if err := b.RemoveLeftover(ctx, datastore.Leftover{Name: "x", Handle: "elsewhere/k\nid"}); err == nil {
		t.Fatal("RemoveLeftover of an upload outside the prefix succeeded")
	}
}

// TestBucketExists: a missing bucket is reported, then created.
func TestBucketExists(t *testing.T) {
	ctx := context.Background()
	srv := testservers.MinIO(t)
	t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
	t.Setenv("AWS_REGION", "us-east-1")
	name := fmt.Sprintf("stepwise-new-%d", time.Now().UnixNano())
	b, err := s3.New(ctx, "s3://"+name+"/p", s3.Options{Endpoint: srv.Endpoint})
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := b.BucketExists(ctx); ok || err != nil {
		t.Fatalf("BucketExists of a missing bucket = %v, %v", ok, err)
	}
	if err := b.Put(ctx, "k", strings.NewReader("x"), 1); err == nil || !strings.Contains(err.Error(), "stepwise doctor --create-bucket") {
		t.Errorf("Put into a missing bucket: %v", err)
	}
	if err := b.CreateBucket(ctx); err != nil {
		t.Fatal(err)
	}
	if ok, err := b.BucketExists(ctx); !ok || err != nil || b.Bucket() != name {
		t.Fatalf("BucketExists after CreateBucket = %v, %v", ok, err)
	}
}
