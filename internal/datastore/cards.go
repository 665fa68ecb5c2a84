package datastore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"
)

// Cards and graphs are kept beside the runs they show, for readers (the
// card command and the UI):
//
//	cards/<Flow>/<Run>/graph.json                              the flow's graph, as show --json prints it, written with the run
//	cards/<Flow>/<Run>/<Step>/<Task>/<attempt>/<name>.versions  the versions of a card kept: their content keys (blobs/), sizes and times
//	cards/<Flow>/<Run>/<Step>/<Task>/<attempt>/<name>.json      its latest version, as is
//
// Each saved version of a card is a blob, content-addressed like an
// artifact (equal versions are stored once), and the card's versions
// record lists the versions kept. The latest version is also written as
// <name>.json, the layout of readers older than versions; a card saved
// before versions were kept has only that object, and is read as a card
// with one version.
const cardsPrefix = "cards/"

// MaxCardVersions is how many versions of a card are kept besides the
// final one (saved when its attempt ended): a progress card saved every
// few seconds for hours keeps its last MaxCardVersions versions and its
// final one. The blobs of the versions dropped are left to gc.
const MaxCardVersions = 20

const (
	cardExt     = ".json"
	versionsExt = ".versions"
)

// CardVersion is one saved version of a card.
type CardVersion struct {
	Version int       `json:"version"` // 1 for the first save, one more each save
	Key     string    `json:"key"`     // the content key of its JSON, a blob
	Size    int64     `json:"size"`    // bytes of its JSON
	Saved   time.Time `json:"saved"`
	Final   bool      `json:"final,omitempty"` // saved when the attempt ended
}

// cardVersions is the record of the versions of one card kept, oldest
// first.
type cardVersions struct {
	Versions []CardVersion `json:"versions"`
}

// CardRef names one stored card.
type CardRef struct {
	Attempt int
	Name    string
	Size    int64     // bytes of its latest version
	Updated time.Time // when its latest version was saved
	// Versions are the versions kept, oldest first; nil for a card saved
	// before versions were kept, which has only its latest.
	Versions []CardVersion
}

// CardKey is the key of the latest version of card name of attempt
// attempt of the task at p.
func CardKey(p TaskPath, attempt int, name string) string {
	return fmt.Sprintf("%s%s/%d/%s%s", cardsPrefix, p, attempt, name, cardExt)
}

// CardVersionsKey is the key of the record of the versions of card name of
// attempt attempt of the task at p.
func CardVersionsKey(p TaskPath, attempt int, name string) string {
	return fmt.Sprintf("%s%s/%d/%s%s", cardsPrefix, p, attempt, name, versionsExt)
}

// PutCard stores one version of a card (its JSON): the bytes as a blob,
// the version in the card's record (dropping the oldest intermediate
// versions past MaxCardVersions), and the bytes again as the card's latest
// version. v gives the version's number (0 for one more than the last
// kept), its time (zero for now) and whether it is the final one; PutCard
// returns it with its key and size. One process writes a card at a time
// (the attempt's).
func (s *Store) PutCard(ctx context.Context, p TaskPath, attempt int, name string, v CardVersion, data []byte) (CardVersion, error) {
	if err := checkCard(p, attempt, name); err != nil {
		return v, err
	}
	what := fmt.Sprintf("card %s of task %s, attempt %d", name, p, attempt)
	key, _, err := s.PutBlob(ctx, [][]byte{data})
	if err != nil {
		return v, fmt.Errorf("datastore: cannot store %s: %w", what, err)
	}
	v.Key, v.Size = key, int64(len(data))
	if v.Saved.IsZero() {
		v.Saved = time.Now()
	}
	v.Saved = v.Saved.UTC()
	var rec cardVersions
	// A damaged record is replaced: the versions it listed are lost, the
	// card goes on.
	if err := s.getJSON(ctx, CardVersionsKey(p, attempt, name), "the versions of "+what, &rec); err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, ErrCorrupt) {
		return v, err
	}
	if v.Version <= 0 {
		v.Version = 1
		if n := len(rec.Versions); n > 0 {
			v.Version = rec.Versions[n-1].Version + 1
		}
	}
	rec.Versions = keepVersions(slices.DeleteFunc(rec.Versions, func(o CardVersion) bool { return o.Version == v.Version }), v)
	if err := s.putJSON(ctx, CardVersionsKey(p, attempt, name), "the versions of "+what, &rec); err != nil {
		return v, err
	}
	if err := s.b.Put(ctx, CardKey(p, attempt, name), bytes.NewReader(data), int64(len(data))); err != nil {
		return v, fmt.Errorf("datastore: cannot store %s: %w", what, err)
	}
	return v, nil
}

