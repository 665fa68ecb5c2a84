package codec

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"strconv"
	"unicode/utf8"
)

// Text output: an encoded value written as JSON straight from its bytes,
// without decoding it into Go values first, so that the cost is that of what
// is written. WriteJSON streams a whole value; Preview writes the beginning of
// one and stops.
//
// The JSON text of a value:
//   - maps are objects; a key that is not a string is written as the JSON
//     text of the key, as a string ({"1": "one"}, {"[1,2]": true});
//   - structs are objects keyed by field name;
//   - NaN, +Inf and -Inf, which JSON numbers cannot hold, are the strings
//     "NaN", "+Inf" and "-Inf" (in Preview, for people: NaN, +Inf, -Inf);
//   - byte strings ([]byte) are base64 strings, as encoding/json writes them;
//   - times are strings: their stored RFC 3339 text, with the zone name in
//     brackets (RFC 9557) when the time is not in UTC;
//   - integers of any size, time.Duration included (in nanoseconds), are
//     numbers; floats are written as encoding/json writes them.

// errFull stops a preview once it holds what was asked for.
var errFull = errors.New("codec: preview full")

// textWriter writes the JSON text of CBOR items and raw slices.
type textWriter struct {
	buf     []byte
	out     io.Writer // when set, buf is flushed to it as it grows
	limited bool      // stop with errFull once buf holds more than limit bytes
	limit   int
	human   bool   // NaN and infinities bare
	prefix  string // indentation as json.Indent does; "" for compact text
	indent  string
	written int64 // bytes flushed to out
}

const flushSize = 64 << 10

// check flushes or stops, as the writer's mode asks.
func (w *textWriter) check() error {
	if w.limited && len(w.buf) > w.limit {
		return errFull
	}
	if w.out != nil && len(w.buf) >= flushSize {
		return w.flush()
	}
	return nil
}

func (w *textWriter) flush() error {
	if w.out == nil || len(w.buf) == 0 {
		return nil
	}
	n, err := w.out.Write(w.buf)
	w.written += int64(n)
	w.buf = w.buf[:0]
	if err != nil {
		return fmt.Errorf("codec: writing JSON: %w", err)
	}
	return nil
}

func (w *textWriter) newline(depth int) {
	if w.indent == "" {
		return
	}
	w.buf = append(w.buf, '\n')
	w.buf = append(w.buf, w.prefix...)
	for range depth {
		w.buf = append(w.buf, w.indent...)
	}
}

// item writes the CBOR item at b[pos:] and returns where it ends. It checks
// what it reads, so it may be given data that was not validated.
func (w *textWriter) item(b []byte, pos, depth int) (int, error) {
	if depth > decMaxNestedLevels {
		return 0, fmt.Errorf("%w: the CBOR payload nests more than %d levels deep, deeper than anything Encode writes; the data is damaged", ErrCorrupt, decMaxNestedLevels)
	}
	h, err := readHead(b, pos)
	if err != nil {
		return 0, err
	}
	pos += h.size
	rest := uint64(len(b) - pos)
	switch h.major {
	case majorUint:
		w.buf = strconv.AppendUint(w.buf, h.arg, 10)
	case majorNeg:
		w.buf = appendNeg(w.buf, h.arg)
	case majorBytes, majorText:
		if h.arg > rest {
			return 0, fmt.Errorf("%w: a CBOR string announces %d bytes but only %d follow; the stored object is truncated", ErrCorrupt, h.arg, rest)
		}
		s := b[pos : pos+int(h.arg)]
		if h.major == majorBytes {
			err = w.base64(s)
		} else {
			err = w.str(s)
		}
		if err != nil {
			return 0, err
		}
		pos += len(s)
	case majorArray:
		// Lengths are not checked against the data up front: a preview
		// reads the first elements only, and a missing one is an error.
		w.buf = append(w.buf, '[')
		for i := range h.arg {
			if i > 0 {
				w.buf = append(w.buf, ',')
			}
			w.newline(depth + 1)
			if pos, err = w.item(b, pos, depth+1); err != nil {
				return 0, err
			}
		}
		if h.arg > 0 {
			w.newline(depth)
		}
		w.buf = append(w.buf, ']')
	case majorMap:
		w.buf = append(w.buf, '{')
		for i := range h.arg {
			if i > 0 {
				w.buf = append(w.buf, ',')
			}
			w.newline(depth + 1)
			if pos, err = w.key(b, pos, depth+1); err != nil {
				return 0, err
			}
			w.buf = append(w.buf, ':')
			if w.indent != "" {
				w.buf = append(w.buf, ' ')
			}
			if pos, err = w.item(b, pos, depth+1); err != nil {
				return 0, err
			}
		}
		if h.arg > 0 {
			w.newline(depth)
		}
		w.buf = append(w.buf, '}')
	case majorTag:
		return w.tagged(b, pos, h.arg, depth)
	default:
		switch {
		case h.isFloat():
			w.float(h.float(), 64)
		case h.arg == simpleFalse:
			w.buf = append(w.buf, "false"...)
		case h.arg == simpleTrue:
			w.buf = append(w.buf, "true"...)
		default:
			w.buf = append(w.buf, "null"...)
		}
	}
	return pos, w.check()
}

