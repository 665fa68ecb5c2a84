package dataset

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/metadata"
	"github.com/apache/arrow-go/v18/parquet/schema"
	"github.com/klauspost/compress/snappy"
)

// The page decoder reads the commonest column chunks, and the bulk of a
// scan's bytes, straight into Arrow buffers: a flat column of fixed-width
// numbers (32- and 64-bit integers, floats, dates, times, timestamps),
// required or optional, PLAIN-encoded, uncompressed or Snappy, in v1 or
// v2 data pages, without a dictionary. Each page is decompressed once,
// into the column's own buffer where no nulls interleave, instead of
// through the general reader's page buffer, value decoder and builder
// (three copies and as many buffers cleared). Any other chunk, and a
// page the metadata did not announce, goes to the general reader.

// errNotFast says a chunk holds something the page decoder leaves to the
// general reader; nothing of the row group has been returned yet.
var errNotFast = errors.New("not for the page decoder")

// fastWidth is the byte width of a value of a leaf the page decoder can
// read, or 0.
func fastWidth(col *schema.Column, t arrow.DataType) int {
	if col.MaxRepetitionLevel() != 0 || col.MaxDefinitionLevel() > 1 {
		return 0
	}
	switch col.PhysicalType() {
	case parquet.Types.Int32:
		switch t.ID() {
		case arrow.INT32, arrow.UINT32, arrow.DATE32, arrow.TIME32:
			return 4
		}
	case parquet.Types.Int64:
		switch t.ID() {
		case arrow.INT64, arrow.UINT64, arrow.TIMESTAMP, arrow.TIME64:
			return 8
		}
	case parquet.Types.Float:
		if t.ID() == arrow.FLOAT32 {
			return 4
		}
	case parquet.Types.Double:
		if t.ID() == arrow.FLOAT64 {
			return 8
		}
	}
	return 0
}

// fastChunk says whether the chunk's metadata allows the page decoder.
func fastChunk(cc *metadata.ColumnChunkMetaData) bool {
	if cc.HasDictionaryPage() || cc.HasIndexPage() || cc.CryptoMetadata() != nil {
		return false
	}
	switch cc.Compression() {
	case compress.Codecs.Uncompressed, compress.Codecs.Snappy:
	default:
		return false
	}
	for _, e := range cc.Encodings() {
		switch e {
		case parquet.Encodings.Plain, parquet.Encodings.RLE, parquet.Encodings.BitPacked:
		default:
			return false
		}
	}
	return true
}

// viewer lends a range of a file's bytes in place as they arrive (the
// prefetcher).
type viewer interface {
	view(off, n int64) (b []byte, wait func(k int64) error, done func(), ok bool)
}

// pageColumn is what the page decoder needs of one leaf.
type pageColumn struct {
	field    arrow.Field
	leaf     int // the leaf's index in the file's schema
	width    int // 0 for a column the page decoder does not read
	optional bool
}

// decodeChunk reads the column chunk cc of a row group of rows rows from
// r into a new array of the column's type.
func decodeChunk(r io.ReaderAt, cc *metadata.ColumnChunkMetaData, pc pageColumn, rows int64, mem memory.Allocator) (arrow.Array, error) {
	size := cc.TotalCompressedSize()
	if size <= 0 || cc.DataPageOffset() < 0 || size > 1<<31 {
		return nil, fmt.Errorf("column chunk at offset %d has size %d", cc.DataPageOffset(), size)
	}
	if cc.NumValues() != rows {
		return nil, fmt.Errorf("column chunk at offset %d holds %d values in a row group of %d rows", cc.DataPageOffset(), cc.NumValues(), rows)
	}
	// The chunk's bytes: in place where the prefetcher holds them whole,
	// else read into a buffer of our own.
	var b []byte
	var avail func(end int) error
	if v, ok := r.(viewer); ok {
		if view, wait, done, ok := v.view(cc.DataPageOffset(), size); ok {
			defer done()
			b = view
			avail = func(end int) error {
				if err := wait(int64(end)); err != nil {
					return fmt.Errorf("reading the column chunk at offset %d: %w", cc.DataPageOffset(), err)
				}
				return nil
			}
		}
	}
	if b == nil {
		b = recycler{}.uninitialized(int(size))
		defer recycler{}.Free(b)
		if n, err := r.ReadAt(b, cc.DataPageOffset()); int64(n) < size {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("reading the column chunk at offset %d: %w", cc.DataPageOffset(), err)
		}
	}
	a, err := decodePages(b, avail, pc, rows, cc.Compression() == compress.Codecs.Snappy, mem)
	if err != nil && !errors.Is(err, errNotFast) {
		return nil, fmt.Errorf("column chunk at offset %d: %w", cc.DataPageOffset(), err)
	}
	return a, err
}

