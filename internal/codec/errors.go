package codec

import "errors"

// ErrCorrupt is wrapped by every error about malformed data: a truncated or
// damaged encoding, an unknown header, or bytes that were never produced by
// Encode. Test for it with errors.Is.
var ErrCorrupt = errors.New("codec: data is corrupt or is not an encoded artifact")

// UnsupportedTypeError is returned by Encode for a value that cannot be
// stored: channels, functions, unsafe pointers, uintptr, complex numbers,
// pointer cycles and structures nested too deeply.
type UnsupportedTypeError struct {
	// Type is the Go type that cannot be stored, e.g. "chan int".
	Type string
	// Reason says why, where in the value it was found, and what to store
	// instead.
	Reason string
}

// Error returns a message that names the type and says what to do.
func (e *UnsupportedTypeError) Error() string {
	return "codec: cannot encode a value of type " + e.Type + ": " + e.Reason
}
