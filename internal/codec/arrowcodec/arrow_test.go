package arrowcodec

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"stepwise.dev/stepwise/internal/codec"
)

// eventSchema has a column of each family the tests exercise.
var eventSchema = arrow.NewSchema([]arrow.Field{
	{Name: "id", Type: arrow.PrimitiveTypes.Int64},
	{Name: "name", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "score", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	{Name: "ok", Type: arrow.FixedWidthTypes.Boolean},
	{Name: "at", Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}},
	{Name: "tags", Type: arrow.ListOf(arrow.BinaryTypes.String), Nullable: true},
	{Name: "pos", Type: arrow.StructOf(arrow.Field{Name: "x", Type: arrow.PrimitiveTypes.Float32}, arrow.Field{Name: "y", Type: arrow.PrimitiveTypes.Int32})},
}, ptrMeta(arrow.NewMetadata([]string{"source"}, []string{"test"})))

func ptrMeta(m arrow.Metadata) *arrow.Metadata { return &m }

// eventBatch builds rows [from, to) of a deterministic table.
func eventBatch(from, to int) arrow.RecordBatch {
	b := array.NewRecordBuilder(memory.DefaultAllocator, eventSchema)
	defer b.Release()
	for i := from; i < to; i++ {
		b.Field(0).(*array.Int64Builder).Append(int64(i))
		if i%7 == 3 {
			b.Field(1).AppendNull()
		} else {
			b.Field(1).(*array.StringBuilder).Append("user-" + strings.Repeat("x", i%5))
		}
		switch i % 11 {
		case 4:
			b.Field(2).AppendNull()
		case 5:
			b.Field(2).(*array.Float64Builder).Append(math.NaN())
		default:
			b.Field(2).(*array.Float64Builder).Append(float64(i) / 4)
		}
		b.Field(3).(*array.BooleanBuilder).Append(i%2 == 0)
		b.Field(4).(*array.TimestampBuilder).Append(arrow.Timestamp(1_700_000_000_000_000 + int64(i)))
		lb := b.Field(5).(*array.ListBuilder)
		lb.Append(true)
		for j := range i % 3 {
			lb.ValueBuilder().(*array.StringBuilder).Append(string(rune('a' + j)))
		}
		sb := b.Field(6).(*array.StructBuilder)
		sb.Append(true)
		sb.FieldBuilder(0).(*array.Float32Builder).Append(float32(i) / 2)
		sb.FieldBuilder(1).(*array.Int32Builder).Append(int32(-i))
	}
	return b.NewRecordBatch()
}

// eventTable builds rows [0, n) in chunks that end at the given row counts.
func eventTable(n int, cuts ...int) arrow.Table {
	var recs []arrow.RecordBatch
	from := 0
	for _, c := range append(cuts, n) {
		if c > from {
			recs = append(recs, eventBatch(from, c))
			from = c
		}
	}
	t := array.NewTableFromRecords(eventSchema, recs)
	releaseAll(recs)
	return t
}

func encodeBytes(t testing.TB, v any) []byte {
	t.Helper()
	enc, err := codec.Encode(v)
	if err != nil {
		t.Fatal(err)
	}
	b := bytes.Join(enc.Parts, nil)
	if int64(len(b)) != enc.Size {
		t.Fatalf("Encode: Size %d, parts hold %d bytes", enc.Size, len(b))
	}
	return b
}

// rowsJSON is the table's rows as JSON, to compare tables.
func rowsJSON(t *testing.T, data []byte) string {
	t.Helper()
	var out bytes.Buffer
	if err := codec.WriteJSON(&out, data, "", ""); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

func TestArrowRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		rows int
		cuts []int
	}{
		{"empty", 0, nil},
		{"one row", 1, nil},
		{"one chunk", 1000, nil},
		{"chunks inside a batch", 1000, []int{1, 333, 334, 999}},
		{"chunks across batches", 3*BatchRows + 17, []int{5, BatchRows - 1, BatchRows + 1, 2*BatchRows + 100}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tbl := eventTable(tc.rows, tc.cuts...)
			defer tbl.Release()
			data := encodeBytes(t, tbl)

			// The bytes are an Arrow IPC file: the Arrow library's own
			// reader, over an io.ReaderAt, reads them.
			r, err := ipc.NewFileReader(bytes.NewReader(data))
			if err != nil {
				t.Fatalf("the Arrow file reader refuses the stored bytes: %v", err)
			}
			var n int64
			for i := range r.NumRecords() {
				rec, err := r.RecordBatch(i)
				if err != nil {
					t.Fatal(err)
				}
				if rec.NumRows() > BatchRows {
					t.Errorf("batch %d has %d rows, more than %d", i, rec.NumRows(), BatchRows)
				}
				n += rec.NumRows()
			}
			if !r.Schema().Equal(eventSchema) || n != int64(tc.rows) {
				t.Errorf("the file holds %d rows of %s, want %d rows of %s", n, r.Schema(), tc.rows, eventSchema)
			}
			r.Close()

			var back arrow.Table
			if err := codec.Decode(data, &back); err != nil {
				t.Fatal(err)
			}
			defer back.Release()
			if back.NumRows() != int64(tc.rows) || !back.Schema().Equal(eventSchema) {
				t.Fatalf("decoded %d rows of %s", back.NumRows(), back.Schema())
			}
			if !tablesEqual(tbl, back) {
				t.Error("the decoded table differs from the stored one")
			}
			// Encoding what was decoded gives the same bytes.
			if again := encodeBytes(t, back); !bytes.Equal(again, data) {
				t.Error("encoding the decoded table gives other bytes")
			}

			var rec arrow.RecordBatch
			if err := codec.Decode(data, &rec); err != nil {
				t.Fatal(err)
			}
			defer rec.Release()
			if rec.NumRows() != int64(tc.rows) {
				t.Fatalf("decoded a record batch of %d rows, want %d", rec.NumRows(), tc.rows)
			}
			if again := encodeBytes(t, rec); !bytes.Equal(again, data) {
				t.Error("the same rows as one record batch encode to other bytes than as a table")
			}
		})
	}
}

