package stepwise_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"stepwise.dev/stepwise/client"
	"stepwise.dev/stepwise/internal/datastore/s3"
)

// The cluster tests below wait for what the cluster does with generous
// limits: they guard against hangs, they do not time anything.
const kubeLimit = 4 * time.Minute

// client opens a client on the cluster's stores, as the user "ann".
func (c *cluster) client(t testing.TB) *client.Client {
	t.Helper()
	cl, err := client.Open(context.Background(), client.Options{Datastore: c.ds, Metadata: c.meta})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

// bgFlow is a flow program running in the background.
type bgFlow struct {
	cmd         *exec.Cmd
	out, errOut syncBuffer
	done        chan struct{}
	code        int
}

// start starts a flow program with the cluster's settings (and extra
// environment) without waiting for it.
func (c *cluster) start(t testing.TB, env []string, name string, args ...string) *bgFlow {
	t.Helper()
	b := &bgFlow{cmd: exec.Command(filepath.Join(c.bins, name), args...), done: make(chan struct{})}
	b.cmd.Dir = t.TempDir()
	b.cmd.Env = append(append([]string{}, c.env...), env...)
	b.cmd.Stdout, b.cmd.Stderr = &b.out, &b.errOut
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		err := b.cmd.Wait()
		b.code = b.cmd.ProcessState.ExitCode()
		if err != nil && b.code == 0 {
			b.code = -1
		}
		close(b.done)
	}()
	t.Cleanup(func() {
		select {
		case <-b.done:
		default:
			b.cmd.Process.Kill()
			<-b.done
		}
	})
	return b
}

// wait waits for the program to exit and returns its exit code.
func (b *bgFlow) wait(t testing.TB) int {
	t.Helper()
	return b.waitWithin(t, kubeLimit)
}

// waitWithin is wait with a time limit of its own, for long runs.
func (b *bgFlow) waitWithin(t testing.TB, limit time.Duration) int {
	t.Helper()
	select {
	case <-b.done:
		return b.code
	case <-time.After(limit):
		b.cmd.Process.Kill()
		<-b.done
		t.Fatalf("%s did not end within %s\nstdout:\n%s\nstderr:\n%s", b.cmd.Args, limit, b.out.String(), b.errOut.String())
		return 0
	}
}

func (b *bgFlow) String() string {
	return fmt.Sprintf("%s\nstdout:\n%s\nstderr:\n%s", b.cmd.Args, b.out.String(), b.errOut.String())
}

