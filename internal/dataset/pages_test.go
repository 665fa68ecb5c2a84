package dataset

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"stepwise.dev/stepwise/internal/warehouse"
)

// pageSchema has a column of every type the page decoder reads, required
// and optional, beside columns it leaves to the general reader.
var pageSchema = arrow.NewSchema([]arrow.Field{
	{Name: "i32", Type: arrow.PrimitiveTypes.Int32},
	{Name: "i64n", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	{Name: "f32", Type: arrow.PrimitiveTypes.Float32},
	{Name: "f64n", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	{Name: "f64all", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	{Name: "u32", Type: arrow.PrimitiveTypes.Uint32},
	{Name: "u64n", Type: arrow.PrimitiveTypes.Uint64, Nullable: true},
	{Name: "date", Type: arrow.FixedWidthTypes.Date32},
	{Name: "ts", Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}, Nullable: true},
	{Name: "t32", Type: arrow.FixedWidthTypes.Time32ms},
	{Name: "t64", Type: arrow.FixedWidthTypes.Time64us},
	{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "i16", Type: arrow.PrimitiveTypes.Int16},
	{Name: "list", Type: arrow.ListOf(arrow.PrimitiveTypes.Int64), Nullable: true},
}, nil)

// pageBatch makes n rows from row start: nulls at varying spacing (runs
// and scattered), so definition levels come both RLE and bit-packed.
func pageBatch(start, n int) arrow.RecordBatch {
	b := array.NewRecordBuilder(memory.DefaultAllocator, pageSchema)
	defer b.Release()
	for k := start; k < start+n; k++ {
		null := k%7 == 3 || (k/1000)%5 == 2
		b.Field(0).(*array.Int32Builder).Append(int32(k * 3))
		if null {
			b.Field(1).AppendNull()
		} else {
			b.Field(1).(*array.Int64Builder).Append(int64(k) << 33)
		}
		b.Field(2).(*array.Float32Builder).Append(float32(k) / 4)
		if k%2 == 0 {
			b.Field(3).AppendNull()
		} else {
			b.Field(3).(*array.Float64Builder).Append(float64(k) * 1.5)
		}
		b.Field(4).(*array.Float64Builder).Append(-float64(k))
		b.Field(5).(*array.Uint32Builder).Append(uint32(k) + 1<<31)
		if null {
			b.Field(6).AppendNull()
		} else {
			b.Field(6).(*array.Uint64Builder).Append(uint64(k) + 1<<63)
		}
		b.Field(7).(*array.Date32Builder).Append(arrow.Date32(k % 20000))
		if k%11 == 0 {
			b.Field(8).AppendNull()
		} else {
			b.Field(8).(*array.TimestampBuilder).Append(arrow.Timestamp(int64(k) * 1e6))
		}
		b.Field(9).(*array.Time32Builder).Append(arrow.Time32(k % 86400000))
		b.Field(10).(*array.Time64Builder).Append(arrow.Time64(k))
		b.Field(11).(*array.StringBuilder).Append(fmt.Sprint("s", k%13))
		b.Field(12).(*array.Int16Builder).Append(int16(k))
		lb := b.Field(13).(*array.ListBuilder)
		lb.Append(true)
		lb.ValueBuilder().(*array.Int64Builder).AppendValues([]int64{int64(k), int64(-k)}, nil)
	}
	return b.NewRecordBatch()
}

type pageCase struct {
	name   string
	props  []parquet.WriterProperty
	paged  bool // whether the page decoder reads its numeric chunks
	rows   int
	rgRows int64
}

var pageCases = []pageCase{
	{"v1-snappy", []parquet.WriterProperty{parquet.WithCompression(compress.Codecs.Snappy)}, true, 30_000, 8_000},
	{"v1-uncompressed", nil, true, 30_000, 8_000},
	{"v2-snappy", []parquet.WriterProperty{parquet.WithCompression(compress.Codecs.Snappy), parquet.WithDataPageVersion(parquet.DataPageV2)}, true, 30_000, 8_000},
	{"v2-uncompressed", []parquet.WriterProperty{parquet.WithDataPageVersion(parquet.DataPageV2)}, true, 30_000, 8_000},
	{"small-pages", []parquet.WriterProperty{parquet.WithCompression(compress.Codecs.Snappy), parquet.WithDataPageSize(1000)}, true, 20_000, 20_000},
	{"one-row", []parquet.WriterProperty{parquet.WithCompression(compress.Codecs.Snappy)}, true, 1, 10},
	{"zstd", []parquet.WriterProperty{parquet.WithCompression(compress.Codecs.Zstd)}, false, 10_000, 4_000},
	{"dictionary", []parquet.WriterProperty{parquet.WithCompression(compress.Codecs.Snappy), parquet.WithDictionaryDefault(true)}, false, 10_000, 4_000},
}

// writePageFile writes c's rows as one Parquet file under dir with the
// Arrow library's writer and the case's properties.
func writePageFile(t testing.TB, dir string, c pageCase) string {
	t.Helper()
	props := append([]parquet.WriterProperty{parquet.WithDictionaryDefault(false), parquet.WithMaxRowGroupLength(c.rgRows)}, c.props...)
	path := filepath.Join(dir, "part-0.parquet")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := pqarrow.NewFileWriter(pageSchema, f, parquet.NewWriterProperties(props...), pqarrow.DefaultWriterProps())
	if err != nil {
		t.Fatal(err)
	}
	for start := 0; start < c.rows; start += 5000 {
		rec := pageBatch(start, min(5000, c.rows-start))
		if err := w.WriteBuffered(rec); err != nil {
			t.Fatal(err)
		}
		rec.Release()
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestPageDecoder: every chunk the page decoder takes decodes to what the
// Arrow library's own reader gives for it, and a scan (page decoder and
// general reader mixed in one batch, batches cut across pages and row
// groups) returns what the library's reader returns for the file.
func TestPageDecoder(t *testing.T) {
	for _, c := range pageCases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			path := writePageFile(t, dir, c)
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			pf, err := file.NewParquetReader(bytes.NewReader(raw))
			if err != nil {
				t.Fatal(err)
			}
			defer pf.Close()
			fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
			if err != nil {
				t.Fatal(err)
			}
			md := pf.MetaData()
			paged := 0
			for g := range md.NumRowGroups() {
				rg := md.RowGroup(g)
				for _, sf := range fr.Manifest.Fields {
					if !sf.IsLeaf() {
						continue
					}
					col := md.Schema.Column(sf.ColIndex)
					w := fastWidth(col, sf.Field.Type)
					cc, err := rg.ColumnChunk(sf.ColIndex)
					if err != nil {
						t.Fatal(err)
					}
					if w == 0 || !fastChunk(cc) {
						continue
					}
					got, err := decodeChunk(bytes.NewReader(raw), cc, pageColumn{field: *sf.Field, width: w, optional: col.MaxDefinitionLevel() == 1}, rg.NumRows(), recycler{})
					if err != nil {
						t.Fatalf("row group %d, column %s: %v", g, sf.Field.Name, err)
					}
					want, err := fr.ReadRowGroups(context.Background(), []int{sf.ColIndex}, []int{g})
					if err != nil {
						t.Fatal(err)
					}
					wantArr, err := array.Concatenate(want.Column(0).Data().Chunks(), memory.DefaultAllocator)
					if err != nil {
						t.Fatal(err)
					}
					if !array.Equal(got, wantArr) {
						t.Fatalf("row group %d, column %s: the page decoder gave\n%v\nthe library's reader\n%v", g, sf.Field.Name, got, wantArr)
					}
					got.Release()
					wantArr.Release()
					want.Release()
					paged++
				}
			}
			if c.paged && paged != 11*md.NumRowGroups() {
				t.Fatalf("the page decoder took %d chunks, want the 11 fixed-width ones of each of %d row groups", paged, md.NumRowGroups())
			}
			if !c.paged && paged != 0 {
				t.Fatalf("the page decoder took %d chunks it should leave to the general reader", paged)
			}

			want, err := pqarrow.ReadTable(context.Background(), bytes.NewReader(raw), nil, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
			if err != nil {
				t.Fatal(err)
			}
			defer want.Release()
			for _, cols := range [][]string{nil, {"s", "f64n", "i32"}, {"list", "u64n"}} {
				r, err := Scan(context.Background(), &warehouse.Local{Dir: dir}, ScanOptions{Columns: cols, BatchRows: 3001})
				if err != nil {
					t.Fatal(err)
				}
				var recs []arrow.RecordBatch
				for r.Next() {
					rec := r.RecordBatch()
					rec.Retain()
					recs = append(recs, rec)
				}
				if err := r.Err(); err != nil {
					t.Fatal(err)
				}
				got := array.NewTableFromRecords(r.Schema(), recs)
				r.Close()
				for _, rec := range recs {
					rec.Release()
				}
				if got.NumRows() != int64(c.rows) {
					t.Fatalf("columns %v: %d rows, want %d", cols, got.NumRows(), c.rows)
				}
				for i := range int(got.NumCols()) {
					name := got.Schema().Field(i).Name
					wc := want.Column(want.Schema().FieldIndices(name)[0])
					if !array.ChunkedEqual(got.Column(i).Data(), wc.Data()) {
						t.Fatalf("columns %v: column %s differs from the library's reader", cols, name)
					}
				}
				got.Release()
			}
		})
	}
}

// TestPageDecoderCorrupt: damage anywhere in a column chunk's pages gives
// an error naming the file, or (where the damage is in values) a result;
// never a panic or a hang.
func TestPageDecoderCorrupt(t *testing.T) {
	dir := t.TempDir()
	c := pageCases[0]
	c.rows, c.rgRows = 3000, 3000
	path := writePageFile(t, dir, c)
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pf, err := file.NewParquetReader(bytes.NewReader(good))
	if err != nil {
		t.Fatal(err)
	}
	cc, err := pf.MetaData().RowGroup(0).ColumnChunk(1) // i64n: levels and values
	pf.Close()
	if err != nil {
		t.Fatal(err)
	}
	start, size := cc.DataPageOffset(), cc.TotalCompressedSize()
	errs := 0
	for off := start; off < start+size; off += max(1, size/300) {
		for _, damage := range []func(b []byte){
			func(b []byte) { b[off] ^= 0xff },
			func(b []byte) { b[off] = 0x7f },
		} {
			b := bytes.Clone(good)
			damage(b)
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			r, err := Scan(context.Background(), &warehouse.Local{Dir: dir}, ScanOptions{Columns: []string{"i64n"}})
			if err != nil {
				t.Fatal(err)
			}
			for r.Next() {
			}
			if err := r.Err(); err != nil {
				errs++
				if !strings.Contains(err.Error(), "part-0.parquet") || !strings.Contains(err.Error(), "not valid Parquet") {
					t.Fatalf("damage at byte %d: %v; want an error naming the file as not valid Parquet", off, err)
				}
			}
			r.Close()
		}
	}
	if errs == 0 {
		t.Fatal("no damage was noticed")
	}
}

// FuzzPageHeader: any bytes parse as a page header or are refused, never
// a panic; a header parsed takes no more bytes than there are.
func FuzzPageHeader(f *testing.F) {
	// Seeds: a chunk of v1 pages and one of v2 pages.
	for _, c := range []pageCase{pageCases[0], pageCases[2]} {
		c.rows, c.rgRows = 100, 100
		raw, err := os.ReadFile(writePageFile(f, f.TempDir(), c))
		if err != nil {
			f.Fatal(err)
		}
		pf, err := file.NewParquetReader(bytes.NewReader(raw))
		if err != nil {
			f.Fatal(err)
		}
		cc, err := pf.MetaData().RowGroup(0).ColumnChunk(1)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw[cc.DataPageOffset() : cc.DataPageOffset()+cc.TotalCompressedSize()])
		pf.Close()
	}
	f.Add([]byte{0x15, 0x00, 0x15, 0x02, 0x15, 0x02, 0x2c, 0x15, 0x02, 0x00, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, n, err := parsePageHeader(b)
		if err != nil {
			if !errors.Is(err, errHeader) {
				t.Fatalf("an error without its kind: %v", err)
			}
			return
		}
		if n > len(b) || n <= 0 {
			t.Fatalf("a header of %d bytes parsed from %d", n, len(b))
		}
		// The pages after it decode or are refused, never a panic.
		for _, pc := range []pageColumn{
			{field: arrow.Field{Name: "x", Type: arrow.PrimitiveTypes.Int64}, width: 8},
			{field: arrow.Field{Name: "x", Type: arrow.PrimitiveTypes.Int32, Nullable: true}, width: 4, optional: true},
		} {
			for _, snappy := range []bool{false, true} {
				if a, err := decodePages(b, nil, pc, int64(h.numValues)%5000, snappy, memory.DefaultAllocator); err == nil {
					a.Release()
				}
			}
		}
	})
}
