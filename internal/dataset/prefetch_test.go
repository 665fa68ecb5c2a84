package dataset

import (
	"context"
	"io"
	"sync/atomic"
	"testing"

	"stepwise.dev/stepwise/internal/warehouse"
)

// memFile is a file in memory that counts its reads.
type memFile struct {
	data  []byte
	reads atomic.Int64
}

func (f *memFile) ReadAt(b []byte, off int64) (int, error) {
	f.reads.Add(1)
	if off >= int64(len(f.data)) {
		return 0, io.EOF
	}
	n := copy(b, f.data[off:])
	if n < len(b) {
		return n, io.EOF
	}
	return n, nil
}
func (f *memFile) Size() int64  { return int64(len(f.data)) }
func (f *memFile) Close() error { return nil }

var _ warehouse.File = (*memFile)(nil)

// TestPrefetcher: reads of planned ranges, in any order and split
// across pieces, return the file's bytes, within a window smaller than
// the plan; reads outside the plan and reads of freed bytes go to the
// file.
func TestPrefetcher(t *testing.T) {
	old := pieceSize
	pieceSize = 1000
	defer func() { pieceSize = old }()
	data := make([]byte, 20000)
	for i := range data {
		data[i] = byte(i * 7)
	}
	for _, tc := range []struct {
		name   string
		plan   []byteRange
		reads  []byteRange
		window int64
	}{
		{"in order", []byteRange{{0, 20000}}, []byteRange{{0, 5000}, {5000, 7000}, {12000, 8000}}, 3000},
		{"out of order", []byteRange{{0, 20000}}, []byteRange{{15000, 5000}, {0, 2500}, {2500, 12500}}, 1000},
		{"gaps", []byteRange{{100, 900}, {5000, 2000}, {18000, 1500}}, []byteRange{{18000, 1500}, {100, 900}, {5000, 2000}}, 1},
		{"past the plan", []byteRange{{1000, 1000}}, []byteRange{{1500, 2000}, {0, 500}}, 1},
		{"twice", []byteRange{{0, 3000}}, []byteRange{{0, 3000}, {500, 1000}}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &memFile{data: data}
			p := newPrefetcher(context.Background(), f, tc.window, 3)
			p.plan(tc.plan)
			for _, r := range tc.reads {
				b := make([]byte, r.n)
				n, err := p.ReadAt(b, r.off)
				if err != nil || int64(n) != r.n {
					t.Fatalf("read %d at %d: %d bytes, %v", r.n, r.off, n, err)
				}
				for i := range b {
					if b[i] != data[r.off+int64(i)] {
						t.Fatalf("read %d at %d: byte %d is %d, want %d", r.n, r.off, i, b[i], data[r.off+int64(i)])
					}
				}
			}
			p.mu.Lock()
			defer p.mu.Unlock()
			if p.ahead < 0 || p.running != 0 && p.ahead == 0 {
				t.Fatalf("accounting: %d bytes ahead, %d requests running", p.ahead, p.running)
			}
		})
	}
}
