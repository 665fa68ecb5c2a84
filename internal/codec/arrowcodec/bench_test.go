package arrowcodec

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"stepwise.dev/stepwise/internal/codec"
	"stepwise.dev/stepwise/internal/datastore"
	"stepwise.dev/stepwise/internal/datastore/local"
)

// benchTable builds a table of about size bytes: an int64 id, a float64
// and a short string per row, random so that it does not compress.
func benchTable(size int64) arrow.Table {
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "x", Type: arrow.PrimitiveTypes.Float64},
		{Name: "tag", Type: arrow.BinaryTypes.String},
	}, nil)
	rows := int(size / (8 + 8 + 4 + 12))
	r := rand.New(rand.NewPCG(3, 4))
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	var recs []arrow.RecordBatch
	const chunk = 1 << 20
	for i := 0; i < rows; i++ {
		b.Field(0).(*array.Int64Builder).Append(r.Int64())
		b.Field(1).(*array.Float64Builder).Append(r.NormFloat64())
		var tag [12]byte
		binary.LittleEndian.PutUint64(tag[:], r.Uint64())
		binary.LittleEndian.PutUint32(tag[8:], r.Uint32())
		b.Field(2).(*array.StringBuilder).Append(fmt.Sprintf("%x", tag[:6]))
		if (i+1)%chunk == 0 || i == rows-1 {
			recs = append(recs, b.NewRecordBatch())
		}
	}
	t := array.NewTableFromRecords(schema, recs)
	releaseAll(recs)
	return t
}

// BenchmarkArrowArtifact stores and loads an Arrow table as an artifact
// (Encode to an Arrow IPC file, PutBlob into a local datastore; GetBlob,
// Decode into an arrow.Table) and, in the same run, the floor: PutBlob and
// GetBlob of the same bytes. STEPWISE_BENCH_ARROW_BYTES sets the table's
// size (64 MiB by default).
//
//	STEPWISE_BENCH_ARROW_BYTES=1073741824 go test -run '^$' -bench ArrowArtifact -benchtime 3x ./internal/codec/arrowcodec/
func BenchmarkArrowArtifact(b *testing.B) {
	size := int64(64 << 20)
	if s := os.Getenv("STEPWISE_BENCH_ARROW_BYTES"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 1<<20 {
			b.Fatalf("STEPWISE_BENCH_ARROW_BYTES=%q: want a number of bytes, at least 1048576", s)
		}
		size = n
	}
	ctx := context.Background()
	be, err := local.New(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	st := datastore.New(be)
	tbl := benchTable(size)
	defer tbl.Release()
	enc, err := codec.Encode(tbl)
	if err != nil {
		b.Fatal(err)
	}
	file := bytes.Join(enc.Parts, nil)
	name := fmt.Sprintf("%dMiB", enc.Size>>20)

	// Each write stores a new blob (no dedup): the table's schema carries
	// the iteration in its metadata, the floor's bytes an 8-byte suffix.
	iter := 0
	variant := func() arrow.Table {
		iter++
		md := arrow.NewMetadata([]string{"iteration"}, []string{strconv.Itoa(iter)})
		schema := arrow.NewSchema(tbl.Schema().Fields(), &md)
		cols := make([]arrow.Column, tbl.NumCols())
		for i := range cols {
			cols[i] = *tbl.Column(i)
		}
		return array.NewTable(schema, cols, tbl.NumRows())
	}
	b.Run("write-"+name, func(b *testing.B) {
		var tArrow, tFloor time.Duration
		for b.Loop() {
			v := variant()
			t0 := time.Now()
			e, err := codec.Encode(v)
			if err == nil {
				_, _, err = st.PutBlob(ctx, e.Parts)
			}
			t1 := time.Now()
			v.Release()
			if err != nil {
				b.Fatal(err)
			}
			t2 := time.Now()
			if _, _, err := st.PutBlob(ctx, [][]byte{file, binary.LittleEndian.AppendUint64(nil, uint64(iter))}); err != nil {
				b.Fatal(err)
			}
			tArrow, tFloor = tArrow+t1.Sub(t0), tFloor+time.Since(t2)
		}
		mb := float64(enc.Size) * float64(b.N) / 1e6
		b.ReportMetric(mb/tArrow.Seconds(), "MB/s")
		b.ReportMetric(mb/tFloor.Seconds(), "floor-MB/s")
	})
	key, _, err := st.PutBlob(ctx, enc.Parts)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("read-"+name, func(b *testing.B) {
		var tArrow, tFloor time.Duration
		for b.Loop() {
			t0 := time.Now()
			data, err := st.GetBlob(ctx, key)
			var back arrow.Table
			if err == nil {
				err = codec.Decode(data, &back)
			}
			t1 := time.Now()
			if err != nil || back.NumRows() != tbl.NumRows() {
				b.Fatal(err)
			}
			back.Release()
			t2 := time.Now()
			raw, err := st.GetBlob(ctx, key)
			if err != nil || !bytes.Equal(raw[:8], file[:8]) {
				b.Fatal(err)
			}
			tArrow, tFloor = tArrow+t1.Sub(t0), tFloor+time.Since(t2)
		}
		mb := float64(enc.Size) * float64(b.N) / 1e6
		b.ReportMetric(mb/tArrow.Seconds(), "MB/s")
		b.ReportMetric(mb/tFloor.Seconds(), "floor-MB/s")
	})
}