// tablesEqual compares two tables' schemas and values.
func tablesEqual(a, b arrow.Table) bool {
	if a.NumRows() != b.NumRows() || !a.Schema().Equal(b.Schema()) {
		return false
	}
	// Chunk boundaries may differ: compare by concatenated columns.
	for i := range int(a.NumCols()) {
		ca, err1 := array.Concatenate(a.Column(i).Data().Chunks(), memory.DefaultAllocator)
		cb, err2 := array.Concatenate(b.Column(i).Data().Chunks(), memory.DefaultAllocator)
		if err1 != nil || err2 != nil {
			return a.NumRows() == 0 && b.NumRows() == 0
		}
		eq := array.ApproxEqual(ca, cb, array.WithNaNsEqual(true), array.WithAbsTolerance(0))
		ca.Release()
		cb.Release()
		if !eq {
			return false
		}
	}
	return true
}

// Equal tables give equal bytes, however they are chunked, so the
// content-addressed datastore keeps them once.
func TestArrowDeterministic(t *testing.T) {
	a := eventTable(2*BatchRows+5, 10, 20, BatchRows+3)
	defer a.Release()
	b := eventTable(2*BatchRows+5, 2*BatchRows)
	defer b.Release()
	rec := eventBatch(0, 2*BatchRows+5)
	defer rec.Release()
	da, db, dr := encodeBytes(t, a), encodeBytes(t, b), encodeBytes(t, rec)
	if !bytes.Equal(da, db) || !bytes.Equal(da, dr) {
		t.Errorf("equal tables encode to different bytes (%d, %d and %d bytes)", len(da), len(db), len(dr))
	}
	if again := encodeBytes(t, a); !bytes.Equal(da, again) {
		t.Error("encoding the same table twice gives different bytes")
	}
	c := eventTable(2*BatchRows + 4)
	defer c.Release()
	if bytes.Equal(encodeBytes(t, c), da) {
		t.Error("a table with one row less encodes to the same bytes")
	}
}

func TestArrowShow(t *testing.T) {
	tbl := eventTable(25)
	defer tbl.Release()
	data := encodeBytes(t, tbl)

	v, err := codec.DecodeAny(data)
	if err != nil {
		t.Fatal(err)
	}
	m, ok := v.(map[string]any)
	if !ok || m["format"] != "arrow" || m["rows"] != int64(25) {
		t.Fatalf("DecodeAny = %#v", v)
	}
	schema := m["schema"].([]any)
	if len(schema) != 7 || schema[0].(map[string]any)["name"] != "id" || schema[0].(map[string]any)["type"] != "int64" {
		t.Errorf("schema = %v", schema)
	}
	head := m["head"].([]any)
	if len(head) != arrowHeadRows {
		t.Fatalf("head has %d rows, want %d", len(head), arrowHeadRows)
	}
	row3 := head[3].(map[string]any)
	if row3["id"] != int64(3) || row3["name"] != nil || row3["score"] != 0.75 {
		t.Errorf("row 3 = %v", row3)
	}
	if head[5].(map[string]any)["score"] != "NaN" {
		t.Errorf("a NaN score shows as %v, want \"NaN\"", head[5].(map[string]any)["score"])
	}
	// What DecodeAny returns can be stored with the codec.
	if _, err := codec.Encode(v); err != nil {
		t.Errorf("the description of a table cannot be encoded: %v", err)
	}

	s, err := codec.Preview(data, 80)
	if err != nil {
		t.Fatal(err)
	}
	if s.Kind != "table" || s.Len != 25 || !s.Cut || len(s.Text) > 80 || !strings.HasPrefix(s.Text, "arrow table, 25 rows: id int64 not null, name utf8") {
		t.Errorf("Preview = %+v", s)
	}
	full, err := codec.Preview(data, -1)
	if err != nil || full.Cut || !strings.Contains(full.Text, `{"id":24,`) {
		t.Errorf("codec.Preview(-1) = %+v, %v", full, err)
	}

	var out bytes.Buffer
	if err := codec.WriteJSON(&out, data, "", "  "); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Format string
		Rows   int
		Schema []map[string]any
		Data   []map[string]any
	}
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatalf("WriteJSON wrote invalid JSON: %v\n%s", err, out.String())
	}
	if doc.Format != "arrow" || doc.Rows != 25 || len(doc.Data) != 25 || len(doc.Schema) != 7 {
		t.Errorf("WriteJSON = %s", out.String())
	}
	if tags := doc.Data[2]["tags"].([]any); len(tags) != 2 || tags[1] != "b" {
		t.Errorf("row 2's tags = %v", doc.Data[2]["tags"])
	}
	if pos := doc.Data[4]["pos"].(map[string]any); pos["x"] != 2.0 || pos["y"] != -4.0 {
		t.Errorf("row 4's pos = %v", pos)
	}

	var blob codec.Blob
	if err := codec.Decode(data, &blob); err != nil || !bytes.Equal(blob, data) {
		t.Errorf("Decode into a Blob: %v", err)
	}
	var a any
	if err := codec.Decode(data, &a); err != nil || a.(map[string]any)["rows"] != int64(25) {
		t.Errorf("Decode into an any = %v, %v", a, err)
	}
}

