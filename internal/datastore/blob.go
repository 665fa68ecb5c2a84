package datastore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/zstd"
)

// Blob object format (all integers little-endian):
//
//	off len
//	  0   4  magic "SWBL"
//	  4   1  format version, 1
//	  5   1  codec: 0 raw, 1 zstd
//	  6   2  reserved, 0
//	  8   8  blob length (uncompressed)
//	 16   8  payload length (the bytes after the header)
//	 24   4  CRC-32C of bytes 0..24
//	 28      payload: the blob itself (raw), or zstd frames (one per
//	         compressChunk of the blob, compressed independently)
const (
	blobMagic      = "SWBL"
	blobVersion    = 1
	blobHeaderSize = 28

	codecRaw  = 0
	codecZstd = 1
)

// Compression pays only where it shrinks data by at least 10%: PutBlob
// compresses up to sampleWindows windows of sampleWindow bytes spread over
// the blob and stores the blob raw when they do not shrink that much
// (random bytes cost ~15µs to find out). Compressed blobs are cut in
// compressChunk pieces compressed on all cores.
const (
	sampleWindow  = 16 << 10
	sampleWindows = 4
	minRatio      = 0.9 // compressed/raw at most this to store compressed
)

// compressChunk is a variable for tests.
var compressChunk = 4 << 20

// hashChunk is how much is read before handing it to the hashing goroutine
// on load; smaller blobs are hashed inline.
const hashChunk = 4 << 20

var crcTable = crc32.MakeTable(crc32.Castagnoli)

var (
	encOnce sync.Once
	encoder *zstd.Encoder // EncodeAll only: safe for concurrent use

	decoders = sync.Pool{New: func() any {
		// Concurrency 1: decoding is synchronous, in the caller's
		// goroutine; hashing runs beside it.
		d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1))
		if err != nil {
			panic(err) // only for invalid options
		}
		return d
	}}
)

func zenc() *zstd.Encoder {
	encOnce.Do(func() {
		var err error
		encoder, err = zstd.NewWriter(nil,
			zstd.WithEncoderLevel(zstd.SpeedFastest),
			zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)))
		if err != nil {
			panic(err) // only for invalid options
		}
	})
	return encoder
}

type blobHeader struct {
	codec   byte
	size    int64 // blob length
	payload int64 // stored bytes after the header
}

func (h blobHeader) marshal() []byte {
	b := make([]byte, blobHeaderSize)
	copy(b, blobMagic)
	b[4] = blobVersion
	b[5] = h.codec
	binary.LittleEndian.PutUint64(b[8:], uint64(h.size))
	binary.LittleEndian.PutUint64(b[16:], uint64(h.payload))
	binary.LittleEndian.PutUint32(b[24:], crc32.Checksum(b[:24], crcTable))
	return b
}

// parseBlobHeader checks a header against the stored object's size; the
// error describes the damage.
func parseBlobHeader(b []byte, objSize int64) (blobHeader, error) {
	if string(b[:4]) != blobMagic {
		return blobHeader{}, errors.New("it does not start with a blob header")
	}
	if crc32.Checksum(b[:24], crcTable) != binary.LittleEndian.Uint32(b[24:]) {
		return blobHeader{}, errors.New("its header checksum does not match")
	}
	if b[4] != blobVersion {
		return blobHeader{}, fmt.Errorf("its format version %d is not known to this build (a newer stepwise wrote it?)", b[4])
	}
	h := blobHeader{codec: b[5], size: int64(binary.LittleEndian.Uint64(b[8:])), payload: int64(binary.LittleEndian.Uint64(b[16:]))}
	switch {
	case h.codec != codecRaw && h.codec != codecZstd:
		return h, fmt.Errorf("its codec %d is unknown", h.codec)
	case h.size < 0 || h.payload < 0 || (h.codec == codecRaw && h.payload != h.size):
		return h, errors.New("its header is inconsistent")
	case objSize != blobHeaderSize+h.payload:
		return h, fmt.Errorf("it is %d bytes long, but its header says %d (truncated?)", objSize, blobHeaderSize+h.payload)
	}
	return h, nil
}

// BlobObjectKey is the backend key of the blob with content key key:
// blobs/<first 2 hex digits>/<64 hex digits>.
func BlobObjectKey(key string) string { return blobPrefix + key[:2] + "/" + key }

