package codec

import (
	"encoding/binary"
	"fmt"
	"reflect"
	"strconv"
	"unsafe"
)

// elemCode identifies the element type of a fast-path (raw) slice in the
// header. The values are part of the format: never renumber them.
type elemCode uint8

const (
	elemFloat64 elemCode = 1 + iota
	elemFloat32
	elemInt64
	elemInt32
	elemInt16
	elemInt8
	elemUint64
	elemUint32
	elemUint16
	elemUint8
	elemInt  // []int, stored as 64-bit
	elemUint // []uint, stored as 64-bit
	elemEnd
)

type elemDesc struct {
	size  int
	slice reflect.Type // what DecodeAny returns
}

var is64bit = strconv.IntSize == 64

var elems = [elemEnd]elemDesc{
	elemFloat64: {8, reflect.TypeFor[[]float64]()},
	elemFloat32: {4, reflect.TypeFor[[]float32]()},
	elemInt64:   {8, reflect.TypeFor[[]int64]()},
	elemInt32:   {4, reflect.TypeFor[[]int32]()},
	elemInt16:   {2, reflect.TypeFor[[]int16]()},
	elemInt8:    {1, reflect.TypeFor[[]int8]()},
	elemUint64:  {8, reflect.TypeFor[[]uint64]()},
	elemUint32:  {4, reflect.TypeFor[[]uint32]()},
	elemUint16:  {2, reflect.TypeFor[[]uint16]()},
	elemUint8:   {1, reflect.TypeFor[[]uint8]()},
	elemInt:     {8, intSliceType(reflect.TypeFor[[]int](), reflect.TypeFor[[]int64]())},
	elemUint:    {8, intSliceType(reflect.TypeFor[[]uint](), reflect.TypeFor[[]uint64]())},
}

// intSliceType picks []int/[]uint where int is 64 bits wide, and the 64-bit
// type elsewhere (so that the data still decodes there).
func intSliceType(native, wide reflect.Type) reflect.Type {
	if is64bit {
		return native
	}
	return wide
}

// littleEndian reports whether this machine stores numbers little-endian,
// as the format does. Elsewhere the fast path copies and swaps bytes.
var littleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

// elemOf returns the code for slices whose elements have type t.
func elemOf(t reflect.Type) (elemCode, bool) {
	switch t.Kind() {
	case reflect.Float64:
		return elemFloat64, true
	case reflect.Float32:
		return elemFloat32, true
	case reflect.Int64:
		return elemInt64, true
	case reflect.Int32:
		return elemInt32, true
	case reflect.Int16:
		return elemInt16, true
	case reflect.Int8:
		return elemInt8, true
	case reflect.Uint64:
		return elemUint64, true
	case reflect.Uint32:
		return elemUint32, true
	case reflect.Uint16:
		return elemUint16, true
	case reflect.Uint8:
		return elemUint8, true
	case reflect.Int:
		return elemInt, is64bit
	case reflect.Uint:
		return elemUint, is64bit
	}
	return 0, false
}

// fastPath returns the element code when values of type t take the fast
// path: slices of fixed-size numbers, unless the slice or element type has
// its own binary or CBOR marshaling.
func fastPath(t reflect.Type) (elemCode, bool) {
	if t.Kind() != reflect.Slice {
		return 0, false
	}
	code, ok := elemOf(t.Elem())
	if !ok || isOpaque(t) || isOpaque(t.Elem()) {
		return 0, false
	}
	return code, true
}

// compatible reports whether data stored with code may be decoded into a
// slice with elements of type t: the same element type, where int and int64
// (and uint and uint64) count as the same since both are stored as 64-bit.
func compatible(code elemCode, t reflect.Type) bool {
	c, ok := elemOf(t)
	if !ok {
		return false
	}
	if c == code {
		return true
	}
	wide := func(c elemCode) elemCode {
		switch c {
		case elemInt:
			return elemInt64
		case elemUint:
			return elemUint64
		}
		return c
	}
	return is64bit && wide(c) == wide(code)
}

// encodeRaw encodes slice v (which takes the fast path with code) as a raw
// header followed by the slice's own memory.
func encodeRaw(v reflect.Value, code elemCode) Encoded {
	n := v.Len()
	size := elems[code].size
	var flags byte
	if v.IsNil() {
		flags |= flagNil
	}
	hdr := make([]byte, rawHeaderLen, rawHeaderLen)
	putHeader(hdr, kindRaw, byte(code), flags)
	binary.LittleEndian.PutUint64(hdr[8:], uint64(n))
	enc := Encoded{Parts: [][]byte{hdr}, Size: rawHeaderLen, Type: v.Type().String()}
	if n == 0 {
		return enc
	}
	body := unsafe.Slice((*byte)(v.UnsafePointer()), n*size)
	if !littleEndian {
		body = swapped(body, size)
	}
	enc.Parts = append(enc.Parts, body)
	enc.Size += int64(len(body))
	return enc
}

