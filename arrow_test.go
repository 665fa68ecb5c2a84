package stepwise_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/klauspost/compress/zstd"

	"stepwise.dev/stepwise"
	"stepwise.dev/stepwise/client"
	"stepwise.dev/stepwise/internal/datastore/s3"
)

// Tabular writes an Arrow table and a record batch in start; sum reads
// them back from their artifacts.
type Tabular struct {
	Rows   int `param:"rows" help:"rows to generate"`
	Events arrow.Table
	Batch  arrow.RecordBatch
	Total  int64
	Names  int64
}

func (f *Tabular) Graph(g *stepwise.Graph) {
	g.Step(f.Start).Next(f.Sum)
	g.Step(f.Sum).Next(f.End)
	g.Step(f.End)
}

var tabularSchema = arrow.NewSchema([]arrow.Field{
	{Name: "id", Type: arrow.PrimitiveTypes.Int64},
	{Name: "user", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "amount", Type: arrow.PrimitiveTypes.Float64},
}, nil)

// tabularChunk builds rows [from, to).
func tabularChunk(from, to int) arrow.RecordBatch {
	b := array.NewRecordBuilder(memory.DefaultAllocator, tabularSchema)
	defer b.Release()
	for i := from; i < to; i++ {
		b.Field(0).(*array.Int64Builder).Append(int64(i))
		if i%10 == 9 {
			b.Field(1).AppendNull()
		} else {
			b.Field(1).(*array.StringBuilder).Append(fmt.Sprintf("user-%d", i%100))
		}
		b.Field(2).(*array.Float64Builder).Append(float64(i) / 8)
	}
	return b.NewRecordBatch()
}

func (f *Tabular) Start(context.Context) error {
	// Two chunks, so that the stored file is not just the table's memory.
	half := f.Rows / 2
	recs := []arrow.RecordBatch{tabularChunk(0, half), tabularChunk(half, f.Rows)}
	f.Events = array.NewTableFromRecords(tabularSchema, recs)
	f.Batch = recs[1]
	recs[0].Release() // the table holds its columns; Batch keeps recs[1]
	return nil
}

func (f *Tabular) Sum(context.Context) error {
	if f.Events == nil || f.Batch == nil {
		return fmt.Errorf("the Arrow artifacts were not loaded: Events %v, Batch %v", f.Events, f.Batch)
	}
	if f.Events.NumRows() != int64(f.Rows) {
		return fmt.Errorf("Events has %d rows, want %d", f.Events.NumRows(), f.Rows)
	}
	for _, c := range f.Events.Column(0).Data().Chunks() {
		for _, v := range c.(*array.Int64).Int64Values() {
			f.Total += v
		}
	}
	for _, c := range f.Events.Column(1).Data().Chunks() {
		f.Names += int64(c.Len() - c.NullN())
	}
	if want := int64(f.Rows - f.Rows/2); f.Batch.NumRows() != want {
		return fmt.Errorf("Batch has %d rows, want %d", f.Batch.NumRows(), want)
	}
	return nil
}

func (f *Tabular) End(context.Context) error { return nil }