// waitPod waits until a pod of the test's namespace matching the label
// selector satisfies cond, and returns it. The program b must not end
// meanwhile.
func (c *cluster) waitPod(t *testing.T, b *bgFlow, selector, what string, cond func(*corev1.Pod) bool) *corev1.Pod {
	t.Helper()
	deadline := time.Now().Add(kubeLimit)
	for {
		pods, err := c.admin.CoreV1().Pods(c.ns.Name).List(context.Background(), metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			t.Fatal(err)
		}
		for i := range pods.Items {
			if cond(&pods.Items[i]) {
				return &pods.Items[i]
			}
		}
		select {
		case <-b.done:
			t.Fatalf("waiting for a pod (%s) %s, the program ended: %s", selector, what, b)
		case <-time.After(250 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no pod (%s) %s after %s: %s", selector, what, kubeLimit, b)
		}
	}
}

func running(p *corev1.Pod) bool {
	if p.Status.Phase != corev1.PodRunning || p.DeletionTimestamp != nil {
		return false
	}
	for _, s := range p.Status.ContainerStatuses {
		if s.Name == "task" && s.State.Running != nil {
			return true
		}
	}
	return false
}

// runJobs lists the Jobs of a run.
func (c *cluster) runJobs(t *testing.T, run string) int {
	t.Helper()
	jobs, err := c.admin.BatchV1().Jobs(c.ns.Name).List(context.Background(), metav1.ListOptions{LabelSelector: "stepwise.dev/run=" + run})
	if err != nil {
		t.Fatal(err)
	}
	return len(jobs.Items)
}

// attempts returns the attempts recorded for the task run/step/0.
func (c *cluster) attempts(t *testing.T, flow, run, step string) []client.Attempt {
	t.Helper()
	at, err := c.tryAttempts(t, flow, run, step)
	if err != nil {
		t.Fatal(err)
	}
	return at
}

func (c *cluster) tryAttempts(t *testing.T, flow, run, step string) ([]client.Attempt, error) {
	t.Helper()
	task, err := c.client(t).Task(context.Background(), flow+"/"+run+"/"+step+"/0")
	if err != nil {
		return nil, err
	}
	return task.Attempts, nil
}

// TestKubernetesForeachExample runs examples/foreach, built with the team
// backends, wholly on the cluster: 100 items, one pod each.
func TestKubernetesForeachExample(t *testing.T) {
	c := kubeCluster(t)
	out, errOut := c.flow(t, 0, "foreach", "run", "--n", "100", "--compute", "kubernetes")
	if !strings.Contains(out, "sum of squares of 1..100 = 338350") {
		t.Fatalf("foreach on Kubernetes:\n%s\n%s", out, errOut)
	}
	id := runID(t, out+errOut)
	if n := c.runJobs(t, id); n != 103 {
		t.Errorf("%d Jobs, want 103 (start, 100 items, join, end)", n)
	}
}

// TestKubernetesOutcomes runs one step per outcome, in parallel branches on
// the cluster: exit 1 then a retry, a timeout, an OOM kill, a GPU step on
// the node with the GPU, and more GPUs than any node has.
func TestKubernetesOutcomes(t *testing.T) {
	c := kubeCluster(t)
	out, errOut := c.flow(t, 0, "kubecases", "run")
	all := out + errOut
	id := runID(t, all)
	for _, want := range []string{
		"tries=2",
		"timeout=",
		"oom=",
		"out of memory: raise MemoryMB (asked 48)",
		"gpus=",
		"Insufficient nvidia.com/gpu",
		"first attempt: exit 1",
		"exit_once/0] attempt 0 failed (exit status 1); retrying",
		"second attempt: fine",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("the run's output lacks %q:\n%s", want, all)
		}
	}
	if !strings.Contains(all, "timeout=") || !strings.Contains(strings.ToLower(all[strings.Index(all, "timeout="):]), "timed out") {
		t.Errorf("the slow step did not time out:\n%s", all)
	}

	// exit 1 then a retry: two Jobs, two attempts recorded.
	jobs, err := c.admin.BatchV1().Jobs(c.ns.Name).List(context.Background(), metav1.ListOptions{LabelSelector: "stepwise.dev/run=" + id + ",stepwise.dev/step=exit_once"})
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs.Items) != 2 {
		t.Errorf("%d Jobs for exit_once, want 2 (one per attempt)", len(jobs.Items))
	}
	at := c.attempts(t, "KubeCases", id, "exit_once")
	if len(at) != 2 || at[0].Status != client.Failed || !strings.Contains(at[0].Error, "the first attempt fails on purpose") || at[1].Status != client.Succeeded {
		t.Errorf("attempts of exit_once: %+v", at)
	}
	// The OOM kill and the timeout are recorded with their reasons (a
	// caught failure is followed by the attempt that records it).
	if at := c.attempts(t, "KubeCases", id, "greedy"); len(at) != 2 || !strings.Contains(at[0].Error, "out of memory: raise MemoryMB (asked 48)") {
		t.Errorf("attempts of greedy: %+v", at)
	}
	if at := c.attempts(t, "KubeCases", id, "slow"); len(at) != 2 || !strings.Contains(strings.ToLower(at[0].Error), "timed out") {
		t.Errorf("attempts of slow: %+v", at)
	}
	// The GPU step ran on the node with the GPU.
	pods, err := c.admin.CoreV1().Pods(c.ns.Name).List(context.Background(), metav1.ListOptions{LabelSelector: "stepwise.dev/run=" + id + ",stepwise.dev/step=one_gpu"})
	if err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) != 1 || !strings.HasPrefix(pods.Items[0].Spec.NodeName, "node-gpu-") {
		for _, p := range pods.Items {
			t.Errorf("one_gpu's pod %s ran on %q", p.Name, p.Spec.NodeName)
		}
		t.Errorf("%d pods for one_gpu, want 1 on the GPU node", len(pods.Items))
	}
	// More GPUs than any node has: failed with the scheduler's message,
	// and its Job is gone.
	if at := c.attempts(t, "KubeCases", id, "too_many_gpu"); len(at) != 2 || !strings.Contains(at[0].Error, "could not be scheduled") || !strings.Contains(at[0].Error, "Insufficient nvidia.com/gpu") {
		t.Errorf("attempts of too_many_gpu: %+v", at)
	}
}