func checkBlobKey(key string) error {
	if len(key) != 2*sha256.Size {
		return fmt.Errorf("datastore: invalid blob key %q: want 64 lowercase hex digits", key)
	}
	for i := 0; i < len(key); i++ {
		if c := key[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return fmt.Errorf("datastore: invalid blob key %q: want 64 lowercase hex digits", key)
		}
	}
	return nil
}

// PutBlob stores the concatenation of parts under its content key, the
// lowercase hex SHA-256 of those bytes; written is false when the blob was
// already there (nothing written). The parts are not modified or kept.
func (s *Store) PutBlob(ctx context.Context, parts [][]byte) (key string, written bool, err error) {
	var n int64
	h := sha256.New()
	for _, p := range parts {
		h.Write(p)
		n += int64(len(p))
	}
	key = hex.EncodeToString(h.Sum(nil))
	obj := BlobObjectKey(key)
	oi, err := s.b.Stat(ctx, obj)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return key, false, fmt.Errorf("datastore: cannot check for blob %s in %s: %w", key, s.b, err)
	}
	if err == nil {
		// A cheap look at the header catches a blob cut short by a crash
		// of the machine (blobs are not fsynced); such a blob is written
		// again. A full check would cost a load.
		info, err := s.StatBlob(ctx, key)
		if err == nil && info.Size == n && s.fresh(ctx, obj, oi.ModTime) {
			return key, false, nil
		}
		if err != nil && !errors.Is(err, ErrCorrupt) && !errors.Is(err, fs.ErrNotExist) {
			return key, false, err
		}
	}
	hdr := blobHeader{codec: codecRaw, size: n, payload: n}
	payload := parts
	if worthCompressing(parts, n) {
		c, size, err := compress(ctx, parts, n, int64(float64(n)*minRatio))
		if err != nil {
			return key, false, err
		}
		if c != nil {
			hdr.codec, hdr.payload, payload = codecZstd, size, c
		}
	}
	readers := make([]io.Reader, 0, len(payload)+1)
	readers = append(readers, bytes.NewReader(hdr.marshal()))
	for _, p := range payload {
		if len(p) > 0 {
			readers = append(readers, bytes.NewReader(p))
		}
	}
	if err := s.b.Put(ctx, obj, io.MultiReader(readers...), blobHeaderSize+hdr.payload); err != nil {
		return key, false, fmt.Errorf("datastore: cannot store blob %s: %w", key, err)
	}
	return key, true, nil
}

// fresh makes sure a blob about to be reused is younger than RefreshAge,
// so that gc's grace period protects it until the task that reuses it
// records it: an older one is touched. It returns false when the blob
// must be written again instead (the backend cannot touch, or failed to).
func (s *Store) fresh(ctx context.Context, obj string, mod time.Time) bool {
	if time.Since(mod) < RefreshAge {
		return true
	}
	t, ok := s.b.(Toucher)
	return ok && t.Touch(ctx, obj) == nil
}

// worthCompressing compresses a sample of the blob and reports whether it
// shrank by at least 1-minRatio.
func worthCompressing(parts [][]byte, n int64) bool {
	if n < 64 {
		return false
	}
	var sample []byte
	if n <= sampleWindow*sampleWindows {
		sample = make([]byte, 0, n)
		for _, p := range parts {
			sample = append(sample, p...)
		}
	} else {
		sample = make([]byte, sampleWindow*sampleWindows)
		for i := range sampleWindows {
			off := n / sampleWindows * int64(i)
			copyAt(sample[i*sampleWindow:(i+1)*sampleWindow], parts, off)
		}
	}
	c := zenc().EncodeAll(sample, make([]byte, 0, len(sample)))
	return float64(len(c)) <= float64(len(sample))*minRatio
}

// copyAt fills dst with the bytes at offset off of the concatenation of
// parts (which holds them all).
func copyAt(dst []byte, parts [][]byte, off int64) {
	for _, p := range parts {
		if len(dst) == 0 {
			return
		}
		if off >= int64(len(p)) {
			off -= int64(len(p))
			continue
		}
		c := copy(dst, p[off:])
		dst, off = dst[c:], 0
	}
}

// sliceAt returns the bytes [off, off+len(scratch)) of the concatenation
// of parts: a subslice of one part when they lie in one, else a copy in
// scratch.
func sliceAt(scratch []byte, parts [][]byte, off int64) []byte {
	o := off
	for _, p := range parts {
		if o >= int64(len(p)) {
			o -= int64(len(p))
			continue
		}
		if o+int64(len(scratch)) <= int64(len(p)) {
			return p[o : o+int64(len(scratch))]
		}
		break
	}
	copyAt(scratch, parts, off)
	return scratch
}

