package main

import (
	"math"
	"strings"
	"testing"
)

func TestParseResult(t *testing.T) {
	for _, tc := range []struct {
		line    string
		name    string
		values  map[string]float64
		ok, err bool
	}{
		{line: "BenchmarkFloor/sequential-2   \t 20\t 3746113 ns/op\t 3.746 ms/start", name: "Floor/sequential",
			values: map[string]float64{"ns/op": 3746113, "ms/start": 3.746}, ok: true},
		{line: "BenchmarkForeach/100-16 1 1028731762 ns/op 9.988 ms/task 1.029 s/run", name: "Foreach/100",
			values: map[string]float64{"ns/op": 1028731762, "ms/task": 9.988, "s/run": 1.029}, ok: true},
		{line: "BenchmarkForeach/1000 1 1028731762 ns/op", name: "Foreach/1000", values: map[string]float64{"ns/op": 1028731762}, ok: true},
		{line: "BenchmarkArtifact/save/128MiB-2 5 143 ns/op 933.50 MB/s", name: "Artifact/save/128MiB",
			values: map[string]float64{"ns/op": 143, "MB/s": 933.5}, ok: true},
		{line: "BenchmarkForeach/1000", ok: false},
		{line: "BenchmarkForeach/1000-2   \t--- FAIL: BenchmarkForeach/1000-2", ok: false},
		{line: "Benchmark 1 2 ns/op", ok: false},
		{line: "goos: linux", ok: false},
		{line: "PASS", ok: false},
		{line: "", ok: false},
		{line: "BenchmarkX-2 5 12 ns/op 7", err: true},
		{line: "BenchmarkX-2 5 twelve ns/op", err: true},
		{line: "BenchmarkX-2 5 NaN ns/op", err: true},
		{line: "BenchmarkX-2 5 +Inf ns/op", err: true},
	} {
		t.Run(tc.line, func(t *testing.T) {
			name, s, ok, err := parseResult(tc.line)
			if (err != nil) != tc.err {
				t.Fatalf("error %v, want error %v", err, tc.err)
			}
			if ok != tc.ok || name != tc.name {
				t.Fatalf("got %q ok=%v, want %q ok=%v", name, ok, tc.name, tc.ok)
			}
			if len(s.values) != len(tc.values) {
				t.Fatalf("values %v, want %v", s.values, tc.values)
			}
			for u, v := range tc.values {
				if s.values[u] != v {
					t.Errorf("%s = %v, want %v", u, s.values[u], v)
				}
			}
		})
	}
}

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{
		{[]float64{3}, 3},
		{[]float64{5, 1, 3}, 3},
		{[]float64{4, 1, 3, 2}, 2.5},
		{[]float64{2, 2, 9, 2}, 2},
	} {
		if got := median(tc.in); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
	if !math.IsNaN(median(nil)) {
		t.Error("median of nothing is not NaN")
	}
}

// twoRounds has the floor doubling in the second round, as it does when
// the machine gets busy: the ratio is taken per sample where the
// benchmark measured its own floor, per round for the artifact.
const twoRounds = `goos: linux
cpu: AMD EPYC
stepwise-cores: 2
stepwise-rounds: 2
stepwise-round: 1
stepwise-loadavg: 1.50 1.20 1.00 2/300 123
BenchmarkFloor/sequential-2   10   4000000 ns/op   4.000 ms/start
BenchmarkFloor/parallel-2      1 2000000000 ns/op   2.000 ms/task
BenchmarkCommand/show-2       10   6000000 ns/op   6.000 ms/run  3.000 floor-ms/start
BenchmarkSeedFlow/shared-2    10  40000000 ns/op  40.000 ms/run  4.000 floor-ms/start
BenchmarkForeach/1000-2        1 3009000000 ns/op   3.000 ms/task   3.009 s/run   1.000 floor-ms/task
stepwise-round: 2
stepwise-loadavg: 3.50 1.20 1.00 2/300 123
BenchmarkFloor/sequential-2   10   8000000 ns/op   8.000 ms/start
BenchmarkFloor/parallel-2      1 4000000000 ns/op   4.000 ms/task
BenchmarkCommand/show-2       10  12000000 ns/op  12.000 ms/run  12.000 floor-ms/start
BenchmarkSeedFlow/shared-2    10  80000000 ns/op  80.000 ms/run  8.000 floor-ms/start
BenchmarkForeach/1000-2        1 6018000000 ns/op   6.000 ms/task   6.018 s/run   4.000 floor-ms/task
stepwise-round: data
BenchmarkArtifact/save/128MiB-2   5  1 ns/op  400.00 MB/s
BenchmarkArtifact/plain-write/128MiB-2   5  1 ns/op  2000.00 MB/s
BenchmarkListRuns/all-10000-2  5  40000000 ns/op
PASS
`

