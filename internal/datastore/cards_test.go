package datastore_test

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"stepwise.dev/stepwise/internal/datastore"
)

func memStore() (*datastore.Store, *memBackend) {
	m := &memBackend{objs: map[string][]byte{}, times: map[string]time.Time{}}
	return datastore.New(m), m
}

// TestReadLogRange reads ranges of a log of three chunks, reading only
// the chunks that hold each.
func TestReadLogRange(t *testing.T) {
	ctx := context.Background()
	s, m := memStore()
	p := datastore.TaskPath{Flow: "F", Run: "1", Step: "s", Task: "0"}
	prefix := datastore.LogPrefix(p, 0, "stdout")
	for i, chunk := range []string{"abcd", "efgh", "ij"} {
		m.Put(ctx, datastore.LogChunkKey(prefix, i), strings.NewReader(chunk), int64(len(chunk)))
	}
	tests := []struct {
		off, n int64
		want   string
	}{
		{0, 100, "abcdefghij"},
		{0, 3, "abc"},
		{3, 3, "def"},
		{4, 4, "efgh"},
		{7, 100, "hij"},
		{-3, 3, "hij"},
		{-100, 2, "ab"},
		{10, 5, ""},
		{50, 5, ""},
	}
	for _, tt := range tests {
		got, total, err := s.ReadLogRange(ctx, p, 0, "stdout", tt.off, tt.n)
		if err != nil || string(got) != tt.want || total != 10 {
			t.Errorf("ReadLogRange(%d, %d) = %q, %d, %v; want %q, 10", tt.off, tt.n, got, total, err, tt.want)
		}
	}
}

// TestGraph stores a run's graph and reads it back.
func TestGraph(t *testing.T) {
	ctx := context.Background()
	s, _ := memStore()
	if err := s.PutGraph(ctx, "F", "1", []byte("g1")); err != nil {
		t.Fatal(err)
	}
	if g, err := s.GetGraph(ctx, "F", "1"); err != nil || string(g) != "g1" {
		t.Errorf("GetGraph = %q, %v", g, err)
	}
	if err := s.PutGraph(ctx, "F", "..", []byte("g1")); err == nil {
		t.Error("a graph of run .. was stored")
	}
}

// TestOpenBlob streams raw and compressed blobs back.
func TestOpenBlob(t *testing.T) {
	ctx := context.Background()
	s, _ := memStore()
	for _, v := range [][]byte{[]byte("short"), bytes.Repeat([]byte("compressible "), 100000)} {
		key, _, err := s.PutBlob(ctx, [][]byte{v})
		if err != nil {
			t.Fatal(err)
		}
		rc, size, err := s.OpenBlob(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || size != int64(len(v)) || !bytes.Equal(got, v) {
			t.Errorf("OpenBlob of %d bytes: %d bytes, size %d, %v", len(v), len(got), size, err)
		}
	}
}
