package codec

import (
	"encoding/binary"
	"fmt"
	"math"
)

// decMaxNestedLevels is the deepest CBOR nesting the decoders accept. It is
// above what Encode produces (see maxDepth) and bounds their recursion on
// damaged data.
const decMaxNestedLevels = 2 * maxDepth

// CBOR major types (RFC 8949, section 3.1).
const (
	majorUint   = 0
	majorNeg    = 1
	majorBytes  = 2
	majorText   = 3
	majorArray  = 4
	majorMap    = 5
	majorTag    = 6
	majorSimple = 7
)

// CBOR tags and simple values this codec writes or reads.
const (
	tagTimeText  = 0 // RFC 3339 text (with an RFC 9557 zone suffix, see time.go)
	tagTimeEpoch = 1 // seconds since the Unix epoch; read, never written
	tagBigPos    = 2 // unsigned bignum: big-endian bytes
	tagBigNeg    = 3 // negative bignum: -1 - the big-endian bytes

	simpleFalse     = 20
	simpleTrue      = 21
	simpleNull      = 22
	simpleUndefined = 23 // read as null, never written

	infoFloat16 = 25
	infoFloat32 = 26
	infoFloat64 = 27
)

// Encodings of special values in core deterministic encoding.
var (
	cborNull   = []byte{0xf6}
	cborNaN    = []byte{0xf9, 0x7e, 0x00}
	cborPosInf = []byte{0xf9, 0x7c, 0x00}
	cborNegInf = []byte{0xf9, 0xfc, 0x00}
)

// appendHead appends the head of an item of the given major type whose
// argument is n, in its shortest form.
func appendHead(b []byte, major byte, n uint64) []byte {
	m := major << 5
	switch {
	case n < 24:
		return append(b, m|byte(n))
	case n <= math.MaxUint8:
		return append(b, m|24, byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, m|25), uint16(n))
	case n <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(b, m|26), uint32(n))
	default:
		return binary.BigEndian.AppendUint64(append(b, m|27), n)
	}
}

// appendFloat appends f in the shortest of the three CBOR float widths
// that holds it exactly; NaN is always 0xf97e00 and the infinities are
// half-precision.
func appendFloat(b []byte, f float64) []byte {
	switch {
	case math.IsNaN(f):
		return append(b, cborNaN...)
	case math.IsInf(f, 1):
		return append(b, cborPosInf...)
	case math.IsInf(f, -1):
		return append(b, cborNegInf...)
	}
	f32 := float32(f)
	if float64(f32) != f {
		return binary.BigEndian.AppendUint64(append(b, 0xfb), math.Float64bits(f))
	}
	if h, ok := float16Exact(f32); ok {
		return binary.BigEndian.AppendUint16(append(b, 0xf9), h)
	}
	return binary.BigEndian.AppendUint32(append(b, 0xfa), math.Float32bits(f32))
}

// float16Exact returns the IEEE 754 half-precision bits of f when f is
// finite and a half-precision number represents it exactly.
func float16Exact(f float32) (uint16, bool) {
	bits := math.Float32bits(f)
	sign := uint16(bits>>16) & 0x8000
	exp := int(bits>>23) & 0xff
	mant := bits & 0x7fffff
	if exp == 0 && mant == 0 {
		return sign, true // ±0
	}
	if exp == 0 || exp == 0xff {
		return 0, false // float32 subnormals are below half precision; NaN and Inf are handled by the caller
	}
	e := exp - 127
	switch {
	case e >= -14 && e <= 15: // a normal half-precision number
		if mant&0x1fff != 0 {
			return 0, false
		}
		return sign | uint16(e+15)<<10 | uint16(mant>>13), true
	case e >= -24 && e < -14: // a subnormal one: k × 2^-24 with k < 1024
		m := mant | 1<<23
		shift := uint(-(e + 1)) // k = m × 2^(e+1)
		if m&(1<<shift-1) != 0 {
			return 0, false
		}
		return sign | uint16(m>>shift), true
	}
	return 0, false
}

// float16Value returns the value of half-precision bits h.
func float16Value(h uint16) float64 {
	sign := 1.0
	if h&0x8000 != 0 {
		sign = -1
	}
	exp := int(h>>10) & 0x1f
	mant := float64(h & 0x3ff)
	switch exp {
	case 0:
		return sign * math.Ldexp(mant, -24)
	case 0x1f:
		if mant != 0 {
			return math.NaN()
		}
		return math.Inf(int(sign))
	}
	return sign * math.Ldexp(1024+mant, exp-25)
}

