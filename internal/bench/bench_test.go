package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"stepwise.dev/stepwise/client"
	"stepwise.dev/stepwise/internal/codec"
	"stepwise.dev/stepwise/internal/datastore"
	"stepwise.dev/stepwise/internal/datastore/local"
	"stepwise.dev/stepwise/internal/metadata"
	"stepwise.dev/stepwise/internal/metadata/sqlite"

	_ "stepwise.dev/stepwise/backend/sqlite"
)

// randomFloats are normally distributed, like model weights.
func randomFloats(n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = rand.NormFloat64()
	}
	return out
}

// BenchmarkArtifact saves and loads one []float64 artifact of random
// values through the codec and the local datastore, as a task does; its
// floor (plain-write, plain-read) writes the same encoded bytes to one
// file in a new folder on the same disk, unsynced as blobs are, and reads
// them back, with nothing hashed, checked or decoded.
func BenchmarkArtifact(b *testing.B) {
	ctx := context.Background()
	for _, size := range []int{128 << 20, 1 << 30} {
		name := fmt.Sprintf("%dMiB", size>>20)
		vals := sync.OnceValue(func() []float64 { return randomFloats(size / 8) })
		b.Run("save/"+name, func(b *testing.B) {
			vals := vals()
			b.SetBytes(int64(size))
			for b.Loop() {
				b.StopTimer()
				dir, err := os.MkdirTemp("", "stepwise-bench-artifact-")
				if err != nil {
					b.Fatal(err)
				}
				be, err := local.New(dir) // a fresh store: no dedup
				if err != nil {
					b.Fatal(err)
				}
				st := datastore.New(be)
				b.StartTimer()
				enc, err := codec.Encode(vals)
				if err != nil {
					b.Fatal(err)
				}
				if _, _, err := st.PutBlob(ctx, enc.Parts); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				os.RemoveAll(dir) // one artifact at a time, as a task writes it
				b.StartTimer()
			}
		})
		b.Run("load/"+name, func(b *testing.B) {
			vals := vals()
			be, err := local.New(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			st := datastore.New(be)
			enc, _ := codec.Encode(vals)
			key, _, err := st.PutBlob(ctx, enc.Parts)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(size))
			b.ResetTimer()
			for b.Loop() {
				data, err := st.GetBlob(ctx, key)
				if err != nil {
					b.Fatal(err)
				}
				var out []float64
				if err := codec.Decode(data, &out); err != nil || len(out) != len(vals) {
					b.Fatal(err)
				}
			}
		})
		b.Run("plain-write/"+name, func(b *testing.B) {
			enc, err := codec.Encode(vals())
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(size))
			for b.Loop() {
				b.StopTimer()
				dir, err := os.MkdirTemp("", "stepwise-bench-plain-")
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				if err := writeParts(filepath.Join(dir, "blob"), enc.Parts); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				os.RemoveAll(dir)
				b.StartTimer()
			}
		})
		b.Run("plain-read/"+name, func(b *testing.B) {
			enc, err := codec.Encode(vals())
			if err != nil {
				b.Fatal(err)
			}
			file := filepath.Join(b.TempDir(), "blob")
			if err := writeParts(file, enc.Parts); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(size))
			b.ResetTimer()
			for b.Loop() {
				if _, err := os.ReadFile(file); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// writeParts writes parts, one after the other, to a new file.
func writeParts(name string, parts [][]byte) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	for _, p := range parts {
		if _, err := f.Write(p); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}

// BenchmarkListRuns lists and filters 10,000 runs of a flow with the
// client, on the embedded metadata store.
func BenchmarkListRuns(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	meta, err := sqlite.Open(ctx, filepath.Join(dir, "metadata.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer meta.Close()
	start := time.Now().Add(-time.Hour)
	for i := 0; i < 10000; i++ {
		user := []string{"ann", "bob"}[i%2]
		tags := []string{fmt.Sprintf("batch-%d", i%10)}
		if err := meta.CreateRun(ctx, &metadata.Run{Flow: "Big", ID: strconv.Itoa(1_000_000 + i), Status: metadata.Succeeded, User: user,
			SystemTags: []string{"user:" + user}, Tags: tags, Params: map[string]string{"n": strconv.Itoa(i)}, Started: start.Add(time.Duration(i) * time.Millisecond)}); err != nil {
			b.Fatal(err)
		}
	}
	meta.Close()
	c, err := client.Open(ctx, client.Options{Datastore: dir, Metadata: "local", Namespace: new(client.Global)})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	for _, tc := range []struct {
		name   string
		filter client.Filter
		ns     string
		want   int
	}{
		{"all-10000", client.Filter{}, client.Global, 10000},
		{"namespace-5000", client.Filter{}, "user:ann", 5000},
		{"tag-1000", client.Filter{Tags: []string{"batch-3"}}, client.Global, 1000},
		{"latest", client.Filter{Limit: 1}, "user:bob", 1},
	} {
		b.Run(tc.name, func(b *testing.B) {
			c.SetNamespace(tc.ns)
			for b.Loop() {
				runs, err := c.Flow("Big").Runs(ctx, tc.filter)
				if err != nil || len(runs) != tc.want {
					b.Fatalf("%d runs, %v; want %d", len(runs), err, tc.want)
				}
			}
		})
	}
}
