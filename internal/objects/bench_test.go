package objects_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	sdk "github.com/aws/aws-sdk-go-v2/service/s3"

	"stepwise.dev/stepwise/internal/objects"
)

// benchBytes is the data each benchmark reads: STEPWISE_BENCH_OBJECTS_BYTES
// (e.g. 1073741824 for the README's figures), 64 MiB by default.
func benchBytes(b *testing.B) int64 {
	if s := os.Getenv("STEPWISE_BENCH_OBJECTS_BYTES"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 1<<20 {
			b.Fatalf("STEPWISE_BENCH_OBJECTS_BYTES=%q: want a number of bytes, at least 1048576", s)
		}
		return n
	}
	return 64 << 20
}

// bareClient is the floor's client: the SDK alone, with as many idle
// connections as requests in flight.
func bareClient(b *testing.B, endpoint string) *sdk.Client {
	cfg, err := config.LoadDefaultConfig(context.Background(), config.WithHTTPClient(awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		tr.MaxIdleConns, tr.MaxIdleConnsPerHost = 64, 64
	})))
	if err != nil {
		b.Fatal(err)
	}
	return sdk.NewFromConfig(cfg, func(o *sdk.Options) {
		o.BaseEndpoint = aws.String(endpoint)
		o.UsePathStyle = true
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})
}

// plainGet is the floor: GETs of the given ranges of the given objects by
// workers goroutines, each into its place in one buffer; no version
// pinning, no bookkeeping.
type plainRange struct {
	key      string
	off, len int64
}

func plainGet(ctx context.Context, c *sdk.Client, bucket string, ranges []plainRange, workers int, buf []byte) error {
	var next int
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make([]error, workers)
	var pos int64
	offs := make([]int64, len(ranges))
	for i, r := range ranges {
		offs[i] = pos
		pos += r.len
	}
	for w := range workers {
		wg.Go(func() {
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= len(ranges) {
					return
				}
				r := ranges[i]
				rng := fmt.Sprintf("bytes=%d-%d", r.off, r.off+r.len-1)
				out, err := c.GetObject(ctx, &sdk.GetObjectInput{Bucket: &bucket, Key: &r.key, Range: &rng})
				if err == nil {
					_, err = io.ReadFull(out.Body, buf[offs[i]:offs[i]+r.len])
					out.Body.Close()
				}
				if err != nil {
					errs[w] = err
					return
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// BenchmarkGet reads the same bytes with the bulk API and with the floor,
// a plain parallel GET with the bare SDK, in the same run, and reports
// both in MB/s: many 1 MiB objects (Get of their keys), one large object
// (Get: ranged parallel reads of 16 MiB parts, to memory and to a
// temporary file). 16 requests in flight in both.
//
//	STEPWISE_BENCH_OBJECTS_BYTES=1073741824 go test -run '^$' -bench Get -benchtime 3x ./internal/objects/
func BenchmarkGet(b *testing.B) {
	ctx := context.Background()
	srv, root := minio(b)
	size := benchBytes(b)
	const small = 1 << 20
	const workers = 16
	const part = 16 << 20
	bulk := newBulk(b, objects.Options{Root: root, Concurrency: workers, PartSize: part})
	n := int(size / small)
	keys := make([]string, n)
	var puts []objects.Put
	data := randomBytes(int(size), 7)
	for i := range n {
		keys[i] = fmt.Sprintf("many/%05d", i)
		puts = append(puts, objects.Put{Key: keys[i], Data: data[int64(i)*small : int64(i+1)*small]})
	}
	puts = append(puts, objects.Put{Key: "large", Data: data})
	if _, err := bulk.Put(ctx, puts); err != nil {
		b.Fatal(err)
	}
	data = nil
	bare := bareClient(b, srv.Endpoint)
	bucketName, prefix := bucket, root[len("s3://"+bucket+"/"):]+"/"
	buf := make([]byte, size)

	// The floor reads into one buffer reused by every iteration; the
	// second floor into a new buffer each time, as the bulk API must (it
	// returns the bytes): the difference is the cost of fresh memory.
	measure := func(b *testing.B, bulkRead func() error, floor []plainRange) {
		var tBulk, tFloor, tFresh time.Duration
		for b.Loop() {
			t0 := time.Now()
			if err := bulkRead(); err != nil {
				b.Fatal(err)
			}
			t1 := time.Now()
			if err := plainGet(ctx, bare, bucketName, floor, workers, buf); err != nil {
				b.Fatal(err)
			}
			t2 := time.Now()
			if err := plainGet(ctx, bare, bucketName, floor, workers, make([]byte, size)); err != nil {
				b.Fatal(err)
			}
			tBulk, tFloor, tFresh = tBulk+t1.Sub(t0), tFloor+t2.Sub(t1), tFresh+time.Since(t2)
		}
		mb := float64(size) * float64(b.N) / 1e6
		b.ReportMetric(mb/tBulk.Seconds(), "MB/s")
		b.ReportMetric(mb/tFloor.Seconds(), "floor-MB/s")
		b.ReportMetric(mb/tFresh.Seconds(), "floor-new-buffer-MB/s")
	}
	sizeName := fmt.Sprintf("%dMiB", size>>20)
	b.Run("many-1MiB-objects-"+sizeName, func(b *testing.B) {
		floor := make([]plainRange, n)
		for i, k := range keys {
			floor[i] = plainRange{key: prefix + k, off: 0, len: small}
		}
		measure(b, func() error {
			objs, err := bulk.Get(ctx, keys, false)
			if err == nil && len(objs) != n {
				err = fmt.Errorf("read %d objects, want %d", len(objs), n)
			}
			return err
		}, floor)
	})
	var largeFloor []plainRange
	for off := int64(0); off < size; off += part {
		largeFloor = append(largeFloor, plainRange{key: prefix + "large", off: off, len: min(part, size-off)})
	}
	b.Run("one-large-object-"+sizeName, func(b *testing.B) {
		measure(b, func() error {
			objs, err := bulk.Get(ctx, []string{"large"}, false)
			if err == nil && int64(len(objs[0].Data)) != size {
				err = fmt.Errorf("read %d bytes, want %d", len(objs[0].Data), size)
			}
			return err
		}, largeFloor)
	})
	b.Run("one-large-object-to-file-"+sizeName, func(b *testing.B) {
		measure(b, func() error {
			objs, err := bulk.Get(ctx, []string{"large"}, true)
			if err == nil {
				err = os.Remove(objs[0].Path)
			}
			return err
		}, largeFloor)
	})
}
