// Command benchtable reads the output of Stepwise's benchmarks
// (internal/bench, run with go test -bench, one or more rounds) and prints
// one markdown table: each figure with the median over its samples, its
// floor measured in the same run, the ratio to the floor, the target and
// whether it is met, and by how much it is missed. ./scripts/bench runs it.
//
//	benchtable [-bin DIR] [FILE...]
//
// It reads the files, or standard input without any. A line
// "stepwise-round: NAME" begins a round: a figure's ratio to its floor is
// taken in each round that has both (so that both were measured close
// together in time) and the median of those is printed. A line
// "stepwise-loadavg: ..." records the machine's load average (from
// /proc/loadavg) and is summed up under the table, as are
// "stepwise-cores: N" and "stepwise-rounds: N". -bin names the folder
// of the benchmark binaries, whose sizes are printed under the table.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

func main() {
	bin := flag.String("bin", "", "the folder of the benchmark binaries (STEPWISE_BENCH_BIN), whose sizes are printed")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: benchtable [-bin DIR] [FILE...]\n\nReads go test -bench output of internal/bench (standard input without FILE) and prints a markdown table.\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	var in []io.Reader
	for _, name := range flag.Args() {
		f, err := os.Open(name)
		if err != nil {
			fmt.Fprintf(os.Stderr, "benchtable: %v\n", err)
			os.Exit(1)
		}
		defer f.Close()
		in = append(in, f)
	}
	if len(in) == 0 {
		in = append(in, os.Stdin)
	}
	res, err := parse(io.MultiReader(in...))
	if err != nil {
		fmt.Fprintf(os.Stderr, "benchtable: %v\n", err)
		os.Exit(1)
	}
	if len(res.samples) == 0 {
		fmt.Fprintln(os.Stderr, "benchtable: the input holds no benchmark results (lines starting with Benchmark); did the benchmarks fail? Their output is above.")
		os.Exit(1)
	}
	fmt.Print(table(res, rows))
	fmt.Print(notes(res, *bin))
}

// sample is one benchmark result line: its metrics by unit.
type sample struct {
	round  string
	values map[string]float64
}

// results are the parsed benchmark output.
type results struct {
	// samples by benchmark name, without "Benchmark" and the GOMAXPROCS
	// suffix ("Floor/sequential").
	samples map[string][]sample
	// config holds the "key: value" lines, each key's values in order.
	config map[string][]string
}

// parse reads go test -bench output. Lines that are not results, round
// markers or "key: value" lines are skipped; a result line whose numbers
// do not parse is an error naming it.
func parse(r io.Reader) (*results, error) {
	res := &results{samples: map[string][]sample{}, config: map[string][]string{}}
	round := ""
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if name, s, ok, err := parseResult(line); err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		} else if ok {
			s.round = round
			res.samples[name] = append(res.samples[name], s)
			continue
		}
		key, value, ok := strings.Cut(line, ":")
		if !ok || key == "" || strings.ContainsAny(key, " \t") {
			continue
		}
		value = strings.TrimSpace(value)
		if key == "stepwise-round" {
			round = value
		}
		res.config[key] = append(res.config[key], value)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("cannot read the benchmark output: %w", err)
	}
	return res, nil
}

// parseResult parses "BenchmarkName-2  5  123 ns/op  4.5 ms/run". ok is
// false for a line that is not a result (a benchmark's name alone, as go
// test prints it before a slow benchmark's result, is not).
func parseResult(line string) (name string, s sample, ok bool, err error) {
	f := strings.Fields(line)
	if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") || len(f[0]) == len("Benchmark") {
		return "", s, false, nil
	}
	if _, err := strconv.ParseUint(f[1], 10, 64); err != nil {
		return "", s, false, nil
	}
	if len(f)%2 != 0 {
		return "", s, false, fmt.Errorf("result of %s has a value without a unit: %q", f[0], line)
	}
	name = strings.TrimPrefix(f[0], "Benchmark")
	if i := strings.LastIndexByte(name, '-'); i > 0 {
		if _, err := strconv.Atoi(name[i+1:]); err == nil {
			name = name[:i]
		}
	}
	s.values = map[string]float64{}
	for i := 2; i < len(f); i += 2 {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			return "", s, false, fmt.Errorf("result of %s: %q is not a number (%s)", f[0], f[i], f[i+1])
		}
		s.values[f[i+1]] = v
	}
	return name, s, true, nil
}

