package codec

import (
	"encoding"
	"fmt"
	"math"
	"math/big"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unsafe"
)

// decoder reads a CBOR payload that wellFormed has accepted, so lengths in
// it can be trusted; it still checks every head it reads.
type decoder struct {
	b   []byte
	pos int
}

// mismatchError says that the stored value does not fit the Go type it is
// decoded into. path is built innermost first while the decoder unwinds.
type mismatchError struct {
	stored string // what the data holds, e.g. "a text string"
	want   reflect.Type
	why    string // optional, e.g. ": it does not fit"
	path   []string
}

func (m *mismatchError) at(step string) *mismatchError {
	m.path = append(m.path, step)
	return m
}

func (m *mismatchError) Error() string {
	var where strings.Builder
	for i := len(m.path) - 1; i >= 0; i-- {
		where.WriteString(m.path[i])
	}
	at := ""
	if where.Len() > 0 {
		at = " at " + where.String()
	}
	return fmt.Sprintf("the stored value holds %s%s where the Go type is %s%s", m.stored, at, m.want, m.why)
}

func newMismatch(h head, t reflect.Type, why string) error {
	return &mismatchError{stored: describeItem(h), want: t, why: why}
}

// unmarshalError is an error from a type's own UnmarshalBinary, GobDecode
// or UnmarshalText.
type unmarshalError struct {
	typ reflect.Type
	fn  string
	err error
}

func (e *unmarshalError) Error() string {
	return fmt.Sprintf("the %s method of %s failed: %v", e.fn, e.typ, e.err)
}

func (e *unmarshalError) Unwrap() error { return e.err }

// stepErr adds a step of the path to a mismatch.
func stepErr(err error, step string) error {
	if m, ok := err.(*mismatchError); ok {
		return m.at(step)
	}
	return err
}

func (d *decoder) head() (head, error) {
	return readHead(d.b, d.pos)
}

// skip moves past the item at the current position.
func (d *decoder) skip() error {
	end, err := skipItem(d.b, d.pos, 0)
	d.pos = end
	return err
}

// describeItem says what the item with head h is, for messages.
func describeItem(h head) string {
	switch h.major {
	case majorUint:
		return "the integer " + strconv.FormatUint(h.arg, 10)
	case majorNeg:
		if h.arg < math.MaxInt64 {
			return "the integer " + strconv.FormatInt(-1-int64(h.arg), 10)
		}
		return "a negative integer"
	case majorBytes:
		return fmt.Sprintf("a byte string of %d bytes", h.arg)
	case majorText:
		return "a text string"
	case majorArray:
		return fmt.Sprintf("an array of %d elements", h.arg)
	case majorMap:
		return fmt.Sprintf("a map of %d entries", h.arg)
	case majorTag:
		switch h.arg {
		case tagTimeText, tagTimeEpoch:
			return "a time"
		case tagBigPos, tagBigNeg:
			return "a big integer"
		}
		return "CBOR tag " + strconv.FormatUint(h.arg, 10)
	}
	switch {
	case h.isFloat():
		return "the float " + strconv.FormatFloat(h.float(), 'g', -1, 64)
	case h.arg == simpleFalse || h.arg == simpleTrue:
		return "a bool"
	}
	return "null"
}

