package codec

import (
	"errors"
	"fmt"
	"reflect"
)

// Header layout; see the package documentation.
const (
	magic         = "STWC"
	formatVersion = 1

	kindCBOR = 1
	kindRaw  = 2

	cborHeaderLen = 8
	rawHeaderLen  = 16

	flagNil = 1 // raw: the slice was nil
)

// Encoded is an encoded value as parts to be written one after the other.
type Encoded struct {
	// Parts, concatenated, are the encoding. On the fast path for numeric
	// slices the body part aliases the value's memory: keep the value
	// unchanged until the parts are written.
	Parts [][]byte
	// Size is the total length of Parts.
	Size int64
	// Type is the Go type of the value as people read it, e.g. "int",
	// "[]float64", "map[string]int", "main.Config", "*main.Config"; "nil" for
	// a nil interface.
	Type string
}

func putHeader(hdr []byte, kind, elem, flags byte) {
	copy(hdr, magic)
	hdr[4] = formatVersion
	hdr[5] = kind
	hdr[6] = elem
	hdr[7] = flags
}

// Encode encodes v deterministically: equal values give identical bytes.
//
// Slices of fixed-size numbers ([]float64, []float32, []int64 ... []int8,
// []uint64 ... []uint8/[]byte, []int and []uint as 64-bit) take the fast
// path: the result's body part is the slice's own memory, not a copy.
// Everything else is encoded as deterministic CBOR. Values that cannot be
// stored (channels, functions, complex numbers, pointer cycles...) give an
// *UnsupportedTypeError.
func Encode(v any) (Encoded, error) {
	if v == nil {
		return encodeCBOR(reflect.Value{}, "nil")
	}
	if name, ok := arrowTypeName(v); ok {
		return encodeArrow(v, name)
	}
	rv := reflect.ValueOf(v)
	t := rv.Type()
	if code, ok := fastPath(t); ok {
		return encodeRaw(rv, code), nil
	}
	return encodeCBOR(rv, t.String())
}

func encodeCBOR(v reflect.Value, typeName string) (Encoded, error) {
	e := encoder{buf: make([]byte, cborHeaderLen, 256)}
	putHeader(e.buf, kindCBOR, 0, 0)
	if !v.IsValid() {
		e.buf = append(e.buf, cborNull...)
	} else if p := e.value(v, 0); p != nil {
		return Encoded{}, p.toError(v.Type())
	}
	return Encoded{Parts: [][]byte{e.buf}, Size: int64(len(e.buf)), Type: typeName}, nil
}

// Blob is an encoded value kept as it is stored. Decoding into a *Blob
// checks the header and keeps the data, aliasing it, without decoding the
// value, so that a tool can Preview it or WriteJSON it, at the cost of what
// it shows, through an API that decodes (client.Get[codec.Blob]).
type Blob []byte

// Decode decodes data, as produced by Encode, into the value ptr points to.
// ptr must be a non-nil pointer, e.g. *[]float64, *MyStruct or *any; an *any
// target receives the same values as DecodeAny returns, and a *Blob target
// receives data itself.
//
// Decode may alias data: a numeric slice decoded on the fast path shares
// data's memory when data is suitably aligned, so the caller must not reuse
// or modify data afterwards. Unaligned data is copied.
//
// Decode replaces the target's value; after an error its contents are
// unspecified. Malformed data gives an error wrapping ErrCorrupt; data
// holding a value of another type than the target gives an error naming
// both types and where in the value they differ.
func Decode(data []byte, ptr any) error {
	rv := reflect.ValueOf(ptr)
	if ptr == nil || rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("codec: Decode needs a non-nil pointer to the target value, got %s; pass the address of a variable, e.g. &v", describe(ptr))
	}
	if isArrow(data) {
		return decodeArrow(data, ptr)
	}
	kind, err := parseHeader(data)
	if err != nil {
		return err
	}
	if b, ok := ptr.(*Blob); ok {
		if kind == kindRaw {
			if _, _, err := parseRaw(data); err != nil {
				return err
			}
		}
		*b = data
		return nil
	}
	target := rv.Elem()
	if kind == kindRaw {
		return decodeRaw(data, target, rv.Type())
	}
	payload := data[cborHeaderLen:]
	if err := wellFormed(payload); err != nil {
		return err
	}
	// Replace the target's value rather than merge into it.
	target.SetZero()
	d := decoder{b: payload}
	if err := d.value(target); err != nil {
		return decodeError(err, rv.Type())
	}
	return nil
}

