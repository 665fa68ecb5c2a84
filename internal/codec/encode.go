package codec

import (
	"bytes"
	"encoding"
	"fmt"
	"math"
	"math/big"
	"reflect"
	"slices"
	"strconv"
	"time"
	"unsafe"
)

// encoder writes a value as deterministic CBOR (see the package
// documentation) into buf, refusing what it cannot store without loss.
type encoder struct {
	buf []byte
	// onPath holds the pointers, maps and slices on the way from the root
	// to the current value, for types that may be cyclic.
	onPath map[visitKey]bool
}

type visitKey struct {
	ptr unsafe.Pointer
	typ reflect.Type
	n   int
}

func (e *encoder) enter(k visitKey) bool {
	if e.onPath == nil {
		e.onPath = map[visitKey]bool{}
	}
	if e.onPath[k] {
		return false
	}
	e.onPath[k] = true
	return true
}

// value appends v. depth counts the pointers, elements, entries and fields
// on the way from the root.
func (e *encoder) value(v reflect.Value, depth int) *problem {
	t := v.Type()
	info := infoOf(t)
	if info.prob != nil {
		return info.prob.clone()
	}
	if depth > maxDepth {
		return depthProblem(t)
	}
	switch info.how {
	case asTime:
		return e.time(v)
	case asBigInt:
		e.bigInt(v)
		return nil
	case asBinary, asGob, asText:
		return e.marshaler(v, info.how)
	}
	switch v.Kind() {
	case reflect.Bool:
		if v.Bool() {
			e.buf = append(e.buf, 0xf5)
		} else {
			e.buf = append(e.buf, 0xf4)
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		e.int(v.Int())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		e.buf = appendHead(e.buf, majorUint, v.Uint())
	case reflect.Float32, reflect.Float64:
		e.buf = appendFloat(e.buf, v.Float())
	case reflect.String:
		e.buf = appendText(e.buf, v.String())
	case reflect.Interface:
		if v.IsNil() {
			e.buf = append(e.buf, cborNull...)
			return nil
		}
		if t.NumMethod() > 0 {
			if _, ok := arrowTypeName(v.Elem().Interface()); ok {
				return &problem{typ: t, reason: errArrowNested.Error()}
			}
			return &problem{typ: t, reason: fmt.Sprintf("it holds a %s, and reading back could not know which concrete type to make for an interface with methods; store the concrete type, a plain value (for an error, its message as a string), or use any", v.Elem().Type())}
		}
		return e.value(v.Elem(), depth)
	case reflect.Pointer:
		if v.IsNil() {
			e.buf = append(e.buf, cborNull...)
			return nil
		}
		if info.walk {
			k := visitKey{ptr: v.UnsafePointer(), typ: t}
			if !e.enter(k) {
				return cycleProblem(t)
			}
			defer delete(e.onPath, k)
		}
		return e.value(v.Elem(), depth+1)
	case reflect.Slice:
		if v.IsNil() {
			e.buf = append(e.buf, cborNull...)
			return nil
		}
		if info.walk && v.Len() > 0 {
			k := visitKey{ptr: v.UnsafePointer(), typ: t, n: v.Len()}
			if !e.enter(k) {
				return cycleProblem(t)
			}
			defer delete(e.onPath, k)
		}
		return e.list(v, depth)
	case reflect.Array:
		return e.list(v, depth)
	case reflect.Map:
		if v.IsNil() {
			e.buf = append(e.buf, cborNull...)
			return nil
		}
		if info.walk && v.Len() > 0 {
			k := visitKey{ptr: v.UnsafePointer(), typ: t}
			if !e.enter(k) {
				return cycleProblem(t)
			}
			defer delete(e.onPath, k)
		}
		return e.mapEntries(v, depth)
	case reflect.Struct:
		return e.structFields(v, info.si, depth)
	default:
		// kindProblem has refused every other kind through info.prob.
		return &problem{typ: t, reason: "values of this kind cannot be stored; " + plainAdvice}
	}
	return nil
}

func (e *encoder) int(n int64) {
	if n >= 0 {
		e.buf = appendHead(e.buf, majorUint, uint64(n))
	} else {
		e.buf = appendHead(e.buf, majorNeg, uint64(-(n + 1)))
	}
}

// list appends a slice or array: bytes as a byte string, else an array.
func (e *encoder) list(v reflect.Value, depth int) *problem {
	n := v.Len()
	et := v.Type().Elem()
	if et.Kind() == reflect.Uint8 && !isOpaque(et) {
		e.buf = appendHead(e.buf, majorBytes, uint64(n))
		if v.Kind() == reflect.Slice {
			e.buf = append(e.buf, v.Bytes()...)
		} else {
			for i := range n {
				e.buf = append(e.buf, byte(v.Index(i).Uint()))
			}
		}
		return nil
	}
	e.buf = appendHead(e.buf, majorArray, uint64(n))
	for i := range n {
		if p := e.value(v.Index(i), depth+1); p != nil {
			return p.at("[" + strconv.Itoa(i) + "]")
		}
	}
	return nil
}

// mapEntries appends a map with its entries sorted by their encoded keys.
// Keys that encode alike (int(1) and int64(1) in a map[any]..., NaN) would
// collide when read back, so they are refused.
func (e *encoder) mapEntries(v reflect.Value, depth int) *problem {
	n := v.Len()
	e.buf = appendHead(e.buf, majorMap, uint64(n))
	start := len(e.buf)
	type entry struct{ key, keyEnd, end int } // offsets in e.buf
	entries := make([]entry, 0, n)
	it := v.MapRange()
	for it.Next() {
		k := it.Key()
		en := entry{key: len(e.buf)}
		if p := e.mapKey(k, depth); p != nil {
			return p
		}
		en.keyEnd = len(e.buf)
		if p := e.value(it.Value(), depth+1); p != nil {
			return p.at("[" + formatKey(k) + "]")
		}
		en.end = len(e.buf)
		entries = append(entries, en)
	}
	if n < 2 {
		return nil
	}
	order := make([]int, len(entries))
	for i := range order {
		order[i] = i
	}
	key := func(i int) []byte { return e.buf[entries[i].key:entries[i].keyEnd] }
	slices.SortFunc(order, func(a, b int) int { return bytes.Compare(key(a), key(b)) })
	for i := 1; i < len(order); i++ {
		if bytes.Equal(key(order[i-1]), key(order[i])) {
			return &problem{typ: v.Type(), reason: fmt.Sprintf("two of its keys are stored alike (%s), so one entry would be lost when read back; use keys of one type, without NaN", previewKey(key(order[i])))}
		}
	}
	sorted := make([]byte, 0, len(e.buf)-start)
	for _, i := range order {
		sorted = append(sorted, e.buf[entries[i].key:entries[i].end]...)
	}
	copy(e.buf[start:], sorted)
	return nil
}

// mapKey appends a map key, refusing NaN (a Go map may hold several, which
// would collide) and pointers behind interfaces.
func (e *encoder) mapKey(k reflect.Value, depth int) *problem {
	for k.Kind() == reflect.Interface && !k.IsNil() {
		k = k.Elem()
	}
	if (k.Kind() == reflect.Float32 || k.Kind() == reflect.Float64) && math.IsNaN(k.Float()) {
		return (&problem{typ: k.Type(), reason: "a map key is NaN; NaN keys cannot be told apart when read back, so entries would be lost; use another key, or " + plainAdvice}).at("{map key}")
	}
	if keyPointer(k.Type()) {
		return (&problem{typ: k.Type(), reason: "a map key holds a pointer, whose identity cannot be stored; key the map by a value, such as an id, or " + plainAdvice}).at("{map key}")
	}
	if p := e.value(k, depth+1); p != nil {
		return p.at("{map key}")
	}
	return nil
}

// structFields appends a struct as a map from field names to values,
// refusing one whose unexported fields hold something (it would be lost).
func (e *encoder) structFields(v reflect.Value, si *structInfo, depth int) *problem {
	if !v.CanAddr() {
		c := reflect.New(v.Type()).Elem()
		c.Set(v)
		v = c
	}
	for _, h := range si.hidden {
		if f, ok := fieldByIndex(v, h.index); ok && !f.IsZero() {
			return &problem{typ: v.Type(), reason: fmt.Sprintf("its unexported field %s holds a value, which would be lost: only exported fields are stored; export the field, leave it zero in what you store, or "+plainAdvice, h.path)}
		}
	}
	n := len(si.fields)
	if si.ptrEmbed {
		n = 0
		for _, f := range si.fields {
			if _, ok := fieldByIndex(v, f.index); ok {
				n++
			}
		}
	}
	e.buf = appendHead(e.buf, majorMap, uint64(n))
	for _, f := range si.fields {
		fv, ok := fieldByIndex(v, f.index)
		if !ok {
			continue // behind a nil embedded pointer: not written
		}
		e.buf = append(e.buf, f.key...)
		if p := e.value(fv, depth+1); p != nil {
			return p.at("." + f.path)
		}
	}
	return nil
}

// fieldByIndex is v.FieldByIndex that reports false instead of panicking
// at a nil embedded pointer. v must be addressable. Fields promoted from an
// unexported embedded struct come back usable (reflect marks them read-only
// since the path to them is unexported; their own names are exported).
func fieldByIndex(v reflect.Value, index []int) (reflect.Value, bool) {
	for i, x := range index {
		if i > 0 && v.Kind() == reflect.Pointer {
			if v.IsNil() {
				return reflect.Value{}, false
			}
			v = v.Elem()
		}
		v = v.Field(x)
	}
	if !v.CanInterface() && v.CanAddr() {
		v = reflect.NewAt(v.Type(), unsafe.Pointer(v.UnsafeAddr())).Elem()
	}
	return v, true
}

func (e *encoder) time(v reflect.Value) *problem {
	t := *(*time.Time)(valuePointer(v))
	if t.IsZero() {
		e.buf = append(e.buf, cborNull...)
		return nil
	}
	s, err := timeText(t)
	if err != nil {
		return &problem{typ: timeType, reason: err.Error() + "; store times between the years 0000 and 9999, or store them as Unix nanoseconds in an int64"}
	}
	e.buf = appendHead(e.buf, majorTag, tagTimeText)
	e.buf = appendText(e.buf, s)
	return nil
}

// bigInt appends an integer as a CBOR integer where it fits in 64 bits, as
// a bignum otherwise.
func (e *encoder) bigInt(v reflect.Value) {
	x := (*big.Int)(valuePointer(v))
	if x.Sign() >= 0 {
		if x.IsUint64() {
			e.buf = appendHead(e.buf, majorUint, x.Uint64())
			return
		}
		e.buf = appendHead(e.buf, majorTag, tagBigPos)
		b := x.Bytes()
		e.buf = append(appendHead(e.buf, majorBytes, uint64(len(b))), b...)
		return
	}
	m := new(big.Int).Neg(x) // -1 - x = |x| - 1
	m.Sub(m, big.NewInt(1))
	if m.IsUint64() {
		e.buf = appendHead(e.buf, majorNeg, m.Uint64())
		return
	}
	e.buf = appendHead(e.buf, majorTag, tagBigNeg)
	b := m.Bytes()
	e.buf = append(appendHead(e.buf, majorBytes, uint64(len(b))), b...)
}

// valuePointer returns a pointer to v's value, copying it when v is not
// addressable.
func valuePointer(v reflect.Value) unsafe.Pointer {
	if !v.CanAddr() {
		c := reflect.New(v.Type()).Elem()
		c.Set(v)
		v = c
	}
	return v.Addr().UnsafePointer()
}

// addressable returns a pointer to v's value (a copy when v is not
// addressable) as an interface, to call methods with pointer receivers.
func addressable(v reflect.Value) any {
	if !v.CanAddr() {
		c := reflect.New(v.Type()).Elem()
		c.Set(v)
		v = c
	}
	return v.Addr().Interface()
}

func (e *encoder) marshaler(v reflect.Value, h how) *problem {
	if !v.CanInterface() {
		return &problem{typ: v.Type(), reason: "it is reached through an unexported field, so its marshaling method cannot be called; export the field, or " + plainAdvice}
	}
	var (
		b   []byte
		err error
		fn  string
	)
	switch h {
	case asBinary:
		fn = "MarshalBinary"
		b, err = addressable(v).(encoding.BinaryMarshaler).MarshalBinary()
	case asGob:
		fn = "GobEncode"
		b, err = addressable(v).(gobEncoder).GobEncode()
	case asText:
		fn = "MarshalText"
		b, err = addressable(v).(encoding.TextMarshaler).MarshalText()
	}
	if err != nil {
		return &problem{typ: v.Type(), reason: fmt.Sprintf("its %s method failed: %v; fix the value, or %s", fn, err, plainAdvice)}
	}
	major := byte(majorBytes)
	if h == asText {
		major = majorText
	}
	e.buf = append(appendHead(e.buf, major, uint64(len(b))), b...)
	return nil
}