func TestArrowBadInput(t *testing.T) {
	tbl := eventTable(100)
	defer tbl.Release()
	data := encodeBytes(t, tbl)

	t.Run("wrong target", func(t *testing.T) {
		var xs []int
		err := codec.Decode(data, &xs)
		if err == nil || !strings.Contains(err.Error(), "Arrow table of 100 rows (id int64 not null, name utf8") || !strings.Contains(err.Error(), "decode it into an arrow.Table") {
			t.Errorf("decoding an Arrow table into []int: %v", err)
		}
	})
	t.Run("Go value into a table", func(t *testing.T) {
		var tb arrow.Table
		err := codec.Decode(encodeBytes(t, []string{"a"}), &tb)
		if err == nil || !strings.Contains(err.Error(), "arrow.Table") {
			t.Errorf("decoding a []string into an arrow.Table: %v", err)
		}
	})
	t.Run("nil table", func(t *testing.T) {
		var tb arrow.Table
		if err := codec.Decode(encodeBytes(t, tb), &tb); err != nil || tb != nil {
			t.Errorf("a nil table comes back as %v, %v", tb, err)
		}
	})
	t.Run("nested", func(t *testing.T) {
		_, err := codec.Encode(map[string]arrow.Table{"t": tbl})
		if err == nil || !strings.Contains(err.Error(), "give it a field of its own") {
			t.Errorf("a table in a map: %v", err)
		}
	})
	for _, cut := range []int{9, 20, len(data) / 2, len(data) - 1} {
		var tb arrow.Table
		err := codec.Decode(data[:cut], &tb)
		if !errors.Is(err, codec.ErrCorrupt) {
			t.Errorf("an Arrow file cut to %d bytes: %v, want codec.ErrCorrupt", cut, err)
		}
	}
	damaged := bytes.Clone(data)
	for i := 8; i < len(damaged)-10; i += 97 {
		damaged[i] ^= 0x5a
	}
	var tb arrow.Table
	if err := codec.Decode(damaged, &tb); err == nil {
		// The damage may hit only values, which Arrow cannot detect; the
		// datastore's hash catches that before decoding.
		tb.Release()
	}
	for _, f := range []func([]byte) error{
		func(d []byte) error { _, err := codec.DecodeAny(d); return err },
		func(d []byte) error { _, err := codec.Preview(d, 80); return err },
		func(d []byte) error { return codec.WriteJSON(&bytes.Buffer{}, d, "", "") },
	} {
		_ = f(damaged)
		if err := f(data[:len(data)/2]); !errors.Is(err, codec.ErrCorrupt) {
			t.Errorf("half a file: %v, want codec.ErrCorrupt", err)
		}
	}
}

func TestText(t *testing.T) {
	tbl := eventTable(30, 4)
	defer tbl.Release()
	rec := eventBatch(0, 2)
	defer rec.Release()
	for _, tc := range []struct {
		name  string
		v     any
		max   int
		wants []string
		lines int
	}{
		{"table", tbl, 5, []string{"arrow table, 30 rows: id int64 not null", `{"id":4,`, "... (25 more rows)"}, 7},
		{"record", rec, 5, []string{"arrow table, 2 rows", `{"id":1,`}, 3},
		{"no rows asked", tbl, 0, []string{"arrow table, 30 rows"}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text, ok := Text(tc.v, tc.max)
			if !ok {
				t.Fatal("not recognised as Arrow")
			}
			for _, w := range tc.wants {
				if !strings.Contains(text, w) {
					t.Errorf("text lacks %q:\n%s", w, text)
				}
			}
			if n := strings.Count(text, "\n") + 1; n != tc.lines {
				t.Errorf("%d lines, want %d:\n%s", n, tc.lines, text)
			}
		})
	}
	if _, ok := Text([]int{1}, 5); ok {
		t.Error("a []int is described as Arrow")
	}
}