// decodeError explains an error from the decoder.
func decodeError(err error, target reflect.Type) error {
	if m, ok := errors.AsType[*mismatchError](err); ok {
		return fmt.Errorf("codec: cannot decode into %s: %s; the stored value has a different type: decode into the type it was stored as, or into *any to inspect it", target, m)
	}
	if u, ok := errors.AsType[*unmarshalError](err); ok {
		return fmt.Errorf("codec: cannot decode into %s: %w; the stored bytes may come from another version of the type", target, u)
	}
	return err
}

// DecodeAny decodes data, as produced by Encode, without knowing its Go type,
// for display. It returns plain values: map[string]any (map[any]any where
// not all keys are strings, with keys that Go cannot use as map keys turned
// into their JSON text; structs become maps of their field names), []any,
// string, int64 (uint64 above math.MaxInt64, *big.Int beyond 64 bits),
// float64, bool, nil, time.Time and []byte. Numeric slices encoded on the
// fast path come back as their typed slice ([]float64, []int32 ...),
// aliasing data as with Decode.
//
// DecodeAny builds the whole value: to show a value, Preview and WriteJSON
// cost only what they write.
func DecodeAny(data []byte) (any, error) {
	if isArrow(data) {
		return arrowAny(data)
	}
	kind, err := parseHeader(data)
	if err != nil {
		return nil, err
	}
	if kind == kindRaw {
		h, payload, err := parseRaw(data)
		if err != nil {
			return nil, err
		}
		return rawValue(h, payload, elems[h.code].slice).Interface(), nil
	}
	payload := data[cborHeaderLen:]
	if err := wellFormed(payload); err != nil {
		return nil, err
	}
	d := decoder{b: payload}
	return d.any(0)
}

// parseHeader checks the part of the header common to all kinds and returns
// the kind.
func parseHeader(data []byte) (byte, error) {
	if len(data) < cborHeaderLen {
		return 0, fmt.Errorf("%w: %d bytes is shorter than the %d-byte header; the stored object is empty or truncated", ErrCorrupt, len(data), cborHeaderLen)
	}
	if string(data[:4]) != magic {
		return 0, fmt.Errorf("%w: the data does not start with %q; it was not written by this codec or is damaged", ErrCorrupt, magic)
	}
	if data[4] != formatVersion {
		return 0, fmt.Errorf("%w: format version %d is not supported (this build reads version %d); upgrade stepwise if the data was written by a newer version", ErrCorrupt, data[4], formatVersion)
	}
	switch kind := data[5]; kind {
	case kindCBOR:
		if data[6] != 0 || data[7] != 0 {
			return 0, fmt.Errorf("%w: unexpected header bytes %#x %#x after the kind; the data is damaged or was written by a newer version of stepwise", ErrCorrupt, data[6], data[7])
		}
		return kind, nil
	case kindRaw:
		return kind, nil
	default:
		return 0, fmt.Errorf("%w: unknown kind %d in the header; the data is damaged or was written by a newer version of stepwise", ErrCorrupt, kind)
	}
}

// describe names the type of x for error messages.
func describe(x any) string {
	if x == nil {
		return "nil"
	}
	rv := reflect.ValueOf(x)
	if rv.Kind() == reflect.Pointer && rv.IsNil() {
		return "a nil " + rv.Type().String()
	}
	return rv.Type().String()
}