// value decodes the current item into v, which is settable.
func (d *decoder) value(v reflect.Value) error {
	h, err := d.head()
	if err != nil {
		return err
	}
	t := v.Type()
	if h.isNull() {
		d.pos += h.size
		v.SetZero()
		return nil
	}
	mismatch := func(why string) error { return newMismatch(h, t, why) }
	info := infoOf(t)
	switch info.how {
	case asTime:
		return d.time(v, h)
	case asBigInt:
		return d.bigInt(v, h)
	case asBinary, asGob:
		if h.major == majorBytes {
			return d.unmarshal(v, h, info.how)
		}
	case asText:
		if h.major == majorText {
			return d.unmarshal(v, h, info.how)
		}
	}
	switch t.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(t.Elem()))
		}
		return d.value(v.Elem())
	case reflect.Interface:
		if t.NumMethod() != 0 {
			return mismatch(": an interface with methods cannot be filled from stored data, which does not say which concrete type to make")
		}
		x, err := d.any(0)
		if err != nil {
			return err
		}
		if x == nil {
			v.SetZero()
		} else {
			v.Set(reflect.ValueOf(x))
		}
		return nil
	case reflect.Bool:
		if h.major != majorSimple || h.isFloat() || (h.arg != simpleFalse && h.arg != simpleTrue) {
			return mismatch("")
		}
		v.SetBool(h.arg == simpleTrue)
		d.pos += h.size
		return nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		var n int64
		switch {
		case h.major == majorUint && h.arg <= math.MaxInt64:
			n = int64(h.arg)
		case h.major == majorNeg && h.arg <= math.MaxInt64:
			n = -1 - int64(h.arg)
		case h.major == majorUint || h.major == majorNeg:
			return mismatch(": it does not fit")
		default:
			return mismatch("")
		}
		if v.OverflowInt(n) {
			return mismatch(": it does not fit")
		}
		v.SetInt(n)
		d.pos += h.size
		return nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		switch {
		case h.major == majorUint:
			if v.OverflowUint(h.arg) {
				return mismatch(": it does not fit")
			}
			v.SetUint(h.arg)
			d.pos += h.size
			return nil
		case h.major == majorNeg:
			return mismatch(": it is negative")
		default:
			return mismatch("")
		}
	case reflect.Float32, reflect.Float64:
		var f float64
		switch {
		case h.isFloat():
			f = h.float()
		case h.major == majorUint:
			f = float64(h.arg)
		case h.major == majorNeg:
			f = -1 - float64(h.arg)
		default:
			return mismatch("")
		}
		if v.OverflowFloat(f) && !math.IsInf(f, 0) {
			return mismatch(": it does not fit")
		}
		v.SetFloat(f)
		d.pos += h.size
		return nil
	case reflect.String:
		if h.major != majorText && h.major != majorBytes {
			return mismatch("")
		}
		v.SetString(string(d.b[d.pos+h.size : d.pos+h.size+int(h.arg)]))
		d.pos += h.size + int(h.arg)
		return nil
	case reflect.Slice:
		return d.slice(v, h)
	case reflect.Array:
		return d.array(v, h)
	case reflect.Map:
		if h.major != majorMap {
			return mismatch("")
		}
		return d.mapEntries(v, h)
	case reflect.Struct:
		if h.major != majorMap {
			return mismatch("")
		}
		return d.structFields(v, h, info.si)
	default:
		return mismatch(": values of this kind are never stored")
	}
}

// byteElems reports whether a list of t is stored as a byte string.
func byteElems(t reflect.Type) bool {
	return t.Elem().Kind() == reflect.Uint8 && !isOpaque(t.Elem())
}

func (d *decoder) slice(v reflect.Value, h head) error {
	t := v.Type()
	mismatch := func(why string) error { return newMismatch(h, t, why) }
	switch {
	case h.major == majorBytes && byteElems(t):
		b := d.b[d.pos+h.size : d.pos+h.size+int(h.arg)]
		s := reflect.MakeSlice(t, len(b), len(b))
		copy(s.Bytes(), b)
		v.Set(s)
		d.pos += h.size + len(b)
		return nil
	case h.major != majorArray:
		return mismatch("")
	}
	n := int(h.arg)
	s := reflect.MakeSlice(t, n, n)
	d.pos += h.size
	for i := range n {
		if err := d.value(s.Index(i)); err != nil {
			return stepErr(err, "["+strconv.Itoa(i)+"]")
		}
	}
	v.Set(s)
	return nil
}

func (d *decoder) array(v reflect.Value, h head) error {
	t := v.Type()
	mismatch := func(why string) error { return newMismatch(h, t, why) }
	if (h.major == majorBytes && byteElems(t)) || h.major == majorArray {
		if h.arg != uint64(t.Len()) {
			return mismatch(": the lengths differ")
		}
	}
	switch {
	case h.major == majorBytes && byteElems(t):
		for i, c := range d.b[d.pos+h.size : d.pos+h.size+int(h.arg)] {
			v.Index(i).SetUint(uint64(c))
		}
		d.pos += h.size + int(h.arg)
		return nil
	case h.major != majorArray:
		return mismatch("")
	}
	d.pos += h.size
	for i := range t.Len() {
		if err := d.value(v.Index(i)); err != nil {
			return stepErr(err, "["+strconv.Itoa(i)+"]")
		}
	}
	return nil
}

