package stepwise_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"stepwise.dev/stepwise"
	"stepwise.dev/stepwise/client"
	"stepwise.dev/stepwise/internal/datastore/s3"
	"stepwise.dev/stepwise/internal/metadata/postgres"
	"stepwise.dev/stepwise/internal/metadata/service"
	"stepwise.dev/stepwise/internal/testservers"
)

var teamPrefix atomic.Int64

// teamEnv points the test at team mode: artifacts on a real MinIO, and a
// metadata service on a fresh PostgreSQL database, with a token. It
// returns the datastore URL.
func teamEnv(t *testing.T) string {
	t.Helper()
	store, err := postgres.Open(context.Background(), testservers.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	api := httptest.NewServer(service.NewHandler(store, service.Options{Tokens: []string{"team-secret"}}))
	t.Cleanup(api.Close)
	return teamEnvWith(t, api.URL)
}

// teamEnvWith points the test at a real MinIO and at the metadata service
// at url, and returns the datastore URL.
func teamEnvWith(t *testing.T, url string) string {
	t.Helper()
	ctx := context.Background()
	srv := testservers.MinIO(t)
	t.Setenv("STEPWISE_METADATA", url)
	t.Setenv("STEPWISE_TOKEN", "team-secret")
	t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_ENDPOINT_URL_S3", srv.Endpoint)
	ds := fmt.Sprintf("s3://stepwise-team/t%d-%d", os.Getpid(), teamPrefix.Add(1))
	b, err := s3.New(ctx, ds, s3.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.CreateBucket(ctx); err != nil {
		t.Fatal(err)
	}
	return ds
}

// TestTeamMode runs the end-to-end tests again against MinIO and the
// metadata service on PostgreSQL.
func TestTeamMode(t *testing.T) {
	tests := []struct {
		name string
		fn   func(*testing.T)
	}{
		{"resume from a failed branch", TestResumeFromFailedBranch},
		{"resume inside a foreach", TestResumeInsideForeach},
		{"resume errors", TestResumeErrors},
		{"namespaces and tags", TestNamespacesAndTags},
		{"branches in parallel", TestBranchesRunInParallelProcesses},
		{"killed task keeps logs", TestKilledTaskKeepsItsLogs},
		{"every transition and value kind", TestEveryTransitionKindAndValueKind},
		{"merge", TestMerge},
		{"retry", TestRetrySucceedsOnThirdAttempt},
		{"catch", TestCatchStoresTheErrorAndGoesOn},
		{"timeout", TestTimeoutKillsSleepingStep},
		{"panic", TestPanicBecomesAFailedTaskWithItsStack},
		{"foreach width cap", TestForeachWidthCap},
		{"declared cpu", TestDeclaredCPUIsNeverOversubscribed},
		{"step bigger than the machine", TestStepBiggerThanTheMachineIsRefusedBeforeTheRun},
		{"bad parameters", TestBadParameters},
		{"unstorable field", TestUnstorableFieldNamesFieldAndType},
		{"interrupt", TestInterruptStopsTasksAndSaysHowToResume},
		{"kill -9 then resume", TestKill9ThenResumeCompletes},
		{"two runs at once", TestTwoRunsAtOnceInOneDirectory},
		{"run driven without a launcher", TestRunDrivenWithoutALauncher},
		{"driven task killed shows as lost", TestDrivenTaskKilledShowsAsLost},
		{"a second compute backend", TestSecondComputeBackend},
	}
	t.Setenv("STEPWISE_TEST_TEAM", "1")
	for _, tt := range tests {
		t.Run(tt.name, tt.fn)
	}
}

// TestTwoMachines: two working directories stand for two machines that
// share the team's datastore and metadata service. A run made in one is
// listed, dumped and resumed from the other.
func TestTwoMachines(t *testing.T) {
	testEnv(t, "ann")
	t.Setenv("STEPWISE_DATASTORE", teamEnv(t))
	bins := t.TempDir()
	// The example keeps its data locally; a team adds the S3 backend with
	// one import, here through a build overlay.
	cmd := exec.Command("go", "build", "-overlay", withS3(t), "-o", bins+"/", "./examples/branchjoin", "./cmd/stepwise")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	machineA, machineB := t.TempDir(), t.TempDir()
	sh := func(dir, name string, args ...string) string {
		t.Helper()
		c := exec.Command(filepath.Join(bins, name), args...)
		c.Dir = dir
		out, err := c.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v in %s: %v\n%s", name, args, dir, err, out)
		}
		return string(out)
	}
	out := sh(machineA, "branchjoin", "run", "--tag", "shared")
	id := regexp.MustCompile(`run (\d+)`).FindStringSubmatch(out)[1]
	if list := sh(machineB, "stepwise", "runs", "BranchJoin", "--tag", "shared"); !strings.Contains(list, "BranchJoin/"+id) {
		t.Errorf("machine B does not list the run of machine A:\n%s", list)
	}
	if dump := sh(machineB, "stepwise", "dump", "BranchJoin/"+id+"/end"); !strings.Contains(dump, "Out") || !strings.Contains(dump, " 3") {
		t.Errorf("machine B cannot dump the run of machine A:\n%s", dump)
	}
	if logs := sh(machineB, "stepwise", "logs", "BranchJoin/"+id+"/end"); !strings.Contains(logs, "3") {
		t.Errorf("machine B cannot read the logs of machine A:\n%s", logs)
	}
	res := sh(machineB, "branchjoin", "resume", "join", "--origin-run-id", id)
	if !strings.Contains(res, "] 3") || !strings.Contains(res, "cloned from the origin run") {
		t.Errorf("resume on machine B:\n%s", res)
	}
	for _, dir := range []string{machineA, machineB} {
		if _, err := os.Stat(filepath.Join(dir, ".stepwise")); err == nil {
			t.Errorf("%s has a local .stepwise: team mode must keep nothing locally", dir)
		}
	}
}

// withS3 returns a go build overlay that adds the team's backends (S3 and
// the metadata service's client) to examples/branchjoin.
func withS3(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "s3.go")
	os.WriteFile(src, []byte("package main\n\nimport (\n\t_ \"stepwise.dev/stepwise/backend/s3\"\n\t_ \"stepwise.dev/stepwise/backend/service\"\n)\n"), 0o644)
	abs, _ := filepath.Abs("examples/branchjoin/zz_s3.go")
	overlay := filepath.Join(dir, "overlay.json")
	data, _ := json.Marshal(map[string]map[string]string{"Replace": {abs: src}})
	os.WriteFile(overlay, data, 0o644)
	return overlay
}

