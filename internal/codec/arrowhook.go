package codec

import (
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"sync/atomic"
)

// ArrowCodec stores Arrow tables and record batches as Arrow IPC files.
// Package arrowcodec implements it and registers itself when imported
// (through stepwise.dev/stepwise/backend/arrow), so that programs without
// Arrow artifacts do not link Apache Arrow's library. Its methods are
// those of the codec, for Arrow values and files.
type ArrowCodec interface {
	// TypeName names v's type ("arrow.Table", "arrow.RecordBatch") when v
	// is an Arrow value stored as an IPC file.
	TypeName(v any) (string, bool)
	Encode(v any, typeName string) (Encoded, error)
	Decode(data []byte, ptr any) error
	DecodeAny(data []byte) (any, error)
	WriteJSON(out io.Writer, data []byte, prefix, indent string) error
	Preview(data []byte, max int) (Summary, error)
	// Text describes an Arrow value in memory for people (cards).
	Text(v any, maxRows int) (string, bool)
}

var arrowImpl atomic.Pointer[ArrowCodec]

// RegisterArrow makes the codec store Arrow values with c.
func RegisterArrow(c ArrowCodec) { arrowImpl.Store(&c) }

func arrowCodec() ArrowCodec {
	if p := arrowImpl.Load(); p != nil {
		return *p
	}
	return nil
}

// ArrowPackage is the import that adds Arrow artifacts to a program.
const ArrowPackage = "stepwise.dev/stepwise/backend/arrow"

// errNoArrow is the error of Arrow work in a program without the Arrow
// codec.
var errNoArrow = fmt.Errorf("this program does not include Arrow artifacts; add import _ %q to its main package (the stepwise command has it)", ArrowPackage)

// arrowMagic starts an Arrow IPC file, padded to 8 bytes with zeros.
const arrowMagic = "ARROW1\x00\x00"

// isArrow reports whether data is an Arrow IPC file, which the codec stores
// for Arrow values instead of its own format.
func isArrow(data []byte) bool {
	return len(data) >= len(arrowMagic) && string(data[:len(arrowMagic)]) == arrowMagic
}

// arrowTypeName reports whether v is an Arrow value stored as an IPC
// file. Without the Arrow codec, Arrow's tables and record batches are
// still recognised by their package and methods, so that they are
// refused with the import to add rather than as interfaces with methods.
func arrowTypeName(v any) (string, bool) {
	if c := arrowCodec(); c != nil {
		return c.TypeName(v)
	}
	t := reflect.TypeOf(v)
	if t == nil {
		return "", false
	}
	e := t
	if e.Kind() == reflect.Pointer {
		e = e.Elem()
	}
	if !strings.HasPrefix(e.PkgPath(), "github.com/apache/arrow-go/") {
		return "", false
	}
	for _, m := range []string{"Schema", "NumRows", "NumCols", "Release"} {
		if _, ok := t.MethodByName(m); !ok {
			return "", false
		}
	}
	return "arrow value", true
}

func encodeArrow(v any, name string) (Encoded, error) {
	if c := arrowCodec(); c != nil {
		return c.Encode(v, name)
	}
	return Encoded{}, &UnsupportedTypeError{Type: reflect.TypeOf(v).String(), Reason: "it is an Arrow table or record batch, stored as an Arrow IPC file, and " + errNoArrow.Error()}
}

func decodeArrow(data []byte, ptr any) error {
	if c := arrowCodec(); c != nil {
		return c.Decode(data, ptr)
	}
	if b, ok := ptr.(*Blob); ok {
		*b = data
		return nil
	}
	return fmt.Errorf("codec: the stored value is an Arrow IPC file, and %w", errNoArrow)
}

func arrowAny(data []byte) (any, error) {
	if c := arrowCodec(); c != nil {
		return c.DecodeAny(data)
	}
	return nil, fmt.Errorf("codec: the stored value is an Arrow IPC file, and %w", errNoArrow)
}

func arrowJSON(out io.Writer, data []byte, prefix, indent string) error {
	if c := arrowCodec(); c != nil {
		return c.WriteJSON(out, data, prefix, indent)
	}
	return fmt.Errorf("codec: the stored value is an Arrow IPC file, and %w", errNoArrow)
}

func arrowPreview(data []byte, max int) (Summary, error) {
	if c := arrowCodec(); c != nil {
		return c.Preview(data, max)
	}
	return Summary{}, fmt.Errorf("codec: the stored value is an Arrow IPC file, and %w", errNoArrow)
}

// ArrowText describes v for people when it is an Arrow table or record
// batch: its row count, schema and first rows (at most maxRows). ok is
// false for other values.
func ArrowText(v any, maxRows int) (string, bool) {
	if c := arrowCodec(); c != nil {
		return c.Text(v, maxRows)
	}
	if _, ok := arrowTypeName(v); ok {
		return "an Arrow value (" + errNoArrow.Error() + ")", true
	}
	return "", false
}

// errArrowNested explains why an Arrow value inside another value is
// refused.
var errArrowNested = errors.New("an Arrow table or record batch is stored as an Arrow IPC file only when it is the field's whole value; give it a field of its own (of type arrow.Table or arrow.RecordBatch)")

// IsArrow reports whether data, an artifact's stored bytes, is an Arrow
// IPC file.
func IsArrow(data []byte) bool { return isArrow(data) }