func TestTable(t *testing.T) {
	res, err := parse(strings.NewReader(twoRounds))
	if err != nil {
		t.Fatal(err)
	}
	got := table(res, rows)
	for _, want := range []string{
		"| floor: do-nothing Go binary, started in sequence | 6 ms ±33% | — | — | — | — |",
		"| `branchjoin show` | 9 ms ±33% | 7.5 ms ±60% (sequential) | 1.50× | ≤ 2× floor | met |",
		"| seed flow `branchjoin run`, end to end (shared datastore) | 60 ms ±33% | 6 ms ±33% (sequential) | 10.00× | ≤ 6× floor | missed by 1.67× (needs ≤ 36 ms) |",
		"| `foreach run --n 1000`, per task (1,003 tasks) | 4.5 ms ±33% per task (4.51 s per run) | 2.5 ms ±60% (16 parallel) | 2.25× | ≤ 2× floor | missed by 1.12× (needs ≤ 4 ms) |",
		"| save one 128 MiB `[]float64` artifact (encode, hash, store) | 400 MB/s | 2,000 MB/s (plain write) | 5.00× | ≥ 500 MB/s | missed by 100 MB/s |",
		"| list all 10,000 runs of a flow (client, embedded store) | 40 ms | — | — | < 1 s | met |",
	} {
		if !strings.Contains(got, want+"\n") {
			t.Errorf("table lacks\n%s\nin\n%s", want, got)
		}
	}
	if strings.Contains(got, "check") || strings.Contains(got, "S3") {
		t.Errorf("table has rows that were not measured:\n%s", got)
	}
	n := notes(res, "")
	for _, want := range []string{"Machine: AMD EPYC, 2 cores", "2 rounds of the process benchmarks", "Load average (1 min) during the run: 1.50 to 3.50."} {
		if !strings.Contains(n, want) {
			t.Errorf("notes lack %q:\n%s", want, n)
		}
	}
}

func TestRatioWithoutCommonRound(t *testing.T) {
	res, err := parse(strings.NewReader("stepwise-round: a\nBenchmarkFloor/sequential-2 1 1 ns/op 2 ms/start\nstepwise-round: b\nBenchmarkCommand/show-2 1 1 ns/op 5 ms/run\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := res.ratio(metric{"Command/show", "ms/run"}, metric{"Floor/sequential", "ms/start"}); got != 2.5 {
		t.Errorf("ratio = %v, want 2.5 (median over median)", got)
	}
}

func TestParseErrorNamesLine(t *testing.T) {
	_, err := parse(strings.NewReader("goos: linux\nBenchmarkX-2 5 twelve ns/op\n"))
	if err == nil || !strings.Contains(err.Error(), "line 2") || !strings.Contains(err.Error(), "twelve") {
		t.Fatalf("error %v does not name line 2 and its value", err)
	}
}

func TestThousands(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 999.6: "1,000", 1234: "1,234", 28500: "28,500", 1234567: "1,234,567", -1234: "-1,234"} {
		if got := thousands(v); got != want {
			t.Errorf("thousands(%v) = %q, want %q", v, got, want)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(twoRounds)
	f.Add("BenchmarkX-2 5 12 ns/op 7")
	f.Add("stepwise-round:\nBenchmarkA 1 1e308 MB/s\n")
	f.Fuzz(func(t *testing.T, in string) {
		res, err := parse(strings.NewReader(in))
		if err != nil {
			return
		}
		for name, ss := range res.samples {
			if name == "" {
				t.Fatal("a sample without a name")
			}
			for _, s := range ss {
				for u, v := range s.values {
					if math.IsNaN(v) || math.IsInf(v, 0) {
						t.Fatalf("%s %s = %v", name, u, v)
					}
				}
			}
		}
		_ = table(res, rows) // must not panic, whatever was measured
		_ = notes(res, "")
	})
}