var runIDPattern = regexp.MustCompile(`run (\d+)`)

// runID finds the run's id in a flow program's output.
func runID(t *testing.T, out string) string {
	t.Helper()
	m := runIDPattern.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no run id in:\n%s", out)
	}
	return m[1]
}

// TestKubernetesLostPods takes the pod of a running task away three ways:
// deleted, its node stopped, its node cut off from the network. Each time
// the attempt fails with that reason and the retry runs on a node that is
// still there.
func TestKubernetesLostPods(t *testing.T) {
	c := kubeCluster(t)
	sel := "stepwise.dev/flow=KubeSleep,stepwise.dev/step=work"
	cases := []struct {
		name string
		do   func(t *testing.T, p *corev1.Pod)
		want string // in the first attempt's error
	}{
		{"deleted", func(t *testing.T, p *corev1.Pod) {
			if err := c.admin.CoreV1().Pods(c.ns.Name).Delete(context.Background(), p.Name, metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
		}, "its pod was deleted"},
		{"node stopped", func(t *testing.T, p *corev1.Pod) { c.nodes.Stop(t, p.Spec.NodeName) }, "lost"},
		{"node cut off", func(t *testing.T, p *corev1.Pod) { c.nodes.Partition(t, p.Spec.NodeName) }, "lost"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := c.start(t, nil, "kubesleep", "run", "--sleep", "600")
			p := c.waitPod(t, b, sel+",stepwise.dev/attempt=0", "running", func(p *corev1.Pod) bool {
				return running(p) && p.DeletionTimestamp == nil
			})
			run := p.Labels["stepwise.dev/run"]
			if tc.name == "deleted" {
				// The task's logs are readable while it runs.
				waitFor(t, kubeLimit, "live logs of the running task", func() bool {
					cmd := exec.Command(filepath.Join(c.bins, "kubesleep"), "logs", run+"/work")
					cmd.Env = c.env
					out, _ := cmd.Output()
					return bytes.Contains(out, []byte("working 1"))
				})
			}
			tc.do(t, p)
			if code := b.wait(t); code != 0 {
				t.Fatalf("exit %d: %s", code, b)
			}
			at := c.attempts(t, "KubeSleep", run, "work")
			if len(at) != 2 || at[0].Status != client.Failed || !strings.Contains(at[0].Error, tc.want) || at[1].Status != client.Succeeded {
				t.Fatalf("attempts: %+v\n%s", at, b)
			}
			retry := c.waitPod(t, &bgFlow{done: make(chan struct{})}, sel+",stepwise.dev/run="+run+",stepwise.dev/attempt=1", "listed", func(*corev1.Pod) bool { return true })
			if retry.Spec.NodeName == p.Spec.NodeName && tc.name != "deleted" {
				t.Errorf("the retry ran on %s, the node that was lost", retry.Spec.NodeName)
			}
		})
	}
}

