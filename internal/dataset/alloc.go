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
// a scan's CPU. Buffers are rounded up to a size class from 64 KiB and
// kept in one sync.Pool per class, shared by all scans of the process, so
// what is not reused soon goes back to the garbage collector; smaller
// buffers come from Go as usual.
type recycler struct{}

// Size classes run from 64 KiB to 16 GiB in quarter steps between powers
// of two (64, 80, 96, 112, 128 KiB, ...), so a buffer wastes at most a
// fifth of itself: a column chunk of a little over 8 MiB takes 10 MiB, not
// 16.
const (
	minExp     = 16 // 64 KiB
	maxExp     = 34 // 16 GiB
	numClasses = (maxExp-minExp)*4 + 1
)

var pools [numClasses]sync.Pool

// class is the size class of an allocation of n bytes, or -1 for small
// and huge ones.
func class(n int) int {
	if n <= 1<<minExp/2 || n > 1<<maxExp {
		return -1
	}
	if n <= 1<<minExp {
		return 0
	}
	e := bits.Len(uint(n-1)) - 1 // 2^e < n <= 2^(e+1)
	unit := 1 << (e - 2)
	k := (n + unit - 1) / unit // 5 to 8 quarters of 2^e
	if k == 8 {
		return (e + 1 - minExp) * 4
	}
	return (e-minExp)*4 + k - 4
}

// classSize is the capacity of the buffers of class c.
func classSize(c int) int { return (4 + c%4) << (c/4 + minExp - 2) }

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
	return make([]byte, n, classSize(c))
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
	return make([]byte, n, classSize(c))
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
	if c < 0 || cap(b) != classSize(c) {
		return
	}
	b = b[:0]
	pools[c].Put(&b)
}
