package dataset

import (
	"context"
	"io"
	"sort"
	"sync"

	"stepwise.dev/stepwise/internal/warehouse"
)

// prefetcher streams the byte ranges a scan needs from a remote file:
// once the scan knows its column chunks it plans them (coalesced, cut
// into pieces) and fetches them in file order with several ranged GETs in
// flight, at most window bytes ahead of the decoder. Reads wait for the
// pieces that hold them, so decoding overlaps fetching; a piece is freed
// once all its bytes have been read. A read the plan does not cover (the
// footer) goes to the file.
type prefetcher struct {
	f        warehouse.File
	ctx      context.Context
	window   int64 // the most bytes fetched or in flight and not yet read
	inflight int   // the most requests in flight
	share    int64 // the most bytes neighbouring ranges share in one request

	mu      sync.Mutex
	cond    *sync.Cond // signalled as a piece's bytes arrive
	pieces  []*piece   // sorted by off
	next    int        // the first piece not yet started, in order
	running int        // requests in flight
	ahead   int64      // bytes started and not yet read
	ioErr   error      // the first read that failed
}

type piece struct {
	off, n   int64
	started  bool
	done     chan struct{} // closed when data or err is set
	data     []byte
	err      error
	want     int64 // bytes of planned ranges in it (the rest is gaps)
	views    int   // lent out by view: not freed until given back
	arrived  int64 // bytes of data filled so far
	finished bool  // the read is over (err set if it failed)
	read     int64 // bytes read by the decoder
	freed    bool
}

type byteRange struct{ off, n int64 }

const coalesceGap = 1 << 20 // ranges closer than this are read as one

// pieceSize is the least, and maxPiece the most, one request reads for
// neighbouring ranges that share it (variables for tests); maxPiece is
// also the most one range gets as one piece.
var (
	pieceSize int64 = 4 << 20
	maxPiece  int64 = 64 << 20
)

func newPrefetcher(ctx context.Context, f warehouse.File, window int64, inflight int) *prefetcher {
	p := &prefetcher{f: f, ctx: ctx, window: max(window, pieceSize), inflight: max(inflight, 1)}
	// Half the window, so that the next request is in flight while the
	// decoder reads the last: neighbouring column chunks (a whole row
	// group, when a scan reads every column) come in one GET. Each request
	// costs the store as much as megabytes of data (on local MinIO, GETs of
	// 8 MiB ranges reach 0.78x of whole-object GETs; of 32 MiB, 0.88x).
	p.share = min(max(window/2, pieceSize), maxPiece)
	p.cond = sync.NewCond(&p.mu)
	return p
}

// plan sets the ranges the scan will read and starts fetching them.
// Ranges closer than coalesceGap share a piece of at most p.share
// bytes; a range is never cut between pieces unless it is larger than
// maxPiece, so that the page decoder can read a column chunk in place.
func (p *prefetcher) plan(ranges []byteRange) {
	size := p.f.Size()
	sort.Slice(ranges, func(i, j int) bool { return ranges[i].off < ranges[j].off })
	var pieces []*piece
	var cur *piece
	for _, r := range ranges {
		r.n = min(r.n, size-r.off)
		if r.n <= 0 || r.off < 0 {
			continue
		}
		end := r.off + r.n
		if cur != nil && r.off <= cur.off+cur.n+coalesceGap && end-cur.off <= max(p.share, cur.n) {
			if covered := cur.off + cur.n; end > covered {
				cur.want += end - max(covered, r.off)
				cur.n = end - cur.off
			}
			continue
		}
		if cur != nil && r.off < cur.off+cur.n {
			// Overlaps the piece but does not fit with it: the rest.
			r.off = cur.off + cur.n
			if r.off >= end {
				continue
			}
		}
		if end-r.off <= maxPiece {
			cur = &piece{off: r.off, n: end - r.off, want: end - r.off, done: make(chan struct{})}
			pieces = append(pieces, cur)
			continue
		}
		for off := r.off; off < end; off += pieceSize {
			cur = &piece{off: off, n: min(pieceSize, end-off), done: make(chan struct{})}
			cur.want = cur.n
			pieces = append(pieces, cur)
		}
	}
	p.mu.Lock()
	p.pieces = pieces
	p.pump()
	p.mu.Unlock()
}

// pump starts pieces in order while the window and request limits allow.
// p.mu is held.
func (p *prefetcher) pump() {
	for p.next < len(p.pieces) && p.running < p.inflight {
		pc := p.pieces[p.next]
		if pc.started {
			p.next++
			continue
		}
		if p.ahead > 0 && p.ahead+pc.n > p.window {
			return
		}
		p.start(pc)
		p.next++
	}
}

