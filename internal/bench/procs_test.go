package bench

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The process benchmarks measure what starting processes costs: the flow
// programs' commands and runs, and beside them the floor, a do-nothing Go
// binary started the same way in the same run. Every process is started
// as the local compute backend starts a task (internal/compute/local): with
// os/exec, in its own process group, killed when its parent dies, with its
// stdout and stderr read through two pipes.

// parallelWorkers is the run command's default --max-workers.
const parallelWorkers = 16

// floorStarts is how many do-nothing processes one parallel floor
// iteration starts: as many tasks as a 1,000-wide foreach.
const floorStarts = 1000

// binaries are the programs the process benchmarks start, built once per
// test process.
type binaries struct {
	branchjoin, foreach, nothing string
}

var (
	buildOnce sync.Once
	built     binaries
	buildErr  error
)

func repo() string {
	_, file, _, _ := goruntime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// nothingSource is the do-nothing program of the floor.
const nothingSource = "package main\n\nfunc main() {}\n"

// bins builds, once, examples/branchjoin, examples/foreach and the
// do-nothing program, each with a plain go build. They go to the folder
// STEPWISE_BENCH_BIN names when it is set (./scripts/bench sets it, so
// that its rounds share one build), else to a temporary folder. A folder
// that already holds all three is used as it is.
func bins(b *testing.B) binaries {
	buildOnce.Do(func() { built, buildErr = build() })
	if buildErr != nil {
		b.Fatal(buildErr)
	}
	return built
}

func build() (binaries, error) {
	dir := os.Getenv("STEPWISE_BENCH_BIN")
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "stepwise-bench-bin-"); err != nil {
			return binaries{}, fmt.Errorf("cannot make a folder for the benchmark binaries: %w", err)
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return binaries{}, fmt.Errorf("cannot make the folder STEPWISE_BENCH_BIN names (%s): %w", dir, err)
	}
	bs := binaries{
		branchjoin: filepath.Join(dir, "branchjoin"),
		foreach:    filepath.Join(dir, "foreach"),
		nothing:    filepath.Join(dir, "nothing"),
	}
	if exists(bs.branchjoin) && exists(bs.foreach) && exists(bs.nothing) {
		return bs, nil
	}
	goBuild := func(wd string, args ...string) error {
		cmd := exec.Command("go", append([]string{"build", "-o", dir + "/"}, args...)...)
		cmd.Dir = wd
		cmd.Env = append(os.Environ(), "GOWORK=off")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s in %s failed: %w\n%s", strings.Join(args, " "), wd, err, out)
		}
		return nil
	}
	if err := goBuild(repo(), "./examples/branchjoin", "./examples/foreach"); err != nil {
		return binaries{}, err
	}
	src, err := os.MkdirTemp("", "stepwise-bench-nothing-")
	if err != nil {
		return binaries{}, fmt.Errorf("cannot make a module for the do-nothing program: %w", err)
	}
	defer os.RemoveAll(src)
	if err := os.WriteFile(filepath.Join(src, "go.mod"), []byte("module nothing\n\ngo 1.26\n"), 0o644); err != nil {
		return binaries{}, fmt.Errorf("cannot write the do-nothing program's go.mod: %w", err)
	}
	if err := os.WriteFile(filepath.Join(src, "main.go"), []byte(nothingSource), 0o644); err != nil {
		return binaries{}, fmt.Errorf("cannot write the do-nothing program: %w", err)
	}
	if err := goBuild(src, "."); err != nil {
		return binaries{}, err
	}
	return bs, nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// env is the environment of every started process: this one's without
// any STEPWISE_ setting, plus no config file, the default datastore and
// metadata store (so .stepwise/ in the working folder) and a user.
func env(dir string) []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "STEPWISE_") {
			out = append(out, kv)
		}
	}
	return append(out,
		"STEPWISE_CONFIG="+filepath.Join(dir, "missing-config.json"),
		"STEPWISE_DATASTORE=",
		"STEPWISE_METADATA=",
		"STEPWISE_USER=bench",
	)
}

// discard is a writer that is not a file, so that os/exec reads the
// process's output through a pipe, as the local backend does.
type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// start runs exe with args in dir and waits for it, started as the local
// backend starts a task. out and errOut receive its stdout and stderr;
// they must not be files.
func start(exe, dir string, environ, args []string, out, errOut io.Writer) error {
	cmd := exec.Command(exe, args...)
	cmd.Dir = dir
	cmd.Env = environ
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Stdout, cmd.Stderr = out, errOut
	return cmd.Run()
}

// command runs one of the flow programs and fails the benchmark, with its
// output, when it does not succeed.
func command(b *testing.B, exe, dir string, args ...string) {
	var out, errOut bytes.Buffer
	if err := start(exe, dir, env(dir), args, &out, &errOut); err != nil {
		b.Fatalf("%s %s in %s: %v\nstdout:\n%s\nstderr:\n%s", filepath.Base(exe), strings.Join(args, " "), dir, err, out.Bytes(), errOut.Bytes())
	}
}

// floor starts the do-nothing program, as the local backend starts tasks,
// and adds up the time it took, so that a benchmark can measure its floor
// in the same iterations as its own figure, with the timer stopped.
type floor struct {
	exe     string
	dir     string
	environ []string
	total   time.Duration
}

func newFloor(b *testing.B) *floor {
	dir := b.TempDir()
	return &floor{exe: bins(b).nothing, dir: dir, environ: env(dir)}
}

