package datastore

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"
)

// Cards and graphs are kept beside the runs they show, for readers (the
// card command and the UI):
//
//	cards/<Flow>/<Run>/graph.json                             the flow's graph, as show --json prints it, written with the run
//	cards/<Flow>/<Run>/<Step>/<Task>/<attempt>/<name>.json     a card of a task attempt (its last version)
const cardsPrefix = "cards/"

// CardRef names one stored card.
type CardRef struct {
	Attempt int
	Name    string
	Size    int64
	Updated time.Time
}

// CardKey is the key of card name of attempt attempt of the task at p.
func CardKey(p TaskPath, attempt int, name string) string {
	return fmt.Sprintf("%s%s/%d/%s.json", cardsPrefix, p, attempt, name)
}

// PutCard stores a card (its JSON), replacing its previous version.
func (s *Store) PutCard(ctx context.Context, p TaskPath, attempt int, name string, data []byte) error {
	if err := p.check(); err != nil {
		return err
	}
	if err := s.b.Put(ctx, CardKey(p, attempt, name), bytes.NewReader(data), int64(len(data))); err != nil {
		return fmt.Errorf("datastore: cannot store card %s of task %s: %w", name, p, err)
	}
	return nil
}

// GetCard reads a card's JSON; a missing card matches fs.ErrNotExist.
func (s *Store) GetCard(ctx context.Context, p TaskPath, attempt int, name string) ([]byte, error) {
	if err := p.check(); err != nil {
		return nil, err
	}
	rc, _, err := s.b.Get(ctx, CardKey(p, attempt, name))
	if err != nil {
		return nil, fmt.Errorf("datastore: cannot read card %s of task %s, attempt %d: %w", name, p, attempt, err)
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// ListCards lists the stored cards of a task, by attempt then name.
func (s *Store) ListCards(ctx context.Context, p TaskPath) ([]CardRef, error) {
	if err := p.check(); err != nil {
		return nil, err
	}
	prefix := cardsPrefix + p.String() + "/"
	objs, err := s.b.ListInfo(ctx, prefix)
	if err != nil {
		return nil, fmt.Errorf("datastore: cannot list the cards of task %s: %w", p, err)
	}
	var out []CardRef
	for _, o := range objs {
		a, name, ok := strings.Cut(strings.TrimPrefix(o.Key, prefix), "/")
		n, err := strconv.Atoi(a)
		if !ok || err != nil || !strings.HasSuffix(name, ".json") {
			continue
		}
		out = append(out, CardRef{Attempt: n, Name: strings.TrimSuffix(name, ".json"), Size: o.Size, Updated: o.ModTime})
	}
	return out, nil
}

func graphKey(flow, run string) string { return cardsPrefix + flow + "/" + run + "/graph.json" }

// PutGraph stores the graph of a run's flow, written when the run is
// created.
func (s *Store) PutGraph(ctx context.Context, flow, run string, data []byte) error {
	if err := checkSegments("run", "flow name", flow, "run id", run); err != nil {
		return err
	}
	return s.b.Put(ctx, graphKey(flow, run), bytes.NewReader(data), int64(len(data)))
}

// GetGraph reads the graph of a run's flow; a run whose tasks stored none
// matches fs.ErrNotExist.
func (s *Store) GetGraph(ctx context.Context, flow, run string) ([]byte, error) {
	if err := checkSegments("run", "flow name", flow, "run id", run); err != nil {
		return nil, err
	}
	rc, _, err := s.b.Get(ctx, graphKey(flow, run))
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// ReadLogRange reads at most n bytes of one stream of one task attempt,
// from byte off, and returns them with the stream's whole length so far.
// Only the chunks that hold the range are read, so the tail of a large
// log costs what the tail holds. A negative off counts from the end.
func (s *Store) ReadLogRange(ctx context.Context, p TaskPath, attempt int, stream string, off, n int64) ([]byte, int64, error) {
	objs, err := s.b.ListInfo(ctx, LogPrefix(p, attempt, stream))
	if err != nil {
		return nil, 0, err
	}
	var total int64
	for _, o := range objs {
		total += o.Size
	}
	if off < 0 {
		off = max(total+off, 0)
	}
	var buf bytes.Buffer
	var pos int64
	for _, o := range objs {
		start, end := pos, pos+o.Size
		pos = end
		if end <= off || start >= off+n || int64(buf.Len()) >= n {
			continue
		}
		from := max(off-start, 0)
		want := min(o.Size-from, n-int64(buf.Len()))
		var data []byte
		if rr, ok := s.b.(RangeReader); ok {
			data, _, err = rr.GetRange(ctx, o.Key, from, want)
		} else {
			data, err = s.readPart(ctx, o.Key, from, want)
		}
		if err != nil {
			return nil, 0, fmt.Errorf("datastore: cannot read log chunk %s: %w", o.Key, err)
		}
		buf.Write(data)
	}
	return buf.Bytes(), total, nil
}

// readPart reads n bytes from off of an object by skipping to off.
func (s *Store) readPart(ctx context.Context, key string, off, n int64) ([]byte, error) {
	rc, _, err := s.b.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	if _, err := io.CopyN(io.Discard, rc, off); err != nil {
		return nil, err
	}
	return io.ReadAll(io.LimitReader(rc, n))
}

// OpenBlob streams the bytes of a blob (decompressed) without holding
// them in memory, for downloads; it returns their length. Unlike GetBlob it
// does not check them against the key: a reader that needs that uses
// GetBlob.
func (s *Store) OpenBlob(ctx context.Context, key string) (io.ReadCloser, int64, error) {
	rc, hdr, err := s.openBlob(ctx, key)
	if err != nil {
		return nil, 0, err
	}
	if hdr.codec != codecZstd {
		return struct {
			io.Reader
			io.Closer
		}{io.LimitReader(rc, hdr.size), rc}, hdr.size, nil
	}
	dec, err := zstd.NewReader(rc, zstd.WithDecoderConcurrency(1))
	if err != nil {
		rc.Close()
		return nil, 0, s.corrupt(key, err)
	}
	return &zstdBlob{dec: dec, rc: rc}, hdr.size, nil
}

type zstdBlob struct {
	dec *zstd.Decoder
	rc  io.ReadCloser
}

// Read reads decompressed bytes.
func (z *zstdBlob) Read(p []byte) (int, error) { return z.dec.Read(p) }

// Close releases the decoder and the object.
func (z *zstdBlob) Close() error { z.dec.Close(); return z.rc.Close() }
