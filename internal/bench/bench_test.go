package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
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

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

func repo() string {
	_, file, _, _ := goruntime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// bin builds the examples once and returns the path of one.
func bin(b *testing.B, name string) string {
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "stepwise-bench-")
		if buildErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", binDir+"/", "./examples/branchjoin", "./examples/foreach")
		cmd.Dir = repo()
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("%v\n%s", err, out)
		}
	})
	if buildErr != nil {
		b.Fatal(buildErr)
	}
	return filepath.Join(binDir, name)
}

func runFlow(b *testing.B, dir, name string, args ...string) {
	cmd := exec.Command(bin(b, name), append([]string{"run", "--quiet"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "STEPWISE_DATASTORE=", "STEPWISE_METADATA=", "STEPWISE_CONFIG="+filepath.Join(dir, "none.json"))
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("%s: %v\n%s", name, err, out)
	}
}

// BenchmarkSeedFlow runs examples/branchjoin end to end: 5 tasks, two of
// them in parallel.
func BenchmarkSeedFlow(b *testing.B) {
	dir := b.TempDir()
	runFlow(b, dir, "branchjoin") // warm up: creates the datastore
	b.ResetTimer()
	for b.Loop() {
		runFlow(b, dir, "branchjoin")
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/run")
}

// BenchmarkForeach runs examples/foreach at several widths; per-task is
// the wall time divided by the tasks (width + start, join and end).
func BenchmarkForeach(b *testing.B) {
	for _, n := range []int{100, 1000, 10000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			dir := b.TempDir()
			for b.Loop() {
				runFlow(b, dir, "foreach", "--n", strconv.Itoa(n))
			}
			perRun := b.Elapsed().Seconds() / float64(b.N)
			b.ReportMetric(perRun, "s/run")
			b.ReportMetric(perRun*1000/float64(n+3), "ms/task")
		})
	}
}

// randomFloats are normally distributed, like model weights.
func randomFloats(n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = rand.NormFloat64()
	}
	return out
}

// BenchmarkArtifact saves and loads one []float64 artifact of random
// values through the codec and the local datastore, as a task does.
func BenchmarkArtifact(b *testing.B) {
	ctx := context.Background()
	for _, size := range []int{128 << 20, 1 << 30} {
		name := fmt.Sprintf("%dMiB", size>>20)
		vals := randomFloats(size / 8)
		b.Run("save/"+name, func(b *testing.B) {
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
	}
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