// swapped returns a copy of b with the byte order of every size-byte word
// reversed.
func swapped(b []byte, size int) []byte {
	out := make([]byte, len(b))
	copy(out, b)
	if size > 1 {
		for i := 0; i < len(out); i += size {
			w := out[i : i+size]
			for l, r := 0, size-1; l < r; l, r = l+1, r-1 {
				w[l], w[r] = w[r], w[l]
			}
		}
	}
	return out
}

// rawHeader is a parsed, validated raw header.
type rawHeader struct {
	code  elemCode
	isNil bool
	count int
}

// parseRaw validates the raw header in data (whose common part is already
// checked) against the length of the payload that follows it.
func parseRaw(data []byte) (rawHeader, []byte, error) {
	if len(data) < rawHeaderLen {
		return rawHeader{}, nil, fmt.Errorf("%w: the header of a numeric slice is cut short (%d of %d bytes); the stored object is truncated", ErrCorrupt, len(data), rawHeaderLen)
	}
	code, flags := elemCode(data[6]), data[7]
	if code == 0 || code >= elemEnd {
		return rawHeader{}, nil, fmt.Errorf("%w: unknown element type %d in the header of a numeric slice; it may have been written by a newer version of stepwise, so upgrade, or the data is damaged", ErrCorrupt, code)
	}
	if flags&^flagNil != 0 {
		return rawHeader{}, nil, fmt.Errorf("%w: unknown flags %#x in the header of a numeric slice; it may have been written by a newer version of stepwise, so upgrade, or the data is damaged", ErrCorrupt, flags)
	}
	count := binary.LittleEndian.Uint64(data[8:16])
	payload := data[rawHeaderLen:]
	size := elems[code].size
	name := elems[code].slice.String()
	if uint64(len(payload))%uint64(size) != 0 || uint64(len(payload)/size) != count {
		return rawHeader{}, nil, fmt.Errorf("%w: the header announces a %s of length %d (%d-byte elements) but %d bytes follow; the stored object is truncated or damaged", ErrCorrupt, name, count, size, len(payload))
	}
	isNil := flags&flagNil != 0
	if isNil && count != 0 {
		return rawHeader{}, nil, fmt.Errorf("%w: the header marks a %s as nil yet gives it length %d; the stored object is damaged", ErrCorrupt, name, count)
	}
	return rawHeader{code: code, isNil: isNil, count: int(count)}, payload, nil
}

// rawValue returns the slice of type sliceType (whose elements fit h.code)
// held in payload. It aliases payload when the machine is little-endian and
// payload is aligned for the element type, and copies otherwise.
func rawValue(h rawHeader, payload []byte, sliceType reflect.Type) reflect.Value {
	if h.isNil {
		return reflect.Zero(sliceType)
	}
	if h.count == 0 {
		return reflect.MakeSlice(sliceType, 0, 0)
	}
	elem := sliceType.Elem()
	p := unsafe.Pointer(unsafe.SliceData(payload))
	if littleEndian && uintptr(p)%uintptr(elem.Align()) == 0 {
		return reflect.SliceAt(elem, p, h.count).Convert(sliceType)
	}
	out := reflect.MakeSlice(sliceType, h.count, h.count)
	dst := unsafe.Slice((*byte)(out.UnsafePointer()), len(payload))
	if littleEndian {
		copy(dst, payload)
	} else {
		copy(dst, swapped(payload, elems[h.code].size))
	}
	return out
}

// decodeRaw decodes a raw slice into target, the value ptr points to.
func decodeRaw(data []byte, target reflect.Value, ptrType reflect.Type) error {
	h, payload, err := parseRaw(data)
	if err != nil {
		return err
	}
	stored := elems[h.code].slice
	t := target.Type()
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var v reflect.Value
	switch {
	case t.Kind() == reflect.Interface && t.NumMethod() == 0:
		v = rawValue(h, payload, stored)
	case t.Kind() == reflect.Slice && compatible(h.code, t.Elem()):
		v = rawValue(h, payload, t)
	default:
		return fmt.Errorf("codec: cannot decode a stored %s of length %d into %s: the types differ; decode into *%s or *any", stored, h.count, ptrType, stored)
	}
	for target.Kind() == reflect.Pointer {
		if target.IsNil() {
			target.Set(reflect.New(target.Type().Elem()))
		}
		target = target.Elem()
	}
	target.Set(v)
	return nil
}
