// Package arrowcodec stores Arrow tables and record batches as Arrow IPC
// files: the part of the artifact codec that needs Apache Arrow's Go
// library. It registers itself with package codec when imported, through
// the public stepwise.dev/stepwise/backend/arrow, so that flows without
// Arrow artifacts do not carry the library.
package arrowcodec

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"stepwise.dev/stepwise/internal/codec"
)

func init() { codec.RegisterArrow(arrowCodec{}) }

// arrowCodec is what package codec calls for Arrow values and files.
type arrowCodec struct{}

func (arrowCodec) TypeName(v any) (string, bool)                    { return arrowTypeName(v) }
func (arrowCodec) Encode(v any, name string) (codec.Encoded, error) { return encodeArrow(v, name) }
func (arrowCodec) Decode(data []byte, ptr any) error                { return decodeArrow(data, ptr) }
func (arrowCodec) DecodeAny(data []byte) (any, error)               { return arrowAny(data) }
func (arrowCodec) WriteJSON(out io.Writer, data []byte, prefix, indent string) error {
	return arrowJSON(out, data, prefix, indent)
}
func (arrowCodec) Preview(data []byte, max int) (codec.Summary, error) {
	return arrowPreview(data, max)
}
func (arrowCodec) Text(v any, maxRows int) (string, bool) { return Text(v, maxRows) }

// Arrow artifacts. A value that is an arrow.Table or an arrow.RecordBatch
// (arrow.Record is the same type under its deprecated name) is stored as an
// Arrow IPC file, as is: the encoding starts with the file format's magic
// "ARROW1" instead of this codec's header, so the bytes are readable by any
// Arrow implementation (pyarrow.ipc.open_file, R's arrow::read_ipc_file,
// DuckDB, Polars, Spark through pyarrow) without Stepwise.
//
// The file holds the rows in record batches of BatchRows rows (the
// last one shorter), whatever the chunks of the value were, and no
// compression of its own (the datastore compresses blobs when that pays),
// so that equal tables give equal bytes and the content-addressed store
// keeps them once. Two tables are equal here when their schemas (with
// metadata) and their values are; bytes under null slots, which builders
// leave zero, are part of the file.

// goAlloc allocates with Go's garbage-collected memory, whatever
// memory.DefaultAllocator has been set to: encodeArrow keeps references to
// the buffers it made after releasing them (see partsWriter), and decoded
// values are freed by the garbage collector whether or not they are
// released.
var goAlloc = memory.NewGoAllocator()

// BatchRows is the number of rows in each record batch of a stored
// Arrow artifact.
const BatchRows = 64 << 10

// arrowMagic starts and ends an Arrow IPC file.
const arrowMagic = "ARROW1"

var (
	tableType  = reflect.TypeFor[arrow.Table]()
	recordType = reflect.TypeFor[arrow.RecordBatch]()
)

// arrowTypeName is the type name an Encoded Arrow value carries.
func arrowTypeName(v any) (string, bool) {
	switch v.(type) {
	case arrow.Table:
		return "arrow.Table", true
	case arrow.RecordBatch:
		return "arrow.RecordBatch", true
	}
	return "", false
}

