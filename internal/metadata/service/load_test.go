package service

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"stepwise.dev/stepwise/internal/metadata"
	"stepwise.dev/stepwise/internal/metadata/postgres"
	"stepwise.dev/stepwise/internal/testservers"
)

// Environment of TestLoadServiceProcess.
const (
	loadEnvDSN  = "STEPWISE_TEST_LOAD_DSN"
	loadEnvAddr = "STEPWISE_TEST_LOAD_ADDR"
)

// TestLoadServiceProcess is the metadata service process of
// BenchmarkServiceLoad, which starts this test binary again to run it; it
// does nothing unless started so.
func TestLoadServiceProcess(t *testing.T) {
	dsn, addr := os.Getenv(loadEnvDSN), os.Getenv(loadEnvAddr)
	if dsn == "" {
		return
	}
	store, err := postgres.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	h := NewHandler(store, Options{Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err := Serve(context.Background(), addr, h); err != nil {
		t.Fatal(err)
	}
}

// Shape of BenchmarkServiceLoad.
const (
	loadRuns    = 6400             // runs of the flow the listers list
	loadListers = 50               // clients listing all of them, over and over
	loadWriters = 10               // clients recording runs and tasks meanwhile
	loadRound   = 10 * time.Second // each iteration of the benchmark
)

// latencies records how long requests took, by kind.
type latencies struct {
	mu   sync.Mutex
	byOp map[string][]time.Duration
}

func (l *latencies) add(op string, d time.Duration) {
	l.mu.Lock()
	if l.byOp == nil {
		l.byOp = map[string][]time.Duration{}
	}
	l.byOp[op] = append(l.byOp[op], d)
	l.mu.Unlock()
}

// timed is a RoundTripper that records the latency of each request: reads
// as "list", others as "write".
type timed struct {
	rt  http.RoundTripper
	lat *latencies
}

func (t timed) RoundTrip(r *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := t.rt.RoundTrip(r)
	if err == nil {
		op := "write"
		if r.Method == http.MethodGet {
			op = "list"
		}
		t.lat.add(op, time.Since(start))
	}
	return resp, err
}

// rss reads the resident set size of process pid, in bytes.
func rss(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	ds = slices.Clone(ds)
	slices.Sort(ds)
	return ds[min(len(ds)-1, int(p*float64(len(ds))))]
}

// BenchmarkServiceLoad is the load test of the metadata service: a service
// process on loopback, over a real PostgreSQL database holding 6,400 runs
// of one flow, gets 50 clients listing all of them (page by page) over and
// over and 10 clients recording runs and tasks, for 10 seconds per
// iteration. It reports requests per second and the p50 and p99 latency of
// listings (one page) and writes, and the service's resident memory: at
// rest, at its peak, and at the peak of each iteration, which must stay
// flat from the first to the last. Run it with
//
//	go test -run '^$' -bench ServiceLoad -benchtime 3x ./internal/metadata/service/
func BenchmarkServiceLoad(b *testing.B) {
	dsn := testservers.NewDatabase(b)
	store, err := postgres.Open(b.Context(), dsn)
	if err != nil {
		b.Fatal(err)
	}
	store.Close()
	seedRuns(b, dsn, "Load", loadRuns, 0)
	port, err := testservers.FreePort()
	if err != nil {
		b.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cmd := exec.Command(os.Args[0], "-test.run=^TestLoadServiceProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), loadEnvDSN+"="+dsn, loadEnvAddr+"="+addr)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	url := "http://" + addr
	for deadline := time.Now().Add(30 * time.Second); ; {
		resp, err := http.Get(url + "/healthz")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("the service process did not answer on %s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	pid := cmd.Process.Pid
	atRest, err := rss(pid)
	if err != nil {
		b.Fatal(err)
	}

	lat := &latencies{}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = loadListers + loadWriters
	c, err := NewClientWithOptions(url, ClientOptions{HTTPClient: &http.Client{Transport: timed{tr, lat}}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	var (
		peaks   []int64 // of each round
		elapsed time.Duration
		written atomic.Int64
		nextRun atomic.Int64
	)
	nextRun.Store(1800000000000000)
	for b.Loop() {
		ctx, cancel := context.WithTimeout(b.Context(), loadRound)
		var (
			wg   sync.WaitGroup
			peak atomic.Int64
		)
		start := time.Now()
		wg.Go(func() { // the service's memory, every 20 ms
			for ctx.Err() == nil {
				if n, err := rss(pid); err == nil && n > peak.Load() {
					peak.Store(n)
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
		for range loadListers {
			wg.Go(func() {
				for ctx.Err() == nil {
					runs, err := c.ListRuns(ctx, metadata.RunFilter{Flow: "Load"})
					if err != nil && ctx.Err() == nil {
						b.Errorf("ListRuns: %v", err)
						return
					}
					if err == nil && len(runs) < loadRuns {
						b.Errorf("ListRuns: %d runs, want %d or more", len(runs), loadRuns)
						return
					}
				}
			})
		}
		for range loadWriters {
			wg.Go(func() {
				for ctx.Err() == nil {
					id := strconv.FormatInt(nextRun.Add(1), 10)
					err := c.CreateRun(ctx, &metadata.Run{Flow: "Written", ID: id, User: "ann", SystemTags: []string{"user:ann"}})
					for i := 0; err == nil && i < 3; i++ {
						a := metadata.Attempt{Flow: "Written", Run: id, Step: "work", Task: strconv.Itoa(i)}
						if err = c.StartAttempt(ctx, a); err == nil {
							a.Status = metadata.Succeeded
							err = c.FinishAttempt(ctx, a, []metadata.Artifact{{Name: "x", Type: "int", Key: "k", Size: 8}})
						}
					}
					if err == nil {
						err = c.AddTags(ctx, "Written", id, []string{"load"})
					}
					if err != nil && ctx.Err() == nil {
						b.Errorf("writing run %s: %v", id, err)
						return
					}
					written.Add(1)
				}
			})
		}
		wg.Wait()
		cancel()
		elapsed += time.Since(start)
		peaks = append(peaks, peak.Load())
	}
	lat.mu.Lock()
	defer lat.mu.Unlock()
	secs := elapsed.Seconds()
	list, write := lat.byOp["list"], lat.byOp["write"]
	b.ReportMetric(float64(len(list))/secs, "list-req/s")
	b.ReportMetric(float64(len(write))/secs, "write-req/s")
	b.ReportMetric(float64(percentile(list, 0.5).Microseconds())/1000, "list-p50-ms")
	b.ReportMetric(float64(percentile(list, 0.99).Microseconds())/1000, "list-p99-ms")
	b.ReportMetric(float64(percentile(write, 0.5).Microseconds())/1000, "write-p50-ms")
	b.ReportMetric(float64(percentile(write, 0.99).Microseconds())/1000, "write-p99-ms")
	b.ReportMetric(float64(atRest)/(1<<20), "rest-RSS-MB")
	b.ReportMetric(float64(slices.Max(peaks))/(1<<20), "peak-RSS-MB")
	b.ReportMetric(0, "ns/op")
	var mb []string
	for _, p := range peaks {
		mb = append(mb, fmt.Sprintf("%.0f", float64(p)/(1<<20)))
	}
	b.Logf("%d listers, %d writers, %d rounds of %v: %d listings of %d runs (%d page requests), %d runs written (%d write requests); service RSS at rest %.0f MB, peak of each round %s MB",
		loadListers, loadWriters, len(peaks), loadRound, len(list)/(loadRuns/clientPageSize+1), loadRuns, len(list), written.Load(), len(write), float64(atRest)/(1<<20), strings.Join(mb, ", "))
	// Memory stays flat: the last round's peak is within a quarter (and
	// 16 MB) of the first's.
	if first, last := peaks[0], peaks[len(peaks)-1]; last > first+first/4+16<<20 {
		b.Errorf("the service's memory grew from a peak of %.0f MB in the first round to %.0f MB in the last", float64(first)/(1<<20), float64(last)/(1<<20))
	}
}