func (d *decoder) mapEntries(v reflect.Value, h head) error {
	t := v.Type()
	n := int(h.arg)
	m := reflect.MakeMapWithSize(t, n)
	d.pos += h.size
	key := reflect.New(t.Key()).Elem()
	val := reflect.New(t.Elem()).Elem()
	for range n {
		key.SetZero()
		if err := d.value(key); err != nil {
			return stepErr(err, "{map key}")
		}
		val.SetZero()
		if err := d.value(val); err != nil {
			return stepErr(err, "["+formatKey(key)+"]")
		}
		m.SetMapIndex(key, val)
	}
	v.Set(m)
	return nil
}

func (d *decoder) structFields(v reflect.Value, h head, si *structInfo) error {
	d.pos += h.size
	for range h.arg {
		kh, err := d.head()
		if err != nil {
			return err
		}
		if kh.major != majorText {
			return &mismatchError{stored: "a map with a key that is " + describeItem(kh), want: v.Type(), why: ": struct fields are stored under their names"}
		}
		name := string(d.b[d.pos+kh.size : d.pos+kh.size+int(kh.arg)])
		d.pos += kh.size + int(kh.arg)
		f := si.byName[name]
		if f == nil {
			f = si.byTag[name]
		}
		if f == nil {
			f = si.byFold[strings.ToLower(name)]
		}
		if f == nil {
			// A field the type no longer has.
			if err := d.skip(); err != nil {
				return err
			}
			continue
		}
		if err := d.value(settableField(v, f.index)); err != nil {
			return stepErr(err, "."+f.path)
		}
	}
	return nil
}

// settableField returns the field of struct v at index, allocating nil
// embedded pointers on the way. Fields promoted from unexported embedded
// structs are made settable (their own names are exported).
func settableField(v reflect.Value, index []int) reflect.Value {
	for i, x := range index {
		if i > 0 && v.Kind() == reflect.Pointer {
			if v.IsNil() {
				if !v.CanSet() {
					v = reflect.NewAt(v.Type(), unsafe.Pointer(v.UnsafeAddr())).Elem()
				}
				v.Set(reflect.New(v.Type().Elem()))
			}
			v = v.Elem()
		}
		v = v.Field(x)
	}
	if !v.CanSet() {
		v = reflect.NewAt(v.Type(), unsafe.Pointer(v.UnsafeAddr())).Elem()
	}
	return v
}

func (d *decoder) time(v reflect.Value, h head) error {
	t, err := d.timeItem(h)
	if err != nil {
		return err
	}
	*(*time.Time)(v.Addr().UnsafePointer()) = t // v is settable, so addressable
	return nil
}

// timeItem reads a time: tag 0 text, untagged text, or tag 1 seconds (the
// decoder of format version 1 took those too).
func (d *decoder) timeItem(h head) (time.Time, error) {
	mismatch := &mismatchError{stored: describeItem(h), want: timeType}
	if h.major == majorTag {
		d.pos += h.size
		ch, err := d.head()
		if err != nil {
			return time.Time{}, err
		}
		switch {
		case h.arg == tagTimeText && ch.major == majorText:
			h = ch
		case h.arg == tagTimeEpoch && (ch.major == majorUint || ch.major == majorNeg || ch.isFloat()):
			var f float64
			switch ch.major {
			case majorUint:
				f = float64(ch.arg)
			case majorNeg:
				f = -1 - float64(ch.arg)
			default:
				f = ch.float()
			}
			d.pos += ch.size
			sec, frac := math.Modf(f)
			return time.Unix(int64(sec), int64(frac*1e9)).UTC(), nil
		case h.arg == tagTimeText || h.arg == tagTimeEpoch:
			return time.Time{}, fmt.Errorf("%w: a time holds %s; the stored object is damaged", ErrCorrupt, describeItem(ch))
		default:
			return time.Time{}, mismatch
		}
	}
	if h.major != majorText {
		return time.Time{}, mismatch
	}
	s := string(d.b[d.pos+h.size : d.pos+h.size+int(h.arg)])
	d.pos += h.size + int(h.arg)
	return parseTimeText(s)
}

func (d *decoder) bigInt(v reflect.Value, h head) error {
	x, err := d.bigItem(h)
	if err != nil {
		return err
	}
	v.Set(reflect.ValueOf(x).Elem())
	return nil
}