// compress compresses the n bytes of parts as independent zstd frames of
// compressChunk bytes each, on all cores. It returns nil when the result
// would exceed limit bytes.
func compress(ctx context.Context, parts [][]byte, n, limit int64) ([][]byte, int64, error) {
	chunk := int64(compressChunk)
	nchunks := int((n + chunk - 1) / chunk)
	out := make([][]byte, nchunks)
	var next, total atomic.Int64
	var over atomic.Bool
	workers := min(runtime.GOMAXPROCS(0), nchunks)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			var scratch, dst []byte
			for !over.Load() && ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= int64(nchunks) {
					return
				}
				off := i * chunk
				m := min(chunk, n-off)
				if int64(cap(scratch)) < m {
					scratch = make([]byte, m)
				}
				src := sliceAt(scratch[:m], parts, off)
				if dst == nil {
					dst = make([]byte, 0, chunk+chunk/8+1024)
				}
				dst = zenc().EncodeAll(src, dst[:0])
				if total.Add(int64(len(dst))) > limit {
					over.Store(true)
					return
				}
				out[i] = bytes.Clone(dst)
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	if over.Load() {
		return nil, 0, nil
	}
	return out, total.Load(), nil
}

// BlobInfo describes a stored blob.
type BlobInfo struct {
	Size       int64 // length of the blob (uncompressed)
	StoredSize int64 // length of the stored object, header included
	Compressed bool  // stored zstd-compressed
}

// StatBlob reads the header of a stored blob (not its content). A missing
// blob matches fs.ErrNotExist, a damaged header wraps ErrCorrupt.
func (s *Store) StatBlob(ctx context.Context, key string) (BlobInfo, error) {
	if rr, ok := s.b.(RangeReader); ok {
		if err := checkBlobKey(key); err != nil {
			return BlobInfo{}, err
		}
		b, size, err := rr.GetRange(ctx, BlobObjectKey(key), 0, blobHeaderSize)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return BlobInfo{}, fmt.Errorf("datastore: blob %s is not in %s: %w", key, s.b, err)
			}
			return BlobInfo{}, fmt.Errorf("datastore: cannot read blob %s from %s: %w", key, s.b, err)
		}
		if len(b) < blobHeaderSize {
			return BlobInfo{}, s.corrupt(key, fmt.Errorf("it is %d bytes long, shorter than a header (truncated?)", size))
		}
		hdr, err := parseBlobHeader(b, size)
		if err != nil {
			return BlobInfo{}, s.corrupt(key, err)
		}
		return BlobInfo{Size: hdr.size, StoredSize: blobHeaderSize + hdr.payload, Compressed: hdr.codec == codecZstd}, nil
	}
	rc, hdr, err := s.openBlob(ctx, key)
	if err != nil {
		return BlobInfo{}, err
	}
	rc.Close()
	return BlobInfo{Size: hdr.size, StoredSize: blobHeaderSize + hdr.payload, Compressed: hdr.codec == codecZstd}, nil
}

func (s *Store) openBlob(ctx context.Context, key string) (io.ReadCloser, blobHeader, error) {
	if err := checkBlobKey(key); err != nil {
		return nil, blobHeader{}, err
	}
	rc, size, err := s.b.Get(ctx, BlobObjectKey(key))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, blobHeader{}, fmt.Errorf("datastore: blob %s is not in %s: %w", key, s.b, err)
		}
		return nil, blobHeader{}, fmt.Errorf("datastore: cannot read blob %s from %s: %w", key, s.b, err)
	}
	if size < blobHeaderSize {
		rc.Close()
		return nil, blobHeader{}, s.corrupt(key, fmt.Errorf("it is %d bytes long, shorter than a header (truncated?)", size))
	}
	b := make([]byte, blobHeaderSize)
	if _, err := io.ReadFull(rc, b); err != nil {
		rc.Close()
		return nil, blobHeader{}, s.readErr(key, err)
	}
	hdr, err := parseBlobHeader(b, size)
	if err != nil {
		rc.Close()
		return nil, hdr, s.corrupt(key, err)
	}
	return rc, hdr, nil
}

// corrupt is the error for a damaged blob.
func (s *Store) corrupt(key string, why error) error {
	return fmt.Errorf("%w: blob %s in %s is damaged: %v; remove the object %s there, then resume the run from the step that produced it (or run that task again) so that the value is stored again",
		ErrCorrupt, key, s.b, why, BlobObjectKey(key))
}

