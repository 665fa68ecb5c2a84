// Package storetest is the conformance suite of datastore backends: every
// Backend (local directory, S3, ...) passes Run, which checks the Backend
// contract and then the Store (blobs, task records) over that backend.
package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"stepwise.dev/stepwise/internal/datastore"
)

// Run runs the conformance suite; newBackend returns an empty backend
// for each subtest.
func Run(t *testing.T, newBackend func(t *testing.T) datastore.Backend) {
	t.Run("Backend", func(t *testing.T) { runBackend(t, newBackend) })
	t.Run("Store", func(t *testing.T) {
		runStore(t, func(t *testing.T) *datastore.Store { return datastore.New(newBackend(t)) })
	})
}

// RandomBytes returns n pseudo-random (incompressible) bytes, the same for
// the same seed.
func RandomBytes(n int, seed uint64) []byte {
	var s [32]byte
	s[0], s[1] = byte(seed), byte(seed>>8)
	r := rand.NewChaCha8(s)
	b := make([]byte, n)
	r.Read(b)
	return b
}

// CompressibleBytes returns n bytes of CSV-like text that zstd shrinks
// about threefold, the same for the same seed.
func CompressibleBytes(n int, seed uint64) []byte {
	words := []string{"alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa", "lambda", "mu"}
	r := rand.New(rand.NewPCG(seed, 7))
	b := make([]byte, 0, n+64)
	for i := 0; len(b) < n; i++ {
		b = fmt.Appendf(b, "%d,%s,%.3f\n", i, words[r.IntN(len(words))], r.Float64()*100)
	}
	return b[:n]
}

func put(t *testing.T, b datastore.Backend, key string, data []byte) {
	t.Helper()
	if err := b.Put(context.Background(), key, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatalf("Put(%s): %v", key, err)
	}
}

func get(t *testing.T, b datastore.Backend, key string) []byte {
	t.Helper()
	rc, size, err := b.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("Get(%s): %v", key, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("Get(%s): reading: %v", key, err)
	}
	if int64(len(data)) != size {
		t.Fatalf("Get(%s): size %d, read %d bytes", key, size, len(data))
	}
	return data
}

// absent checks that nothing is visible under key.
func absent(t *testing.T, b datastore.Backend, key string) {
	t.Helper()
	ctx := context.Background()
	if ok, err := b.Exists(ctx, key); err != nil || ok {
		t.Errorf("Exists(%s) = %v, %v; want false, nil", key, ok, err)
	}
	if rc, _, err := b.Get(ctx, key); !errors.Is(err, fs.ErrNotExist) {
		if rc != nil {
			rc.Close()
		}
		t.Errorf("Get(%s) error = %v; want one matching fs.ErrNotExist", key, err)
	}
	if keys, err := b.List(ctx, ""); err != nil || slices.Contains(keys, key) {
		t.Errorf("List(\"\") = %q, %v; want no %s", keys, err, key)
	}
}

// failingReader yields n bytes of data, then fails.
type failingReader struct {
	data []byte
	n    int
	err  error
}

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, r.err
	}
	c := copy(p[:min(len(p), r.n)], r.data)
	r.data, r.n = r.data[c:], r.n-c
	return c, nil
}

// hookReader calls hook once, after n bytes were read from r.
type hookReader struct {
	r     io.Reader
	n     int
	hook  func()
	fired bool
}

func (h *hookReader) Read(p []byte) (int, error) {
	if !h.fired {
		if h.n == 0 {
			h.fired = true
			h.hook()
		} else if len(p) > h.n {
			p = p[:h.n]
		}
	}
	m, err := h.r.Read(p)
	if !h.fired {
		h.n -= m
	}
	return m, err
}