// decodePages decodes the pages of a column chunk, b, holding rows values,
// into a new array. avail, unless nil, waits until b[:end] has arrived.
func decodePages(b []byte, avail func(end int) error, pc pageColumn, rows int64, snappy bool, mem memory.Allocator) (arrow.Array, error) {
	d := pageDecoder{pc: pc, rows: rows, snappy: snappy}
	// Every byte of the values is written below (null slots cleared), so
	// the recycler need not clear them first.
	if rc, ok := mem.(recycler); ok {
		d.values = memory.NewBufferWithAllocator(rc.uninitialized(int(rows)*pc.width), rc)
	} else {
		d.values = memory.NewResizableBuffer(mem)
		d.values.Resize(int(rows) * pc.width)
	}
	defer d.values.Release()
	if pc.optional {
		d.valid = memory.NewResizableBuffer(mem)
		defer d.valid.Release()
		d.valid.Resize(int(bitutil.BytesForBits(rows)))
	}
	for off := 0; d.got < rows; {
		if off >= len(b) {
			return nil, fmt.Errorf("it ends after %d of its %d values", d.got, rows)
		}
		if avail != nil {
			if err := avail(min(off+maxPageHeader, len(b))); err != nil {
				return nil, err
			}
		}
		h, n, err := parsePageHeader(b[off:])
		if err != nil {
			return nil, fmt.Errorf("page at chunk offset %d: %w", off, err)
		}
		off += n
		if int64(h.compressed) > int64(len(b)-off) {
			return nil, fmt.Errorf("a page of %d bytes at chunk offset %d runs past the chunk's end", h.compressed, off)
		}
		if avail != nil {
			if err := avail(off + int(h.compressed)); err != nil {
				return nil, err
			}
		}
		page := b[off : off+int(h.compressed)]
		off += int(h.compressed)
		if err := d.page(h, page); err != nil {
			if errors.Is(err, errNotFast) {
				return nil, err
			}
			return nil, fmt.Errorf("page at chunk offset %d: %w", off-int(h.compressed), err)
		}
	}
	nulls := 0
	bufs := []*memory.Buffer{nil, d.values}
	if pc.optional {
		nulls = int(rows) - d.defined
		bufs[0] = d.valid
	}
	data := array.NewData(pc.field.Type, int(rows), bufs, nil, nulls, 0)
	defer data.Release()
	return array.MakeFromData(data), nil
}

type pageDecoder struct {
	pc      pageColumn
	rows    int64
	snappy  bool
	values  *memory.Buffer
	valid   *memory.Buffer
	got     int64 // values (nulls included) decoded so far
	defined int   // of which not null
	scratch []byte
}

// page decodes one page into the buffers.
func (d *pageDecoder) page(h pageHeader, page []byte) error {
	switch h.typ {
	case pageIndex:
		return nil
	case pageData, pageDataV2:
	default:
		return errNotFast
	}
	if h.encoding != encPlain {
		return errNotFast
	}
	n := int64(h.numValues)
	if n > d.rows-d.got {
		return fmt.Errorf("the page holds %d values, more than the %d left of the row group", n, d.rows-d.got)
	}
	w := d.pc.width
	dst := d.values.Bytes()[d.got*int64(w) : (d.got+n)*int64(w)]
	if !d.pc.optional {
		var body []byte
		switch {
		case h.typ == pageDataV2 && (h.defLen != 0 || h.repLen != 0):
			return fmt.Errorf("a required column's page has %d bytes of levels", h.defLen+h.repLen)
		case h.typ == pageDataV2 && !h.isCompressed, !d.snappy:
			body = page
		default:
			if err := decodeSnappy(dst, page); err != nil {
				return err
			}
			d.got += n
			return nil
		}
		if len(body) != len(dst) {
			return fmt.Errorf("the page holds %d bytes of values for %d values of %d bytes", len(body), n, w)
		}
		copy(dst, body)
		d.got += n
		return nil
	}
	// Optional: definition levels (bit width 1), then the values that
	// are not null, packed.
	var levels, body []byte
	switch h.typ {
	case pageData:
		if h.defEncoding != encRLE {
			return errNotFast
		}
		raw, err := d.decompress(page, int(h.uncompressed))
		if err != nil {
			return err
		}
		if len(raw) < 4 {
			return fmt.Errorf("the page is too short for its definition levels")
		}
		ln := binary.LittleEndian.Uint32(raw)
		if uint64(ln) > uint64(len(raw)-4) {
			return fmt.Errorf("definition levels of %d bytes in a page of %d", ln, len(raw))
		}
		levels, body = raw[4:4+ln], raw[4+ln:]
	case pageDataV2:
		if h.repLen != 0 || int64(h.defLen) > int64(len(page)) {
			return fmt.Errorf("levels of %d bytes in a page of %d", h.defLen+h.repLen, len(page))
		}
		levels, body = page[:h.defLen], page[h.defLen:]
		if h.isCompressed && d.snappy {
			raw, err := d.decompress(body, int(h.uncompressed-h.defLen))
			if err != nil {
				return err
			}
			body = raw
		}
	}
	defined, err := unpackLevels(d.valid.Bytes(), int(d.got), int(n), levels)
	if err != nil {
		return err
	}
	if len(body) != defined*w {
		return fmt.Errorf("the page holds %d bytes of values for %d values of %d bytes", len(body), defined, w)
	}
	if defined == int(n) {
		copy(dst, body)
	} else {
		valid := d.valid.Bytes()
		j := 0
		for i := range int(n) {
			if bitutil.BitIsSet(valid, int(d.got)+i) {
				copy(dst[i*w:(i+1)*w], body[j*w:(j+1)*w])
				j++
			} else {
				clear(dst[i*w : (i+1)*w])
			}
		}
	}
	d.got += n
	d.defined += defined
	return nil
}

