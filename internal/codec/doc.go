// Package codec turns artifact values (the exported fields of a flow) into
// bytes and back.
//
// The encoding is deterministic (equal values give equal bytes, so the
// content-addressed datastore keeps them once) and self-describing (a value
// can be decoded for display without its Go type, see DecodeAny). Large
// numeric slices take a fast path: their memory is written as is,
// little-endian, without copying, and read back without copying when the
// data is aligned (so Decode and DecodeAny may alias the data they are
// given: the caller must not reuse or modify it afterwards).
//
// # Format
//
// Every encoding starts with a header; all numbers in it are little-endian.
//
//	offset size  field
//	0      4     magic "STWC"
//	4      1     format version, 1
//	5      1     kind: 1 = CBOR, 2 = raw numeric slice
//	6      1     raw: element type (see below); CBOR: 0
//	7      1     raw: flags, bit 0 = the slice was nil; CBOR: 0
//	8      8     raw only: element count (uint64)
//
// The CBOR header is 8 bytes and the raw header 16, both multiples of 8, so
// a raw body read into an 8-byte aligned buffer is aligned for any element
// type.
//
// Kind 1 is followed by one CBOR data item (RFC 8949) in core deterministic
// encoding: shortest forms (floats in the shortest of 16, 32 and 64 bits
// that holds them exactly, NaN always 0xf97e00), definite lengths, map keys
// sorted by their encoded bytes. The codec writes and reads this CBOR
// itself; format version 1 data written before (by a CBOR library) reads the
// same, and values whose encoding did not change encode to the same bytes.
//
//   - Structs are maps from field name to value: every exported field,
//     under its Go name. Tags (json, cbor) neither rename nor drop fields:
//     artifacts are not JSON. Fields of embedded structs are promoted as in
//     Go; two fields that would be stored under one name are refused.
//     Reading also finds fields under the tag names that version 1 wrote.
//   - Unexported fields are not stored: a struct in which one holds a
//     non-zero value is refused, naming the field, rather than losing it. A
//     struct type with unexported fields that has GobEncode/GobDecode (such
//     as math/big.Float) or MarshalText/UnmarshalText (regexp.Regexp) is
//     stored through them; any type with MarshalBinary/UnmarshalBinary is
//     stored as their bytes. Methods promoted from an embedded field are not
//     used, since they would store the embedded value only.
//   - time.Time is tag 0 with RFC 3339 text with nanoseconds, and the name of
//     its location in brackets (RFC 9557) when it is not UTC; see time.go.
//     The zero time is null. math/big.Int is an integer, or a bignum (tags
//     2 and 3) beyond 64 bits. time.Duration is its integer nanoseconds.
//   - nil pointers, slices, maps and interfaces are null; empty ones are
//     empty arrays and maps. []byte and [N]byte are byte strings.
//   - An interface holding a value stores the value: read back into an any
//     it is a plain value (see DecodeAny), not its Go type. A non-nil
//     interface with methods (an error, an io.Reader) is refused: reading
//     back could not know which type to make.
//   - Map keys that would collide when read back are refused: NaN, keys of
//     different types stored alike (int 1 and int64 1 in a map[any]...),
//     and pointers.
//   - Pointers store what they point to: two pointers to one value come back
//     as two values; pointer cycles are refused.
//
// Kind 2 is followed by exactly count × size bytes: the elements in
// little-endian order. Element types: 1 float64, 2 float32, 3 int64,
// 4 int32, 5 int16, 6 int8, 7 uint64, 8 uint32, 9 uint16, 10 uint8,
// 11 int (as 64-bit), 12 uint (as 64-bit). Slices of these kinds take this
// path when they are the value given to Encode (also named types such as
// `type Vec []float64`); nested inside other values they are CBOR arrays.
//
// Decoding validates the header, the kind and, for raw data, that the count
// matches the length of the data, and checks that a CBOR payload is one
// well-formed item before decoding it, so damaged data gives an error
// wrapping ErrCorrupt rather than a panic or a huge allocation.
//
// # Arrow tables
//
// An arrow.Table or arrow.RecordBatch given to Encode is written as an
// Arrow IPC file, without this codec's header: the data starts with the
// file format's magic "ARROW1", which is how Decode, DecodeAny, Preview
// and WriteJSON tell it apart, so any Arrow implementation reads the
// stored bytes. The work is done by package arrowcodec, which registers
// itself (RegisterArrow) when a program imports backend/arrow; without it
// Arrow values and files are refused with that import to add. See
// arrowcodec for the layout (batches of 65,536 rows, copied so that equal
// tables give equal bytes) and docs/arrow.md.
//
// # Showing values
//
// Preview and WriteJSON write a value as JSON text straight from its
// encoding, so that showing a value costs what is shown, not what is
// stored: a preview of a map of a million entries reads its first entries
// only, and WriteJSON streams. NaN and infinities, which JSON numbers cannot
// hold, are written as the strings "NaN", "+Inf" and "-Inf".
package codec
