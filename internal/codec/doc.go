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
// encoding: shortest forms, definite lengths, map keys sorted by their
// encoded bytes. Structs are maps keyed by field name (exported fields only;
// cbor and json tags are honoured), nil slices and maps are null,
// time.Time is tag 0 with an RFC 3339 UTC string with nanoseconds (the zero
// time is null), time.Duration is its integer nanoseconds, []byte is a byte
// string.
//
// Kind 2 is followed by exactly count × size bytes: the elements in
// little-endian order. Element types: 1 float64, 2 float32, 3 int64,
// 4 int32, 5 int16, 6 int8, 7 uint64, 8 uint32, 9 uint16, 10 uint8,
// 11 int (as 64-bit), 12 uint (as 64-bit). Slices of these kinds take this
// path when they are the value given to Encode (also named types such as
// `type Vec []float64`); nested inside other values they are CBOR arrays.
//
// Decoding validates the header, the kind and, for raw data, that the count
// matches the length of the data, so damaged data gives an error wrapping
// ErrCorrupt rather than a panic or a huge allocation.
package codec