func runBackend(t *testing.T, newBackend func(t *testing.T) datastore.Backend) {
	ctx := context.Background()

	t.Run("RoundTrip", func(t *testing.T) {
		b := newBackend(t)
		for _, tc := range []struct {
			name string
			key  string
			data []byte
		}{
			{"empty", "rt/empty", []byte{}},
			{"one byte", "rt/one", []byte{42}},
			{"16MiB", "rt/deep/er/big", RandomBytes(16<<20, 1)},
		} {
			t.Run(tc.name, func(t *testing.T) {
				put(t, b, tc.key, tc.data)
				if got := get(t, b, tc.key); !bytes.Equal(got, tc.data) {
					t.Fatalf("Get returned %d bytes, not the %d put", len(got), len(tc.data))
				}
				if ok, err := b.Exists(ctx, tc.key); err != nil || !ok {
					t.Fatalf("Exists = %v, %v; want true", ok, err)
				}
			})
		}
	})

	t.Run("Missing", func(t *testing.T) {
		b := newBackend(t)
		absent(t, b, "no/such/key")
		put(t, b, "some/key", []byte("x"))
		absent(t, b, "some/key2")
		absent(t, b, "some") // a "directory" is no object
		absent(t, b, "some/key/below")
		if keys, err := b.List(ctx, "nothing/here/"); err != nil || len(keys) != 0 {
			t.Fatalf("List of an empty prefix = %q, %v; want none", keys, err)
		}
	})

	t.Run("List", func(t *testing.T) {
		b := newBackend(t)
		all := []string{"a/b/d/e", "a/b/c", "a/bc", "a/b.x", "a/x", "ab", "b/y", "a/b/d/f/g"}
		for _, k := range all {
			put(t, b, k, []byte(k))
		}
		sorted := slices.Sorted(slices.Values(all))
		for _, tc := range []struct {
			prefix string
			want   []string
		}{
			{"", sorted},
			{"a/b/", []string{"a/b/c", "a/b/d/e", "a/b/d/f/g"}},
			{"a/b", []string{"a/b.x", "a/b/c", "a/b/d/e", "a/b/d/f/g", "a/bc"}},
			{"a/b/d/", []string{"a/b/d/e", "a/b/d/f/g"}},
			{"a", []string{"a/b.x", "a/b/c", "a/b/d/e", "a/b/d/f/g", "a/bc", "a/x", "ab"}},
			{"b/", []string{"b/y"}},
			{"b/y", []string{"b/y"}},
			{"c/", nil},
			{"a/b/c/", nil},
		} {
			t.Run(fmt.Sprintf("%q", tc.prefix), func(t *testing.T) {
				got, err := b.List(ctx, tc.prefix)
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != 0 || len(tc.want) != 0 {
					if !reflect.DeepEqual(got, tc.want) {
						t.Fatalf("List(%q) = %q, want %q", tc.prefix, got, tc.want)
					}
				}
			})
		}
	})

	t.Run("ListDirs", func(t *testing.T) {
		b := newBackend(t)
		for _, k := range []string{"runs/A/1/run.json", "runs/A/1/s/2/task.json", "runs/A/22/run.json", "runs/B/3/x", "runs/top", "rx/y", "blobs/ab/k"} {
			put(t, b, k, []byte(k))
		}
		for _, tc := range []struct {
			prefix string
			want   []string
		}{
			{"", []string{"blobs", "runs", "rx"}},
			{"runs/", []string{"A", "B"}},
			{"runs/A/", []string{"1", "22"}},
			{"runs/A/1/", []string{"s"}},
			{"runs/A/22/", nil},
			{"runs/C/", nil},
			{"nothing/", nil},
		} {
			t.Run(fmt.Sprintf("%q", tc.prefix), func(t *testing.T) {
				got, err := b.ListDirs(ctx, tc.prefix)
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != 0 || len(tc.want) != 0 {
					if !reflect.DeepEqual(got, tc.want) {
						t.Fatalf("ListDirs(%q) = %q, want %q", tc.prefix, got, tc.want)
					}
				}
			})
		}
	})

	t.Run("StatAndListInfo", func(t *testing.T) {
		b := newBackend(t)
		before := time.Now().Add(-2 * time.Second) // S3 keeps whole seconds
		objs := map[string][]byte{"info/a": []byte("12345"), "info/b/c": {}, "info/b/d": RandomBytes(6<<20, 5), "other": []byte("x")}
		for k, v := range objs {
			put(t, b, k, v)
		}
		after := time.Now().Add(2 * time.Second)
		check := func(o datastore.ObjectInfo) {
			t.Helper()
			if o.Size != int64(len(objs[o.Key])) || o.ModTime.Before(before) || o.ModTime.After(after) {
				t.Errorf("%s: size %d, modified %s; want %d, between %s and %s", o.Key, o.Size, o.ModTime, len(objs[o.Key]), before, after)
			}
		}
		for k := range objs {
			o, err := b.Stat(ctx, k)
			if err != nil || o.Key != k {
				t.Fatalf("Stat(%s) = %+v, %v", k, o, err)
			}
			check(o)
		}
		if _, err := b.Stat(ctx, "info/none"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Stat of a missing key: %v; want fs.ErrNotExist", err)
		}
		if _, err := b.Stat(ctx, "info/b"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Stat of a folder: %v; want fs.ErrNotExist", err)
		}
		infos, err := b.ListInfo(ctx, "info/")
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, o := range infos {
			keys = append(keys, o.Key)
			check(o)
		}
		if !reflect.DeepEqual(keys, []string{"info/a", "info/b/c", "info/b/d"}) {
			t.Fatalf("ListInfo(info/) keys = %q", keys)
		}
	})

	t.Run("Delete", func(t *testing.T) {
		b := newBackend(t)
		for _, k := range []string{"del/a/1", "del/a/2", "del/b"} {
			put(t, b, k, []byte(k))
		}
		if err := b.Delete(ctx, "del/a/1"); err != nil {
			t.Fatal(err)
		}
		absent(t, b, "del/a/1")
		if err := b.Delete(ctx, "del/a/1"); err != nil {
			t.Fatalf("Delete of a deleted key: %v", err)
		}
		if err := b.Delete(ctx, "never/was"); err != nil {
			t.Fatalf("Delete of a missing key: %v", err)
		}
		if keys, err := b.List(ctx, ""); err != nil || !reflect.DeepEqual(keys, []string{"del/a/2", "del/b"}) {
			t.Fatalf("List after Delete = %q, %v", keys, err)
		}
		// The last object of a folder: the folder may go, and a later put
		// below it works.
		for _, k := range []string{"del/a/2", "del/b"} {
			if err := b.Delete(ctx, k); err != nil {
				t.Fatal(err)
			}
		}
		if keys, err := b.List(ctx, ""); err != nil || len(keys) != 0 {
			t.Fatalf("List after deleting all = %q, %v", keys, err)
		}
		put(t, b, "del/a/3", []byte("3"))
		if got := get(t, b, "del/a/3"); string(got) != "3" {
			t.Fatalf("Get after a put below a deleted folder = %q", got)
		}
	})

	t.Run("Touch", func(t *testing.T) {
		b := newBackend(t)
		tb, ok := b.(datastore.Toucher)
		if !ok {
			t.Logf("%T cannot touch: PutBlob writes blobs again instead", b)
			return
		}
		put(t, b, "touch/k", []byte("value"))
		first, err := b.Stat(ctx, "touch/k")
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(1100 * time.Millisecond) // S3 keeps whole seconds
		if err := tb.Touch(ctx, "touch/k"); err != nil {
			t.Fatal(err)
		}
		second, err := b.Stat(ctx, "touch/k")
		if err != nil {
			t.Fatal(err)
		}
		if !second.ModTime.After(first.ModTime) {
			t.Errorf("Touch left the modification time at %s (was %s)", second.ModTime, first.ModTime)
		}
		if got := get(t, b, "touch/k"); string(got) != "value" {
			t.Errorf("after Touch Get = %q", got)
		}
		if err := tb.Touch(ctx, "touch/none"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Touch of a missing key: %v; want fs.ErrNotExist", err)
		}
	})

	t.Run("Overwrite", func(t *testing.T) {
		b := newBackend(t)
		put(t, b, "k", []byte("first value"))
		put(t, b, "k", []byte("second"))
		if got := get(t, b, "k"); string(got) != "second" {
			t.Fatalf("after overwrite Get = %q", got)
		}
		if keys, _ := b.List(ctx, ""); !reflect.DeepEqual(keys, []string{"k"}) {
			t.Fatalf("List = %q, want [k]", keys)
		}
	})

	t.Run("ExtraData", func(t *testing.T) {
		// Put stores size bytes, even when r has more.
		b := newBackend(t)
		if err := b.Put(ctx, "k", strings.NewReader("0123456789"), 4); err != nil {
			t.Fatal(err)
		}
		if got := get(t, b, "k"); string(got) != "0123" {
			t.Fatalf("Get = %q, want 0123", got)
		}
	})

	t.Run("InvisibleWhileWriting", func(t *testing.T) {
		b := newBackend(t)
		data := RandomBytes(1<<20, 2)
		reached, release := make(chan struct{}), make(chan struct{})
		r := &hookReader{r: bytes.NewReader(data), n: len(data) / 2, hook: func() {
			close(reached)
			<-release
		}}
		done := make(chan error, 1)
		go func() { done <- b.Put(ctx, "w/obj", r, int64(len(data))) }()
		select {
		case <-reached:
		case err := <-done:
			t.Fatalf("Put ended before reading all the data: %v", err)
		}
		absent(t, b, "w/obj")
		if keys, err := b.List(ctx, "w/"); err != nil || len(keys) != 0 {
			t.Errorf("List during a put = %q, %v; want nothing", keys, err)
		}
		close(release)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if got := get(t, b, "w/obj"); !bytes.Equal(got, data) {
			t.Fatal("wrong data after the put")
		}
		if keys, err := b.List(ctx, "w/"); err != nil || !reflect.DeepEqual(keys, []string{"w/obj"}) {
			t.Fatalf("List after a put = %q, %v", keys, err)
		}
	})

	t.Run("Atomic", func(t *testing.T) {
		// Readers racing a writer that replaces a large object see a whole
		// version or nothing. A read may fail (an object replaced while
		// read can be an error), but never succeed with wrong bytes.
		b := newBackend(t)
		const size = 16 << 20
		versions := make([][]byte, 3)
		for i := range versions {
			versions[i] = RandomBytes(size, uint64(10+i))
		}
		var done atomic.Bool
		var reads, whole, failed atomic.Int64
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for range 2 {
			wg.Go(func() {
				for !done.Load() {
					reads.Add(1)
					rc, n, err := b.Get(ctx, "atomic/obj")
					if errors.Is(err, fs.ErrNotExist) {
						continue
					}
					if err != nil {
						failed.Add(1)
						continue
					}
					data, err := io.ReadAll(rc)
					rc.Close()
					if err != nil {
						failed.Add(1)
						continue
					}
					if n != size || !slices.ContainsFunc(versions, func(v []byte) bool { return bytes.Equal(v, data) }) {
						errs <- fmt.Errorf("a reader saw %d bytes (size %d) that are no whole version", len(data), n)
						return
					}
					whole.Add(1)
				}
			})
		}
		for i := range 6 {
			v := versions[i%len(versions)]
			if err := b.Put(ctx, "atomic/obj", bytes.NewReader(v), int64(len(v))); err != nil {
				t.Error(err)
			}
		}
		for start := time.Now(); whole.Load() == 0 && time.Since(start) < 10*time.Second; {
			time.Sleep(time.Millisecond)
		}
		done.Store(true)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if whole.Load() == 0 {
			t.Error("no read saw the object")
		}
		if got := get(t, b, "atomic/obj"); !bytes.Equal(got, versions[5%len(versions)]) {
			t.Error("after the puts, Get does not return the last version")
		}
		t.Logf("%d reads: %d whole, %d failed, the rest found nothing", reads.Load(), whole.Load(), failed.Load())
	})

	t.Run("FailingReader", func(t *testing.T) {
		b := newBackend(t)
		data := RandomBytes(3<<20, 3)
		for _, tc := range []struct {
			name string
			r    io.Reader
		}{
			{"error midway", &failingReader{data: data, n: len(data) / 2, err: errors.New("disk on fire")}},
			{"error at once", &failingReader{data: data, n: 0, err: errors.New("disk on fire")}},
			{"short", bytes.NewReader(data[:len(data)-1])},
			{"empty", strings.NewReader("")},
		} {
			t.Run(tc.name, func(t *testing.T) {
				if err := b.Put(ctx, "fail/obj", tc.r, int64(len(data))); err == nil {
					t.Fatal("Put succeeded")
				}
				absent(t, b, "fail/obj")
				if keys, err := b.List(ctx, "fail/"); err != nil || len(keys) != 0 {
					t.Fatalf("List = %q, %v; want nothing", keys, err)
				}
			})
		}
		t.Run("keeps old value", func(t *testing.T) {
			put(t, b, "fail/old", []byte("old"))
			r := &failingReader{data: data, n: 1000, err: errors.New("disk on fire")}
			if err := b.Put(ctx, "fail/old", r, int64(len(data))); err == nil {
				t.Fatal("Put succeeded")
			}
			if got := get(t, b, "fail/old"); string(got) != "old" {
				t.Fatalf("Get = %d bytes, want the old value", len(got))
			}
		})
	})

	t.Run("Canceled", func(t *testing.T) {
		b := newBackend(t)
		data := RandomBytes(20<<20, 4)
		t.Run("before", func(t *testing.T) {
			cctx, cancel := context.WithCancel(ctx)
			cancel()
			if err := b.Put(cctx, "cancel/a", bytes.NewReader(data), int64(len(data))); err == nil {
				t.Fatal("Put with a canceled context succeeded")
			}
			absent(t, b, "cancel/a")
		})
		t.Run("midway", func(t *testing.T) {
			cctx, cancel := context.WithCancel(ctx)
			defer cancel()
			r := &hookReader{r: bytes.NewReader(data), n: len(data) / 4, hook: cancel}
			if err := b.Put(cctx, "cancel/b", r, int64(len(data))); err == nil {
				t.Fatal("Put whose context was canceled midway succeeded")
			}
			absent(t, b, "cancel/b")
		})
	})
}

