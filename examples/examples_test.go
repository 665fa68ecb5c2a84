// Package examples_test runs every example program the way a user does:
// built with go build, then run, show and check from the command line.
package examples_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"stepwise.dev/stepwise/internal/testservers"
	s3fs "stepwise.dev/stepwise/internal/warehouse/s3"
)

var bins string // folder with the built examples

var examples = []string{"branchjoin", "foreach", "linear", "nested", "table"}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "stepwise-examples-")
	if err != nil {
		panic(err)
	}
	bins = dir
	args := append([]string{"build", "-o", dir + "/"}, func() []string {
		var out []string
		for _, e := range examples {
			out = append(out, "./"+e)
		}
		return out
	}()...)
	cmd := exec.Command("go", args...)
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the examples failed:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// run runs an example binary in dir and returns its stdout, stderr and
// exit code.
func run(t *testing.T, dir, example string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(filepath.Join(bins, example), args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "STEPWISE_DATASTORE=", "STEPWISE_METADATA=", "STEPWISE_TOKEN=", "STEPWISE_CONFIG="+filepath.Join(dir, "no-config.json"))
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s %v: %v", example, args, err)
	}
	return out.String(), errOut.String(), code
}

func TestShowAndCheckEveryExample(t *testing.T) {
	for _, e := range examples {
		t.Run(e, func(t *testing.T) {
			dir := t.TempDir()
			out, errOut, code := run(t, dir, e, "check")
			if code != 0 || !strings.Contains(out, "graph OK") {
				t.Fatalf("check: exit %d\n%s%s", code, out, errOut)
			}
			out, errOut, code = run(t, dir, e, "show")
			if code != 0 || !strings.Contains(out, "start") || !strings.Contains(out, "(end)") {
				t.Fatalf("show: exit %d\n%s%s", code, out, errOut)
			}
			out, errOut, code = run(t, dir, e, "show", "--json")
			if code != 0 || !strings.Contains(out, `"name": "start"`) {
				t.Fatalf("show --json: exit %d\n%s%s", code, out, errOut)
			}
		})
	}
}

var lineRE = regexp.MustCompile(`(?m)^\[(\d+)/(\w+)/(\d+)\] (.*)$`)

func TestBranchJoinPrints3WithParallelBranches(t *testing.T) {
	dir := t.TempDir()
	out, errOut, code := run(t, dir, "branchjoin", "run")
	if code != 0 {
		t.Fatalf("run exited %d\n%s%s", code, out, errOut)
	}
	if !regexp.MustCompile(`(?m)^Flow BranchJoin, run \d{16} \(run, user \S+\)$`).MatchString(out) {
		t.Errorf("run does not announce flow and run id:\n%s", out)
	}
	// Order of events: both branches start before either finishes.
	var events []string
	for _, m := range lineRE.FindAllStringSubmatch(out, -1) {
		switch {
		case m[2] == "end" && m[4] == "3":
			events = append(events, "end printed 3")
		case m[4] == "task started" && (m[2] == "a" || m[2] == "b"):
			events = append(events, m[2]+" started")
		case strings.HasPrefix(m[4], "task finished") && (m[2] == "a" || m[2] == "b"):
			events = append(events, m[2]+" finished")
		}
	}
	if len(events) != 5 || events[4] != "end printed 3" {
		t.Fatalf("events %q, want a and b start and finish then end printing 3; output:\n%s", events, out)
	}
	if !strings.HasSuffix(events[0], "started") || !strings.HasSuffix(events[1], "started") {
		t.Errorf("a and b did not both start before either finished: %q", events)
	}
}

func TestForeachSums(t *testing.T) {
	tests := []struct {
		n    int
		want int
	}{{1, 1}, {10, 385}, {1000, 333833500}}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.n), func(t *testing.T) {
			out, errOut, code := run(t, t.TempDir(), "foreach", "run", "--quiet", "--n", fmt.Sprint(tt.n))
			want := fmt.Sprintf("sum of squares of 1..%d = %d", tt.n, tt.want)
			if code != 0 || !strings.Contains(out, want) {
				t.Fatalf("exit %d, want %q in output:\n%s%s", code, want, out, errOut)
			}
		})
	}
}