// encodeArrow writes a table or record batch as an Arrow IPC file. It does
// not take ownership: v is neither retained nor released.
func encodeArrow(v any, typeName string) (enc codec.Encoded, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("codec: cannot write the %s as an Arrow IPC file: %v", typeName, p)
		}
	}()
	var (
		schema *arrow.Schema
		cols   [][]arrow.Array
		rows   int64
	)
	switch x := v.(type) {
	case arrow.Table:
		schema, rows = x.Schema(), x.NumRows()
		for i := range int(x.NumCols()) {
			cols = append(cols, x.Column(i).Data().Chunks())
		}
	case arrow.RecordBatch:
		schema, rows = x.Schema(), x.NumRows()
		for _, c := range x.Columns() {
			cols = append(cols, []arrow.Array{c})
		}
	}
	var buf partsWriter
	w, err := ipc.NewFileWriter(&buf, ipc.WithSchema(schema), ipc.WithAllocator(goAlloc))
	if err != nil {
		return codec.Encoded{}, fmt.Errorf("codec: cannot start an Arrow IPC file for the %s: %w", typeName, err)
	}
	for start := int64(0); start < rows; start += BatchRows {
		end := min(start+BatchRows, rows)
		batch := make([]arrow.Array, len(cols))
		for i, chunks := range cols {
			if batch[i], err = rowWindow(chunks, start, end, goAlloc); err != nil {
				releaseAll(batch)
				return codec.Encoded{}, fmt.Errorf("codec: cannot write column %q of the %s as Arrow: %w", schema.Field(i).Name, typeName, err)
			}
		}
		rec := array.NewRecordBatch(schema, batch, end-start)
		releaseAll(batch)
		err = w.Write(rec)
		rec.Release()
		if err != nil {
			return codec.Encoded{}, fmt.Errorf("codec: cannot write rows %d to %d of the %s as Arrow: %w", start, end, typeName, err)
		}
	}
	if err := w.Close(); err != nil {
		return codec.Encoded{}, fmt.Errorf("codec: cannot finish the Arrow IPC file of the %s: %w", typeName, err)
	}
	parts := buf.finish()
	return codec.Encoded{Parts: parts, Size: buf.size, Type: typeName}, nil
}

// partsWriter collects what the IPC writer writes without copying the
// large writes: those are the buffers of the batches encodeArrow made
// (fresh copies that nothing else holds or changes; the Go allocator
// never reuses their memory), kept as parts by reference. Small writes
// (message headers, padding, the footer) are copied, since the writer
// reuses its scratch space for them.
type partsWriter struct {
	parts [][]byte
	small []byte
	size  int64
}

const keepWrite = 64 << 10

func (w *partsWriter) Write(p []byte) (int, error) {
	if len(p) >= keepWrite {
		if len(w.small) > 0 {
			w.parts = append(w.parts, w.small)
			w.small = nil
		}
		w.parts = append(w.parts, p)
	} else {
		w.small = append(w.small, p...)
	}
	w.size += int64(len(p))
	return len(p), nil
}

func (w *partsWriter) finish() [][]byte {
	if len(w.small) > 0 {
		w.parts = append(w.parts, w.small)
		w.small = nil
	}
	return w.parts
}

// rowWindow returns rows [start, end) of a column made of chunks, copied
// into fresh buffers: the IPC writer's output depends on how the buffers
// it is given were allocated and sliced (padding it sends when it is
// there), and a copy made the same way whatever the chunks were makes equal
// values give equal bytes.
func rowWindow(chunks []arrow.Array, start, end int64, mem memory.Allocator) (arrow.Array, error) {
	var parts []arrow.Array
	off := int64(0)
	for _, c := range chunks {
		n := int64(c.Len())
		if lo, hi := max(start, off), min(end, off+n); lo < hi {
			parts = append(parts, array.NewSlice(c, lo-off, hi-off))
		}
		off += n
	}
	defer releaseAll(parts)
	if len(parts) == 0 {
		return nil, fmt.Errorf("its chunks hold %d rows, fewer than the %d the value says it has", off, end)
	}
	return array.Concatenate(parts, mem)
}

func releaseAll[T interface{ Release() }](xs []T) {
	for _, x := range xs {
		if any(x) != nil {
			x.Release()
		}
	}
}

// arrowFile is a parsed Arrow IPC file with all its record batches loaded
// (they alias the data).
type arrowFile struct {
	schema  *arrow.Schema
	batches []arrow.RecordBatch
	rows    int64
}

func (f *arrowFile) release() { releaseAll(f.batches) }