func runStore(t *testing.T, newStore func(t *testing.T) *datastore.Store) {
	ctx := context.Background()
	sum := func(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

	t.Run("BlobRoundTrip", func(t *testing.T) {
		s := newStore(t)
		for _, tc := range []struct {
			name       string
			data       []byte
			compressed bool
		}{
			{"empty", []byte{}, false},
			{"one byte", []byte{7}, false},
			{"small text", []byte("hello, hello, hello, hello, hello, hello, hello, hello, hello"), false},
			{"zeros 1MiB", make([]byte, 1<<20), true},
			{"random 5MiB", RandomBytes(5<<20, 5), false},
			{"compressible 9MiB", CompressibleBytes(9<<20, 5), true},
			{"compressible head, random tail", append(CompressibleBytes(256<<10, 6), RandomBytes(6<<20, 6)...), false},
		} {
			t.Run(tc.name, func(t *testing.T) {
				// Split the data in uneven parts.
				var parts [][]byte
				for rest := tc.data; len(rest) > 0; {
					n := min(len(rest), 1+len(rest)/3)
					parts, rest = append(parts, rest[:n]), rest[n:]
				}
				key, written, err := s.PutBlob(ctx, parts)
				if err != nil {
					t.Fatal(err)
				}
				if !written || key != sum(tc.data) {
					t.Fatalf("PutBlob = %s, %v; want %s, true", key, written, sum(tc.data))
				}
				got, err := s.GetBlob(ctx, key)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, tc.data) {
					t.Fatalf("GetBlob returned %d bytes that differ from the %d put", len(got), len(tc.data))
				}
				info, err := s.StatBlob(ctx, key)
				if err != nil {
					t.Fatal(err)
				}
				_, stored, err := s.Backend().Get(ctx, datastore.BlobObjectKey(key))
				if err != nil {
					t.Fatal(err)
				}
				if info.Size != int64(len(tc.data)) || info.StoredSize != stored {
					t.Fatalf("StatBlob = %+v; blob is %d bytes, object %d", info, len(tc.data), stored)
				}
				n := int64(len(tc.data))
				switch {
				case tc.compressed && (!info.Compressed || float64(stored) > 0.9*float64(n)):
					t.Fatalf("compressible data stored in %d bytes, compressed %v; want < 90%% of %d", stored, info.Compressed, n)
				case !tc.compressed && (info.Compressed || stored < n):
					t.Fatalf("data stored in %d bytes, compressed %v; want raw", stored, info.Compressed)
				}
			})
		}
	})

	t.Run("Dedup", func(t *testing.T) {
		s := newStore(t)
		data := CompressibleBytes(1<<20, 8)
		k1, w1, err := s.PutBlob(ctx, [][]byte{data})
		if err != nil || !w1 {
			t.Fatalf("first PutBlob = %v, %v", w1, err)
		}
		k2, w2, err := s.PutBlob(ctx, [][]byte{data[:100], data[100:500], nil, data[500:]})
		if err != nil || w2 || k2 != k1 {
			t.Fatalf("second PutBlob = %s, %v, %v; want %s, false, nil", k2, w2, err, k1)
		}
		keys, err := s.Backend().List(ctx, "blobs/")
		if err != nil || !reflect.DeepEqual(keys, []string{datastore.BlobObjectKey(k1)}) {
			t.Fatalf("List(blobs/) = %q, %v; want one object", keys, err)
		}
	})

	t.Run("ConcurrentPutBlob", func(t *testing.T) {
		s := newStore(t)
		data := RandomBytes(2<<20, 9)
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				if _, _, err := s.PutBlob(ctx, [][]byte{data}); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		got, err := s.GetBlob(ctx, sum(data))
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("GetBlob after concurrent puts: %v", err)
		}
	})

	t.Run("MissingBlob", func(t *testing.T) {
		s := newStore(t)
		if _, err := s.GetBlob(ctx, sum([]byte("never stored"))); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("GetBlob of a missing blob: %v; want fs.ErrNotExist", err)
		}
		for _, key := range []string{"", "abc", "../../etc/passwd", strings.ToUpper(sum(nil))} {
			if _, err := s.GetBlob(ctx, key); err == nil {
				t.Errorf("GetBlob(%q) succeeded", key)
			}
		}
	})

	// damage stores the result of f(object) in place of a blob's object.
	damage := func(t *testing.T, s *datastore.Store, key string, f func([]byte) []byte) {
		t.Helper()
		obj := datastore.BlobObjectKey(key)
		put(t, s.Backend(), obj, f(get(t, s.Backend(), obj)))
	}
	checkCorrupt := func(t *testing.T, s *datastore.Store, key string) {
		t.Helper()
		_, err := s.GetBlob(ctx, key)
		if !errors.Is(err, datastore.ErrCorrupt) {
			t.Fatalf("GetBlob of a damaged blob: %v; want ErrCorrupt", err)
		}
		for _, want := range []string{key, s.Backend().String(), "resume"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not mention %q", err, want)
			}
		}
	}
	blobs := []struct {
		name string
		data []byte
	}{
		{"raw", RandomBytes(3<<20, 11)},
		{"compressed", CompressibleBytes(3<<20, 11)},
		{"small", []byte("a small value")},
	}

	t.Run("CorruptBlob", func(t *testing.T) {
		s := newStore(t)
		for _, bl := range blobs {
			key, _, err := s.PutBlob(ctx, [][]byte{bl.data})
			if err != nil {
				t.Fatal(err)
			}
			orig := get(t, s.Backend(), datastore.BlobObjectKey(key))
			for _, pos := range []int{0, 5, 9, 20, 27, 28, len(orig) / 2, len(orig) - 1} {
				t.Run(fmt.Sprintf("%s/byte%d", bl.name, pos), func(t *testing.T) {
					damage(t, s, key, func(b []byte) []byte {
						b = bytes.Clone(orig)
						b[pos] ^= 0x10
						return b
					})
					checkCorrupt(t, s, key)
				})
			}
		}
	})

	t.Run("TruncatedBlob", func(t *testing.T) {
		s := newStore(t)
		for _, bl := range blobs {
			key, _, err := s.PutBlob(ctx, [][]byte{bl.data})
			if err != nil {
				t.Fatal(err)
			}
			orig := get(t, s.Backend(), datastore.BlobObjectKey(key))
			for _, n := range []int{0, 10, 28, len(orig) / 2, len(orig) - 1} {
				t.Run(fmt.Sprintf("%s/to%d", bl.name, n), func(t *testing.T) {
					damage(t, s, key, func(b []byte) []byte { return orig[:n] })
					checkCorrupt(t, s, key)
					// Putting the value again repairs it.
					if _, written, err := s.PutBlob(ctx, [][]byte{bl.data}); err != nil || !written {
						t.Fatalf("PutBlob over a truncated blob = %v, %v; want it written", written, err)
					}
					if got, err := s.GetBlob(ctx, key); err != nil || !bytes.Equal(got, bl.data) {
						t.Fatalf("GetBlob after the repair: %v", err)
					}
				})
			}
			t.Run(bl.name+"/extended", func(t *testing.T) {
				damage(t, s, key, func(b []byte) []byte { return append(bytes.Clone(orig), 0) })
				checkCorrupt(t, s, key)
			})
		}
	})

	rec := &datastore.TaskRecord{
		Path:    datastore.TaskPath{Flow: "TrainFlow", Run: "1712", Step: "fit", Task: "7"},
		Attempt: 2,
		Artifacts: []datastore.ArtifactRef{
			{Name: "Model", Key: sum([]byte("m")), Type: "*main.Model", Size: 1 << 40},
			{Name: "Alpha", Key: sum([]byte("a")), Type: "float64", Size: 9},
			{Name: "Labels", Key: sum([]byte("l")), Type: "[]string", Size: 0},
		},
		Foreach: []datastore.ForeachFrame{{Step: "start", Index: 3, Count: 10}, {Step: "split", Index: 0, Count: 2}},
	}

	t.Run("TaskRoundTrip", func(t *testing.T) {
		s := newStore(t)
		if _, err := s.GetTask(ctx, rec.Path); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("GetTask before PutTask: %v; want fs.ErrNotExist", err)
		}
		orig := *rec
		orig.Artifacts = slices.Clone(rec.Artifacts)
		if err := s.PutTask(ctx, rec); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(*rec, orig) {
			t.Fatal("PutTask modified its argument")
		}
		got, err := s.GetTask(ctx, rec.Path)
		if err != nil {
			t.Fatal(err)
		}
		want := orig
		want.Artifacts = slices.Clone(orig.Artifacts)
		slices.SortFunc(want.Artifacts, func(a, b datastore.ArtifactRef) int { return strings.Compare(a.Name, b.Name) })
		if !reflect.DeepEqual(*got, want) {
			t.Fatalf("GetTask = %+v\nwant %+v", *got, want)
		}
		keys, err := s.Backend().List(ctx, "runs/")
		if err != nil || !reflect.DeepEqual(keys, []string{"runs/TrainFlow/1712/fit/7/task.json"}) {
			t.Fatalf("List(runs/) = %q, %v", keys, err)
		}
		// A later attempt replaces the record.
		next := want
		next.Attempt, next.Artifacts, next.Foreach = 3, []datastore.ArtifactRef{}, []datastore.ForeachFrame{}
		if err := s.PutTask(ctx, &next); err != nil {
			t.Fatal(err)
		}
		if got, err := s.GetTask(ctx, rec.Path); err != nil || !reflect.DeepEqual(*got, next) {
			t.Fatalf("GetTask after a new attempt = %+v, %v; want %+v", got, err, next)
		}
	})

	t.Run("InvalidTask", func(t *testing.T) {
		s := newStore(t)
		for _, tc := range []struct {
			name string
			edit func(r *datastore.TaskRecord)
		}{
			{"empty step", func(r *datastore.TaskRecord) { r.Path.Step = "" }},
			{"slash in run", func(r *datastore.TaskRecord) { r.Path.Run = "a/b" }},
			{"dot-dot task", func(r *datastore.TaskRecord) { r.Path.Task = ".." }},
			{"bad key", func(r *datastore.TaskRecord) { r.Artifacts[0].Key = "xyz" }},
			{"twice", func(r *datastore.TaskRecord) { r.Artifacts[1].Name = r.Artifacts[0].Name }},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := *rec
				r.Artifacts = slices.Clone(rec.Artifacts)
				tc.edit(&r)
				if err := s.PutTask(ctx, &r); err == nil {
					t.Fatal("PutTask succeeded")
				}
			})
		}
	})

	t.Run("CorruptTask", func(t *testing.T) {
		s := newStore(t)
		if err := s.PutTask(ctx, rec); err != nil {
			t.Fatal(err)
		}
		obj := datastore.TaskObjectKey(rec.Path)
		orig := get(t, s.Backend(), obj)
		check := func(t *testing.T, damaged []byte) {
			t.Helper()
			put(t, s.Backend(), obj, damaged)
			_, err := s.GetTask(ctx, rec.Path)
			if !errors.Is(err, datastore.ErrCorrupt) {
				t.Fatalf("GetTask of a damaged record: %v; want ErrCorrupt", err)
			}
			if !strings.Contains(err.Error(), rec.Path.String()) || !strings.Contains(err.Error(), s.Backend().String()) {
				t.Errorf("error %q does not name the task and the location", err)
			}
		}
		for pos := 0; pos < len(orig); pos += 3 {
			t.Run(fmt.Sprintf("byte%d", pos), func(t *testing.T) {
				b := bytes.Clone(orig)
				b[pos] ^= 0x01
				check(t, b)
			})
		}
		for _, n := range []int{0, 1, len(orig) / 2, len(orig) - 3} {
			t.Run(fmt.Sprintf("truncated%d", n), func(t *testing.T) { check(t, orig[:n]) })
		}
		t.Run("other task", func(t *testing.T) {
			other := *rec
			other.Path.Task = "8"
			if err := s.PutTask(ctx, &other); err != nil {
				t.Fatal(err)
			}
			check(t, get(t, s.Backend(), datastore.TaskObjectKey(other.Path)))
		})
	})

	t.Run("RunRecords", func(t *testing.T) { runRecords(t, newStore(t)) })
	t.Run("Cards", func(t *testing.T) { runCards(t, newStore(t)) })

	t.Run("Collected", func(t *testing.T) {
		s := newStore(t)
		kept, _, err := s.PutBlob(ctx, [][]byte{[]byte("kept")})
		if err != nil {
			t.Fatal(err)
		}
		gone, _, err := s.PutBlob(ctx, [][]byte{[]byte("gone")})
		if err != nil {
			t.Fatal(err)
		}
		when := time.Date(2026, 4, 1, 9, 30, 0, 0, time.Local)
		if err := s.MarkBlobCollected(ctx, gone, datastore.Collected{Collected: when, Reason: "no run kept by the retention refers to it"}); err != nil {
			t.Fatal(err)
		}
		if err := s.Backend().Delete(ctx, datastore.BlobObjectKey(gone)); err != nil {
			t.Fatal(err)
		}
		_, err = s.GetBlob(ctx, gone)
		if !errors.Is(err, datastore.ErrCollected) || !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("GetBlob of a collected blob: %v; want ErrCollected", err)
		}
		for _, want := range []string{gone, "collected by gc on 2026-04-01 09:30", "no run kept by the retention"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error lacks %q: %v", want, err)
			}
		}
		if v, err := s.GetBlob(ctx, kept); err != nil || string(v) != "kept" {
			t.Errorf("GetBlob of the kept blob = %q, %v", v, err)
		}
		if _, err := s.GetBlob(ctx, sum([]byte("never"))); !errors.Is(err, fs.ErrNotExist) || errors.Is(err, datastore.ErrCollected) {
			t.Errorf("GetBlob of a blob never stored: %v; want fs.ErrNotExist only", err)
		}

		p := datastore.TaskPath{Flow: "F", Run: "1", Step: "start", Task: "0"}
		if out, err := s.ReadLog(ctx, p, 0, "stdout"); err != nil || len(out) != 0 {
			t.Errorf("ReadLog of no output = %q, %v", out, err)
		}
		chunk := datastore.LogChunkKey(datastore.LogPrefix(p, 0, "stdout"), 0)
		put(t, s.Backend(), chunk, []byte("hello\n"))
		if out, err := s.ReadLog(ctx, p, 0, "stdout"); err != nil || string(out) != "hello\n" {
			t.Errorf("ReadLog = %q, %v", out, err)
		}
		if err := s.MarkLogsCollected(ctx, "F", "1", datastore.Collected{Collected: when, Reason: "the run is older than the retention"}); err != nil {
			t.Fatal(err)
		}
		if err := s.Backend().Delete(ctx, chunk); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ReadLog(ctx, p, 0, "stdout"); !errors.Is(err, datastore.ErrCollected) || !strings.Contains(err.Error(), "output of run F/1 was collected by gc") {
			t.Errorf("ReadLog of collected logs: %v", err)
		}
	})
}

