package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"stepwise.dev/stepwise/internal/datastore"
	"stepwise.dev/stepwise/internal/datastore/s3"
	"stepwise.dev/stepwise/internal/testservers"
)

const s3Size = 1 << 30

// minio returns an S3 backend on the test MinIO, in a bucket it creates.
func minio(b *testing.B, url string, o s3.Options) *s3.Backend {
	srv := testservers.MinIO(b)
	b.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	b.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
	b.Setenv("AWS_REGION", "us-east-1")
	o.Endpoint = srv.Endpoint
	be, err := s3.New(context.Background(), url, o)
	if err != nil {
		b.Fatal(err)
	}
	if err := be.CreateBucket(context.Background()); err != nil {
		b.Fatal(err)
	}
	return be
}

// parallel runs f(0..n-1) at once and fails on the first error.
func parallel(b *testing.B, n int, f func(i int) error) {
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { errs[i] = f(i) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkS3 saves and loads a 1 GiB random blob through the datastore on
// a local MinIO (parallel multipart upload, parallel ranged reads).
func BenchmarkS3(b *testing.B) {
	ctx := context.Background()
	st := datastore.New(minio(b, "s3://stepwise-bench/blobs", s3.Options{}))
	data := make([]byte, s3Size)
	rand.Read(data)
	var key string
	b.Run("save-1GiB", func(b *testing.B) {
		b.SetBytes(s3Size)
		for b.Loop() {
			b.StopTimer()
			data[0]++ // a new blob each time: no dedup
			b.StartTimer()
			k, written, err := st.PutBlob(ctx, [][]byte{data})
			if err != nil || !written {
				b.Fatal(err, written)
			}
			key = k
		}
	})
	b.Run("load-1GiB", func(b *testing.B) {
		b.SetBytes(s3Size)
		for b.Loop() {
			got, err := st.GetBlob(ctx, key)
			if err != nil || len(got) != s3Size {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkS3Plain is the yardstick for BenchmarkS3 on the store itself:
// the same 1 GiB as 8 independent objects of 128 MiB, put and got by 8
// goroutines with plain single requests: no hashing, no multipart, no
// checks.
func BenchmarkS3Plain(b *testing.B) {
	ctx := context.Background()
	const workers = 8
	part := s3Size / workers
	be := minio(b, "s3://stepwise-bench/plain", s3.Options{PartSize: int64(part)})
	data := make([]byte, s3Size)
	rand.Read(data)
	each := func(f func(i int) error) { parallel(b, workers, f) }
	b.Run("put-1GiB", func(b *testing.B) {
		b.SetBytes(s3Size)
		for b.Loop() {
			each(func(i int) error {
				return be.Put(ctx, fmt.Sprintf("part-%d", i), bytes.NewReader(data[i*part:(i+1)*part]), int64(part))
			})
		}
	})
	b.Run("get-1GiB", func(b *testing.B) {
		b.SetBytes(s3Size)
		for b.Loop() {
			each(func(i int) error {
				rc, _, err := be.Get(ctx, fmt.Sprintf("part-%d", i))
				if err != nil {
					return err
				}
				defer rc.Close()
				_, err = io.ReadFull(rc, data[i*part:(i+1)*part])
				return err
			})
		}
	})
}

// BenchmarkPlainCopy is the yardstick for BenchmarkS3: the same bytes
// written to and read from files on the same disk by 8 goroutines, with no
// object store in between.
func BenchmarkPlainCopy(b *testing.B) {
	dir := b.TempDir()
	data := make([]byte, s3Size)
	rand.Read(data)
	const workers = 8
	part := s3Size / workers
	each := func(f func(i int) error) { parallel(b, workers, f) }
	name := func(i int) string { return filepath.Join(dir, fmt.Sprintf("part-%d", i)) }
	b.Run("write-1GiB", func(b *testing.B) {
		b.SetBytes(s3Size)
		for b.Loop() {
			each(func(i int) error { return os.WriteFile(name(i), data[i*part:(i+1)*part], 0o644) })
		}
	})
	b.Run("read-1GiB", func(b *testing.B) {
		b.SetBytes(s3Size)
		out := make([]byte, s3Size)
		for b.Loop() {
			each(func(i int) error {
				f, err := os.Open(name(i))
				if err != nil {
					return err
				}
				defer f.Close()
				_, err = f.ReadAt(out[i*part:(i+1)*part], 0)
				return err
			})
		}
	})
}
