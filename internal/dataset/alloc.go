package dataset

import (
	"math/bits"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

// recycler is the scan's default memory.Allocator: it keeps the large
// buffers of released batches and hands them out again, zeroed, instead of
// asking Go for new ones. A scan allocates a fresh value buffer per column
// per batch; from Go's allocator each costs a page-faulting clear of
// memory the runtime had given back, which profiling showed to be half of
// a scan's CPU. Buffers are rounded up to a size class from 64 KiB and
// kept in one free list per class, shared by all scans of the process;
// a buffer not reused within idleKeep goes back to the garbage collector.
// Smaller buffers come from Go as usual. (A sync.Pool is emptied by every
// other garbage collection, and a scan then faults fresh memory again:
// that cost the benchmark's scans a tenth of their speed.)
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

// idleKeep is how long a freed buffer is kept for reuse.
const idleKeep = 5 * time.Second

var pools [numClasses]freeList

// freeList holds one class's freed buffers, the last freed on top (the
// likeliest still in the CPU's cache).
type freeList struct {
	mu    sync.Mutex
	bufs  []freed
	timer *time.Timer // drops idle buffers; set while bufs is not empty
}

type freed struct {
	b  []byte
	at time.Time
}

func (l *freeList) get() ([]byte, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := len(l.bufs)
	if n == 0 {
		return nil, false
	}
	b := l.bufs[n-1].b
	l.bufs[n-1] = freed{}
	l.bufs = l.bufs[:n-1]
	return b, true
}

func (l *freeList) put(b []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.bufs = append(l.bufs, freed{b: b[:0], at: time.Now()})
	if l.timer == nil {
		l.timer = time.AfterFunc(idleKeep, l.trim)
	}
}

// trim drops the buffers freed more than idleKeep ago (the bottom of the
// stack) and comes back while any are left.
func (l *freeList) trim() {
	l.mu.Lock()
	defer l.mu.Unlock()
	cut := time.Now().Add(-idleKeep)
	k := 0
	for k < len(l.bufs) && l.bufs[k].at.Before(cut) {
		k++
	}
	clear(l.bufs[:k])
	l.bufs = append(l.bufs[:0], l.bufs[k:]...)
	if len(l.bufs) == 0 {
		l.timer = nil
		return
	}
	l.timer.Reset(l.bufs[0].at.Sub(cut))
}

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
	if b, ok := pools[c].get(); ok {
		b = b[:n]
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
	if b, ok := pools[c].get(); ok {
		return b[:n]
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
	pools[c].put(b)
}