// start fetches one piece. p.mu is held.
func (p *prefetcher) start(pc *piece) {
	pc.started = true
	p.running++
	p.ahead += pc.n
	// Piece buffers are recycled: once freed, a piece's bytes are no
	// one's (reads copy them out, views are given back first).
	pc.data = recycler{}.uninitialized(int(pc.n))
	go func() {
		var err error
		if err = p.ctx.Err(); err == nil {
			var n int
			if pr, ok := p.f.(progressReader); ok {
				n, err = pr.ReadAtProgress(pc.data, pc.off, func(n int) {
					p.mu.Lock()
					pc.arrived = int64(n)
					p.cond.Broadcast()
					p.mu.Unlock()
				})
			} else {
				n, err = p.f.ReadAt(pc.data, pc.off)
			}
			if err == io.EOF && int64(n) == pc.n {
				err = nil
			}
		}
		p.mu.Lock()
		pc.err, pc.finished = err, true
		if err == nil {
			pc.arrived = pc.n
		}
		if err != nil && p.ioErr == nil {
			p.ioErr = err
		}
		p.running--
		close(pc.done)
		p.cond.Broadcast()
		p.pump()
		p.mu.Unlock()
	}()
}

// progressReader is a file that reports a read's progress as the bytes
// arrive (an S3 object).
type progressReader interface {
	ReadAtProgress(b []byte, off int64, progress func(n int)) (int, error)
}

// consumed notes n bytes of pc read, freeing it once all its planned
// bytes are. p.mu is held.
func (p *prefetcher) consumed(pc *piece, n int64) {
	pc.read += n
	if pc.read >= pc.want && pc.views == 0 && !pc.freed && pc.data != nil {
		recycler{}.Free(pc.data)
		pc.data, pc.freed = nil, true
		p.ahead -= pc.n
	}
}

// view lends the n bytes at off in place when one planned piece holds
// them all, starting it if need be, without waiting for them: wait(k)
// returns once the first k bytes have arrived, so that a reader can
// start on them while the rest arrive. done gives them back and must be
// called once they are no longer used. ok is false when no piece holds
// them whole (the caller reads them with ReadAt).
func (p *prefetcher) view(off, n int64) (b []byte, wait func(k int64) error, done func(), ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	i := sort.Search(len(p.pieces), func(i int) bool { return p.pieces[i].off+p.pieces[i].n > off })
	if i == len(p.pieces) || p.pieces[i].off > off || off+n > p.pieces[i].off+p.pieces[i].n || p.pieces[i].freed {
		return nil, nil, nil, false
	}
	pc := p.pieces[i]
	pc.views++
	if !pc.started {
		p.start(pc)
	}
	rel := off - pc.off
	wait = func(k int64) error {
		p.mu.Lock()
		defer p.mu.Unlock()
		for !pc.finished && pc.arrived < rel+k {
			p.cond.Wait()
		}
		if pc.err != nil {
			return pc.err
		}
		return nil
	}
	done = func() {
		p.mu.Lock()
		pc.views--
		p.consumed(pc, n)
		p.pump()
		p.mu.Unlock()
	}
	return pc.data[rel : rel+n], wait, done, true
}

// failed returns the first read of the file that failed, if any: the
// decoder's errors are then the store's, not the file's content.
func (p *prefetcher) failed() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ioErr
}

// direct reads the file, noting a failure.
func (p *prefetcher) direct(b []byte, off int64) (int, error) {
	n, err := p.f.ReadAt(b, off)
	if err != nil && !(err == io.EOF && n == len(b)) {
		p.mu.Lock()
		if p.ioErr == nil && !(err == io.EOF) {
			p.ioErr = err
		}
		p.mu.Unlock()
	}
	return n, err
}

// ReadAt copies from the planned pieces that hold the start of the range,
// waiting for them (and starting them first if the decoder asks before
// the plan reaches them); the rest of the range, if any (the footer, or
// padding past a column chunk that old writers need), comes from the file.
func (p *prefetcher) ReadAt(b []byte, off int64) (int, error) {
	end := off + int64(len(b))
	p.mu.Lock()
	i := sort.Search(len(p.pieces), func(i int) bool { return p.pieces[i].off+p.pieces[i].n > off })
	var need []*piece
	cut := off // the planned pieces hold [off, cut)
	for ; i < len(p.pieces) && cut < end; i++ {
		pc := p.pieces[i]
		if pc.off > cut || pc.freed {
			break
		}
		need = append(need, pc)
		cut = min(end, pc.off+pc.n)
		if !pc.started {
			p.start(pc)
		}
	}
	p.mu.Unlock()
	if len(need) == 0 {
		return p.direct(b, off)
	}
	for _, pc := range need {
		select {
		case <-pc.done:
		case <-p.ctx.Done():
			return 0, p.ctx.Err()
		}
		if pc.err != nil {
			return 0, pc.err
		}
	}
	p.mu.Lock()
	for _, pc := range need {
		if pc.freed {
			// Read twice and freed meanwhile: read the file.
			p.mu.Unlock()
			return p.direct(b, off)
		}
	}
	for _, pc := range need {
		s, e := max(off, pc.off), min(end, pc.off+pc.n)
		copy(b[s-off:e-off], pc.data[s-pc.off:e-pc.off])
		p.consumed(pc, e-s)
	}
	p.pump()
	p.mu.Unlock()
	if cut < end {
		n, err := p.direct(b[cut-off:], cut)
		return int(cut-off) + n, err
	}
	return len(b), nil
}