// readErr classifies an error reading a blob's bytes: an early end is
// damage (the object is shorter than its header says), anything else is
// the backend's.
func (s *Store) readErr(key string, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return s.corrupt(key, errors.New("it ends early (truncated)"))
	}
	return fmt.Errorf("datastore: cannot read blob %s from %s: %w", key, s.b, err)
}

// GetBlob loads the blob with content key key and checks it against the
// key and its stored length. A missing blob matches fs.ErrNotExist; a
// damaged one gives an error wrapping ErrCorrupt that names the key, the
// location and what to do.
func (s *Store) GetBlob(ctx context.Context, key string) ([]byte, error) {
	rc, hdr, err := s.openBlob(ctx, key)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			if cerr := s.collectedErr(ctx, CollectedBlobKey(key), "blob "+key); cerr != nil {
				return nil, cerr
			}
		}
		return nil, err
	}
	defer rc.Close()
	buf := make([]byte, hdr.size)
	hs := newHasher(hdr.size)
	switch hdr.codec {
	case codecRaw:
		err = fill(ctx, buf, rc, hs)
		if err != nil {
			hs.abort()
			return nil, s.readErr(key, err)
		}
	case codecZstd:
		src := &errReader{r: rc}
		dec := decoders.Get().(*zstd.Decoder)
		defer func() {
			dec.Reset(nil)
			decoders.Put(dec)
		}()
		if err := dec.Reset(src); err != nil {
			hs.abort()
			return nil, s.decodeErr(key, src, err)
		}
		err = fill(ctx, buf, dec, hs)
		if err == nil {
			// Nothing may follow the blob's bytes.
			var one [1]byte
			if m, rerr := dec.Read(one[:]); m != 0 || rerr != io.EOF {
				err = errors.New("more data than its header says")
				if m == 0 {
					err = rerr
				}
			}
		}
		if err != nil {
			hs.abort()
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, s.decodeErr(key, src, err)
		}
	}
	if sum := hs.sum(); hex.EncodeToString(sum[:]) != key {
		return nil, s.corrupt(key, errors.New("its content does not match its SHA-256 key"))
	}
	return buf, nil
}

func (s *Store) decodeErr(key string, src *errReader, err error) error {
	if src.err != nil {
		return fmt.Errorf("datastore: cannot read blob %s from %s: %w", key, s.b, src.err)
	}
	return s.corrupt(key, fmt.Errorf("it does not decompress: %v", err))
}

// errReader remembers the first error of r other than io.EOF.
type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF && e.err == nil {
		e.err = err
	}
	return n, err
}

// fill reads len(buf) bytes from r in hashChunk steps, checking ctx, and
// hands each step to hs.
func fill(ctx context.Context, buf []byte, r io.Reader, hs *hasher) error {
	for off := 0; off < len(buf); {
		if err := ctx.Err(); err != nil {
			return err
		}
		end := min(off+hashChunk, len(buf))
		if _, err := io.ReadFull(r, buf[off:end]); err != nil {
			return err
		}
		hs.write(buf[off:end])
		off = end
	}
	return nil
}

// hasher computes SHA-256 beside the reading: in its own goroutine for
// large blobs, inline for small ones.
type hasher struct {
	inline bool
	h      interface {
		io.Writer
		Sum([]byte) []byte
	}
	ch   chan []byte
	done chan [sha256.Size]byte
}

func newHasher(n int64) *hasher {
	hs := &hasher{h: sha256.New()}
	if n <= 2*hashChunk {
		hs.inline = true
		return hs
	}
	hs.ch = make(chan []byte, n/hashChunk+1) // never blocks the reader
	hs.done = make(chan [sha256.Size]byte, 1)
	go func() {
		for b := range hs.ch {
			hs.h.Write(b)
		}
		var sum [sha256.Size]byte
		hs.h.Sum(sum[:0])
		hs.done <- sum
	}()
	return hs
}

func (hs *hasher) write(b []byte) {
	if hs.inline {
		hs.h.Write(b)
	} else {
		hs.ch <- b
	}
}

func (hs *hasher) sum() [sha256.Size]byte {
	if hs.inline {
		var sum [sha256.Size]byte
		hs.h.Sum(sum[:0])
		return sum
	}
	close(hs.ch)
	return <-hs.done
}

// abort ends the hashing goroutine; the sum is not needed.
func (hs *hasher) abort() {
	if !hs.inline {
		close(hs.ch)
	}
}
