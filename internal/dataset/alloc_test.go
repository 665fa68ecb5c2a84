package dataset

import (
	"bytes"
	"runtime"
	"testing"
	"time"
)

func TestRecyclerClass(t *testing.T) {
	for _, tc := range []struct{ n, want int }{ // want: the class's size, or -1
		{0, -1},
		{1, -1},
		{32 << 10, -1},
		{32<<10 + 1, 64 << 10},
		{64 << 10, 64 << 10},
		{64<<10 + 1, 80 << 10},
		{100 << 10, 112 << 10},
		{112<<10 + 1, 128 << 10},
		{1 << 20, 1 << 20},
		{1<<20 + 64, 1280 << 10},
		{8<<20 + 400<<10, 10 << 20}, // a column chunk of 1M int64 values
		{15 << 20, 16 << 20},
		{1 << 34, 1 << 34},
		{1<<34 + 1, -1},
	} {
		got := -1
		if c := class(tc.n); c >= 0 {
			got = classSize(c)
			if class(got) != c {
				t.Errorf("class(%d) = %d, of size %d, whose class is %d", tc.n, c, got, class(got))
			}
		}
		if got != tc.want {
			t.Errorf("class(%d) has size %d, want %d", tc.n, got, tc.want)
		}
	}
	for c := range numClasses {
		if c > 0 && classSize(c) <= classSize(c-1) {
			t.Fatalf("class %d (%d bytes) is not larger than class %d (%d)", c, classSize(c), c-1, classSize(c-1))
		}
	}
}

// A reused buffer comes back zeroed, at the size asked for, whatever the
// batch before it left in it; growing keeps what was written.
func TestRecyclerReuse(t *testing.T) {
	var r recycler
	for _, n := range []int{100, 40 << 10, 100 << 10, 1 << 20, 3<<20 + 17} {
		b := r.Allocate(n)
		if len(b) != n {
			t.Fatalf("Allocate(%d): len %d", n, len(b))
		}
		for i := range b {
			b[i] = 0xAB
		}
		r.Free(b)
		for range 3 { // whether or not the pool kept it
			c := r.Allocate(n)
			if len(c) != n || !allZero(c) {
				t.Fatalf("Allocate(%d) after a Free: len %d, zeroed %v", n, len(c), allZero(c))
			}
			c[0] = 1
			r.Free(c)
		}
	}
}

func TestRecyclerReallocate(t *testing.T) {
	var r recycler
	for _, tc := range []struct {
		name     string
		from, to int
		inPlace  bool
	}{
		{"small to small", 100, 200, false},
		{"small to large", 100, 200 << 10, false},
		{"grow within the buffer", 70 << 10, 78 << 10, true},
		{"grow past the buffer", 100 << 10, 300 << 10, false},
		{"shrink to half", 1 << 20, 512 << 10, true},
		{"shrink below half", 1 << 20, 100 << 10, false},
		{"large to small", 1 << 20, 1000, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := r.Allocate(tc.from)
			for i := range b {
				b[i] = byte(i%251 + 1)
			}
			want := bytes.Clone(b[:min(tc.from, tc.to)])
			nb := r.Reallocate(tc.to, b)
			if len(nb) != tc.to {
				t.Fatalf("len %d, want %d", len(nb), tc.to)
			}
			if !bytes.Equal(nb[:len(want)], want) {
				t.Fatal("the contents were not kept")
			}
			if !allZero(nb[len(want):]) {
				t.Fatal("the bytes past the old contents are not zero")
			}
			if got := &nb[0] == &b[0]; got != tc.inPlace {
				t.Fatalf("in place: %v, want %v", got, tc.inPlace)
			}
		})
	}
}

// A buffer the recycler did not make is left alone, not pooled: its
// capacity is not a size class, so Allocate never hands it out.
func TestRecyclerFreeForeign(t *testing.T) {
	var r recycler
	foreign := make([]byte, 100<<10, 100<<10)
	r.Free(foreign)
	for range 10 {
		b := r.Allocate(100 << 10)
		if cap(b) != 112<<10 {
			t.Fatalf("Allocate handed out a buffer of capacity %d", cap(b))
		}
	}
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// Freed buffers survive garbage collections (a sync.Pool's would not)
// and are let go once idle for idleKeep.
func TestRecyclerKeepsUntilIdle(t *testing.T) {
	var r recycler
	const n = 3 << 20
	c := class(n)
	b := r.Allocate(n)
	r.Free(b)
	runtime.GC()
	runtime.GC()
	got := r.uninitialized(n)
	if &got[0] != &b[0] {
		t.Fatal("a freed buffer did not survive two garbage collections")
	}
	r.Free(got)
	l := &pools[c]
	l.mu.Lock()
	if len(l.bufs) == 0 || l.timer == nil {
		l.mu.Unlock()
		t.Fatalf("%d buffers kept, timer set %v; want the buffer and a timer", len(l.bufs), l.timer != nil)
	}
	for i := range l.bufs {
		l.bufs[i].at = l.bufs[i].at.Add(-idleKeep - time.Second)
	}
	l.mu.Unlock()
	l.trim()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.bufs) != 0 || l.timer != nil {
		t.Fatalf("after idleKeep: %d buffers kept, timer set %v; want none", len(l.bufs), l.timer != nil)
	}
}