func runRecords(t *testing.T, s *datastore.Store) {
	ctx := context.Background()
	started := time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)
	rec := &datastore.RunRecord{
		Flow: "Train", Run: "1764340315123456", Params: map[string]string{"lr": "0.1"}, Started: started, MaxSplits: 100,
		User: "ann", SystemTags: []string{"user:ann", "runtime:local"}, Tags: []string{"nightly"},
		Code:   datastore.Code{BinarySHA256: strings.Repeat("ab", 32), GitCommit: "c0ffee", GitDirty: true},
		Origin: "1764340300000000",
	}
	if _, err := s.GetRun(ctx, rec.Flow, rec.Run); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("GetRun before PutRun: %v; want fs.ErrNotExist", err)
	}
	if err := s.PutRun(ctx, rec); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetRun(ctx, rec.Flow, rec.Run)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, rec) {
		t.Fatalf("GetRun = %+v\nwant %+v", got, rec)
	}

	// A record as the launcher wrote it before RunRecord existed.
	old := `{"flow":"Train","run":"1700000000000001","params":{"n":"5"},"started":"2026-02-01T10:00:00.5Z","max_splits":10000}`
	put(t, s.Backend(), datastore.RunObjectKey("Train", "1700000000000001"), []byte(old))
	got, err = s.GetRun(ctx, "Train", "1700000000000001")
	if err != nil {
		t.Fatal(err)
	}
	want := &datastore.RunRecord{Flow: "Train", Run: "1700000000000001", Params: map[string]string{"n": "5"},
		Started: time.Date(2026, 2, 1, 10, 0, 0, 5e8, time.UTC), MaxSplits: 10000}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("GetRun of an old record = %+v\nwant %+v", got, want)
	}
	// A task of a run that has no run record yet.
	if err := s.PutTask(ctx, &datastore.TaskRecord{Path: datastore.TaskPath{Flow: "Other", Run: "5", Step: "start", Task: "1"}}); err != nil {
		t.Fatal(err)
	}
	if flows, err := s.ListFlows(ctx); err != nil || !reflect.DeepEqual(flows, []string{"Other", "Train"}) {
		t.Fatalf("ListFlows = %q, %v", flows, err)
	}
	if ids, err := s.ListRunIDs(ctx, "Train"); err != nil || !reflect.DeepEqual(ids, []string{"1700000000000001", "1764340315123456"}) {
		t.Fatalf("ListRunIDs(Train) = %q, %v", ids, err)
	}
	if ids, err := s.ListRunIDs(ctx, "Other"); err != nil || !reflect.DeepEqual(ids, []string{"5"}) {
		t.Fatalf("ListRunIDs(Other) = %q, %v", ids, err)
	}
	if ids, err := s.ListRunIDs(ctx, "None"); err != nil || len(ids) != 0 {
		t.Fatalf("ListRunIDs(None) = %q, %v", ids, err)
	}

	// The end.
	if _, err := s.GetRunEnd(ctx, rec.Flow, rec.Run); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("GetRunEnd before the end: %v; want fs.ErrNotExist", err)
	}
	end := &datastore.RunEnd{Flow: rec.Flow, Run: rec.Run, Status: "succeeded", Ended: started.Add(time.Minute)}
	if err := s.PutRunEnd(ctx, end); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetRunEnd(ctx, rec.Flow, rec.Run); err != nil || !reflect.DeepEqual(got, end) {
		t.Fatalf("GetRunEnd = %+v, %v; want %+v", got, err, end)
	}

	// Tags after a change.
	if _, err := s.GetRunTags(ctx, rec.Flow, rec.Run); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("GetRunTags before a change: %v; want fs.ErrNotExist", err)
	}
	if err := s.PutRunTags(ctx, &datastore.RunTags{Flow: rec.Flow, Run: rec.Run, Tags: []string{"b", "a", "b"}, Updated: started}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetRunTags(ctx, rec.Flow, rec.Run); err != nil || !reflect.DeepEqual(got.Tags, []string{"a", "b"}) || !got.Updated.Equal(started) {
		t.Fatalf("GetRunTags = %+v, %v", got, err)
	}

	// Bad input is refused, and damage is reported.
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"slash in run", s.PutRun(ctx, &datastore.RunRecord{Flow: "F", Run: "a/b", Started: started})},
		{"no start", s.PutRun(ctx, &datastore.RunRecord{Flow: "F", Run: "1"})},
		{"dot-dot flow", s.PutRun(ctx, &datastore.RunRecord{Flow: "..", Run: "1", Started: started})},
		{"bad status", s.PutRunEnd(ctx, &datastore.RunEnd{Flow: "F", Run: "1", Status: "done", Ended: started})},
		{"no end time", s.PutRunEnd(ctx, &datastore.RunEnd{Flow: "F", Run: "1", Status: "failed"})},
	} {
		if tc.err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
	for _, damaged := range []string{"", "{", `{"flow":"Train","run":"999","started":"2026-01-01T00:00:00Z"}`, `{"flow":"Train","run":1}`} {
		put(t, s.Backend(), datastore.RunObjectKey("Train", "1764340315123456"), []byte(damaged))
		if _, err := s.GetRun(ctx, "Train", "1764340315123456"); !errors.Is(err, datastore.ErrCorrupt) || !strings.Contains(err.Error(), "Train/1764340315123456") {
			t.Errorf("GetRun of %q: %v; want ErrCorrupt naming the run", damaged, err)
		}
	}
	put(t, s.Backend(), datastore.RunObjectKey("Train", "1764340315123456"), []byte(`{"format":99,"flow":"Train"}`))
	if _, err := s.GetRun(ctx, "Train", "1764340315123456"); err == nil || !strings.Contains(err.Error(), "upgrade") {
		t.Errorf("GetRun of a newer format: %v", err)
	}
}

