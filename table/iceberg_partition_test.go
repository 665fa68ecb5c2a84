package table_test

import (
	"context"
	"errors"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"stepwise.dev/stepwise/internal/dataset"
	"stepwise.dev/stepwise/internal/icebergcat"
	s3fs "stepwise.dev/stepwise/internal/warehouse/s3"
	"stepwise.dev/stepwise/table"
)

// TestIcebergPartitioned: a table created with PartitionBy gets an
// identity partition spec; each write stores a data file per partition,
// an append without PartitionBy keeps the table's partitioning, and a
// partition filter plans only the matching files. A write asking for
// other partition columns, or for a column it does not hold, is refused.
func TestIcebergPartitioned(t *testing.T) {
	for _, tc := range []struct {
		name      string
		warehouse func(t *testing.T) string
	}{
		{"directory", func(t *testing.T) string { return filepath.Join(t.TempDir(), "warehouse") }},
		{"MinIO", minioPrefix},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			wh := tc.warehouse(t)
			cat := "iceberg+sqlite://" + filepath.Join(t.TempDir(), "catalog.db") + "?warehouse=" + wh

			if _, err := table.WriteRows(ctx, "sales.bad", events(0, 10), &table.WriteOptions{Catalog: cat, PartitionBy: []string{"country"}}); err == nil ||
				!strings.Contains(err.Error(), `"country"`) || !strings.Contains(err.Error(), "user, region, amount") {
				t.Fatalf("partitioning by a column the rows do not have: %v", err)
			}
			if _, err := table.WriteRows(ctx, "sales.events", events(0, 100), &table.WriteOptions{Catalog: cat, PartitionBy: []string{"region"}}); err != nil {
				t.Fatal(err)
			}
			if _, err := table.WriteRows(ctx, "sales.events", events(100, 50), &table.WriteOptions{Catalog: cat, Append: true}); err != nil {
				t.Fatal(err)
			}
			_, err := table.WriteRows(ctx, "sales.events", events(0, 10), &table.WriteOptions{Catalog: cat, Append: true, PartitionBy: []string{"user"}})
			if err == nil || !strings.Contains(err.Error(), "partitioned by [region]") || !strings.Contains(err.Error(), "asks for [user]") {
				t.Fatalf("appending with other partition columns: %v", err)
			}

			// Two writes of two partitions: four data files, each under
			// its partition's directory.
			dirs := map[string]int{}
			for _, p := range dataFiles(t, wh) {
				dirs[filepath.Base(filepath.Dir(p))]++
			}
			if len(dirs) != 2 || dirs["region=eu"] != 2 || dirs["region=us"] != 2 {
				t.Fatalf("data files by directory: %v, want 2 under region=eu and 2 under region=us", dirs)
			}

			c, err := icebergcat.Open(ctx, cat)
			if err != nil {
				t.Fatal(err)
			}
			tb, err := c.Table(ctx, "sales.events", false)
			if err != nil {
				t.Fatal(err)
			}
			f, err := dataset.ParseFilter("region = 'eu'")
			if err != nil {
				t.Fatal(err)
			}
			s, _, err := tb.Scan(ctx, dataset.ScanOptions{Filter: f}, dataset.AsOf{})
			if err != nil {
				t.Fatal(err)
			}
			for s.Next() {
			}
			files, rows := s.Progress()
			s.Close()
			if err := s.Err(); err != nil {
				t.Fatal(err)
			}
			if files != 2 || rows != 75 {
				t.Fatalf("region = 'eu': %d files planned and %d rows, want 2 and 75", files, rows)
			}

			got, err := table.Read[event](ctx, "sales.events", &table.ReadOptions{Catalog: cat, Filter: "region = 'us' and user < 20"})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 10 {
				t.Fatalf("region = 'us' and user < 20: %d rows, want 10", len(got))
			}
			for _, e := range got {
				if want := events(int(e.User), 1)[0]; e != want {
					t.Fatalf("row %+v, want %+v", e, want)
				}
			}
		})
	}
}