// readArrow parses data, an Arrow IPC file, and loads its record batches
// without copying them when data is 8-byte aligned. Damaged data gives an
// error wrapping codec.ErrCorrupt.
func readArrow(data []byte) (f *arrowFile, err error) {
	defer func() {
		if p := recover(); p != nil {
			if f != nil {
				f.release()
			}
			f, err = nil, fmt.Errorf("%w: the Arrow IPC file cannot be read (%v); the stored object is damaged", codec.ErrCorrupt, p)
		}
	}()
	if len(data) < 8+6+4 || string(data[len(data)-6:]) != arrowMagic {
		return nil, fmt.Errorf("%w: an Arrow IPC file of %d bytes without the closing %q; the stored object is truncated", codec.ErrCorrupt, len(data), arrowMagic)
	}
	if uintptr(unsafe.Pointer(&data[0]))%8 != 0 {
		data = bytes.Clone(data) // a fresh allocation is 8-byte aligned
	}
	r, err := ipc.NewMappedFileReader(data, ipc.WithAllocator(goAlloc))
	if err != nil {
		return nil, fmt.Errorf("%w: the Arrow IPC file cannot be read: %v", codec.ErrCorrupt, err)
	}
	defer r.Close()
	f = &arrowFile{schema: r.Schema()}
	for i := range r.NumRecords() {
		rec, err := r.RecordBatchAt(i)
		if err != nil {
			f.release()
			return nil, fmt.Errorf("%w: record batch %d of the Arrow IPC file cannot be read: %v", codec.ErrCorrupt, i, err)
		}
		if !rec.Schema().Equal(f.schema) {
			rec.Release()
			f.release()
			return nil, fmt.Errorf("%w: record batch %d of the Arrow IPC file does not match its schema", codec.ErrCorrupt, i)
		}
		for c, col := range rec.Columns() {
			if int64(col.Len()) != rec.NumRows() {
				rec.Release()
				f.release()
				return nil, fmt.Errorf("%w: column %d of record batch %d holds %d rows, not %d", codec.ErrCorrupt, c, i, col.Len(), rec.NumRows())
			}
		}
		f.batches = append(f.batches, rec)
		f.rows += rec.NumRows()
	}
	return f, nil
}

// decodeArrow decodes an Arrow IPC file into the value ptr points to.
func decodeArrow(data []byte, ptr any) error {
	if b, ok := ptr.(*codec.Blob); ok {
		if _, err := readArrowChecked(data); err != nil {
			return err
		}
		*b = data
		return nil
	}
	target := reflect.ValueOf(ptr).Elem()
	switch target.Type() {
	case tableType, recordType:
	default:
		if target.Kind() == reflect.Interface && target.NumMethod() == 0 {
			v, err := arrowAny(data)
			if err != nil {
				return err
			}
			target.Set(reflect.ValueOf(v))
			return nil
		}
		f, err := readArrow(data)
		if err != nil {
			return err
		}
		defer f.release()
		return fmt.Errorf("codec: cannot decode into %s: the stored value is an Arrow table of %d rows (%s); decode it into an arrow.Table or arrow.RecordBatch, or into *any to inspect it", reflect.TypeOf(ptr), f.rows, schemaText(f.schema))
	}
	f, err := readArrow(data)
	if err != nil {
		return err
	}
	defer f.release()
	if target.Type() == tableType {
		// The table retains the batches' columns.
		target.Set(reflect.ValueOf(array.NewTableFromRecords(f.schema, f.batches)))
		return nil
	}
	rec, err := oneBatch(f)
	if err != nil {
		return err
	}
	target.Set(reflect.ValueOf(rec))
	return nil
}

func readArrowChecked(data []byte) (int64, error) {
	f, err := readArrow(data)
	if err != nil {
		return 0, err
	}
	defer f.release()
	return f.rows, nil
}

// oneBatch returns the file's rows as one record batch, concatenating the
// columns of its batches when there are several. The caller owns it.
func oneBatch(f *arrowFile) (arrow.RecordBatch, error) {
	switch len(f.batches) {
	case 0:
		cols := make([]arrow.Array, f.schema.NumFields())
		for i, fd := range f.schema.Fields() {
			cols[i] = array.MakeArrayOfNull(goAlloc, fd.Type, 0)
		}
		defer releaseAll(cols)
		return array.NewRecordBatch(f.schema, cols, 0), nil
	case 1:
		f.batches[0].Retain()
		return f.batches[0], nil
	}
	cols := make([]arrow.Array, f.schema.NumFields())
	defer releaseAll(cols)
	for i := range cols {
		parts := make([]arrow.Array, len(f.batches))
		for j, b := range f.batches {
			parts[j] = b.Column(i)
		}
		c, err := array.Concatenate(parts, goAlloc)
		if err != nil {
			return nil, fmt.Errorf("codec: cannot join the %d record batches of column %q into one record batch: %w; decode it into an arrow.Table instead", len(parts), f.schema.Field(i).Name, err)
		}
		cols[i] = c
	}
	return array.NewRecordBatch(f.schema, cols, f.rows), nil
}