// bigItem reads an integer of any size.
func (d *decoder) bigItem(h head) (*big.Int, error) {
	switch h.major {
	case majorUint:
		d.pos += h.size
		return new(big.Int).SetUint64(h.arg), nil
	case majorNeg:
		d.pos += h.size
		x := new(big.Int).SetUint64(h.arg)
		return x.Neg(x.Add(x, big.NewInt(1))), nil
	case majorTag:
		if h.arg == tagBigPos || h.arg == tagBigNeg {
			ch, err := readHead(d.b, d.pos+h.size)
			if err != nil {
				return nil, err
			}
			if ch.major != majorBytes {
				return nil, fmt.Errorf("%w: a big integer holds %s; the stored object is damaged", ErrCorrupt, describeItem(ch))
			}
			start := d.pos + h.size + ch.size
			x := new(big.Int).SetBytes(d.b[start : start+int(ch.arg)])
			d.pos = start + int(ch.arg)
			if h.arg == tagBigNeg {
				x.Neg(x.Add(x, big.NewInt(1)))
			}
			return x, nil
		}
	}
	return nil, &mismatchError{stored: describeItem(h), want: bigIntType}
}

func (d *decoder) unmarshal(v reflect.Value, h head, how how) error {
	b := d.b[d.pos+h.size : d.pos+h.size+int(h.arg)]
	d.pos += h.size + int(h.arg)
	var (
		err error
		fn  string
	)
	p := v.Addr().Interface()
	switch how {
	case asBinary:
		fn = "UnmarshalBinary"
		err = p.(encoding.BinaryUnmarshaler).UnmarshalBinary(b)
	case asGob:
		fn = "GobDecode"
		err = p.(gobDecoder).GobDecode(b)
	case asText:
		fn = "UnmarshalText"
		err = p.(encoding.TextUnmarshaler).UnmarshalText(b)
	}
	if err != nil {
		return &unmarshalError{typ: v.Type(), fn: fn, err: err}
	}
	return nil
}

// any decodes the current item into plain values (see DecodeAny).
func (d *decoder) any(depth int) (any, error) {
	h, err := d.head()
	if err != nil {
		return nil, err
	}
	switch h.major {
	case majorUint:
		d.pos += h.size
		if h.arg <= math.MaxInt64 {
			return int64(h.arg), nil
		}
		return h.arg, nil
	case majorNeg:
		if h.arg <= math.MaxInt64 {
			d.pos += h.size
			return -1 - int64(h.arg), nil
		}
		return d.bigItem(h)
	case majorBytes:
		start := d.pos + h.size
		d.pos = start + int(h.arg)
		return append([]byte{}, d.b[start:d.pos]...), nil
	case majorText:
		start := d.pos + h.size
		d.pos = start + int(h.arg)
		return string(d.b[start:d.pos]), nil
	case majorArray:
		d.pos += h.size
		s := make([]any, h.arg)
		for i := range s {
			if s[i], err = d.any(depth + 1); err != nil {
				return nil, err
			}
		}
		return s, nil
	case majorMap:
		return d.anyMap(h, depth)
	case majorTag:
		switch h.arg {
		case tagTimeText, tagTimeEpoch:
			return d.timeItem(h)
		case tagBigPos, tagBigNeg:
			return d.bigItem(h)
		}
		d.pos += h.size // a tag this codec does not write: its content
		return d.any(depth + 1)
	}
	d.pos += h.size
	switch {
	case h.isFloat():
		return h.float(), nil
	case h.arg == simpleFalse:
		return false, nil
	case h.arg == simpleTrue:
		return true, nil
	}
	return nil, nil
}

// anyMap decodes a map into map[string]any when all its keys are text, and
// into map[any]any otherwise. Keys that Go cannot use as map keys (arrays,
// maps, byte strings, big integers) become their JSON text.
func (d *decoder) anyMap(h head, depth int) (any, error) {
	d.pos += h.size
	n := int(h.arg)
	keys := make([]any, n)
	vals := make([]any, n)
	allText := true
	for i := range n {
		start := d.pos
		k, err := d.any(depth + 1)
		if err != nil {
			return nil, err
		}
		switch k.(type) {
		case string:
		case int64, uint64, float64, bool, nil, time.Time:
			allText = false
		default:
			var w textWriter
			if _, err := w.item(d.b, start, depth); err != nil {
				return nil, err
			}
			k = string(w.buf)
			allText = false
		}
		keys[i] = k
		if vals[i], err = d.any(depth + 1); err != nil {
			return nil, err
		}
	}
	if allText {
		m := make(map[string]any, n)
		for i, k := range keys {
			m[k.(string)] = vals[i]
		}
		return m, nil
	}
	m := make(map[any]any, n)
	for i, k := range keys {
		m[k] = vals[i]
	}
	return m, nil
}
