package dataset

import (
	"math/bits"
	"sync"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

// recycler is the scan's default memory.Allocator: it keeps the large
// buffers of released batches and hands them out again, zeroed, instead of
// asking Go for new ones. A scan allocates a fresh value buffer per column
// per batch; from Go's allocator each costs a page-faulting clear of
// memory the runtime had given back, which profiling showed to be half of
// a scan's CPU. Buffers are rounded up to a power of two from 64 KiB and
// kept in one sync.Pool per size, shared by all scans of the process, so
// what is not reused soon goes back to the garbage collector; smaller
// buffers come from Go as usual.
type recycler struct{}

const (
	minClass = 16 // 64 KiB
	maxClass = 34 // 16 GiB
)

var pools [maxClass + 1]sync.Pool

// class is the size class of an allocation of n bytes: the exponent of the
// power of two it is rounded up to, or -1 for small and huge ones.
func class(n int) int {
	if n <= 1<<minClass/2 {
		return -1
	}
	c := max(bits.Len(uint(n-1)), minClass)
	if c > maxClass {
		return -1
	}
	return c
}

// Allocate returns n zeroed bytes, 64-byte aligned as Go's allocator
// gives them (large Go allocations are page-aligned).
func (recycler) Allocate(n int) []byte {
	c := class(n)
	if c < 0 {
		return memory.DefaultAllocator.Allocate(n)
	}
	if p, ok := pools[c].Get().(*[]byte); ok {
		b := (*p)[:n]
		clear(b)
		return b
	}
	return make([]byte, n, 1<<c)
}

// uninitialized returns n bytes that may hold an earlier buffer's
// contents, for a caller that writes every byte (the page decoder).
func (recycler) uninitialized(n int) []byte {
	c := class(n)
	if c < 0 {
		return make([]byte, n)
	}
	if p, ok := pools[c].Get().(*[]byte); ok {
		return (*p)[:n]
	}
	return make([]byte, n, 1<<c)
}

// Reallocate grows or shrinks b to n bytes, keeping its contents.
func (r recycler) Reallocate(n int, b []byte) []byte {
	if class(n) < 0 && class(cap(b)) < 0 {
		return memory.DefaultAllocator.Reallocate(n, b)
	}
	// In place when it fits and would leave at most half the buffer
	// unused (a reader trims each batch's buffer to its values).
	if n <= cap(b) && n >= cap(b)/2 {
		old := len(b)
		b = b[:n]
		if n > old {
			clear(b[old:])
		}
		return b
	}
	nb := r.Allocate(n)
	copy(nb, b)
	r.Free(b)
	return nb
}

// Free takes back a buffer: one of the recycler's own goes back to its
// pool; any other is left to the garbage collector.
func (recycler) Free(b []byte) {
	c := class(cap(b))
	if c < 0 || cap(b) != 1<<c {
		return
	}
	b = b[:0]
	pools[c].Put(&b)
}