// arrowHeadRows is how many rows DecodeAny keeps of an Arrow table.
const arrowHeadRows = 10

// arrowAny describes an Arrow IPC file for display: its schema, row count
// and first rows.
func arrowAny(data []byte) (any, error) {
	f, err := readArrow(data)
	if err != nil {
		return nil, err
	}
	defer f.release()
	fields := make([]any, 0, f.schema.NumFields())
	for _, fd := range f.schema.Fields() {
		fields = append(fields, map[string]any{"name": fd.Name, "type": fd.Type.String(), "nullable": fd.Nullable})
	}
	var head []any
	var buf bytes.Buffer
	for _, b := range f.batches {
		for r := 0; r < int(b.NumRows()) && len(head) < arrowHeadRows; r++ {
			buf.Reset()
			if err := writeRow(&buf, b, r); err != nil {
				return nil, err
			}
			d := json.NewDecoder(&buf)
			d.UseNumber()
			var row map[string]any
			if err := d.Decode(&row); err != nil {
				return nil, fmt.Errorf("codec: cannot show row %d of the Arrow table: %w", len(head), err)
			}
			head = append(head, plainNumbers(row))
		}
	}
	if head == nil {
		head = []any{}
	}
	return map[string]any{"format": "arrow", "schema": fields, "rows": f.rows, "head": head}, nil
}

// plainNumbers turns json.Numbers into int64 or float64, as DecodeAny
// returns numbers.
func plainNumbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	case map[string]any:
		for k, e := range x {
			x[k] = plainNumbers(e)
		}
	case []any:
		for i, e := range x {
			x[i] = plainNumbers(e)
		}
	}
	return v
}

// writeRow writes row r of b as a JSON object, its columns in schema order.
func writeRow(w *bytes.Buffer, b arrow.RecordBatch, r int) error {
	w.WriteByte('{')
	for c, col := range b.Columns() {
		if c > 0 {
			w.WriteByte(',')
		}
		name, _ := json.Marshal(b.ColumnName(c))
		w.Write(name)
		w.WriteByte(':')
		if err := writeCell(w, col, r); err != nil {
			return fmt.Errorf("codec: cannot show column %q of the Arrow table: %w", b.ColumnName(c), err)
		}
	}
	w.WriteByte('}')
	return nil
}

// writeCell writes one value as JSON; NaN and infinities are strings, as
// in the rest of the codec's JSON.
func writeCell(w *bytes.Buffer, col arrow.Array, r int) error {
	if col.IsNull(r) {
		w.WriteString("null")
		return nil
	}
	v := col.GetOneForMarshal(r)
	var f float64
	switch x := v.(type) {
	case float64:
		f = x
	case float32:
		f = float64(x)
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		w.Write(b)
		return nil
	}
	switch {
	case math.IsNaN(f):
		w.WriteString(`"NaN"`)
	case math.IsInf(f, 1):
		w.WriteString(`"+Inf"`)
	case math.IsInf(f, -1):
		w.WriteString(`"-Inf"`)
	default:
		bits := 64
		if _, ok := v.(float32); ok {
			bits = 32
		}
		w.WriteString(strconv.FormatFloat(f, 'g', -1, bits))
	}
	return nil
}