// keepVersions adds v to vs (sorted by version) and keeps the final
// versions and the last MaxCardVersions others.
func keepVersions(vs []CardVersion, v CardVersion) []CardVersion {
	vs = append(vs, v)
	slices.SortFunc(vs, func(a, b CardVersion) int { return a.Version - b.Version })
	others := 0
	for i := len(vs) - 1; i >= 0; i-- {
		if vs[i].Final {
			continue
		}
		if others++; others > MaxCardVersions {
			vs = slices.Delete(vs, i, i+1)
		}
	}
	return vs
}

func checkCard(p TaskPath, attempt int, name string) error {
	if err := p.check(); err != nil {
		return err
	}
	if attempt < 0 {
		return fmt.Errorf("datastore: invalid attempt %d of task %s: attempts count from 0", attempt, p)
	}
	return checkSegments("card", "name", name)
}

// GetCard reads one version of a card's JSON, the latest when version is
// 0. A card that does not exist, or a version not kept, matches
// fs.ErrNotExist; a card of a run whose cards gc deleted matches
// ErrCollected too.
func (s *Store) GetCard(ctx context.Context, p TaskPath, attempt int, name string, version int) ([]byte, error) {
	if err := checkCard(p, attempt, name); err != nil {
		return nil, err
	}
	what := fmt.Sprintf("card %s of task %s, attempt %d", name, p, attempt)
	var rec cardVersions
	err := s.getJSON(ctx, CardVersionsKey(p, attempt, name), "the versions of "+what, &rec)
	switch {
	case err == nil && len(rec.Versions) > 0:
		i := len(rec.Versions) - 1
		if version != 0 {
			i = slices.IndexFunc(rec.Versions, func(v CardVersion) bool { return v.Version == version })
		}
		if i < 0 {
			return nil, &missingError{fmt.Sprintf("%s has no version %d: a card keeps its final version and its last %d others, and this one keeps %s",
				what, version, MaxCardVersions, versionList(rec.Versions))}
		}
		data, err := s.GetBlob(ctx, rec.Versions[i].Key)
		if err != nil {
			return nil, fmt.Errorf("datastore: cannot read version %d of %s: %w", rec.Versions[i].Version, what, err)
		}
		return data, nil
	case err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, ErrCorrupt):
		return nil, err
	case version != 0:
		// Saved before versions were kept, or its record is damaged: only
		// the latest is there.
		return nil, &missingError{what + " keeps only its latest version (it was saved before versions were kept)"}
	}
	rc, _, err := s.b.Get(ctx, CardKey(p, attempt, name))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			if cerr := s.collectedErr(ctx, CollectedLogsKey(p.Flow, p.Run), "the output and cards of run "+p.Flow+"/"+p.Run); cerr != nil {
				return nil, cerr
			}
		}
		return nil, fmt.Errorf("datastore: cannot read %s: %w", what, err)
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// missingError is a card version that is not there; it matches
// fs.ErrNotExist, and its message says what is.
type missingError struct{ msg string }

func (e *missingError) Error() string { return e.msg }

func (e *missingError) Is(target error) bool { return target == fs.ErrNotExist }