func TestLinearAndNested(t *testing.T) {
	out, errOut, code := run(t, t.TempDir(), "linear", "run", "--rows", "200", "--epochs", "50", "--lr", "0.2")
	if code != 0 || !strings.Contains(out, "200 rows") {
		t.Fatalf("linear: exit %d\n%s%s", code, out, errOut)
	}
	out, errOut, code = run(t, t.TempDir(), "nested", "run", "--dataset", "wine")
	if code != 0 || !strings.Contains(out, "best on wine: rate=0.3 depth=4") {
		t.Fatalf("nested: exit %d\n%s%s", code, out, errOut)
	}
}

func TestBadParameterIsAUsageError(t *testing.T) {
	_, errOut, code := run(t, t.TempDir(), "foreach", "run", "--n", "many")
	if code != 2 || !strings.Contains(errOut, `invalid value "many" for flag -n: "many" is not an integer`) {
		t.Fatalf("exit %d, stderr:\n%s", code, errOut)
	}
	_, errOut, code = run(t, t.TempDir(), "foreach", "fly")
	if code != 2 || !strings.Contains(errOut, `unknown command "fly"`) {
		t.Fatalf("exit %d, stderr:\n%s", code, errOut)
	}
}

// TestTableSums runs the table example on local disk and on MinIO and
// checks its sums against a computation of the same rows without tables.
func TestTableSums(t *testing.T) {
	const rows, fromDay = 60_000, 2
	regions := []string{"asia", "eu", "us"}
	rate := map[string]int64{"asia": 1500, "eu": 900, "us": 1000}
	sums := map[string]int64{}
	var count int64
	for i := 0; i < rows; i++ {
		region, day, cents := regions[i%3], (i/7)%5, int64(i*7919)%10_000
		if day >= fromDay {
			sums[region] += cents
			count++
		}
	}
	var total int64
	var want []string
	for _, r := range regions {
		conv := sums[r] * 1000 / rate[r]
		total += conv
		want = append(want, fmt.Sprintf("%s: %d", r, conv))
	}
	want = append(want, fmt.Sprintf("total of %d sales from day %d: %d", count, fromDay, total))
	srv := testservers.MinIO(t)
	for _, data := range []string{"table-data", fmt.Sprintf("s3://stepwise-example/table-%d", time.Now().UnixNano())} {
		t.Run(strings.SplitN(data, ":", 2)[0], func(t *testing.T) {
			if strings.HasPrefix(data, "s3://") {
				t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
				t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
				t.Setenv("AWS_REGION", "us-east-1")
				t.Setenv("AWS_ENDPOINT_URL_S3", srv.Endpoint)
				makeBucket(t, srv, "stepwise-example")
			}
			dir := t.TempDir()
			out, errOut, code := run(t, dir, "table", "run", "--quiet", "--rows", fmt.Sprint(rows), "--data", data, "--from-day", fmt.Sprint(fromDay))
			if code != 0 {
				t.Fatalf("exit %d:\n%s%s", code, out, errOut)
			}
			for _, w := range want {
				if !strings.Contains(out, "] "+w+"\n") {
					t.Fatalf("want %q in the output:\n%s", w, out)
				}
			}
			// The read of a region is recorded with its task: dump shows the
			// dataset version, the filter and the 3 files of days 2-4.
			out, errOut, code = run(t, dir, "table", "dump", "latest/sum_region/1")
			if code != 0 || !regexp.MustCompile(`/sales +parquet +1 +\S+ \S+ +3 +\d+ +region = 'eu' and day >= 2`).MatchString(out) {
				t.Fatalf("dump of a sum_region task (exit %d) does not show its table read:\n%s%s", code, out, errOut)
			}
		})
	}
}

// makeBucket creates a bucket on the test MinIO.
func makeBucket(t *testing.T, srv *testservers.S3, bucket string) {
	t.Helper()
	fsys, err := s3fs.New(context.Background(), "s3://"+bucket, s3fs.Options{Endpoint: srv.Endpoint})
	if err != nil {
		t.Fatal(err)
	}
	if err := fsys.CreateBucket(context.Background()); err != nil {
		t.Fatal(err)
	}
}
