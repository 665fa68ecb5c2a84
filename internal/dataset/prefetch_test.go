package dataset

import (
	"bytes"
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

// progressFile is a memFile that fills a read 100 bytes at a time and
// reports each step, as an S3 object's read does.
type progressFile struct{ memFile }

func (f *progressFile) ReadAtProgress(b []byte, off int64, progress func(int)) (int, error) {
	f.reads.Add(1)
	n := 0
	for n < len(b) && off+int64(n) < int64(len(f.data)) {
		k := copy(b[n:min(len(b), n+100)], f.data[off+int64(n):])
		n += k
		progress(n)
	}
	if n < len(b) {
		return n, io.EOF
	}
	return n, nil
}

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

// TestPrefetcherView: a planned range is one piece however large (up to
// maxPiece), lent in place; a view across pieces is refused, so the
// caller reads; a piece is freed once its ranges are read or given back.
func TestPrefetcherView(t *testing.T) {
	oldSize, oldMax := pieceSize, maxPiece
	pieceSize, maxPiece = 1000, 5000
	defer func() { pieceSize, maxPiece = oldSize, oldMax }()
	data := make([]byte, 20000)
	for i := range data {
		data[i] = byte(i * 13)
	}
	for _, f := range []warehouse.File{&memFile{data: data}, &progressFile{memFile{data: data}}} {
		viewPlan(t, f, data)
	}
}

func viewPlan(t *testing.T, f warehouse.File, data []byte) {
	p := newPrefetcher(context.Background(), f, 1, 2)
	// A range of 3000 bytes (one piece), two small ones sharing a piece,
	// and one of 6000 (above maxPiece: cut).
	p.plan([]byteRange{{0, 3000}, {3000, 400}, {3500, 400}, {10000, 6000}})
	for _, tc := range []struct {
		off, n int64
		ok     bool
	}{
		{0, 3000, true},
		{3000, 400, true},
		{3500, 400, true},
		{2900, 200, false}, // across two pieces
		{10000, 1000, true},
		{10500, 1000, false},
	} {
		b, wait, done, ok := p.view(tc.off, tc.n)
		if ok != tc.ok {
			t.Fatalf("view %d at %d: ok %v, want %v", tc.n, tc.off, ok, tc.ok)
		}
		if !ok {
			continue
		}
		if err := wait(tc.n / 2); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b[:tc.n/2], data[tc.off:tc.off+tc.n/2]) {
			t.Fatalf("view %d at %d: wrong bytes in its first half", tc.n, tc.off)
		}
		if err := wait(tc.n); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, data[tc.off:tc.off+tc.n]) {
			t.Fatalf("view %d at %d: wrong bytes", tc.n, tc.off)
		}
		done()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pc := range p.pieces[:2] {
		if !pc.freed {
			t.Fatalf("piece at %d (%d bytes) is not freed after all its ranges were viewed", pc.off, pc.n)
		}
	}
	if n := len(p.pieces); n != 8 {
		t.Fatalf("%d pieces, want 8 (one, one shared, six cut)", n)
	}
}