// metric names one figure: a benchmark and one of its units.
type metric struct {
	bench, unit string
}

// row is one line of the table.
type row struct {
	what   string
	result metric
	// also is printed after the result, in parentheses, when measured.
	also metric
	// floor is the figure's yardstick, measured in the same run: by the
	// same benchmark between its iterations where it can.
	floor      metric
	floorLabel string
	// maxRatio is the target: at most this many times the floor (time
	// units) or the floor's throughput divided by it (MB/s).
	maxRatio float64
	// min (MB/s) and max (ms) are absolute targets.
	min, max float64
}

// rows is the table, in order; rows whose result was not measured are
// left out.
var rows = []row{
	{what: "floor: do-nothing Go binary, started in sequence", result: metric{"Floor/sequential", "ms/start"}},
	{what: "floor: do-nothing Go binary, 1,000 starts by 16 workers, per start", result: metric{"Floor/parallel", "ms/task"}},
	{what: "`branchjoin show`", result: metric{"Command/show", "ms/run"}, floor: metric{"Command/show", "floor-ms/start"}, floorLabel: "sequential", maxRatio: 2},
	{what: "`branchjoin check`", result: metric{"Command/check", "ms/run"}, floor: metric{"Command/check", "floor-ms/start"}, floorLabel: "sequential", maxRatio: 2},
	{what: "seed flow `branchjoin run`, end to end (shared datastore)", result: metric{"SeedFlow/shared", "ms/run"}, floor: metric{"SeedFlow/shared", "floor-ms/start"}, floorLabel: "sequential", maxRatio: 6},
	{what: "seed flow `branchjoin run`, end to end (new folder each run)", result: metric{"SeedFlow/fresh", "ms/run"}, floor: metric{"SeedFlow/fresh", "floor-ms/start"}, floorLabel: "sequential", maxRatio: 6},
	{what: "`foreach run --n 100`, per task (103 tasks)", result: metric{"Foreach/100", "ms/task"}, also: metric{"Foreach/100", "s/run"}, floor: metric{"Foreach/100", "floor-ms/task"}, floorLabel: "16 parallel"},
	{what: "`foreach run --n 1000`, per task (1,003 tasks)", result: metric{"Foreach/1000", "ms/task"}, also: metric{"Foreach/1000", "s/run"}, floor: metric{"Foreach/1000", "floor-ms/task"}, floorLabel: "16 parallel", maxRatio: 2},
	{what: "`foreach run --n 10000`, per task (10,003 tasks)", result: metric{"Foreach/10000", "ms/task"}, also: metric{"Foreach/10000", "s/run"}, floor: metric{"Foreach/10000", "floor-ms/task"}, floorLabel: "16 parallel"},
	{what: "save one 128 MiB `[]float64` artifact (encode, hash, store)", result: metric{"Artifact/save/128MiB", "MB/s"}, floor: metric{"Artifact/plain-write/128MiB", "MB/s"}, floorLabel: "plain write", min: 500},
	{what: "load it (read, verify, decode)", result: metric{"Artifact/load/128MiB", "MB/s"}, floor: metric{"Artifact/plain-read/128MiB", "MB/s"}, floorLabel: "plain read", min: 500},
	{what: "save one 1 GiB `[]float64` artifact", result: metric{"Artifact/save/1024MiB", "MB/s"}, floor: metric{"Artifact/plain-write/1024MiB", "MB/s"}, floorLabel: "plain write", min: 500},
	{what: "load it", result: metric{"Artifact/load/1024MiB", "MB/s"}, floor: metric{"Artifact/plain-read/1024MiB", "MB/s"}, floorLabel: "plain read", min: 500},
	{what: "list all 10,000 runs of a flow (client, embedded store)", result: metric{"ListRuns/all-10000", "ns/op"}, max: 1000},
	{what: "list the 5,000 runs of one user's namespace", result: metric{"ListRuns/namespace-5000", "ns/op"}},
	{what: "filter 10,000 runs by a tag (1,000 match)", result: metric{"ListRuns/tag-1000", "ns/op"}},
	{what: "latest run in a namespace", result: metric{"ListRuns/latest", "ns/op"}},
	{what: "S3 (local MinIO): save a 1 GiB blob", result: metric{"S3/save-1GiB", "MB/s"}, floor: metric{"S3Plain/put-1GiB", "MB/s"}, floorLabel: "plain parallel PUT"},
	{what: "S3: load it", result: metric{"S3/load-1GiB", "MB/s"}, floor: metric{"S3Plain/get-1GiB", "MB/s"}, floorLabel: "plain parallel GET"},
	{what: "local disk: the same 1 GiB written by 8 goroutines", result: metric{"PlainCopy/write-1GiB", "MB/s"}},
	{what: "local disk: read back by 8 goroutines", result: metric{"PlainCopy/read-1GiB", "MB/s"}},
}

