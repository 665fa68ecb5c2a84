package dataset_test

import (
	"context"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"stepwise.dev/stepwise/internal/dataset"
	"stepwise.dev/stepwise/internal/warehouse"
)

// arrowTypes is every Arrow type the Arrow library writes to Parquet and
// reads back as itself (with the Arrow schema stored in the file), each
// with three values, one of them null, as Arrow JSON.
var arrowTypes = []struct {
	typ  arrow.DataType
	json string
}{
	{arrow.FixedWidthTypes.Boolean, `[true, null, false]`},
	{arrow.PrimitiveTypes.Int8, `[-128, null, 127]`},
	{arrow.PrimitiveTypes.Int16, `[-32768, null, 32767]`},
	{arrow.PrimitiveTypes.Int32, `[-2147483648, null, 2147483647]`},
	{arrow.PrimitiveTypes.Int64, `[-9223372036854775808, null, 9223372036854775807]`},
	{arrow.PrimitiveTypes.Uint8, `[0, null, 255]`},
	{arrow.PrimitiveTypes.Uint16, `[0, null, 65535]`},
	{arrow.PrimitiveTypes.Uint32, `[0, null, 4294967295]`},
	{arrow.PrimitiveTypes.Uint64, `[0, null, 18446744073709551615]`},
	{arrow.FixedWidthTypes.Float16, `[1.5, null, -2]`},
	{arrow.PrimitiveTypes.Float32, `[1.5, null, -3.25]`},
	{arrow.PrimitiveTypes.Float64, `[1.5, null, 1e300]`},
	{arrow.BinaryTypes.String, `["a", null, "héllo"]`},
	{arrow.BinaryTypes.LargeString, `["a", null, "b"]`},
	{arrow.BinaryTypes.Binary, `["AAE=", null, ""]`},
	{arrow.BinaryTypes.LargeBinary, `["AAE=", null, "/w=="]`},
	{&arrow.FixedSizeBinaryType{ByteWidth: 2}, `["AAE=", null, "/w8="]`},
	{arrow.FixedWidthTypes.Date32, `[19724, null, -1]`},
	{arrow.FixedWidthTypes.Time32ms, `[45296789, null, 0]`},
	{arrow.FixedWidthTypes.Time64us, `[45296789012, null, 86399000000]`},
	{arrow.FixedWidthTypes.Time64ns, `[45296789012345, null, 86399000000000]`},
	{&arrow.TimestampType{Unit: arrow.Millisecond, TimeZone: "UTC"}, `[1704164645123, null, 0]`},
	{&arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "Europe/Paris"}, `[1704164645123456, null, 946684800000000]`},
	{&arrow.TimestampType{Unit: arrow.Nanosecond}, `[1704164645123456789, null, -1]`},
	{&arrow.Decimal128Type{Precision: 10, Scale: 2}, `["12345678.91", null, "-0.01"]`},
	{&arrow.Decimal256Type{Precision: 40, Scale: 5}, `["123456789012345678901234567890.12345", null, "-1"]`},
	{arrow.ListOf(arrow.PrimitiveTypes.Int32), `[[1, 2], null, []]`},
	{arrow.LargeListOf(arrow.BinaryTypes.String), `[["a", null], null, ["b"]]`},
	{arrow.FixedSizeListOf(3, arrow.PrimitiveTypes.Float32), `[[1, 2, 3], null, [4, 5, 6]]`},
	{arrow.StructOf(arrow.Field{Name: "a", Type: arrow.PrimitiveTypes.Int64, Nullable: true}, arrow.Field{Name: "b", Type: arrow.BinaryTypes.String, Nullable: true}), `[{"a": 1, "b": "x"}, null, {"a": null, "b": "y"}]`},
	{arrow.MapOf(arrow.BinaryTypes.String, arrow.PrimitiveTypes.Int64), `[[{"key": "k", "value": 1}], null, []]`},
	{&arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.String}, `["red", null, "blue"]`},
	{arrow.ListOf(arrow.StructOf(arrow.Field{Name: "x", Type: arrow.PrimitiveTypes.Float64, Nullable: true})), `[[{"x": 1}], null, [{"x": null}]]`},
}