// head is the decoded head of a CBOR item.
type head struct {
	major byte
	info  byte   // the additional information: low 5 bits of the first byte
	arg   uint64 // the argument: value, length, tag number, simple value, or float bits
	size  int    // length of the head in bytes
}

// isNull reports whether the item is null (or undefined, read as null).
func (h head) isNull() bool {
	return h.major == majorSimple && (h.arg == simpleNull || h.arg == simpleUndefined) && h.info < infoFloat16
}

// isFloat reports whether the item is a floating-point number.
func (h head) isFloat() bool {
	return h.major == majorSimple && h.info >= infoFloat16
}

// float returns the value of a float item.
func (h head) float() float64 {
	switch h.info {
	case infoFloat16:
		return float16Value(uint16(h.arg))
	case infoFloat32:
		return float64(math.Float32frombits(uint32(h.arg)))
	}
	return math.Float64frombits(h.arg)
}

// readHead reads the head of the item at b[pos:]. It checks that the head
// is complete and of a form that Encode writes (definite lengths, known
// simple values), not that the content is.
func readHead(b []byte, pos int) (head, error) {
	if pos >= len(b) {
		return head{}, fmt.Errorf("%w: the CBOR payload ends where an item should start; the stored object is truncated", ErrCorrupt)
	}
	ib := b[pos]
	h := head{major: ib >> 5, info: ib & 0x1f, size: 1}
	switch {
	case h.info < 24:
		h.arg = uint64(h.info)
	case h.info <= 27:
		n := 1 << (h.info - 24)
		if len(b)-pos-1 < n {
			return head{}, fmt.Errorf("%w: the CBOR payload ends inside an item's head; the stored object is truncated", ErrCorrupt)
		}
		p := b[pos+1 : pos+1+n]
		switch n {
		case 1:
			h.arg = uint64(p[0])
		case 2:
			h.arg = uint64(binary.BigEndian.Uint16(p))
		case 4:
			h.arg = uint64(binary.BigEndian.Uint32(p))
		default:
			h.arg = binary.BigEndian.Uint64(p)
		}
		h.size += n
	case h.info == 31:
		return head{}, fmt.Errorf("%w: a CBOR item of indefinite length at byte %d, which this codec never writes; the data is damaged or not an artifact", ErrCorrupt, pos)
	default:
		return head{}, fmt.Errorf("%w: reserved CBOR additional information %d at byte %d; the data is damaged", ErrCorrupt, h.info, pos)
	}
	if h.major == majorSimple && h.info < infoFloat16 && (h.arg < simpleFalse || h.arg > simpleUndefined) {
		return head{}, fmt.Errorf("%w: CBOR simple value %d at byte %d, which this codec never writes; the data is damaged", ErrCorrupt, h.arg, pos)
	}
	return h, nil
}

// wellFormed checks that payload holds exactly one complete CBOR item of
// the forms Encode writes, nested at most decMaxNestedLevels deep, so that
// decoders can then trust every length in it.
func wellFormed(payload []byte) error {
	end, err := skipItem(payload, 0, 0)
	if err != nil {
		return err
	}
	if end != len(payload) {
		return fmt.Errorf("%w: %d bytes follow the CBOR item; the stored object is damaged", ErrCorrupt, len(payload)-end)
	}
	return nil
}

// skipItem checks the item at b[pos:] and returns where it ends.
func skipItem(b []byte, pos, depth int) (int, error) {
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
	case majorBytes, majorText:
		if h.arg > rest {
			return 0, fmt.Errorf("%w: a CBOR string announces %d bytes but only %d follow; the stored object is truncated", ErrCorrupt, h.arg, rest)
		}
		return pos + int(h.arg), nil
	case majorArray, majorMap:
		n := h.arg
		if h.major == majorMap {
			if n > rest/2 {
				return 0, fmt.Errorf("%w: a CBOR map announces %d entries but only %d bytes follow; the stored object is truncated", ErrCorrupt, n, rest)
			}
			n *= 2
		} else if n > rest {
			return 0, fmt.Errorf("%w: a CBOR array announces %d elements but only %d bytes follow; the stored object is truncated", ErrCorrupt, n, rest)
		}
		for range n {
			if pos, err = skipItem(b, pos, depth+1); err != nil {
				return 0, err
			}
		}
		return pos, nil
	case majorTag:
		return skipItem(b, pos, depth+1)
	}
	return pos, nil
}