// TestKubernetesInterruptAndKill: Ctrl-C deletes the run's Jobs; kill -9
// of the launcher leaves them running, and resume reuses what they
// finished.
func TestKubernetesInterruptAndKill(t *testing.T) {
	c := kubeCluster(t)
	sel := "stepwise.dev/flow=KubeSleep,stepwise.dev/step=work,stepwise.dev/attempt=0"

	t.Run("ctrl-c", func(t *testing.T) {
		b := c.start(t, nil, "kubesleep", "run", "--sleep", "600")
		p := c.waitPod(t, b, sel, "running", running)
		run := p.Labels["stepwise.dev/run"]
		b.cmd.Process.Signal(os.Interrupt)
		if code := b.wait(t); code == 0 {
			t.Fatalf("interrupted run exited 0: %s", b)
		}
		if n := c.runJobs(t, run); n != 0 {
			t.Errorf("%d Jobs of the interrupted run are left", n)
		}
		if !strings.Contains(b.errOut.String()+b.out.String(), "resume") {
			t.Errorf("the interrupted run does not say how to resume: %s", b)
		}
	})

	t.Run("kill -9 then resume", func(t *testing.T) {
		b := c.start(t, nil, "kubesleep", "run", "--sleep", "10")
		p := c.waitPod(t, b, sel, "running", running)
		run := p.Labels["stepwise.dev/run"]
		b.cmd.Process.Signal(syscall.SIGKILL)
		b.wait(t)
		if n := c.runJobs(t, run); n != 1 {
			t.Fatalf("%d Jobs after kill -9 of the launcher, want its 1 running", n)
		}
		if out, _ := c.flow(t, 0, "kubesleep", "jobs", run); !strings.Contains(out, "sw-kubesleep-"+run+"-work-0-0") || !strings.Contains(out, "running") {
			t.Errorf("jobs %s:\n%s", run, out)
		}
		// The task goes on without its launcher and records its end.
		waitFor(t, kubeLimit, "the task to finish without its launcher", func() bool {
			at, _ := c.tryAttempts(t, "KubeSleep", run, "work")
			return len(at) == 1 && at[0].Status == client.Succeeded
		})
		out, errOut := c.flow(t, 0, "kubesleep", "resume", "--origin-run-id", run)
		if !strings.Contains(out+errOut, "work/0] cloned from the origin run") || !strings.Contains(out, "done by "+p.Name) {
			t.Errorf("resume after kill -9 did not reuse work:\n%s\n%s", out, errOut)
		}
		if out, _ := c.flow(t, 0, "kubesleep", "jobs", "--kill", run); !strings.Contains(out, "deleted 1 job(s) of run "+run) {
			t.Errorf("jobs --kill %s: %s", run, out)
		}
		waitFor(t, kubeLimit, "the killed Jobs to go", func() bool { return c.runJobs(t, run) == 0 })
	})
}