// schemaText lists a schema's columns for people: "id int64, name utf8".
func schemaText(s *arrow.Schema) string {
	parts := make([]string, 0, s.NumFields())
	for _, f := range s.Fields() {
		p := f.Name + " " + f.Type.String()
		if !f.Nullable {
			p += " not null"
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, ", ")
}

// arrowJSON writes the whole table as JSON: its schema, row count and
// every row. The file is checked before anything is written.
func arrowJSON(out io.Writer, data []byte, prefix, indent string) error {
	f, err := readArrow(data)
	if err != nil {
		return err
	}
	defer f.release()
	var buf bytes.Buffer
	nl := func(depth int) {
		if indent == "" && prefix == "" {
			return
		}
		buf.WriteByte('\n')
		buf.WriteString(prefix)
		for range depth {
			buf.WriteString(indent)
		}
	}
	flush := func() error {
		if _, err := out.Write(buf.Bytes()); err != nil {
			return fmt.Errorf("codec: writing JSON: %w", err)
		}
		buf.Reset()
		return nil
	}
	buf.WriteString(`{`)
	nl(1)
	buf.WriteString(`"format": "arrow",`)
	nl(1)
	buf.WriteString(`"schema": [`)
	for i, fd := range f.schema.Fields() {
		if i > 0 {
			buf.WriteByte(',')
		}
		nl(2)
		b, _ := json.Marshal(map[string]any{"name": fd.Name, "type": fd.Type.String(), "nullable": fd.Nullable})
		buf.Write(b)
	}
	if f.schema.NumFields() > 0 {
		nl(1)
	}
	buf.WriteString(`],`)
	nl(1)
	fmt.Fprintf(&buf, `"rows": %d,`, f.rows)
	nl(1)
	buf.WriteString(`"data": [`)
	n := 0
	for _, b := range f.batches {
		for r := range int(b.NumRows()) {
			if n > 0 {
				buf.WriteByte(',')
			}
			n++
			nl(2)
			if err := writeRow(&buf, b, r); err != nil {
				return err
			}
			if buf.Len() >= 64<<10 {
				if err := flush(); err != nil {
					return err
				}
			}
		}
	}
	if n > 0 {
		nl(1)
	}
	buf.WriteString(`]`)
	nl(0)
	buf.WriteString(`}`)
	return flush()
}

// arrowPreview is Preview for an Arrow IPC file: the schema and row count,
// then the first rows, up to max bytes.
func arrowPreview(data []byte, max int) (codec.Summary, error) {
	f, err := readArrow(data)
	if err != nil {
		return codec.Summary{}, err
	}
	defer f.release()
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "arrow table, %d rows: %s", f.rows, schemaText(f.schema))
	full := func() bool { return max >= 0 && buf.Len() > max }
	for _, b := range f.batches {
		for r := 0; r < int(b.NumRows()) && !full(); r++ {
			buf.WriteString("; ")
			if err := writeRow(&buf, b, r); err != nil {
				return codec.Summary{}, err
			}
		}
	}
	s := codec.Summary{Kind: "table", Len: f.rows, Text: buf.String()}
	if full() {
		n := max
		for n > 0 && !utf8.RuneStart(s.Text[n]) {
			n--
		}
		s.Text, s.Cut = s.Text[:n], true
	}
	return s, nil
}

// Text describes v for people when it is an Arrow table or record
// batch: its row count, schema and first rows (at most maxRows), read from
// memory without encoding the rest. ok is false for other values.
func Text(v any, maxRows int) (text string, ok bool) {
	if _, ok := arrowTypeName(v); !ok {
		return "", false
	}
	defer func() {
		if p := recover(); p != nil {
			text = fmt.Sprintf("an Arrow value that cannot be shown: %v", p)
		}
	}()
	var heads []arrow.RecordBatch
	var schema *arrow.Schema
	var rows int64
	switch x := v.(type) {
	case arrow.Table:
		schema, rows = x.Schema(), x.NumRows()
		if rows > 0 && maxRows > 0 {
			tr := array.NewTableReader(x, int64(maxRows))
			defer tr.Release()
			// The reader stops at every chunk's end: take batches until
			// they hold maxRows rows.
			for n := int64(0); n < int64(maxRows) && tr.Next(); {
				rec := tr.RecordBatch()
				take := min(rec.NumRows(), int64(maxRows)-n)
				head := rec.NewSlice(0, take)
				defer head.Release()
				heads = append(heads, head)
				n += take
			}
		}
	case arrow.RecordBatch:
		schema, rows = x.Schema(), x.NumRows()
		if rows > 0 && maxRows > 0 {
			head := x.NewSlice(0, min(rows, int64(maxRows)))
			defer head.Release()
			heads = append(heads, head)
		}
	}
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "arrow table, %d rows: %s", rows, schemaText(schema))
	shown := int64(0)
	for _, head := range heads {
		for r := range int(head.NumRows()) {
			buf.WriteString("\n")
			if err := writeRow(&buf, head, r); err != nil {
				return buf.String(), true
			}
		}
		shown += head.NumRows()
	}
	if shown > 0 && rows > shown {
		fmt.Fprintf(&buf, "\n... (%d more rows)", rows-shown)
	}
	return buf.String(), true
}
