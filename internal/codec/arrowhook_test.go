package codec

import (
	"errors"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// TestArrowWithoutTheArrowCodec: this test binary does not import
// package arrowcodec, as a flow without backend/arrow does not; Arrow
// values and files are refused with the import to add, and kept as
// Blobs.
func TestArrowWithoutTheArrowCodec(t *testing.T) {
	schema := arrow.NewSchema([]arrow.Field{{Name: "x", Type: arrow.PrimitiveTypes.Int64}}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	b.Field(0).(*array.Int64Builder).AppendValues([]int64{1, 2}, nil)
	rec := b.NewRecordBatch()
	b.Release()
	defer rec.Release()
	tbl := array.NewTableFromRecords(schema, []arrow.RecordBatch{rec})
	defer tbl.Release()

	for _, v := range []any{tbl, rec} {
		_, err := Encode(v)
		var u *UnsupportedTypeError
		if !errors.As(err, &u) || !strings.Contains(err.Error(), `add import _ "stepwise.dev/stepwise/backend/arrow"`) {
			t.Errorf("Encode(%T) without the Arrow codec: %v", v, err)
		}
	}
	if _, err := Encode(map[string]arrow.Table{"t": tbl}); err == nil || !strings.Contains(err.Error(), "give it a field of its own") {
		t.Errorf("a table in a map: %v", err)
	}
	if text, ok := ArrowText(tbl, 5); !ok || !strings.Contains(text, "backend/arrow") {
		t.Errorf("ArrowText = %q, %v", text, ok)
	}

	file := []byte("ARROW1\x00\x00 the rest of an Arrow IPC file ARROW1")
	var tb arrow.Table
	var x any
	for name, err := range map[string]error{
		"Decode":     Decode(file, &tb),
		"Decode any": Decode(file, &x),
		"WriteJSON":  WriteJSON(&strings.Builder{}, file, "", ""),
	} {
		if err == nil || !strings.Contains(err.Error(), "is an Arrow IPC file, and this program does not include Arrow artifacts; add import") {
			t.Errorf("%s without the Arrow codec: %v", name, err)
		}
	}
	if _, err := Preview(file, 80); err == nil || !strings.Contains(err.Error(), "backend/arrow") {
		t.Errorf("Preview without the Arrow codec: %v", err)
	}
	var blob Blob
	if err := Decode(file, &blob); err != nil || string(blob) != string(file) {
		t.Errorf("Decode into a Blob: %v", err)
	}
}
