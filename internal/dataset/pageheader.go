package dataset

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Parquet page types and encodings, as numbered by the format.
const (
	pageData       = 0
	pageIndex      = 1
	pageDictionary = 2
	pageDataV2     = 3

	encPlain      = 0
	encRLE        = 3
	encBitPacked  = 4
	maxPageHeader = 16 << 10 // a header larger than this is refused as corrupt
)

// pageHeader is the part of a Parquet page header the page decoder uses.
type pageHeader struct {
	typ          int32
	uncompressed int32
	compressed   int32
	numValues    int32
	encoding     int32
	defEncoding  int32 // v1: the definition levels' encoding
	defLen       int32 // v2: the definition levels' byte length
	repLen       int32 // v2: the repetition levels' byte length
	isCompressed bool  // v2: whether the values are compressed
	hasData      bool  // a data page header (v1 or v2) was present
}

var errHeader = errors.New("page header")

// parsePageHeader reads the page header (Thrift's compact protocol) at the
// start of b and returns it with its length in bytes.
func parsePageHeader(b []byte) (pageHeader, int, error) {
	if len(b) > maxPageHeader {
		b = b[:maxPageHeader]
	}
	c := compact{b: b}
	h := pageHeader{typ: -1, uncompressed: -1, compressed: -1, isCompressed: true}
	c.structFields(func(id int16, typ byte) {
		switch {
		case id == 1 && typ == ctI32:
			h.typ = c.i32()
		case id == 2 && typ == ctI32:
			h.uncompressed = c.i32()
		case id == 3 && typ == ctI32:
			h.compressed = c.i32()
		case id == 5 && typ == ctStruct:
			h.hasData = true
			c.structFields(func(id int16, typ byte) {
				switch {
				case id == 1 && typ == ctI32:
					h.numValues = c.i32()
				case id == 2 && typ == ctI32:
					h.encoding = c.i32()
				case id == 3 && typ == ctI32:
					h.defEncoding = c.i32()
				default:
					c.skip(typ, 1)
				}
			})
		case id == 8 && typ == ctStruct:
			h.hasData = true
			c.structFields(func(id int16, typ byte) {
				switch {
				case id == 1 && typ == ctI32:
					h.numValues = c.i32()
				case id == 4 && typ == ctI32:
					h.encoding = c.i32()
				case id == 5 && typ == ctI32:
					h.defLen = c.i32()
				case id == 6 && typ == ctI32:
					h.repLen = c.i32()
				case id == 7 && (typ == ctTrue || typ == ctFalse):
					h.isCompressed = typ == ctTrue
				default:
					c.skip(typ, 1)
				}
			})
		default:
			c.skip(typ, 0)
		}
	})
	if c.err != nil {
		return h, 0, c.err
	}
	switch {
	case h.typ < 0 || h.compressed < 0 || h.uncompressed < 0:
		return h, 0, fmt.Errorf("%w: the type or a size is missing or negative", errHeader)
	case (h.typ == pageData || h.typ == pageDataV2) && !h.hasData:
		return h, 0, fmt.Errorf("%w: a data page without its data page header", errHeader)
	case h.numValues < 0 || h.defLen < 0 || h.repLen < 0:
		return h, 0, fmt.Errorf("%w: a negative count or length", errHeader)
	}
	return h, c.pos, nil
}

// Thrift compact protocol type codes.
const (
	ctStop   = 0
	ctTrue   = 1
	ctFalse  = 2
	ctByte   = 3
	ctI16    = 4
	ctI32    = 5
	ctI64    = 6
	ctDouble = 7
	ctBinary = 8
	ctList   = 9
	ctSet    = 10
	ctMap    = 11
	ctStruct = 12
)

// compact reads Thrift's compact protocol from a byte slice. The first
// error sticks: later reads return zero values, so callers check err once.
type compact struct {
	b     []byte
	pos   int
	err   error
	depth int
}

func (c *compact) fail(format string, args ...any) {
	if c.err == nil {
		c.err = fmt.Errorf("%w at byte %d: %s", errHeader, c.pos, fmt.Sprintf(format, args...))
	}
}

func (c *compact) byte() byte {
	if c.err != nil {
		return 0
	}
	if c.pos >= len(c.b) {
		c.fail("it ends early")
		return 0
	}
	v := c.b[c.pos]
	c.pos++
	return v
}

func (c *compact) uvarint() uint64 {
	if c.err != nil {
		return 0
	}
	v, n := binary.Uvarint(c.b[c.pos:])
	if n <= 0 {
		c.fail("a malformed number")
		return 0
	}
	c.pos += n
	return v
}

func (c *compact) varint() int64 {
	u := c.uvarint()
	return int64(u>>1) ^ -int64(u&1)
}

func (c *compact) i32() int32 {
	v := c.varint()
	if v != int64(int32(v)) {
		c.fail("a 32-bit number out of range")
		return 0
	}
	return int32(v)
}

// count reads a collection's size, refusing one larger than the bytes
// left could hold (every element takes at least one byte).
func (c *compact) count(n uint64) int {
	if c.err == nil && n > uint64(len(c.b)-c.pos) {
		c.fail("a collection of %d elements in %d bytes", n, len(c.b)-c.pos)
	}
	if c.err != nil {
		return 0
	}
	return int(n)
}

// structFields calls fn for each field of a struct, which must read or
// skip the field's value, until the struct's end.
func (c *compact) structFields(fn func(id int16, typ byte)) {
	if c.depth++; c.depth > 16 {
		c.fail("structures nested too deep")
		return
	}
	defer func() { c.depth-- }()
	var last int16
	for c.err == nil {
		h := c.byte()
		if c.err != nil || h == ctStop {
			return
		}
		typ := h & 0x0f
		id := last + int16(h>>4)
		if h>>4 == 0 {
			v := c.varint()
			if v != int64(int16(v)) {
				c.fail("a field id out of range")
				return
			}
			id = int16(v)
		}
		last = id
		fn(id, typ)
	}
}

// skip reads past a value of type typ. In a struct (inCollection 0) a
// boolean is held in its field header; in a collection (1) it takes a byte.
func (c *compact) skip(typ byte, inCollection int) {
	switch typ {
	case ctTrue, ctFalse:
		if inCollection == 1 {
			c.byte()
		}
	case ctByte:
		c.byte()
	case ctI16, ctI32, ctI64:
		c.uvarint()
	case ctDouble:
		if c.err == nil && len(c.b)-c.pos < 8 {
			c.fail("it ends early")
		}
		if c.err == nil {
			c.pos += 8
		}
	case ctBinary:
		n := c.count(c.uvarint())
		if c.err == nil {
			c.pos += n
		}
	case ctList, ctSet:
		if c.depth++; c.depth > 16 {
			c.fail("structures nested too deep")
			return
		}
		defer func() { c.depth-- }()
		h := c.byte()
		n := uint64(h >> 4)
		if n == 15 {
			n = c.uvarint()
		}
		elem := h & 0x0f
		for range c.count(n) {
			c.skip(elem, 1)
		}
	case ctMap:
		if c.depth++; c.depth > 16 {
			c.fail("structures nested too deep")
			return
		}
		defer func() { c.depth-- }()
		n := c.count(c.uvarint())
		if n > 0 {
			kv := c.byte()
			for i := 0; i < n && c.err == nil; i++ {
				c.skip(kv>>4, 1)
				c.skip(kv&0x0f, 1)
			}
		}
	case ctStruct:
		c.structFields(func(_ int16, t byte) { c.skip(t, 0) })
	default:
		c.fail("unknown type %d", typ)
	}
}