// stat is a figure over its samples.
type stat struct {
	median float64
	// spread is the largest distance of a sample from the median, as a
	// fraction of it.
	spread float64
	n      int
}

// values returns m's samples, and its samples by round.
func (r *results) values(m metric) (all []float64, byRound map[string][]float64) {
	byRound = map[string][]float64{}
	for _, s := range r.samples[m.bench] {
		if v, ok := s.values[m.unit]; ok {
			all = append(all, v)
			byRound[s.round] = append(byRound[s.round], v)
		}
	}
	return all, byRound
}

func summarize(xs []float64) stat {
	st := stat{median: median(xs), n: len(xs)}
	for _, x := range xs {
		if st.median != 0 {
			st.spread = max(st.spread, math.Abs(x-st.median)/math.Abs(st.median))
		}
	}
	return st
}

// median is the middle value, or the mean of the middle two; NaN for none.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// ratio is how many times the floor's time the figure takes. A floor
// measured by the same benchmark (between its iterations) is paired with
// it sample by sample; another is paired round by round; the ratio is the
// median over the pairs, or median over median when there are none.
func (r *results) ratio(result, floor metric) float64 {
	one := func(res, fl float64) float64 {
		if result.unit == "MB/s" {
			return fl / res
		}
		return res / fl
	}
	var ratios []float64
	if result.bench == floor.bench {
		for _, s := range r.samples[result.bench] {
			res, ok1 := s.values[result.unit]
			fl, ok2 := s.values[floor.unit]
			if ok1 && ok2 {
				ratios = append(ratios, one(res, fl))
			}
		}
		if len(ratios) > 0 {
			return median(ratios)
		}
	}
	all, byRound := r.values(result)
	fall, fByRound := r.values(floor)
	for round, vs := range byRound {
		if fs, ok := fByRound[round]; ok {
			ratios = append(ratios, one(median(vs), median(fs)))
		}
	}
	if len(ratios) == 0 {
		return one(median(all), median(fall))
	}
	return median(ratios)
}

// format prints a value of unit with three significant digits.
func format(v float64, unit string) string {
	switch unit {
	case "ns/op":
		return formatMs(v / 1e6)
	case "ms/start", "ms/run", "ms/task", "floor-ms/start", "floor-ms/task":
		return formatMs(v)
	case "s/run":
		return formatMs(v * 1000)
	case "MB/s":
		return fmt.Sprintf("%s MB/s", thousands(v))
	}
	return fmt.Sprintf("%.3g %s", v, unit)
}

func formatMs(ms float64) string {
	switch {
	case ms >= 1000:
		return fmt.Sprintf("%.3g s", ms/1000)
	case ms >= 1:
		return fmt.Sprintf("%.3g ms", ms)
	default:
		return fmt.Sprintf("%.3g µs", ms*1000)
	}
}