// sequential starts it once.
func (f *floor) sequential(b *testing.B) {
	t := time.Now()
	if err := start(f.exe, f.dir, f.environ, nil, discard{}, discard{}); err != nil {
		b.Fatalf("the do-nothing program %s failed: %v", f.exe, err)
	}
	f.total += time.Since(t)
}

// parallel starts it n times, by as many workers as run uses by default.
func (f *floor) parallel(b *testing.B, n int) {
	t := time.Now()
	var next atomic.Int64
	var failed atomic.Pointer[error]
	var wg sync.WaitGroup
	for range parallelWorkers {
		wg.Go(func() {
			for next.Add(1) <= int64(n) && failed.Load() == nil {
				if err := start(f.exe, f.dir, f.environ, nil, discard{}, discard{}); err != nil {
					failed.Store(&err)
				}
			}
		})
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		b.Fatalf("the do-nothing program %s failed: %v", f.exe, *err)
	}
	f.total += time.Since(t)
}

// ms is d in milliseconds over n.
func ms(d time.Duration, n int) float64 { return float64(d.Microseconds()) / 1000 / float64(n) }

// BenchmarkFloor is the yardstick of every process benchmark: the
// do-nothing Go program, started as the local backend starts tasks, one
// after the other (sequential, ms/start) and 1,000 times by 16 workers
// (parallel, ms/task: the wall time over the starts). The other process
// benchmarks also measure it between their own iterations (the metrics
// floor-ms/start and floor-ms/task), so that a figure and its floor are
// taken under the same load of a shared machine.
func BenchmarkFloor(b *testing.B) {
	b.Run("sequential", func(b *testing.B) {
		f := newFloor(b)
		for b.Loop() {
			f.sequential(b)
		}
		b.ReportMetric(ms(b.Elapsed(), b.N), "ms/start")
	})
	b.Run("parallel", func(b *testing.B) {
		f := newFloor(b)
		for b.Loop() {
			f.parallel(b, floorStarts)
		}
		b.ReportMetric(ms(b.Elapsed(), b.N*floorStarts), "ms/task")
	})
}

// BenchmarkCommand times the flow program's show and check commands, one
// invocation after the other (ms/run), each after one start of the floor
// (floor-ms/start).
func BenchmarkCommand(b *testing.B) {
	exe := bins(b).branchjoin
	for _, name := range []string{"show", "check"} {
		b.Run(name, func(b *testing.B) {
			f := newFloor(b)
			dir := b.TempDir()
			for b.Loop() {
				b.StopTimer()
				f.sequential(b)
				b.StartTimer()
				command(b, exe, dir, name)
			}
			b.ReportMetric(ms(b.Elapsed(), b.N), "ms/run")
			b.ReportMetric(ms(f.total, b.N), "floor-ms/start")
		})
	}
}

// BenchmarkSeedFlow times `run` of examples/branchjoin end to end (5
// tasks, two of them in parallel), as the wall time of the whole command
// (ms/run), each run after one start of the floor (floor-ms/start).
// shared: every run in one datastore, made by a first run that is not
// timed. fresh: every run in a new, empty folder, so it also creates the
// datastore and the metadata database.
func BenchmarkSeedFlow(b *testing.B) {
	exe := bins(b).branchjoin
	b.Run("shared", func(b *testing.B) {
		f := newFloor(b)
		dir := b.TempDir()
		command(b, exe, dir, "run", "--quiet")
		for b.Loop() {
			b.StopTimer()
			f.sequential(b)
			b.StartTimer()
			command(b, exe, dir, "run", "--quiet")
		}
		b.ReportMetric(ms(b.Elapsed(), b.N), "ms/run")
		b.ReportMetric(ms(f.total, b.N), "floor-ms/start")
	})
	b.Run("fresh", func(b *testing.B) {
		f := newFloor(b)
		parent := b.TempDir()
		i := 0
		for b.Loop() {
			b.StopTimer()
			f.sequential(b)
			i++
			dir := filepath.Join(parent, strconv.Itoa(i))
			if err := os.Mkdir(dir, 0o755); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			command(b, exe, dir, "run", "--quiet")
			b.StopTimer()
			if err := os.RemoveAll(dir); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
		b.ReportMetric(ms(b.Elapsed(), b.N), "ms/run")
		b.ReportMetric(ms(f.total, b.N), "floor-ms/start")
	})
}

// BenchmarkForeach times `run --n N` of examples/foreach with the default
// 16 workers, at several widths: the wall time of the whole command (s/run)
// and that over the run's tasks, the N elements plus start, join and end
// (ms/task). Before each run the floor is started as many times as the
// run has tasks, by 16 workers (floor-ms/task). The runs of one width share
// one datastore, new for the benchmark. The 10,000-wide run is left out by
// ./scripts/bench: it takes minutes.
func BenchmarkForeach(b *testing.B) {
	exe := bins(b).foreach
	for _, n := range []int{100, 1000, 10000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			f := newFloor(b)
			dir := b.TempDir()
			for b.Loop() {
				b.StopTimer()
				f.parallel(b, n+3)
				b.StartTimer()
				command(b, exe, dir, "run", "--quiet", "--n", strconv.Itoa(n))
			}
			b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/run")
			b.ReportMetric(ms(b.Elapsed(), b.N*(n+3)), "ms/task")
			b.ReportMetric(ms(f.total, b.N*(n+3)), "floor-ms/task")
		})
	}
}
