package dataset_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"stepwise.dev/stepwise/internal/dataset"
	"stepwise.dev/stepwise/internal/testservers"
	"stepwise.dev/stepwise/internal/warehouse"
	s3fs "stepwise.dev/stepwise/internal/warehouse/s3"
)

var seq atomic.Int64

// countingTransport counts the GETs (object reads) and HEADs sent to S3,
// and the distinct objects they touched.
type countingTransport struct {
	gets, heads atomic.Int64
	base        http.RoundTripper
	mu          sync.Mutex
	objects     map[string]bool
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	switch r.Method {
	case http.MethodGet:
		if !strings.Contains(r.URL.RawQuery, "list-type") {
			c.gets.Add(1)
			c.touch(r.URL.Path)
		}
	case http.MethodHead:
		c.heads.Add(1)
		c.touch(r.URL.Path)
	}
	return c.base.RoundTrip(r)
}

func (c *countingTransport) touch(path string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.objects == nil {
		c.objects = map[string]bool{}
	}
	c.objects[path] = true
}

// reset zeroes the counts.
func (c *countingTransport) reset() {
	c.gets.Store(0)
	c.heads.Store(0)
	c.mu.Lock()
	c.objects = nil
	c.mu.Unlock()
}

// touched is how many distinct objects were read or asked for.
func (c *countingTransport) touched() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.objects)
}

// minio gives the test its own prefix on a real MinIO, and the transport
// that counts its requests.
func minio(t testing.TB) (*s3fs.FS, *countingTransport) {
	srv := testservers.MinIO(t)
	t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
	t.Setenv("AWS_REGION", "us-east-1")
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64 // as many as the scans keep in flight
	ct := &countingTransport{base: tr}
	fsys, err := s3fs.New(context.Background(), fmt.Sprintf("s3://stepwise-tables/t%d-%d", time.Now().UnixNano(), seq.Add(1)), s3fs.Options{Endpoint: srv.Endpoint, HTTPClient: &http.Client{Transport: ct}})
	if err != nil {
		t.Fatal(err)
	}
	if err := fsys.CreateBucket(context.Background()); err != nil {
		t.Fatal(err)
	}
	return fsys, ct
}

// stores runs f on a local directory and on MinIO.
func stores(t *testing.T, f func(t *testing.T, fsys warehouse.FS)) {
	t.Run("local", func(t *testing.T) { f(t, &warehouse.Local{Dir: t.TempDir()}) })
	t.Run("minio", func(t *testing.T) {
		fsys, _ := minio(t)
		f(t, fsys)
	})
}

var events = arrow.NewSchema([]arrow.Field{
	{Name: "region", Type: arrow.BinaryTypes.String},
	{Name: "day", Type: arrow.PrimitiveTypes.Int32},
	{Name: "user", Type: arrow.PrimitiveTypes.Int64},
	{Name: "amount", Type: arrow.PrimitiveTypes.Float64},
	{Name: "note", Type: arrow.BinaryTypes.String, Nullable: true},
}, nil)

var regions = []string{"eu", "us", "asia"}

// eventBatch makes n rows: region cycles, day is i%4, user is i, amount
// is i%100 + 0.5.
func eventBatch(start, n int) arrow.RecordBatch {
	b := array.NewRecordBuilder(memory.DefaultAllocator, events)
	defer b.Release()
	for i := start; i < start+n; i++ {
		b.Field(0).(*array.StringBuilder).Append(regions[i%3])
		b.Field(1).(*array.Int32Builder).Append(int32(i % 4))
		b.Field(2).(*array.Int64Builder).Append(int64(i))
		b.Field(3).(*array.Float64Builder).Append(float64(i%100) + 0.5)
		if i%7 == 0 {
			b.Field(4).AppendNull()
		} else {
			b.Field(4).(*array.StringBuilder).Append(fmt.Sprintf("n%d", i))
		}
	}
	return b.NewRecordBatch()
}

