// Package arrow adds Arrow artifacts to a flow program: with it imported,
// a flow field of type arrow.Table or arrow.RecordBatch (Apache Arrow's Go
// library) is stored as an Arrow IPC file that any Arrow implementation
// reads, read back into the field by the next step, and returned as Arrow
// by the client (client.Get[arrow.Table]).
//
//	import _ "stepwise.dev/stepwise/backend/arrow"
//
// It is a separate import so that flows without Arrow artifacts do not
// carry the Arrow library (about 8 MB) in every task; a flow that stores an
// Arrow value without it is refused with this import to add. The stepwise
// command has it. What is stored, and how other tools read it, is in
// docs/arrow.md.
package arrow

import _ "stepwise.dev/stepwise/internal/codec/arrowcodec" // registers the Arrow codec
