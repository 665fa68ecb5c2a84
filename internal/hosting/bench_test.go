package hosting_test

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"stepwise.dev/stepwise/internal/hosting"
)

// loadConns is how many connections the load generator keeps busy, one
// request in flight on each.
const loadConns = 16

// load sends n GET requests for path to addr over loadConns keep-alive
// connections and returns every request's latency and the time it all
// took. It is lean on purpose (a hand-written request, http.ReadResponse
// for the answer), so that on a small machine the generator takes as
// little CPU as it can from the server it measures.
func load(b *testing.B, addr, path string, n int) ([]time.Duration, time.Duration) {
	req := []byte("GET " + path + " HTTP/1.1\r\nHost: bench\r\n\r\n")
	lat := make([]time.Duration, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range loadConns {
		wg.Go(func() {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				b.Error(err)
				return
			}
			defer c.Close()
			r := bufio.NewReader(c)
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				t0 := time.Now()
				if _, err := c.Write(req); err != nil {
					b.Error(err)
					return
				}
				resp, err := http.ReadResponse(r, nil)
				if err != nil {
					b.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Errorf("GET %s: %d", path, resp.StatusCode)
					return
				}
				lat[i] = time.Since(t0)
			}
		})
	}
	wg.Wait()
	return lat, time.Since(start)
}

// report reports requests per second and the median and 99th percentile
// latencies, with prefix before each unit.
func report(b *testing.B, prefix string, lat []time.Duration, took time.Duration) {
	slices.Sort(lat)
	b.ReportMetric(float64(len(lat))/took.Seconds(), prefix+"req/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), prefix+"p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), prefix+"p99-µs")
}

// BenchmarkServe measures a small-artifact endpoint (GET /show_data, 8
// bytes of JSON) on loopback with 16 connections, in three parts, each
// b.N requests: the floor, a plain net/http handler writing the same bytes
// with the same generator; the service; and the service while it reloads
// a run every 100ms (alternating between two). The access log is on, as
// the serve command has it: text lines, buffered (LogWriter), written to a
// file.
//
//	go test -run '^$' -bench Serve -benchtime 200000x ./internal/hosting/
func BenchmarkServe(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e := newEnv(b)
	runA, runB := e.run(b, 3, false), e.run(b, 3, false)
	dir := b.TempDir()
	logFile, err := os.Create(filepath.Join(dir, "access.log"))
	if err != nil {
		b.Fatal(err)
	}
	defer logFile.Close()
	logs := hosting.NewLogWriter(logFile)
	defer logs.Close()
	def, err := hosting.Describe(newShow())
	if err != nil {
		b.Fatal(err)
	}
	srv, err := hosting.New(def, hosting.Options{Client: e.c, Poll: time.Hour, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		b.Fatal(err)
	}
	if err := srv.Load(ctx, runA); err != nil {
		b.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(ctx, l, hosting.ServeOptions{})

	body := []byte("{\"x\":3}\n")
	fl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	floor := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	})}
	go floor.Serve(fl)
	defer floor.Close()

	b.ResetTimer()
	lat, took := load(b, fl.Addr().String(), "/show_data", b.N)
	report(b, "floor-", lat, took)
	lat, took = load(b, l.Addr().String(), "/show_data", b.N)
	report(b, "", lat, took)

	// Reload every 100ms while the load runs (each reload reads the run's
	// record and artifacts and builds a new service value).
	var reloads atomic.Int64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			run := runA
			if i%2 == 0 {
				run = runB
			}
			if err := srv.Load(ctx, run); err != nil {
				b.Error(err)
				return
			}
			reloads.Add(1)
		}
	})
	lat, took = load(b, l.Addr().String(), "/show_data", b.N)
	close(done)
	wg.Wait()
	report(b, "reloading-", lat, took)
	b.ReportMetric(float64(reloads.Load()), "reloads")
	b.ReportMetric(0, "ns/op")
}