// versionList is "1-3, 7" for versions 1, 2, 3 and 7.
func versionList(vs []CardVersion) string {
	var b strings.Builder
	for i := 0; i < len(vs); {
		j := i
		for j+1 < len(vs) && vs[j+1].Version == vs[j].Version+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteString(", ")
		}
		if j > i {
			fmt.Fprintf(&b, "%d-%d", vs[i].Version, vs[j].Version)
		} else {
			fmt.Fprintf(&b, "%d", vs[i].Version)
		}
		i = j + 1
	}
	return "versions " + b.String()
}

// ListCards lists the stored cards of a task, by attempt then name, each
// with the versions kept.
func (s *Store) ListCards(ctx context.Context, p TaskPath) ([]CardRef, error) {
	if err := p.check(); err != nil {
		return nil, err
	}
	prefix := cardsPrefix + p.String() + "/"
	objs, err := s.b.ListInfo(ctx, prefix)
	if err != nil {
		return nil, fmt.Errorf("datastore: cannot list the cards of task %s: %w", p, err)
	}
	type id struct {
		attempt int
		name    string
	}
	refs := map[id]*CardRef{}
	for _, o := range objs {
		a, file, ok := strings.Cut(strings.TrimPrefix(o.Key, prefix), "/")
		n, err := strconv.Atoi(a)
		if !ok || err != nil || n < 0 || strings.Contains(file, "/") {
			continue
		}
		name, latest := strings.CutSuffix(file, cardExt)
		if !latest {
			var isVersions bool
			if name, isVersions = strings.CutSuffix(file, versionsExt); !isVersions {
				continue
			}
		}
		k := id{n, name}
		r := refs[k]
		if r == nil {
			r = &CardRef{Attempt: n, Name: name}
			refs[k] = r
		}
		if !latest {
			var rec cardVersions
			if err := s.getJSON(ctx, o.Key, fmt.Sprintf("the versions of card %s of task %s, attempt %d", name, p, n), &rec); err != nil {
				if !errors.Is(err, ErrCorrupt) && !errors.Is(err, fs.ErrNotExist) {
					return nil, err
				}
				continue // listed by its latest version alone
			}
			r.Versions = rec.Versions
		} else if r.Versions == nil {
			r.Size, r.Updated = o.Size, o.ModTime
		}
		if n := len(r.Versions); n > 0 {
			r.Size, r.Updated = r.Versions[n-1].Size, r.Versions[n-1].Saved
		}
	}
	out := make([]CardRef, 0, len(refs))
	for _, r := range refs {
		out = append(out, *r)
	}
	slices.SortFunc(out, func(a, b CardRef) int {
		if a.Attempt != b.Attempt {
			return a.Attempt - b.Attempt
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out, nil
}

// CardBlobKeys returns the content keys of every card version kept for the
// tasks of a run, for gc. A damaged versions record gives an error
// wrapping ErrCorrupt, with the keys of the others.
func (s *Store) CardBlobKeys(ctx context.Context, flow, run string) ([]string, error) {
	if err := checkSegments("run", "flow name", flow, "run id", run); err != nil {
		return nil, err
	}
	prefix := cardsPrefix + flow + "/" + run + "/"
	objs, err := s.b.List(ctx, prefix)
	if err != nil {
		return nil, fmt.Errorf("datastore: cannot list the cards of run %s/%s: %w", flow, run, err)
	}
	var keys []string
	var damaged error
	for _, k := range objs {
		if !strings.HasSuffix(k, versionsExt) {
			continue
		}
		var rec cardVersions
		if err := s.getJSON(ctx, k, "the versions of card "+strings.TrimPrefix(k, cardsPrefix), &rec); err != nil {
			if !errors.Is(err, ErrCorrupt) {
				return nil, err
			}
			damaged = errors.Join(damaged, err)
			continue
		}
		for _, v := range rec.Versions {
			keys = append(keys, v.Key)
		}
	}
	return keys, damaged
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