// appendNeg appends the CBOR negative integer -1-n.
func appendNeg(b []byte, n uint64) []byte {
	if n == math.MaxUint64 {
		return append(b, "-18446744073709551616"...)
	}
	return strconv.AppendUint(append(b, '-'), n+1, 10)
}

// key writes a map key: a text key as is, any other as its JSON text in a
// string.
func (w *textWriter) key(b []byte, pos, depth int) (int, error) {
	h, err := readHead(b, pos)
	if err != nil {
		return 0, err
	}
	if h.major == majorText {
		return w.item(b, pos, depth)
	}
	sub := textWriter{human: true, limited: w.limited, limit: w.limit - len(w.buf)}
	end, err := sub.item(b, pos, depth)
	if err != nil && !errors.Is(err, errFull) {
		return 0, err
	}
	if err := w.str(sub.buf); err != nil {
		return 0, err
	}
	if err != nil {
		return 0, errFull
	}
	return end, nil
}

// tagged writes the content of a tag; pos is just past the tag's head.
func (w *textWriter) tagged(b []byte, pos int, tag uint64, depth int) (int, error) {
	ch, err := readHead(b, pos)
	if err != nil {
		return 0, err
	}
	switch tag {
	case tagTimeText:
		if ch.major != majorText {
			return 0, fmt.Errorf("%w: a time holds %s; the stored object is damaged", ErrCorrupt, describeItem(ch))
		}
		start := pos + ch.size
		if ch.arg > uint64(len(b)-start) {
			return 0, fmt.Errorf("%w: a time announces %d bytes but only %d follow; the stored object is truncated", ErrCorrupt, ch.arg, len(b)-start)
		}
		if _, err := parseTimeText(string(b[start : start+int(ch.arg)])); err != nil {
			return 0, err
		}
	case tagTimeEpoch:
		if ch.major != majorUint && ch.major != majorNeg && !ch.isFloat() {
			return 0, fmt.Errorf("%w: a time holds %s; the stored object is damaged", ErrCorrupt, describeItem(ch))
		}
	case tagBigPos, tagBigNeg:
		if ch.major != majorBytes {
			return 0, fmt.Errorf("%w: a big integer holds %s; the stored object is damaged", ErrCorrupt, describeItem(ch))
		}
		start := pos + ch.size
		if ch.arg > uint64(len(b)-start) {
			return 0, fmt.Errorf("%w: a big integer announces %d bytes but only %d follow; the stored object is truncated", ErrCorrupt, ch.arg, len(b)-start)
		}
		x := new(big.Int).SetBytes(b[start : start+int(ch.arg)])
		if tag == tagBigNeg {
			x.Neg(x.Add(x, big.NewInt(1)))
		}
		w.buf = x.Append(w.buf, 10)
		return start + int(ch.arg), w.check()
	}
	return w.item(b, pos, depth+1)
}

// float writes f as encoding/json does (shortest text that reads back as
// the same number of the given bit size, exponent form for very large and
// small magnitudes); NaN and infinities as strings, or bare for people.
func (w *textWriter) float(f float64, bits int) {
	var s string
	switch {
	case math.IsNaN(f):
		s = "NaN"
	case math.IsInf(f, 1):
		s = "+Inf"
	case math.IsInf(f, -1):
		s = "-Inf"
	}
	if s != "" {
		if w.human {
			w.buf = append(w.buf, s...)
		} else {
			w.buf = append(append(append(w.buf, '"'), s...), '"')
		}
		return
	}
	format := byte('f')
	if a := math.Abs(f); a != 0 && (bits == 64 && (a < 1e-6 || a >= 1e21) || bits == 32 && (float32(a) < 1e-6 || float32(a) >= 1e21)) {
		format = 'e'
	}
	start := len(w.buf)
	w.buf = strconv.AppendFloat(w.buf, f, format, -1, bits)
	if format == 'e' {
		// 1e-07 reads better as 1e-7.
		if n := len(w.buf); n-start >= 4 && w.buf[n-4] == 'e' && w.buf[n-3] == '-' && w.buf[n-2] == '0' {
			w.buf[n-2] = w.buf[n-1]
			w.buf = w.buf[:n-1]
		}
	}
}

