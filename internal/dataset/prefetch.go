package dataset

import (
	"context"
	"io"
	"sort"
	"sync"

	"golang.org/x/sync/errgroup"

	"stepwise.dev/stepwise/internal/warehouse"
)

// prefetcher serves a remote file's reads from byte ranges fetched ahead,
// in parallel, once the scan knows which column chunks it needs: one
// request per MiBs of data instead of one per page or chunk, in flight
// together.
type prefetcher struct {
	f      warehouse.File
	mu     sync.Mutex
	chunks []chunk // sorted by off
}

type chunk struct {
	off  int64
	data []byte
}

type byteRange struct{ off, n int64 }

const (
	coalesceGap = 1 << 20 // ranges closer than this are read as one
	pieceSize   = 8 << 20 // the most one request reads
	fetchAhead  = 4       // requests in flight per file
)

// fetch reads the ranges, coalesced and cut into pieces, in parallel.
func (p *prefetcher) fetch(ctx context.Context, ranges []byteRange) error {
	sort.Slice(ranges, func(i, j int) bool { return ranges[i].off < ranges[j].off })
	var merged []byteRange
	for _, r := range ranges {
		if n := len(merged); n > 0 && r.off <= merged[n-1].off+merged[n-1].n+coalesceGap {
			end := max(merged[n-1].off+merged[n-1].n, r.off+r.n)
			merged[n-1].n = end - merged[n-1].off
			continue
		}
		merged = append(merged, r)
	}
	var pieces []byteRange
	for _, r := range merged {
		for off := r.off; off < r.off+r.n; off += pieceSize {
			pieces = append(pieces, byteRange{off, min(pieceSize, r.off+r.n-off)})
		}
	}
	out := make([]chunk, len(pieces))
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(fetchAhead)
	for i, pc := range pieces {
		g.Go(func() error {
			if err := ctx.Err(); err != nil {
				return err
			}
			buf := make([]byte, pc.n)
			n, err := p.f.ReadAt(buf, pc.off)
			if err != nil && !(err == io.EOF && int64(n) == pc.n) {
				return err
			}
			out[i] = chunk{pc.off, buf}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	p.mu.Lock()
	p.chunks = out
	p.mu.Unlock()
	return nil
}

// ReadAt copies from the fetched pieces when they hold the range, else
// reads the file.
func (p *prefetcher) ReadAt(b []byte, off int64) (int, error) {
	p.mu.Lock()
	chunks := p.chunks
	p.mu.Unlock()
	end := off + int64(len(b))
	i := sort.Search(len(chunks), func(i int) bool { return chunks[i].off+int64(len(chunks[i].data)) > off })
	copied := 0
	for pos := off; i < len(chunks) && pos < end; i++ {
		c := chunks[i]
		if c.off > pos {
			break
		}
		n := copy(b[pos-off:], c.data[pos-c.off:])
		copied += n
		pos += int64(n)
	}
	if int64(copied) == int64(len(b)) {
		return copied, nil
	}
	return p.f.ReadAt(b, off)
}