// TestEveryArrowType round-trips every type through a written dataset, on
// local disk and MinIO, and compares the batches read with those written.
func TestEveryArrowType(t *testing.T) {
	fields := make([]arrow.Field, len(arrowTypes))
	cols := make([]arrow.Array, len(arrowTypes))
	for i, at := range arrowTypes {
		fields[i] = arrow.Field{Name: strings.NewReplacer("<", "_", ">", "_", " ", "", ",", "_", ":", "_", "[", "_", "]", "_", "=", "_", "/", "_").Replace(at.typ.String()) + "_" + string(rune('a'+i%26)), Type: at.typ, Nullable: true}
		a, _, err := array.FromJSON(memory.DefaultAllocator, at.typ, strings.NewReader(at.json))
		if err != nil {
			t.Fatalf("%s: %v", at.typ, err)
		}
		defer a.Release()
		cols[i] = a
	}
	// A partition column too.
	fields = append(fields, arrow.Field{Name: "part", Type: arrow.BinaryTypes.String})
	pa, _, _ := array.FromJSON(memory.DefaultAllocator, arrow.BinaryTypes.String, strings.NewReader(`["x", "y", "x"]`))
	defer pa.Release()
	cols = append(cols, pa)
	schema := arrow.NewSchema(fields, nil)
	rec := array.NewRecordBatch(schema, cols, 3)
	defer rec.Release()
	stores(t, func(t *testing.T, fsys warehouse.FS) {
		write(t, fsys, dataset.WriteOptions{PartitionBy: []string{"part"}}, rec)
		f, _ := dataset.ParseFilter("part = 'x'")
		for _, filter := range []dataset.Filter{nil, f} {
			r, err := dataset.Scan(context.Background(), fsys, dataset.ScanOptions{Filter: filter})
			if err != nil {
				t.Fatal(err)
			}
			var got []arrow.RecordBatch
			for r.Next() {
				b := r.RecordBatch()
				b.Retain()
				got = append(got, b)
			}
			if err := r.Err(); err != nil {
				t.Fatal(err)
			}
			r.Close()
			// Rows of part x (0 and 2) then y (1): the partitions in the
			// order written.
			want := [][2]int64{{0, 1}, {2, 3}, {1, 2}}
			if filter != nil {
				want = [][2]int64{{0, 1}, {2, 3}}
			}
			var n int64
			for _, g := range got {
				n += g.NumRows()
			}
			if n != int64(len(want)) {
				t.Fatalf("read %d rows, want %d", n, len(want))
			}
			row := 0
			for _, g := range got {
				if !g.Schema().Equal(schema) {
					t.Fatalf("schema read:\n%s\nwritten:\n%s", g.Schema(), schema)
				}
				for i := 0; i < int(g.NumRows()); i++ {
					w := rec.NewSlice(want[row][0], want[row][1])
					gr := g.NewSlice(int64(i), int64(i)+1)
					for c := range fields {
						if !array.Equal(w.Column(c), gr.Column(c)) {
							t.Errorf("column %s (%s), row %d: read %v, wrote %v", fields[c].Name, fields[c].Type, row, gr.Column(c), w.Column(c))
						}
					}
					w.Release()
					gr.Release()
					row++
				}
				g.Release()
			}
		}
	})
}

// TestUnsupportedType: a type the Parquet writer lacks is refused before
// anything is written, naming the column and its type.
func TestUnsupportedType(t *testing.T) {
	fsys := &warehouse.Local{Dir: t.TempDir()}
	schema := arrow.NewSchema([]arrow.Field{{Name: "ok", Type: arrow.PrimitiveTypes.Int64}, {Name: "took", Type: arrow.FixedWidthTypes.Duration_s}}, nil)
	_, err := dataset.NewWriter(context.Background(), fsys, schema, dataset.WriteOptions{})
	if err == nil || !strings.Contains(err.Error(), `"took"`) || !strings.Contains(err.Error(), "duration") {
		t.Fatalf("NewWriter with a duration column: %v", err)
	}
	if objs, _ := fsys.List(context.Background(), ""); len(objs) != 0 {
		t.Fatalf("a refused write left %v", objs)
	}
}