// runCards saves versions of cards, as a progress card and its final
// save do, and reads them back; and reads a card saved before versions
// were kept.
func runCards(t *testing.T, s *datastore.Store) {
	ctx := context.Background()
	sum := func(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
	p := datastore.TaskPath{Flow: "F", Run: "1", Step: "train", Task: "0"}
	body := func(v int) []byte { return fmt.Appendf(nil, `{"name":"progress","version":%d}`, v) }
	saved := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	// 30 intermediate versions, the last two equal in content, then the
	// final one.
	const n = 30
	var keys []string
	for v := 1; v <= n+1; v++ {
		data := body(min(v, n-1))
		got, err := s.PutCard(ctx, p, 0, "progress", datastore.CardVersion{Version: v, Saved: saved.Add(time.Duration(v) * time.Second), Final: v == n+1}, data)
		if err != nil {
			t.Fatal(err)
		}
		if got.Version != v || got.Size != int64(len(data)) || got.Key != sum(data) {
			t.Fatalf("PutCard version %d = %+v", v, got)
		}
		keys = append(keys, got.Key)
	}
	if keys[n-2] != keys[n-1] || keys[n-1] != keys[n] {
		t.Error("equal versions of a card have different keys")
	}
	// A second card, numbered by the store.
	for i := range 2 {
		v, err := s.PutCard(ctx, p, 1, "main", datastore.CardVersion{}, []byte(fmt.Sprintf(`{"name":"main","n":%d}`, i)))
		if err != nil || v.Version != i+1 || v.Saved.IsZero() {
			t.Fatalf("PutCard without a version = %+v, %v; want version %d", v, err, i+1)
		}
	}
	// A card as stored before versions were kept: its latest alone.
	put(t, s.Backend(), datastore.CardKey(p, 1, "old"), []byte(`{"name":"old","version":7}`))

	refs, err := s.ListCards(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range refs {
		names = append(names, fmt.Sprintf("%s@%d:%d", r.Name, r.Attempt, len(r.Versions)))
	}
	if want := fmt.Sprintf("progress@0:%d main@1:2 old@1:0", datastore.MaxCardVersions+1); strings.Join(names, " ") != want {
		t.Fatalf("ListCards = %q, want %q", names, want)
	}
	prog := refs[0]
	first := n - datastore.MaxCardVersions + 1 // the oldest intermediate version kept
	for i, v := range prog.Versions {
		want := first + i
		if v.Version != want || v.Final != (want == n+1) || !v.Saved.Equal(saved.Add(time.Duration(want)*time.Second)) {
			t.Errorf("version %d listed as %+v, want number %d", i, v, want)
		}
	}
	if last := prog.Versions[len(prog.Versions)-1]; prog.Size != last.Size || !prog.Updated.Equal(last.Saved) {
		t.Errorf("the card's size and time %d %s are not its latest version's %+v", prog.Size, prog.Updated, last)
	}
	if old := refs[2]; old.Size != int64(len(`{"name":"old","version":7}`)) || old.Updated.IsZero() {
		t.Errorf("the old card is listed as %+v", old)
	}

	for _, tc := range []struct {
		attempt  int
		name     string
		version  int
		want     string
		notFound string // the error says this, and matches fs.ErrNotExist
	}{
		{0, "progress", 0, string(body(n - 1)), ""},
		{0, "progress", n + 1, string(body(n - 1)), ""},
		{0, "progress", first, string(body(first)), ""},
		{0, "progress", n - 5, string(body(n - 5)), ""},
		{0, "progress", 1, "", fmt.Sprintf("has no version 1: a card keeps its final version and its last %d others, and this one keeps versions %d-%d", datastore.MaxCardVersions, first, n+1)},
		{0, "progress", n + 2, "", "has no version"},
		{1, "main", 0, `{"name":"main","n":1}`, ""},
		{1, "main", 1, `{"name":"main","n":0}`, ""},
		{1, "old", 0, `{"name":"old","version":7}`, ""},
		{1, "old", 7, "", "keeps only its latest version (it was saved before versions were kept)"},
		{2, "main", 0, "", "card main of task F/1/train/0, attempt 2"},
		{0, "nosuch", 0, "", "card nosuch"},
	} {
		got, err := s.GetCard(ctx, p, tc.attempt, tc.name, tc.version)
		if tc.notFound != "" {
			if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), tc.notFound) {
				t.Errorf("GetCard(%d, %s, %d) = %q, %v; want an error that says %q", tc.attempt, tc.name, tc.version, got, err, tc.notFound)
			}
			continue
		}
		if err != nil || string(got) != tc.want {
			t.Errorf("GetCard(%d, %s, %d) = %q, %v; want %q", tc.attempt, tc.name, tc.version, got, err, tc.want)
		}
	}
	// The latest as readers older than versions read it.
	if got := get(t, s.Backend(), datastore.CardKey(p, 0, "progress")); string(got) != string(body(n-1)) {
		t.Errorf("the latest version under its old key is %q", got)
	}

	// gc's view: every version kept, of every task of the run.
	other := datastore.TaskPath{Flow: "F", Run: "1", Step: "end", Task: "0"}
	if _, err := s.PutCard(ctx, other, 0, "main", datastore.CardVersion{Final: true}, []byte(`{"name":"end"}`)); err != nil {
		t.Fatal(err)
	}
	got, err := s.CardBlobKeys(ctx, "F", "1")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{sum([]byte(`{"name":"end"}`)), sum([]byte(`{"name":"main","n":0}`)), sum([]byte(`{"name":"main","n":1}`))}
	for _, v := range prog.Versions {
		want = append(want, v.Key)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("CardBlobKeys = %d keys %q\nwant %d %q", len(got), got, len(want), want)
	}
	if keys, err := s.CardBlobKeys(ctx, "F", "2"); err != nil || len(keys) != 0 {
		t.Errorf("CardBlobKeys of a run without cards = %q, %v", keys, err)
	}

	// A damaged record: the latest still reads, gc is told, and the next
	// save starts the record anew.
	put(t, s.Backend(), datastore.CardVersionsKey(other, 0, "main"), []byte("{"))
	if got, err := s.GetCard(ctx, other, 0, "main", 0); err != nil || string(got) != `{"name":"end"}` {
		t.Errorf("GetCard with a damaged record = %q, %v", got, err)
	}
	if _, err := s.CardBlobKeys(ctx, "F", "1"); !errors.Is(err, datastore.ErrCorrupt) {
		t.Errorf("CardBlobKeys with a damaged record: %v; want ErrCorrupt", err)
	}
	if v, err := s.PutCard(ctx, other, 0, "main", datastore.CardVersion{}, []byte(`{"name":"end","n":2}`)); err != nil || v.Version != 1 {
		t.Errorf("PutCard over a damaged record = %+v, %v", v, err)
	}

	// Bad names are refused; collected cards say so.
	for _, bad := range []struct {
		p       datastore.TaskPath
		attempt int
		name    string
	}{{datastore.TaskPath{Flow: "F", Run: "..", Step: "s", Task: "0"}, 0, "main"}, {p, -1, "main"}, {p, 0, "a/b"}, {p, 0, ".."}} {
		if _, err := s.PutCard(ctx, bad.p, bad.attempt, bad.name, datastore.CardVersion{}, nil); err == nil {
			t.Errorf("card %s of %s, attempt %d, was stored", bad.name, bad.p, bad.attempt)
		}
	}
	if err := s.MarkLogsCollected(ctx, "F", "3", datastore.Collected{Collected: saved, Reason: "the run is not kept"}); err != nil {
		t.Fatal(err)
	}
	gone := datastore.TaskPath{Flow: "F", Run: "3", Step: "s", Task: "0"}
	if _, err := s.GetCard(ctx, gone, 0, "main", 0); !errors.Is(err, datastore.ErrCollected) || !strings.Contains(err.Error(), "cards of run F/3 was collected by gc") {
		t.Errorf("GetCard of a collected run: %v", err)
	}
}