// str writes s as a JSON string; invalid UTF-8 becomes U+FFFD.
func (w *textWriter) str(s []byte) error {
	const hex = "0123456789abcdef"
	w.buf = append(w.buf, '"')
	next := 4096
	for i := 0; i < len(s); {
		if i >= next {
			if err := w.check(); err != nil {
				return err
			}
			next = i + 4096
		}
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				w.buf = append(w.buf, '\\', c)
			case c == '\n':
				w.buf = append(w.buf, '\\', 'n')
			case c == '\r':
				w.buf = append(w.buf, '\\', 'r')
			case c == '\t':
				w.buf = append(w.buf, '\\', 't')
			case c < 0x20 || c == 0x7f || c == '<' || c == '>' || c == '&': // as encoding/json does
				w.buf = append(w.buf, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				w.buf = append(w.buf, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			w.buf = append(w.buf, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			w.buf = append(w.buf, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			w.buf = append(w.buf, s[i:i+size]...)
		}
		i += size
	}
	w.buf = append(w.buf, '"')
	return nil
}

// base64 writes b as a JSON string in standard base64.
func (w *textWriter) base64(b []byte) error {
	const chunk = 3 << 10
	w.buf = append(w.buf, '"')
	for len(b) > 0 {
		n := min(len(b), chunk)
		w.buf = base64.StdEncoding.AppendEncode(w.buf, b[:n])
		b = b[n:]
		if len(b) > 0 {
			if err := w.check(); err != nil {
				return err
			}
		}
	}
	w.buf = append(w.buf, '"')
	return nil
}

// raw writes a numeric slice stored on the fast path.
func (w *textWriter) raw(h rawHeader, payload []byte) error {
	if h.isNil {
		w.buf = append(w.buf, "null"...)
		return nil
	}
	if h.code == elemUint8 {
		return w.base64(payload) // as encoding/json writes a []byte
	}
	size := elems[h.code].size
	w.buf = append(w.buf, '[')
	for i := range h.count {
		if i > 0 {
			w.buf = append(w.buf, ',')
		}
		w.newline(1)
		p := payload[i*size : i*size+size]
		switch h.code {
		case elemFloat64:
			w.float(math.Float64frombits(binary.LittleEndian.Uint64(p)), 64)
		case elemFloat32:
			w.float(float64(math.Float32frombits(binary.LittleEndian.Uint32(p))), 32)
		case elemInt64, elemInt:
			w.buf = strconv.AppendInt(w.buf, int64(binary.LittleEndian.Uint64(p)), 10)
		case elemInt32:
			w.buf = strconv.AppendInt(w.buf, int64(int32(binary.LittleEndian.Uint32(p))), 10)
		case elemInt16:
			w.buf = strconv.AppendInt(w.buf, int64(int16(binary.LittleEndian.Uint16(p))), 10)
		case elemInt8:
			w.buf = strconv.AppendInt(w.buf, int64(int8(p[0])), 10)
		case elemUint64, elemUint:
			w.buf = strconv.AppendUint(w.buf, binary.LittleEndian.Uint64(p), 10)
		case elemUint32:
			w.buf = strconv.AppendUint(w.buf, uint64(binary.LittleEndian.Uint32(p)), 10)
		case elemUint16:
			w.buf = strconv.AppendUint(w.buf, uint64(binary.LittleEndian.Uint16(p)), 10)
		}
		if err := w.check(); err != nil {
			return err
		}
	}
	if h.count > 0 {
		w.newline(0)
	}
	w.buf = append(w.buf, ']')
	return nil
}

// WriteJSON writes the value that data (as produced by Encode) holds as JSON
// text to out, straight from data: the value is never built in memory, so
// the cost is that of the text. prefix and indent are as for json.Indent;
// both empty give compact text. See the package documentation for how values
// map to JSON: NaN and infinities, which JSON numbers cannot hold, are the
// strings "NaN", "+Inf" and "-Inf".
//
// Damaged data gives an error wrapping ErrCorrupt before anything is
// written; an error from out is returned as is, wrapped.
func WriteJSON(out io.Writer, data []byte, prefix, indent string) error {
	if isArrow(data) {
		return arrowJSON(out, data, prefix, indent)
	}
	kind, err := parseHeader(data)
	if err != nil {
		return err
	}
	w := textWriter{out: out, prefix: prefix, indent: indent}
	if kind == kindRaw {
		h, payload, err := parseRaw(data)
		if err != nil {
			return err
		}
		if err := w.raw(h, payload); err != nil {
			return err
		}
		return w.flush()
	}
	payload := data[cborHeaderLen:]
	if err := wellFormed(payload); err != nil {
		return err
	}
	if _, err := w.item(payload, 0, 0); err != nil {
		return err
	}
	return w.flush()
}

// Summary is the beginning of a value's text and what kind of value it is,
// made by Preview without reading the rest of the value.
type Summary struct {
	// Text is the value as compact JSON text (see WriteJSON), except that
	// NaN and infinities are bare: NaN, +Inf, -Inf. It holds at most the
	// number of bytes asked for, cut at a character boundary.
	Text string
	// Cut is set when Text stops before the end of the value.
	Cut bool
	// Kind is "null", "bool", "int", "float", "string", "bytes", "array",
	// "map" (also for structs), "time", or "table" for an Arrow table (Len
	// is then its number of rows).
	Kind string
	// Len is the number of elements of an array, entries of a map, or
	// bytes of a string or byte string; -1 for other kinds.
	Len int64
}

// Preview returns the first max bytes of the text of the value that data
// (as produced by Encode) holds, with its kind and length, reading only as
// much of data as that takes: a preview of a map of a million entries costs
// what a map of ten does. max < 0 means no limit.
//
// Only the part of data that is read is checked: damaged data there gives
// an error wrapping ErrCorrupt.
func Preview(data []byte, max int) (Summary, error) {
	if isArrow(data) {
		return arrowPreview(data, max)
	}
	kind, err := parseHeader(data)
	if err != nil {
		return Summary{}, err
	}
	w := textWriter{human: true, limited: max >= 0, limit: max}
	var s Summary
	if kind == kindRaw {
		h, payload, err := parseRaw(data)
		if err != nil {
			return Summary{}, err
		}
		s.Kind, s.Len = "array", int64(h.count)
		switch {
		case h.isNil:
			s.Kind, s.Len = "null", -1
		case h.code == elemUint8:
			s.Kind = "bytes"
		}
		err = w.raw(h, payload)
	} else {
		payload := data[cborHeaderLen:]
		if s.Kind, s.Len, err = kindOf(payload); err != nil {
			return Summary{}, err
		}
		_, err = w.item(payload, 0, 0)
		if err == nil && len(payload) > 0 {
			// A complete preview has read everything: check that nothing
			// follows the item.
			err = wellFormed(payload)
		}
	}
	if err == nil && w.limited && len(w.buf) > max {
		err = errFull // the last bytes went past the limit
	}
	switch {
	case errors.Is(err, errFull):
		s.Cut = true
		n := max
		for n > 0 && !utf8.RuneStart(w.buf[n]) {
			n--
		}
		w.buf = w.buf[:n]
	case err != nil:
		return Summary{}, err
	}
	s.Text = string(w.buf)
	return s, nil
}

// kindOf names the kind of the CBOR item at the start of payload.
func kindOf(payload []byte) (string, int64, error) {
	h, err := readHead(payload, 0)
	if err != nil {
		return "", 0, err
	}
	switch h.major {
	case majorUint, majorNeg:
		return "int", -1, nil
	case majorBytes:
		return "bytes", int64(h.arg), nil
	case majorText:
		return "string", int64(h.arg), nil
	case majorArray:
		return "array", int64(h.arg), nil
	case majorMap:
		return "map", int64(h.arg), nil
	case majorTag:
		switch h.arg {
		case tagTimeText, tagTimeEpoch:
			return "time", -1, nil
		case tagBigPos, tagBigNeg:
			return "int", -1, nil
		}
		return kindOf(payload[h.size:])
	}
	switch {
	case h.isFloat():
		return "float", -1, nil
	case h.arg == simpleFalse || h.arg == simpleTrue:
		return "bool", -1, nil
	}
	return "null", -1, nil
}

// previewKey shows an encoded map key in a message.
func previewKey(b []byte) string {
	w := textWriter{human: true, limited: true, limit: 60}
	if _, err := w.item(b, 0, 0); errors.Is(err, errFull) {
		return string(w.buf[:60]) + "..."
	}
	return string(w.buf)
}