// decompress returns the page's bytes, decompressed into scratch when the
// chunk is Snappy-compressed.
func (d *pageDecoder) decompress(page []byte, size int) ([]byte, error) {
	if !d.snappy {
		return page, nil
	}
	if size < 0 || size > 1<<30 {
		return nil, fmt.Errorf("the page claims %d bytes uncompressed", size)
	}
	if cap(d.scratch) < size {
		d.scratch = make([]byte, size)
	}
	out := d.scratch[:size]
	if err := decodeSnappy(out, page); err != nil {
		return nil, err
	}
	return out, nil
}

// decodeSnappy decompresses src, which must hold exactly len(dst) bytes,
// into dst.
func decodeSnappy(dst, src []byte) error {
	n, err := snappy.DecodedLen(src)
	if err != nil {
		return fmt.Errorf("the page is not valid Snappy: %w", err)
	}
	if n != len(dst) {
		return fmt.Errorf("the page decompresses to %d bytes, %d expected", n, len(dst))
	}
	out, err := snappy.Decode(dst, src)
	if err != nil {
		return fmt.Errorf("the page is not valid Snappy: %w", err)
	}
	if len(out) != len(dst) || (len(out) > 0 && &out[0] != &dst[0]) {
		return fmt.Errorf("the page decompresses to %d bytes, %d expected", len(out), len(dst))
	}
	return nil
}

// unpackLevels reads n definition levels of bit width 1, in Parquet's
// RLE/bit-packed hybrid encoding, into the validity bitmap bits from bit
// at, and returns how many are 1.
func unpackLevels(bitmap []byte, at, n int, src []byte) (int, error) {
	defined, i := 0, 0
	for i < n {
		h, k := binary.Uvarint(src)
		if k <= 0 {
			return 0, fmt.Errorf("definition levels end after %d of %d", i, n)
		}
		src = src[k:]
		if h&1 == 0 { // a run of one value
			run := int(min(h>>1, uint64(n-i)))
			if len(src) < 1 {
				return 0, fmt.Errorf("definition levels end in a run")
			}
			switch src[0] {
			case 1:
				bitutil.SetBitsTo(bitmap, int64(at+i), int64(run), true)
				defined += run
			case 0:
				bitutil.SetBitsTo(bitmap, int64(at+i), int64(run), false)
			default:
				return 0, fmt.Errorf("a definition level of %d where the column allows at most 1", src[0])
			}
			src = src[1:]
			if h>>1 == 0 {
				return 0, fmt.Errorf("an empty run of definition levels")
			}
			i += run
			continue
		}
		groups := h >> 1
		if groups == 0 || groups > uint64(len(src)) {
			return 0, fmt.Errorf("definition levels: %d bit-packed groups in %d bytes", groups, len(src))
		}
		vals := int(min(groups*8, uint64(n-i)))
		for j := range vals {
			set := src[j/8]>>(j%8)&1 == 1
			bitutil.SetBitTo(bitmap, at+i+j, set)
			if set {
				defined++
			}
		}
		src = src[groups:]
		i += vals
	}
	return defined, nil
}