// rawBlob reads the stored object of a blob as the datastore keeps it,
// without Stepwise's reading code.
func rawBlob(t *testing.T, ds, key string) []byte {
	t.Helper()
	obj := "blobs/" + key[:2] + "/" + key
	if !strings.HasPrefix(ds, "s3://") {
		data, err := os.ReadFile(filepath.Join(ds, filepath.FromSlash(obj)))
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	b, err := s3.New(context.Background(), ds, s3.Options{})
	if err != nil {
		t.Fatal(err)
	}
	rc, _, err := b.Get(context.Background(), obj)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// blobPayload strips what the datastore adds, as docs/arrow.md tells a
// reader in another language to: the 28-byte header, then zstd when byte
// 5 of the header says so.
func blobPayload(t *testing.T, obj []byte) []byte {
	t.Helper()
	if len(obj) < 28 || string(obj[:4]) != "SWBL" {
		t.Fatalf("the stored object does not start with the blob header: % x", obj[:min(len(obj), 28)])
	}
	size := binary.LittleEndian.Uint64(obj[8:])
	payload := obj[28:]
	if obj[5] == 1 {
		d, err := zstd.NewReader(bytes.NewReader(payload))
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		if payload, err = io.ReadAll(d); err != nil {
			t.Fatal(err)
		}
	}
	if uint64(len(payload)) != size {
		t.Fatalf("the payload holds %d bytes, the header says %d", len(payload), size)
	}
	return payload
}

func TestArrowArtifacts(t *testing.T) {
	for _, where := range []string{"local", "minio"} {
		t.Run(where, func(t *testing.T) {
			ctx := context.Background()
			ds, _ := testEnv(t, "ann")
			if where == "minio" {
				ds = teamEnv(t)
				t.Setenv("STEPWISE_DATASTORE", ds)
			}
			const rows = 100_000 // two record batches in the stored file
			run, err := stepwise.Run(ctx, &Tabular{}, &stepwise.RunOptions{Datastore: ds, Params: map[string]string{"rows": fmt.Sprint(rows)}})
			if err != nil {
				t.Fatal(err)
			}
			end, err := run.EndTask(ctx)
			if err != nil {
				t.Fatal(err)
			}
			wantTotal := int64(rows * (rows - 1) / 2)
			if total, err := client.Get[int64](ctx, end, "Total"); err != nil || total != wantTotal {
				t.Errorf("the next step summed %d, %v; want %d", total, err, wantTotal)
			}
			if names, err := client.Get[int64](ctx, end, "Names"); err != nil || names != rows-rows/10 {
				t.Errorf("the next step counted %d names, %v; want %d", names, err, rows-rows/10)
			}

			// The client gives the table back as Arrow.
			tbl, err := client.Get[arrow.Table](ctx, end, "Events")
			if err != nil {
				t.Fatal(err)
			}
			if tbl.NumRows() != rows || !tbl.Schema().Equal(tabularSchema) {
				t.Errorf("client.Get[arrow.Table] = %d rows of %s", tbl.NumRows(), tbl.Schema())
			}
			tbl.Release()
			rec, err := client.Get[arrow.RecordBatch](ctx, end, "Batch")
			if err != nil {
				t.Fatal(err)
			}
			if rec.NumRows() != rows-rows/2 || rec.Column(0).(*array.Int64).Value(0) != rows/2 {
				t.Errorf("client.Get[arrow.RecordBatch] = %d rows starting at id %d", rec.NumRows(), rec.Column(0).(*array.Int64).Value(0))
			}
			rec.Release()
			a, err := end.Artifact("Events")
			if err != nil || a.Type != "arrow.Table" {
				t.Errorf("the artifact is recorded as %+v, %v; want type arrow.Table", a, err)
			}
			raw, err := end.Raw(ctx, "Events")
			if m, ok := raw.(map[string]any); err != nil || !ok || m["rows"] != int64(rows) {
				t.Errorf("Raw shows %v, %v", raw, err)
			}

			// The stored object, stripped of the datastore's header, is an
			// Arrow IPC file that Arrow's own file reader reads.
			payload := blobPayload(t, rawBlob(t, ds, a.Key))
			r, err := ipc.NewFileReader(bytes.NewReader(payload))
			if err != nil {
				t.Fatalf("Arrow's file reader refuses the stored blob: %v", err)
			}
			var n, total int64
			for i := range r.NumRecords() {
				rec, err := r.RecordBatch(i)
				if err != nil {
					t.Fatal(err)
				}
				n += rec.NumRows()
				for _, v := range rec.Column(0).(*array.Int64).Int64Values() {
					total += v
				}
			}
			r.Close()
			if n != rows || total != wantTotal || !r.Schema().Equal(tabularSchema) {
				t.Errorf("Arrow's reader finds %d rows summing to %d with %s", n, total, r.Schema())
			}
			// OpenArtifact, behind the UI's download link, streams the same file.
			rc, size, err := end.OpenArtifact(ctx, "Events")
			if err != nil {
				t.Fatal(err)
			}
			streamed, _ := io.ReadAll(rc)
			rc.Close()
			if !bytes.Equal(streamed, payload) || size != int64(len(payload)) {
				t.Errorf("OpenArtifact streams %d bytes (said %d), not the %d-byte Arrow file", len(streamed), size, len(payload))
			}

			// Resume from sum: the cloned start's tables are read into the
			// fields of the new run's step.
			resumed, err := stepwise.Resume(ctx, &Tabular{}, &stepwise.ResumeOptions{RunOptions: stepwise.RunOptions{Datastore: ds}, Step: "sum", OriginRunID: run.ID})
			if err != nil {
				t.Fatal(err)
			}
			rend, err := resumed.EndTask(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if total, err := client.Get[int64](ctx, rend, "Total"); err != nil || total != wantTotal {
				t.Errorf("after resume the step summed %d, %v; want %d", total, err, wantTotal)
			}
			if ra, _ := rend.Artifact("Events"); ra.Key != a.Key {
				t.Errorf("the resumed run stores Events under %s, the first under %s: equal tables should be one blob", ra.Key, a.Key)
			}
		})
	}
}