func write(t testing.TB, fsys warehouse.FS, o dataset.WriteOptions, batches ...arrow.RecordBatch) *dataset.Manifest {
	t.Helper()
	ctx := context.Background()
	w, err := dataset.NewWriter(ctx, fsys, batches[0].Schema(), o)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range batches {
		if err := w.Write(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	m, err := w.Commit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// rowsOf reads a whole scan as rows of text, sorted, and its stats.
func scanRows(t testing.TB, fsys warehouse.FS, o dataset.ScanOptions) ([]string, dataset.Stats) {
	t.Helper()
	r, err := dataset.Scan(context.Background(), fsys, o)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var rows []string
	for r.Next() {
		rec := r.RecordBatch()
		for i := 0; i < int(rec.NumRows()); i++ {
			var cells []string
			for c := 0; c < int(rec.NumCols()); c++ {
				cells = append(cells, rec.ColumnName(c)+"="+rec.Column(c).ValueStr(i))
			}
			rows = append(rows, strings.Join(cells, " "))
		}
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(rows)
	return rows, r.Stats()
}

// expected computes, without the library, the rows eventBatch(0, n) has
// that satisfy keep, projected to cols.
func expected(n int, cols []string, keep func(region string, day, user int, amount float64) bool) []string {
	var rows []string
	for i := 0; i < n; i++ {
		region, day, amount := regions[i%3], i%4, float64(i%100)+0.5
		if !keep(region, day, i, amount) {
			continue
		}
		note := fmt.Sprintf("n%d", i)
		if i%7 == 0 {
			note = "(null)"
		}
		vals := map[string]string{"region": region, "day": fmt.Sprint(day), "user": fmt.Sprint(i), "amount": fmt.Sprint(amount), "note": note}
		var cells []string
		for _, c := range cols {
			cells = append(cells, c+"="+vals[c])
		}
		rows = append(rows, strings.Join(cells, " "))
	}
	slices.Sort(rows)
	return rows
}

func TestRoundTripPartitioned(t *testing.T) {
	stores(t, func(t *testing.T, fsys warehouse.FS) {
		b1, b2 := eventBatch(0, 5000), eventBatch(5000, 3000)
		defer b1.Release()
		defer b2.Release()
		m := write(t, fsys, dataset.WriteOptions{PartitionBy: []string{"region", "day"}, RowGroupRows: 1000}, b1, b2)
		if m.Version != 1 || len(m.Files) != 12 {
			t.Fatalf("manifest version %d with %d files, want version 1 with 12 (3 regions x 4 days)", m.Version, len(m.Files))
		}
		for _, tc := range []struct {
			name   string
			cols   []string
			filter string
			keep   func(string, int, int, float64) bool
		}{
			{"all", nil, "", func(string, int, int, float64) bool { return true }},
			{"projection", []string{"user", "region"}, "", func(string, int, int, float64) bool { return true }},
			{"partition filter", []string{"user", "day"}, "region = 'eu' and day >= 2", func(r string, d, _ int, _ float64) bool { return r == "eu" && d >= 2 }},
			{"in", []string{"user"}, "region in ('us', 'asia') and day != 0", func(r string, d, _ int, _ float64) bool { return r != "eu" && d != 0 }},
			{"data filter", []string{"user", "amount"}, "amount < 10 and user >= 7000", func(_ string, _, u int, a float64) bool { return a < 10 && u >= 7000 }},
			{"string data filter", []string{"user", "note"}, "note = 'n4001'", func(_ string, _, u int, _ float64) bool { return u == 4001 }},
			{"nothing", []string{"user"}, "region = 'mars'", func(string, int, int, float64) bool { return false }},
		} {
			t.Run(tc.name, func(t *testing.T) {
				f, err := dataset.ParseFilter(tc.filter)
				if err != nil {
					t.Fatal(err)
				}
				cols := tc.cols
				if cols == nil {
					cols = []string{"user", "amount", "note", "region", "day"}
				}
				got, _ := scanRows(t, fsys, dataset.ScanOptions{Columns: tc.cols, Filter: f})
				want := expected(8000, cols, tc.keep)
				if len(got) != len(want) {
					t.Fatalf("%d rows, want %d", len(got), len(want))
				}
				// The columns come in schema order when none are asked for.
				if tc.cols == nil {
					want = expectedOrder(want)
				}
				if !slices.Equal(got, want) {
					t.Fatalf("rows differ; first got %q, want %q", got[0], want[0])
				}
			})
		}
	})
}

// expectedOrder reorders "user amount note region day" rows to the
// dataset's order: data columns first (region and day are partition
// columns, last, in partition order).
func expectedOrder(rows []string) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		c := strings.Split(r, " ")
		out[i] = strings.Join([]string{c[0], c[1], c[2], c[3], c[4]}, " ")
	}
	slices.Sort(out)
	return out
}

// TestPruning: a partition filter opens only the files of the partitions
// it keeps, counted at the file opener and, on MinIO, as HTTP GETs.
func TestPruning(t *testing.T) {
	b := eventBatch(0, 12000)
	defer b.Release()
	t.Run("local", func(t *testing.T) {
		fsys := &warehouse.Local{Dir: t.TempDir()}
		write(t, fsys, dataset.WriteOptions{PartitionBy: []string{"region", "day"}}, b)
		c := &warehouse.Counting{FS: fsys}
		f, _ := dataset.ParseFilter("region = 'eu' and day >= 2")
		rows, st := scanRows(t, c, dataset.ScanOptions{Columns: []string{"user"}, Filter: f})
		if len(rows) != 2000 {
			t.Fatalf("%d rows, want 2000", len(rows))
		}
		opened := c.Opened()
		want := []string{dataset.ManifestKey}
		for _, o := range opened {
			if o != dataset.ManifestKey && !strings.HasPrefix(o, "region=eu/day=2/") && !strings.HasPrefix(o, "region=eu/day=3/") {
				t.Errorf("opened %s, which the filter excludes", o)
			}
		}
		if len(opened) != len(want)+2 || st.FilesRead != 2 || st.Files != 12 {
			t.Fatalf("opened %v (stats %+v); want the manifest and 2 of 12 files", opened, st)
		}
	})
	t.Run("minio", func(t *testing.T) {
		fsys, ct := minio(t)
		write(t, fsys, dataset.WriteOptions{PartitionBy: []string{"region", "day"}}, b)
		ct.reset()
		f, _ := dataset.ParseFilter("region = 'eu' and day >= 2")
		rows, st := scanRows(t, fsys, dataset.ScanOptions{Columns: []string{"user"}, Filter: f})
		if len(rows) != 2000 {
			t.Fatalf("%d rows, want 2000", len(rows))
		}
		// Requests touch the manifest and those 2 files only, and send
		// only those files' GETs.
		pruned, fullGets := ct.touched(), ct.gets.Load()
		ct.reset()
		_, all := scanRows(t, fsys, dataset.ScanOptions{Columns: []string{"user"}})
		if pruned != 3 || st.FilesRead != 2 || all.FilesRead != 12 {
			t.Fatalf("pruned scan: touched %d objects with %d GETs, stats %+v; want 3 objects (manifest + 2 files)", pruned, fullGets, st)
		}
		if ct.touched() != 13 {
			t.Fatalf("full scan touched %d objects, want 13", ct.touched())
		}
		perFile := float64(ct.gets.Load()-1) / 12
		if float64(fullGets-1) > perFile*2+0.001 {
			t.Fatalf("pruned scan sent %d GETs, more than 2 files' worth (%.1f each in a full scan)", fullGets, perFile)
		}
	})
}

// TestRowGroupSkipping: statistics skip the row groups that cannot match.
func TestRowGroupSkipping(t *testing.T) {
	stores(t, func(t *testing.T, fsys warehouse.FS) {
		b := eventBatch(0, 10000)
		defer b.Release()
		write(t, fsys, dataset.WriteOptions{RowGroupRows: 1000}, b) // user is sorted: groups of 1,000 users
		f, _ := dataset.ParseFilter("user >= 2500 and user < 3100")
		rows, st := scanRows(t, fsys, dataset.ScanOptions{Columns: []string{"user"}, Filter: f})
		if len(rows) != 600 {
			t.Fatalf("%d rows, want 600", len(rows))
		}
		if st.RowGroups != 10 || st.RowGroupsRead != 2 {
			t.Fatalf("read %d of %d row groups, want 2 of 10", st.RowGroupsRead, st.RowGroups)
		}
	})
}

func TestAppendAndOverwrite(t *testing.T) {
	stores(t, func(t *testing.T, fsys warehouse.FS) {
		ctx := context.Background()
		b1, b2 := eventBatch(0, 100), eventBatch(100, 50)
		defer b1.Release()
		defer b2.Release()
		write(t, fsys, dataset.WriteOptions{PartitionBy: []string{"region"}}, b1)
		m := write(t, fsys, dataset.WriteOptions{PartitionBy: []string{"region"}, Append: true}, b2)
		if rows, _ := scanRows(t, fsys, dataset.ScanOptions{}); len(rows) != 150 || m.Version != 2 {
			t.Fatalf("after append: %d rows, version %d; want 150, 2", len(rows), m.Version)
		}
		m = write(t, fsys, dataset.WriteOptions{PartitionBy: []string{"region"}, KeepVersions: -1}, b2)
		if rows, _ := scanRows(t, fsys, dataset.ScanOptions{}); len(rows) != 50 || m.Version != 3 {
			t.Fatalf("after overwrite: %d rows, version %d; want 50, 3", len(rows), m.Version)
		}
		objs, err := fsys.List(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		if len(objs) != len(m.Files)+2 {
			t.Fatalf("after overwrite keeping no versions %d objects remain, want the manifest, its copy and %d files: %v", len(objs), len(m.Files), objs)
		}
		// Appending batches of another schema is refused, naming the column.
		other := arrow.NewSchema([]arrow.Field{{Name: "region", Type: arrow.BinaryTypes.String}, {Name: "user", Type: arrow.BinaryTypes.String}}, nil)
		_, err = dataset.NewWriter(ctx, fsys, other, dataset.WriteOptions{PartitionBy: []string{"region"}, Append: true})
		if err == nil || !strings.Contains(err.Error(), `"day"`) {
			t.Fatalf("append with another schema: %v", err)
		}
	})
}

// failingFS fails every Put after the first n: a disk or a store that
// stops mid-write.
type failingFS struct {
	warehouse.FS
	n atomic.Int64
}

func (f *failingFS) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	if f.n.Add(-1) < 0 {
		return fmt.Errorf("injected failure storing %s", key)
	}
	return f.FS.Put(ctx, key, r, size)
}

// TestFailedWrite: a write that fails midway leaves the table as it was,
// with none of its files left behind.
func TestFailedWrite(t *testing.T) {
	stores(t, func(t *testing.T, fsys warehouse.FS) {
		ctx := context.Background()
		b := eventBatch(0, 6000)
		defer b.Release()
		write(t, fsys, dataset.WriteOptions{PartitionBy: []string{"region"}}, b)
		before, _ := fsys.List(ctx, "")
		beforeRows, _ := scanRows(t, fsys, dataset.ScanOptions{})
		for _, failAfter := range []int64{0, 2, 12} { // the first file, some files, the manifest
			ff := &failingFS{FS: fsys}
			ff.n.Store(failAfter)
			w, err := dataset.NewWriter(ctx, ff, b.Schema(), dataset.WriteOptions{PartitionBy: []string{"region", "day"}, FileRows: 1000})
			if err != nil {
				t.Fatal(err)
			}
			err = w.Write(ctx, b)
			if err == nil {
				_, err = w.Commit(ctx)
			} else {
				w.Abort(ctx)
			}
			if err == nil || !strings.Contains(err.Error(), "injected failure") {
				t.Fatalf("fail after %d puts: the write succeeded or failed otherwise: %v", failAfter, err)
			}
			after, _ := fsys.List(ctx, "")
			if !reflect.DeepEqual(before, after) {
				t.Fatalf("fail after %d puts: objects before %v, after %v", failAfter, before, after)
			}
			if rows, _ := scanRows(t, fsys, dataset.ScanOptions{}); !slices.Equal(rows, beforeRows) {
				t.Fatalf("fail after %d puts: the table's rows changed", failAfter)
			}
		}
		// A failed first write of a new table leaves nothing at all.
		fresh := &failingFS{FS: &warehouse.Local{Dir: t.TempDir()}}
		fresh.n.Store(2) // the empty manifest and one file
		w, err := dataset.NewWriter(ctx, fresh, b.Schema(), dataset.WriteOptions{PartitionBy: []string{"region"}})
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Write(ctx, b); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Commit(ctx); err == nil {
			t.Fatal("commit succeeded")
		}
		if objs, _ := fresh.List(ctx, ""); len(objs) != 0 {
			t.Fatalf("a failed first write left %v", objs)
		}
	})
}

func TestMissingTable(t *testing.T) {
	stores(t, func(t *testing.T, fsys warehouse.FS) {
		_, err := dataset.Scan(context.Background(), fsys, dataset.ScanOptions{})
		if !errors.Is(err, dataset.ErrNoTable) || !strings.Contains(err.Error(), fsys.String()) {
			t.Fatalf("scan of an empty location: %v", err)
		}
	})
}

// TestCorruptFile: a file that is not Parquet is an error naming it.
func TestCorruptFile(t *testing.T) {
	stores(t, func(t *testing.T, fsys warehouse.FS) {
		ctx := context.Background()
		b := eventBatch(0, 300)
		defer b.Release()
		m := write(t, fsys, dataset.WriteOptions{PartitionBy: []string{"region"}}, b)
		bad := m.Files[1].Path
		junk := strings.Repeat("not parquet at all ", 20)
		if err := fsys.Put(ctx, bad, strings.NewReader(junk), int64(len(junk))); err != nil {
			t.Fatal(err)
		}
		r, err := dataset.Scan(ctx, fsys, dataset.ScanOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for r.Next() {
		}
		r.Close()
		if err := r.Err(); err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "not valid Parquet") {
			t.Fatalf("scan with a corrupt file: %v", err)
		}
	})
}

// TestAccessDenied: MinIO with wrong credentials says so.
func TestAccessDenied(t *testing.T) {
	fsys, _ := minio(t)
	b := eventBatch(0, 10)
	defer b.Release()
	write(t, fsys, dataset.WriteOptions{}, b)
	t.Setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret")
	srv := testservers.MinIO(t)
	denied, err := s3fs.New(context.Background(), fsys.String(), s3fs.Options{Endpoint: srv.Endpoint, MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	_, err = dataset.Scan(context.Background(), denied, dataset.ScanOptions{})
	if err == nil || !strings.Contains(err.Error(), "access denied") || !strings.Contains(err.Error(), "credentials") {
		t.Fatalf("scan with wrong credentials: %v", err)
	}
}

func TestBadScanOptions(t *testing.T) {
	fsys := &warehouse.Local{Dir: t.TempDir()}
	b := eventBatch(0, 10)
	defer b.Release()
	write(t, fsys, dataset.WriteOptions{PartitionBy: []string{"region"}}, b)
	for _, tc := range []struct {
		cols   []string
		filter string
		want   string
	}{
		{[]string{"nope"}, "", `no column "nope"`},
		{nil, "nope = 1", `names column "nope"`},
		{nil, "user = 'x'", "write a number"},
	} {
		f, err := dataset.ParseFilter(tc.filter)
		if err != nil {
			t.Fatal(err)
		}
		_, err = dataset.Scan(context.Background(), fsys, dataset.ScanOptions{Columns: tc.cols, Filter: f})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("columns %v filter %q: %v, want an error with %q", tc.cols, tc.filter, err, tc.want)
		}
	}
}

// TestForeignDataset: a Hive-partitioned directory written by another
// tool (no manifest) is read by listing it; hidden files are skipped.
func TestForeignDataset(t *testing.T) {
	dir := t.TempDir()
	src := &warehouse.Local{Dir: t.TempDir()}
	b := eventBatch(0, 600)
	defer b.Release()
	m := write(t, src, dataset.WriteOptions{PartitionBy: []string{"region"}}, b)
	for _, f := range m.Files {
		data, err := os.ReadFile(filepath.Join(src.Dir, f.Path))
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(dir, f.Path)
		os.MkdirAll(filepath.Dir(dst), 0o755)
		os.WriteFile(dst, data, 0o644)
	}
	os.WriteFile(filepath.Join(dir, "_SUCCESS"), nil, 0o644)
	os.MkdirAll(filepath.Join(dir, "_temporary", "region=eu"), 0o755)
	os.WriteFile(filepath.Join(dir, "_temporary", "region=eu", "part.parquet"), []byte("half"), 0o644)
	f, _ := dataset.ParseFilter("region = 'us'")
	rows, st := scanRows(t, &warehouse.Local{Dir: dir}, dataset.ScanOptions{Columns: []string{"user", "region"}, Filter: f})
	if len(rows) != 200 || st.FilesRead != 1 || st.ManifestVer != 0 {
		t.Fatalf("%d rows, stats %+v; want 200 rows from 1 file", len(rows), st)
	}
	// Writing there would hide its files behind a manifest: refused.
	if _, err := dataset.NewWriter(context.Background(), &warehouse.Local{Dir: dir}, b.Schema(), dataset.WriteOptions{}); err == nil || !strings.Contains(err.Error(), "another tool") {
		t.Fatalf("write over a foreign dataset: %v", err)
	}
}

// TestPrefetchBounds: on MinIO, a scan returns the same rows whatever its
// prefetch budget and file concurrency, down to one piece in flight per
// file, with projections that leave gaps between the chunks read.
func TestPrefetchBounds(t *testing.T) {
	fsys, _ := minio(t)
	b := eventBatch(0, 60000)
	defer b.Release()
	write(t, fsys, dataset.WriteOptions{PartitionBy: []string{"region"}, RowGroupRows: 5000, FileRows: 12000}, b)
	for _, cols := range [][]string{nil, {"user"}, {"amount", "region"}} {
		want, _ := scanRows(t, fsys, dataset.ScanOptions{Columns: cols, Concurrency: 1, PrefetchBytes: 1 << 30})
		if len(want) != 60000 {
			t.Fatalf("columns %v: %d rows, want 60000", cols, len(want))
		}
		for _, tc := range []struct {
			name          string
			concurrency   int
			prefetchBytes int64
		}{
			{"one byte, one file", 1, 1},
			{"one byte, eight files", 8, 1},
			{"1 MiB, three files", 3, 1 << 20},
			{"default", 0, 0},
		} {
			got, st := scanRows(t, fsys, dataset.ScanOptions{Columns: cols, Concurrency: tc.concurrency, PrefetchBytes: tc.prefetchBytes})
			if !slices.Equal(got, want) {
				t.Fatalf("columns %v, %s: %d rows differ from the unbounded scan's %d (stats %+v)", cols, tc.name, len(got), len(want), st)
			}
		}
	}
}

// TestScanReusesMemory: batches large enough for the scan to reuse their
// buffers (64 KiB and up) read back right, scan after scan, and a batch
// retained past Next keeps its values while later batches reuse memory.
func TestScanReusesMemory(t *testing.T) {
	stores(t, func(t *testing.T, fsys warehouse.FS) {
		const rows = 300_000
		schema := arrow.NewSchema([]arrow.Field{
			{Name: "part", Type: arrow.PrimitiveTypes.Int32},
			{Name: "n", Type: arrow.PrimitiveTypes.Int64},
			{Name: "s", Type: arrow.BinaryTypes.String},
		}, nil)
		bld := array.NewRecordBuilder(memory.DefaultAllocator, schema)
		defer bld.Release()
		var wantSum int64
		for i := range rows {
			bld.Field(0).(*array.Int32Builder).Append(int32(i % 3))
			bld.Field(1).(*array.Int64Builder).Append(int64(i) * 7)
			bld.Field(2).(*array.StringBuilder).Append(fmt.Sprintf("s%07d", i))
			wantSum += int64(i) * 7
		}
		rec := bld.NewRecordBatch()
		defer rec.Release()
		write(t, fsys, dataset.WriteOptions{PartitionBy: []string{"part"}}, rec)
		ctx := context.Background()
		for scan := range 3 {
			r, err := dataset.Scan(ctx, fsys, dataset.ScanOptions{Concurrency: 1, BatchReadahead: 1})
			if err != nil {
				t.Fatal(err)
			}
			var kept arrow.RecordBatch
			var keptSum int64
			var sum, n int64
			for r.Next() {
				b := r.RecordBatch()
				ns := b.Column(0).(*array.Int64)
				ss := b.Column(1).(*array.String)
				for i := range ns.Len() {
					if want := fmt.Sprintf("s%07d", ns.Value(i)/7); ss.Value(i) != want {
						t.Fatalf("scan %d: row n=%d has s=%q, want %q", scan, ns.Value(i), ss.Value(i), want)
					}
					sum += ns.Value(i)
				}
				n += b.NumRows()
				if kept == nil {
					kept = b
					kept.Retain()
					for _, v := range ns.Int64Values() {
						keptSum += v
					}
				}
			}
			if err := r.Err(); err != nil {
				t.Fatal(err)
			}
			r.Close()
			if n != rows || sum != wantSum {
				t.Fatalf("scan %d: %d rows summing to %d, want %d summing to %d", scan, n, sum, rows, wantSum)
			}
			var again int64
			for _, v := range kept.Column(0).(*array.Int64).Int64Values() {
				again += v
			}
			kept.Release()
			if again != keptSum {
				t.Fatalf("scan %d: a retained batch changed after later batches were read: sum %d, was %d", scan, again, keptSum)
			}
		}
	})
}
