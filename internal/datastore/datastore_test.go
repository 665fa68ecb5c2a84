package datastore_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"stepwise.dev/stepwise/internal/datastore"
	"stepwise.dev/stepwise/internal/datastore/storetest"
)

// memBackend keeps objects in memory; Put reads everything before storing.
type memBackend struct {
	mu    sync.Mutex
	objs  map[string][]byte
	times map[string]time.Time
}

func (m *memBackend) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	buf := make([]byte, size)
	if _, err := io.ReadFull(r, buf); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.objs[key] = buf
	m.times[key] = time.Now()
	return nil
}

func (m *memBackend) Stat(ctx context.Context, key string) (datastore.ObjectInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.objs[key]
	if !ok {
		return datastore.ObjectInfo{}, fmt.Errorf("mem: %s: %w", key, fs.ErrNotExist)
	}
	return datastore.ObjectInfo{Key: key, Size: int64(len(b)), ModTime: m.times[key]}, nil
}

func (m *memBackend) ListInfo(ctx context.Context, prefix string) ([]datastore.ObjectInfo, error) {
	keys, _ := m.List(ctx, prefix)
	var out []datastore.ObjectInfo
	for _, k := range keys {
		if o, err := m.Stat(ctx, k); err == nil {
			out = append(out, o)
		}
	}
	return out, nil
}

func (m *memBackend) Delete(ctx context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.objs, key)
	delete(m.times, key)
	return nil
}

func (m *memBackend) Get(ctx context.Context, key string) (io.ReadCloser, int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.objs[key]
	if !ok {
		return nil, 0, fmt.Errorf("mem: %s: %w", key, fs.ErrNotExist)
	}
	return io.NopCloser(bytes.NewReader(b)), int64(len(b)), nil
}

func (m *memBackend) Exists(ctx context.Context, key string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.objs[key]
	return ok, nil
}

func (m *memBackend) List(ctx context.Context, prefix string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var keys []string
	for k := range m.objs {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys, nil
}

func (m *memBackend) ListDirs(ctx context.Context, prefix string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	seen := map[string]bool{}
	for k := range m.objs {
		if rest, ok := strings.CutPrefix(k, prefix); ok {
			if name, _, more := strings.Cut(rest, "/"); more {
				seen[name] = true
			}
		}
	}
	return slices.Sorted(maps.Keys(seen)), nil
}

func (m *memBackend) String() string { return "mem:" }

// The suite runs over a backend other than the local one too.
func TestMemory(t *testing.T) {
	storetest.Run(t, func(t *testing.T) datastore.Backend {
		return &memBackend{objs: map[string][]byte{}, times: map[string]time.Time{}}
	})
}

func TestNeedsSync(t *testing.T) {
	for key, want := range map[string]bool{
		datastore.TaskObjectKey(datastore.TaskPath{Flow: "F", Run: "1", Step: "s", Task: "2"}): false,
		"runs/F/1/run.json":   true,
		"runs/F/1/end.json":   true,
		"runs/F/1/tags.json":  true,
		"runs/F/run.json":     false,
		"runs/F/1/s/run.json": false,
		datastore.BlobObjectKey(strings.Repeat("0f", 32)):                                                                         false,
		datastore.LogChunkKey(datastore.LogPrefix(datastore.TaskPath{Flow: "F", Run: "1", Step: "s", Task: "2"}, 0, "stdout"), 3): false,
	} {
		if got := datastore.NeedsSync(key); got != want {
			t.Errorf("NeedsSync(%s) = %v, want %v", key, got, want)
		}
	}
}

func TestKeys(t *testing.T) {
	p := datastore.TaskPath{Flow: "F", Run: "1", Step: "s", Task: "2"}
	if got := p.String(); got != "F/1/s/2" {
		t.Errorf("String = %q", got)
	}
	if got := datastore.TaskObjectKey(p); got != "runs/F/1/s/2/task.json" {
		t.Errorf("TaskObjectKey = %q", got)
	}
	k := strings.Repeat("ab", 32)
	if got := datastore.BlobObjectKey(k); got != "blobs/ab/"+k {
		t.Errorf("BlobObjectKey = %q", got)
	}
}

// TestRefreshWithoutTouch: a backend that cannot touch gets an old blob
// written again when PutBlob reuses it, so that gc sees it fresh.
func TestRefreshWithoutTouch(t *testing.T) {
	ctx := context.Background()
	m := &memBackend{objs: map[string][]byte{}, times: map[string]time.Time{}}
	s := datastore.New(m)
	key, _, err := s.PutBlob(ctx, [][]byte{[]byte("value")})
	if err != nil {
		t.Fatal(err)
	}
	obj := datastore.BlobObjectKey(key)
	if _, written, err := s.PutBlob(ctx, [][]byte{[]byte("value")}); err != nil || written {
		t.Fatalf("PutBlob of a fresh blob = %v, %v; want it reused", written, err)
	}
	m.times[obj] = time.Now().Add(-2 * datastore.RefreshAge)
	if _, written, err := s.PutBlob(ctx, [][]byte{[]byte("value")}); err != nil || !written {
		t.Fatalf("PutBlob of an old blob = %v, %v; want it written again", written, err)
	}
	if time.Since(m.times[obj]) > time.Minute {
		t.Errorf("the blob is still dated %s", m.times[obj])
	}
}