// thousands prints v rounded, with commas every three digits.
func thousands(v float64) string {
	s := strconv.FormatInt(int64(math.Round(v)), 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 && s[i-1] != '-' {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// withSpread adds "±x%" when there is more than one sample.
func withSpread(text string, st stat) string {
	if st.n < 2 {
		return text
	}
	return fmt.Sprintf("%s ±%.0f%%", text, st.spread*100)
}

// table prints the rows that were measured.
func table(res *results, rows []row) string {
	var b strings.Builder
	b.WriteString("| what | result | floor | × floor | target | verdict |\n|---|---|---|---|---|---|\n")
	for _, rw := range rows {
		all, _ := res.values(rw.result)
		if len(all) == 0 {
			continue
		}
		st := summarize(all)
		result := withSpread(format(st.median, rw.result.unit), st)
		if rw.result.unit == "ms/task" {
			result += " per task"
		}
		if also, _ := res.values(rw.also); len(also) > 0 {
			result += fmt.Sprintf(" (%s per run)", format(median(also), rw.also.unit))
		}
		floor, times, target, verdict := "", "", "", ""
		if fall, _ := res.values(rw.floor); rw.floor.bench != "" && len(fall) > 0 {
			fst := summarize(fall)
			floor = fmt.Sprintf("%s (%s)", withSpread(format(fst.median, rw.floor.unit), fst), rw.floorLabel)
			ratio := res.ratio(rw.result, rw.floor)
			times = fmt.Sprintf("%.2f×", ratio)
			if rw.maxRatio > 0 {
				target = fmt.Sprintf("≤ %g× floor", rw.maxRatio)
				verdict = ratioVerdict(ratio, rw.maxRatio, st.median, rw.result.unit)
			}
		} else if rw.floor.bench != "" {
			floor = "not measured"
		}
		switch {
		case rw.min > 0:
			target = fmt.Sprintf("≥ %s", format(rw.min, rw.result.unit))
			if st.median >= rw.min {
				verdict = "met"
			} else {
				verdict = fmt.Sprintf("missed by %s", format(rw.min-st.median, rw.result.unit))
			}
		case rw.max > 0:
			ms := st.median
			if rw.result.unit == "ns/op" {
				ms /= 1e6
			}
			target = "< " + formatMs(rw.max)
			if ms < rw.max {
				verdict = "met"
			} else {
				verdict = fmt.Sprintf("missed by %s", formatMs(ms-rw.max))
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", rw.what, result, orDash(floor), orDash(times), orDash(target), orDash(verdict))
	}
	return b.String()
}

// ratioVerdict says whether ratio is within limit and, when not, how many
// times too slow the figure is and what it would need to be.
func ratioVerdict(ratio, limit, value float64, unit string) string {
	if ratio <= limit {
		return "met"
	}
	return fmt.Sprintf("missed by %.2f× (needs ≤ %s)", ratio/limit, format(value*limit/ratio, unit))
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

// notes prints what the table was measured on, under it.
func notes(res *results, bin string) string {
	var b strings.Builder
	b.WriteString("\n")
	if cpu := res.config["cpu"]; len(cpu) > 0 {
		fmt.Fprintf(&b, "Machine: %s", cpu[0])
		if n := res.config["stepwise-cores"]; len(n) > 0 {
			fmt.Fprintf(&b, ", %s cores", n[0])
		}
		b.WriteString(". ")
	}
	if r := res.config["stepwise-rounds"]; len(r) > 0 {
		word := "rounds"
		if r[0] == "1" {
			word = "round"
		}
		fmt.Fprintf(&b, "%s %s of the process benchmarks. ", r[0], word)
	}
	b.WriteString("Results are medians over samples (one per round, each the mean of its iterations); ± is the largest distance of a sample from the median; × floor is the time over the floor's (for MB/s, the floor's throughput over the result), the median of its ratios: a process figure is paired with the floor started between its own iterations, the others with the floor of the same round.\n")
	if loads := res.config["stepwise-loadavg"]; len(loads) > 0 {
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, l := range loads {
			f := strings.Fields(l)
			if len(f) == 0 {
				continue
			}
			if v, err := strconv.ParseFloat(f[0], 64); err == nil {
				lo, hi = min(lo, v), max(hi, v)
			}
		}
		if !math.IsInf(lo, 0) {
			fmt.Fprintf(&b, "Load average (1 min) during the run: %.2f to %.2f.\n", lo, hi)
		}
	}
	if bin != "" {
		var sizes []string
		for _, name := range []string{"nothing", "branchjoin", "foreach"} {
			if fi, err := os.Stat(filepath.Join(bin, name)); err == nil {
				sizes = append(sizes, fmt.Sprintf("%s %.1f MB", name, float64(fi.Size())/1e6))
			} else if !errors.Is(err, os.ErrNotExist) {
				sizes = append(sizes, fmt.Sprintf("%s: %v", name, err))
			}
		}
		if len(sizes) > 0 {
			fmt.Fprintf(&b, "Binaries: %s.\n", strings.Join(sizes, ", "))
		}
	}
	return b.String()
}