// TestKubernetesSettings: what cannot work is said before anything runs, a
// damaged code blob is refused by the pod, and an image that holds the
// flow's binary runs it from there, with settings given as run flags.
func TestKubernetesSettings(t *testing.T) {
	c := kubeCluster(t)
	cases := []struct {
		name string
		env  []string
		want []string
		args []string // the program and its arguments, kubesleep run if empty
	}{
		{"missing secret", []string{"STEPWISE_KUBERNETES_TOKEN_SECRET=no-such-secret"},
			[]string{"Secret no-such-secret", "does not exist in namespace " + c.ns.Name}, nil},
		{"local datastore", []string{"STEPWISE_DATASTORE=" + t.TempDir()},
			[]string{"pods cannot reach", "s3://", "--compute local"}, nil},
		{"local set-up", []string{"STEPWISE_DATASTORE=" + t.TempDir(), "STEPWISE_METADATA=local"},
			[]string{"pods cannot reach", "set a metadata service", "set an S3 datastore", "--compute local"},
			[]string{"foreach", "run", "--compute", "kubernetes"}},
		{"API server unreachable", []string{"STEPWISE_KUBERNETES_KUBECONFIG=" + unreachableKubeconfig(t)},
			[]string{"cannot reach the API server", "kubeconfig"}, nil},
		{"no image", []string{"STEPWISE_KUBERNETES_IMAGE="},
			[]string{"names no image", "kubernetes.image"}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.args == nil {
				tc.args = []string{"kubesleep", "run"}
			}
			b := c.start(t, tc.env, tc.args[0], tc.args[1:]...)
			if code := b.wait(t); code == 0 {
				t.Fatalf("exit 0: %s", b)
			}
			for _, w := range tc.want {
				if !strings.Contains(b.errOut.String(), w) {
					t.Errorf("the error lacks %q: %s", w, b)
				}
			}
		})
	}
	// Nothing above left a run running.
	runs, err := c.client(t).Flow("KubeSleep").Runs(context.Background(), client.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range runs {
		if r.Status == client.Running {
			t.Errorf("run %s was left running", r.ID)
		}
	}

	t.Run("image with the binary", func(t *testing.T) {
		img := binaryImage(t, filepath.Join(c.bins, "kubesleep"))
		out, errOut := c.flow(t, 0, "kubesleep", "run", "--compute-setting", "kubernetes.image="+img, "--compute-setting", "kubernetes.binary=/flow")
		id := runID(t, out)
		jobs, err := c.admin.BatchV1().Jobs(c.ns.Name).List(context.Background(), metav1.ListOptions{LabelSelector: "stepwise.dev/run=" + id})
		if err != nil || len(jobs.Items) != 1 {
			t.Fatalf("jobs %v, %v\n%s%s", jobs, err, out, errOut)
		}
		p := jobs.Items[0].Spec.Template.Spec
		if p.Containers[0].Image != img || p.Containers[0].Command[0] != "/flow" || len(p.InitContainers) != 0 {
			t.Errorf("the pod does not run the image's binary: %+v", p)
		}
	})

	t.Run("corrupted code", func(t *testing.T) {
		bin, err := os.ReadFile(filepath.Join(c.bins, "kubesleep"))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(bin)
		store, err := s3.New(context.Background(), c.ds, s3.Options{})
		if err != nil {
			t.Fatal(err)
		}
		damaged := append(bytes.Clone(bin[:1<<20]), "not the flow"...)
		if err := store.Put(context.Background(), "code/"+hex.EncodeToString(sum[:]), bytes.NewReader(damaged), int64(len(damaged))); err != nil {
			t.Fatal(err)
		}
		b := c.start(t, nil, "kubesleep", "run")
		if code := b.wait(t); code == 0 {
			t.Fatalf("a run from a damaged code blob succeeded: %s", b)
		}
		for _, w := range []string{"does not match its SHA-256", "refusing to run it"} {
			if !strings.Contains(b.out.String()+b.errOut.String(), w) {
				t.Errorf("the run's output lacks %q: %s", w, b)
			}
		}
	})
}

// unreachableKubeconfig is a kubeconfig whose API server does not answer:
// its address accepts connections and never replies.
func unreachableKubeconfig(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c) // held open, never answered
		}
	}()
	t.Cleanup(func() { l.Close() })
	p := filepath.Join(t.TempDir(), "kubeconfig")
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: silent
  cluster:
    server: https://%s
contexts:
- name: silent
  context: {cluster: silent, user: silent}
current-context: silent
users:
- name: silent
  user: {token: x}
`, l.Addr())
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// binaryImage builds a local image that holds nothing but the flow binary
// at /flow, as a team's image built with its flow would.
func binaryImage(t *testing.T, bin string) string {
	t.Helper()
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	var tarball bytes.Buffer
	tw := tar.NewWriter(&tarball)
	tw.WriteHeader(&tar.Header{Name: "flow", Mode: 0o755, Size: int64(len(data)), ModTime: time.Now()})
	tw.Write(data)
	tw.Close()
	sum := sha256.Sum256(data)
	name := "stepwise-test/kubesleep:" + hex.EncodeToString(sum[:6])
	cmd := exec.Command("docker", "import", "-", name)
	cmd.Stdin = &tarball
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("docker import: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command("docker", "rmi", "-f", name).Run() })
	return name
}