// TestS3MissingSaysWhichImport: a flow binary without the S3 backend,
// pointed at an S3 datastore, says which import adds it.
func TestS3MissingSaysWhichImport(t *testing.T) {
	testEnv(t, "ann")
	bin := filepath.Join(t.TempDir(), "branchjoin")
	if out, err := exec.Command("go", "build", "-o", bin, "./examples/branchjoin").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "run")
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "STEPWISE_DATASTORE=s3://bucket/prefix", "STEPWISE_METADATA=http://127.0.0.1:9")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), `add import _ "stepwise.dev/stepwise/backend/s3"`) {
		t.Errorf("run with an S3 datastore and no S3 backend: %v\n%s", err, out)
	}
	if bi, err := exec.Command("go", "version", "-m", bin).Output(); err != nil || strings.Contains(string(bi), "aws-sdk-go") {
		t.Errorf("the local-only example links the AWS SDK (%v):\n%s", err, bi)
	}
}

// TestMinIORestartDuringRun restarts the object store in the middle of a
// run: the run completes thanks to retries, or fails with a clear error and
// resumes to completion; either way no artifact is lost or damaged.
func TestMinIORestartDuringRun(t *testing.T) {
	testEnv(t, "ann")
	t.Setenv("STEPWISE_DATASTORE", teamEnv(t))
	srv := testservers.MinIO(t)
	if srv.Dir == "" {
		t.Fatal("this test restarts MinIO, so it needs the one the test binary starts; unset STEPWISE_TEST_S3_ENDPOINT")
	}
	work, marks := t.TempDir(), t.TempDir()
	cmd, out := startSleepy(t, work, "run", "--n", "8", "--nap", "200ms", "--dir", marks, "--max-workers", "2")
	waitFor(t, 60*time.Second, "two items to start", func() bool { return len(startedFiles(marks)) >= 2 })
	if err := srv.Restart(context.Background(), 2*time.Second); err != nil {
		t.Fatal(err)
	}
	runErr := cmd.Wait()
	ctx := context.Background()
	c, err := client.Open(ctx, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if runErr != nil {
		t.Logf("the run failed during the restart (allowed if clear):\n%s", out)
		if !strings.Contains(out.String(), "s3") && !strings.Contains(out.String(), "connect") {
			t.Errorf("the failure does not say what happened:\n%s", out)
		}
		res := exec.Command(sleepy(t), "resume")
		res.Dir = work
		if rout, err := res.CombinedOutput(); err != nil {
			t.Fatalf("resume after the restart: %v\n%s", err, rout)
		}
	}
	run, err := c.Flow("Sleepy").LatestRun(ctx)
	if err != nil || !run.Successful() {
		t.Fatalf("latest run %+v, %v; want a successful run\n%s", run, err, out)
	}
	end, _ := run.EndTask(ctx)
	if sum, err := client.Get[int](ctx, end, "Sum"); err != nil || sum != 360 {
		t.Errorf("Sum = %d, %v; want 360", sum, err)
	}
	tasks, _ := run.Tasks(ctx)
	for _, tk := range tasks {
		for _, a := range tk.Artifacts {
			if _, err := tk.Raw(ctx, a.Name); err != nil {
				t.Errorf("artifact %s of %s: %v", a.Name, tk.Pathspec(), err)
			}
		}
	}
}

// Steady fans out over N items that take a moment each.
type Steady struct {
	N     int `param:"n"`
	Items []int
	Item  int
	Sum   int
}

func (f *Steady) Graph(g *stepwise.Graph) {
	g.Step(f.Start).Foreach("Items", f.Body)
	g.Step(f.Body).Next(f.Join)
	g.Step(f.Join).Next(f.End)
	g.Step(f.End)
}
func (f *Steady) Start(context.Context) error {
	for i := 1; i <= f.N; i++ {
		f.Items = append(f.Items, i)
	}
	return nil
}
func (f *Steady) Body(_ context.Context, item int) error {
	time.Sleep(30 * time.Millisecond)
	f.Item = item
	mark("item")
	return nil
}
func (f *Steady) Join(_ context.Context, in stepwise.Inputs[*Steady]) error {
	for _, t := range in.All() {
		f.Sum += t.Item
	}
	return nil
}
func (f *Steady) End(context.Context) error { return nil }

// restartable serves the metadata service on a fixed loopback address and
// can stop it for a while, as a restart of the service does.
type restartable struct {
	addr   string
	h      http.Handler
	cancel context.CancelFunc
	done   chan error
}

func serveRestartable(t *testing.T, h http.Handler) *restartable {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &restartable{addr: l.Addr().String(), h: h}
	r.serve(l)
	t.Cleanup(func() { r.cancel(); <-r.done })
	return r
}

func (r *restartable) serve(l net.Listener) {
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel, r.done = cancel, make(chan error, 1)
	go func() { r.done <- service.ServeListener(ctx, l, r.h) }()
}

func (r *restartable) restart(pause time.Duration) error {
	r.cancel()
	<-r.done
	time.Sleep(pause)
	l, err := net.Listen("tcp", r.addr)
	if err != nil {
		return err
	}
	r.serve(l)
	return nil
}

// TestRunRidesOutMetadataOutages restarts PostgreSQL (2.4 s down) and then
// the metadata service (3 s down) in the middle of a run: the run
// completes, with every task recorded once and none left running.
func TestRunRidesOutMetadataOutages(t *testing.T) {
	_, marksFile := testEnv(t, "ann")
	ctx := context.Background()
	pg := testservers.NewPostgres(t)
	store, err := postgres.Open(ctx, pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	svc := serveRestartable(t, service.NewHandler(store, service.Options{Tokens: []string{"team-secret"}}))
	ds := teamEnvWith(t, "http://"+svc.addr)
	outages := make(chan error, 2)
	go func() {
		waitFor(t, time.Minute, "20 items", func() bool { return marks(t, marksFile, "item") >= 20 })
		outages <- pg.Restart(2400 * time.Millisecond)
		waitFor(t, time.Minute, "60 items", func() bool { return marks(t, marksFile, "item") >= 60 })
		outages <- svc.restart(3 * time.Second)
	}()
	var out strings.Builder
	run, err := stepwise.Run(ctx, &Steady{}, &stepwise.RunOptions{Datastore: ds, MaxWorkers: 4, Params: map[string]string{"n": "120"}, Output: &out})
	for range 2 {
		if oerr := <-outages; oerr != nil {
			t.Fatalf("restarting: %v", oerr)
		}
	}
	if err != nil {
		t.Fatalf("the run did not ride out the outages: %v\n%s", err, out.String())
	}
	if run.Status != client.Succeeded {
		t.Errorf("run status %s, want succeeded", run.Status)
	}
	end, _ := run.EndTask(ctx)
	if sum, _ := client.Get[int](ctx, end, "Sum"); sum != 120*121/2 {
		t.Errorf("sum %d, want %d", sum, 120*121/2)
	}
	tasks, err := run.Tasks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(tasks) != 123 {
		t.Errorf("%d tasks recorded, want 123", len(tasks))
	}
	for _, tk := range tasks {
		if tk.Status != client.Succeeded || len(tk.Attempts) != 1 {
			t.Errorf("task %s: %s with %d attempts, want succeeded once", tk.Pathspec(), tk.Status, len(tk.Attempts))
		}
	}
}

// TestDatastoreFailureLeavesNoRunningRun: a run whose datastore cannot be
// written (a bucket that does not exist) is refused, and the run recorded
// in the metadata store is marked failed, not left running.
func TestDatastoreFailureLeavesNoRunningRun(t *testing.T) {
	testEnv(t, "ann")
	good := teamEnv(t)
	ctx := context.Background()
	// With no run anywhere yet, the datastore is looked at before anything
	// is recorded.
	ds := fmt.Sprintf("s3://no-such-bucket-%d/x", teamPrefix.Add(1))
	_, err := stepwise.Run(ctx, &Flaky{}, &stepwise.RunOptions{Datastore: ds})
	if err == nil || !strings.Contains(err.Error(), "no-such-bucket") || !strings.Contains(err.Error(), "doctor") {
		t.Fatalf("first run on a missing bucket: %v; want a refusal that names the bucket and stepwise doctor", err)
	}
	// Once the metadata store has runs, the run is recorded first and
	// then marked failed when its datastore refuses it.
	if _, err := stepwise.Run(ctx, &Flaky{}, &stepwise.RunOptions{Datastore: good}); err != nil {
		t.Fatal(err)
	}
	_, err = stepwise.Run(ctx, &Flaky{}, &stepwise.RunOptions{Datastore: ds})
	if err == nil || !strings.Contains(err.Error(), "cannot write to the datastore") || !strings.Contains(err.Error(), "doctor") {
		t.Fatalf("run on a missing bucket: %v; want a refusal that names the datastore and stepwise doctor", err)
	}
	c, err := client.Open(ctx, client.Options{Namespace: new(client.Global)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	runs, err := c.Flow("Flaky").Runs(ctx, client.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 2 || runs[0].Status != client.Failed {
		t.Errorf("runs %+v; want the good one and the refused one, marked failed", runs)
	}
	for _, r := range runs {
		if r.Status == client.Running {
			t.Errorf("run %s is left running", r.Pathspec())
		}
	}
}
