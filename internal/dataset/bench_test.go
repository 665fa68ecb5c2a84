package dataset_test

import (
	"context"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"stepwise.dev/stepwise/internal/dataset"
	s3fs "stepwise.dev/stepwise/internal/warehouse/s3"
)

// benchBytes is the dataset's size: STEPWISE_BENCH_TABLE_BYTES (the
// README's figures use 1073741824), default 64 MiB.
func benchBytes() int64 {
	if v, err := strconv.ParseInt(os.Getenv("STEPWISE_BENCH_TABLE_BYTES"), 10, 64); err == nil && v > 0 {
		return v
	}
	return 64 << 20
}

var (
	benchOnce sync.Once
	benchFS   *s3fs.FS
	benchMan  *dataset.Manifest
)

// benchDataset writes, once per process, a dataset of about benchBytes()
// on MinIO with the writer's defaults: 8 partitions of random int64 and
// float64 columns (which do not compress, so the bytes stored are the
// bytes scanned).
func benchDataset(b *testing.B) (*s3fs.FS, *dataset.Manifest) {
	benchOnce.Do(func() {
		fsys, _ := minio(b)
		schema := arrow.NewSchema([]arrow.Field{
			{Name: "part", Type: arrow.PrimitiveTypes.Int32},
			{Name: "a", Type: arrow.PrimitiveTypes.Int64},
			{Name: "b", Type: arrow.PrimitiveTypes.Float64},
			{Name: "c", Type: arrow.PrimitiveTypes.Int64},
			{Name: "d", Type: arrow.PrimitiveTypes.Float64},
		}, nil)
		ctx := context.Background()
		w, err := dataset.NewWriter(ctx, fsys, schema, dataset.WriteOptions{PartitionBy: []string{"part"}})
		if err != nil {
			b.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(1, 2))
		const batch = 1 << 16
		rows := benchBytes() / 32
		bld := array.NewRecordBuilder(memory.DefaultAllocator, schema)
		for done := int64(0); done < rows; done += batch {
			// One partition per batch, round robin: 8 partitions.
			part := int32((done / batch) % 8)
			for i := 0; i < batch; i++ {
				bld.Field(0).(*array.Int32Builder).Append(part)
				bld.Field(1).(*array.Int64Builder).Append(rng.Int64())
				bld.Field(2).(*array.Float64Builder).Append(rng.Float64())
				bld.Field(3).(*array.Int64Builder).Append(rng.Int64())
				bld.Field(4).(*array.Float64Builder).Append(rng.NormFloat64())
			}
			rec := bld.NewRecordBatch()
			if err := w.Write(ctx, rec); err != nil {
				b.Fatal(err)
			}
			rec.Release()
		}
		bld.Release()
		if benchMan, err = w.Commit(ctx); err != nil {
			b.Fatal(err)
		}
		// MinIO's files were just written: have the kernel write them
		// back now, not during the first measured rounds.
		syscall.Sync()
		benchFS = fsys
	})
	if benchFS == nil {
		b.Fatal("the benchmark dataset could not be written")
	}
	return benchFS, benchMan
}

// BenchmarkTableScan reads the dataset on local MinIO. scan-all scans
// every column of every file to Arrow batches and, in the same iteration,
// reads two floors, so that all three meet the same machine state: a
// plain parallel GET of every data file (8 at once) into buffers
// allocated once (floor), and the same into a new buffer per GET, as
// code that reads an object to memory usually does (new-buf-floor). It
// reports the scan's MB/s, the floors' and the ratios, and the CPU this
// process spent per GiB (MinIO's own excluded) for the scan and the floor.
// scan-one-partition is a scan pruned to one partition of 8. MB/s is of
// the Parquet bytes stored.
//
//	STEPWISE_BENCH_TABLE_BYTES=1073741824 go test -run '^$' -bench TableScan -benchtime 3x -count 3 ./internal/dataset/
func BenchmarkTableScan(b *testing.B) {
	fsys, m := benchDataset(b)
	var total int64
	for _, f := range m.Files {
		total += f.Size
	}
	ctx := context.Background()
	bufs := make([][]byte, len(m.Files))
	for i, fe := range m.Files {
		bufs[i] = make([]byte, fe.Size)
	}
	floor := func(b *testing.B, fresh bool) {
		sem := make(chan struct{}, 8)
		var wg sync.WaitGroup
		for i, fe := range m.Files {
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				f, err := fsys.Open(ctx, fe.Path)
				if err != nil {
					b.Error(err)
					return
				}
				buf := bufs[i]
				if fresh {
					buf = make([]byte, fe.Size)
				}
				if _, err := f.ReadAt(buf, 0); err != nil {
					b.Error(err)
				}
			}()
		}
		wg.Wait()
	}
	scan := func(b *testing.B, filter string) (dataset.Stats, int64) {
		f, err := dataset.ParseFilter(filter)
		if err != nil {
			b.Fatal(err)
		}
		r, err := dataset.Scan(ctx, fsys, dataset.ScanOptions{Filter: f})
		if err != nil {
			b.Fatal(err)
		}
		defer r.Close()
		var rows int64
		for r.Next() {
			rows += r.RecordBatch().NumRows()
		}
		if err := r.Err(); err != nil {
			b.Fatal(err)
		}
		return r.Stats(), rows
	}
	b.Run("scan-all", func(b *testing.B) {
		b.SetBytes(total)
		// Two unmeasured rounds first: the first ones touch memory the
		// process has never used, which costs all three about twice as
		// much on our machines, until the heap has grown to its size.
		for range 2 {
			floor(b, true)
			floor(b, false)
			scan(b, "")
		}
		var floorTime, freshTime, floorCPU, scanCPU time.Duration
		var st dataset.Stats
		for b.Loop() {
			b.StopTimer()
			t0 := time.Now()
			floor(b, true)
			freshTime += time.Since(t0)
			t0, c0 := time.Now(), cpuTime(b)
			floor(b, false)
			floorTime += time.Since(t0)
			c1 := cpuTime(b)
			floorCPU += c1 - c0
			b.StartTimer()
			st, _ = scan(b, "")
			scanCPU += cpuTime(b) - c1
		}
		gib := float64(total) / (1 << 30) * float64(b.N)
		floorMBs := float64(total) * float64(b.N) / floorTime.Seconds() / 1e6
		scanMBs := float64(total) * float64(b.N) / b.Elapsed().Seconds() / 1e6
		freshMBs := float64(total) * float64(b.N) / freshTime.Seconds() / 1e6
		b.ReportMetric(floorMBs, "floor-MB/s")
		b.ReportMetric(scanMBs/floorMBs, "x-floor")
		b.ReportMetric(freshMBs, "new-buf-floor-MB/s")
		b.ReportMetric(scanMBs/freshMBs, "x-new-buf-floor")
		b.ReportMetric(scanCPU.Seconds()/gib, "cpu-s/GiB")
		b.ReportMetric(floorCPU.Seconds()/gib, "floor-cpu-s/GiB")
		b.ReportMetric(float64(st.Rows), "rows")
	})
	b.Run("scan-one-partition", func(b *testing.B) {
		var bytes int64
		for _, fe := range m.Files {
			if fe.Partition["part"] == "3" {
				bytes += fe.Size
			}
		}
		b.SetBytes(bytes)
		var st dataset.Stats
		for b.Loop() {
			st, _ = scan(b, "part = 3")
		}
		b.ReportMetric(float64(st.FilesRead), "files")
		b.ReportMetric(float64(st.Rows), "rows")
	})
}

func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