// dataFiles lists the Parquet files under a warehouse, a directory or
// an s3:// prefix.
func dataFiles(t *testing.T, wh string) []string {
	t.Helper()
	var out []string
	if strings.HasPrefix(wh, "s3://") {
		fsys, err := s3fs.New(context.Background(), wh, s3fs.Options{})
		if err != nil {
			t.Fatal(err)
		}
		objs, err := fsys.List(context.Background(), "")
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			if strings.HasSuffix(o.Key, ".parquet") {
				out = append(out, o.Key)
			}
		}
		return out
	}
	err := filepath.WalkDir(wh, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".parquet") {
			out = append(out, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestParquetVersions: a Parquet dataset's replaced version is read
// again through table.Open by the version its write returned, or by time.
func TestParquetVersions(t *testing.T) {
	ctx := context.Background()
	loc := filepath.Join(t.TempDir(), "events")
	v1, err := table.WriteRows(ctx, loc, events(0, 100), &table.WriteOptions{PartitionBy: []string{"region"}})
	if err != nil {
		t.Fatal(err)
	}
	v2, err := table.WriteRows(ctx, loc, events(100, 30), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		o    table.ReadOptions
		rows int
		v    int64
	}{
		{table.ReadOptions{}, 30, v2.Version},
		{table.ReadOptions{Snapshot: v1.Version}, 100, v1.Version},
		{table.ReadOptions{AsOf: v1.Time}, 100, v1.Version},
	} {
		r, err := table.Open(ctx, loc, &tc.o)
		if err != nil {
			t.Fatal(err)
		}
		if r.Version().Version != tc.v || r.Version().Format != "parquet" {
			t.Errorf("%+v: read version %+v, want %d", tc.o, r.Version(), tc.v)
		}
		r.Close()
		got, err := table.Read[event](ctx, loc, &tc.o)
		if err != nil || len(got) != tc.rows {
			t.Fatalf("%+v: %d rows (%v), want %d", tc.o, len(got), err, tc.rows)
		}
	}
}

// TestIcebergStreamedWrite: batches stream to the Iceberg library as
// they are written (nothing is held until Commit); an aborted write
// commits nothing, and the table a first write created is dropped again.
func TestIcebergStreamedWrite(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cat := "iceberg+sqlite://" + filepath.Join(dir, "catalog.db") + "?warehouse=" + filepath.Join(dir, "warehouse")
	schema := arrow.NewSchema([]arrow.Field{{Name: "n", Type: arrow.PrimitiveTypes.Int64}}, nil)
	batch := func(from, n int) arrow.RecordBatch {
		b := array.NewInt64Builder(memory.DefaultAllocator)
		defer b.Release()
		for i := range n {
			b.Append(int64(from + i))
		}
		col := b.NewArray()
		defer col.Release()
		return array.NewRecordBatch(schema, []arrow.Array{col}, int64(n))
	}
	write := func(name string, batches int, commit bool) {
		t.Helper()
		w, err := table.NewWriter(ctx, name, schema, &table.WriteOptions{Catalog: cat, Append: true})
		if err != nil {
			t.Fatal(err)
		}
		for i := range batches {
			rec := batch(i*1000, 1000)
			err := w.Write(ctx, rec)
			rec.Release()
			if err != nil {
				t.Fatal(err)
			}
		}
		if commit {
			if _, err := w.Commit(ctx); err != nil {
				t.Fatal(err)
			}
		} else if err := w.Abort(ctx); err != nil {
			t.Fatal(err)
		}
	}
	count := func(name string) int64 {
		t.Helper()
		r, err := table.Open(ctx, name, &table.ReadOptions{Catalog: cat})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		var n int64
		for r.Next() {
			n += r.RecordBatch().NumRows()
		}
		if err := r.Err(); err != nil {
			t.Fatal(err)
		}
		return n
	}
	write("s.kept", 50, true)
	if n := count("s.kept"); n != 50_000 {
		t.Fatalf("%d rows after a write of 50 batches, want 50,000", n)
	}
	write("s.kept", 5, false)
	if n := count("s.kept"); n != 50_000 {
		t.Fatalf("%d rows after an aborted append, want 50,000", n)
	}
	// A finished write refuses more.
	w, err := table.NewWriter(ctx, "s.kept", schema, &table.WriteOptions{Catalog: cat, Append: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	rec := batch(0, 1)
	defer rec.Release()
	if err := w.Write(ctx, rec); err == nil || !strings.Contains(err.Error(), "after Commit") {
		t.Fatalf("Write after Commit: %v", err)
	}
	if _, err := w.Commit(ctx); err == nil || !strings.Contains(err.Error(), "after Commit") {
		t.Fatalf("Commit after Commit: %v", err)
	}
	if err := w.Abort(ctx); err != nil {
		t.Fatalf("Abort after Commit: %v", err)
	}
	write("s.new", 5, false)
	if _, err := table.Open(ctx, "s.new", &table.ReadOptions{Catalog: cat}); !errors.Is(err, table.ErrNotFound) {
		t.Fatalf("reading a table whose first write was aborted: %v, want ErrNotFound", err)
	}
}
