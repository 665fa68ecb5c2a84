package stepwise_test

import (
	"bytes"
	"context"
	"encoding/json"
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
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kube "k8s.io/client-go/kubernetes"

	"stepwise.dev/stepwise/internal/datastore"
	"stepwise.dev/stepwise/internal/datastore/s3"
	"stepwise.dev/stepwise/internal/metadata/postgres"
	"stepwise.dev/stepwise/internal/metadata/service"
	"stepwise.dev/stepwise/internal/testservers"
)

// cluster is the test cluster as a flow's launcher sees it: a control
// plane, nodes that run pods as Docker containers, MinIO and the metadata
// service reachable from the pods, a namespace whose service account has
// the Role docs/kubernetes.md documents, and the settings that point a
// flow program at all of it.
type cluster struct {
	k     *testservers.Kubernetes
	nodes *testservers.Nodes
	ns    *testservers.KubeNamespace
	admin *kube.Clientset
	env   []string // for flow programs: stores, credentials, kubernetes settings
	ds    string
	meta  string // the metadata service's URL
	bins  string
	imgs  testservers.Images
	minio *testservers.S3
}

// launcherRole reads the launcher's Role from docs/kubernetes.md, so that
// what is documented is what is tested.
func launcherRole(t testing.TB) string { return docRole(t, "docs/kubernetes.md") }

// docRole reads the Role in a yaml block of a document.
func docRole(t testing.TB, path string) string {
	t.Helper()
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)```yaml\n(apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\n.*?)```").FindSubmatch(doc)
	if m == nil {
		t.Fatalf("%s has no Role in a yaml block", path)
	}
	return string(m[1])
}

// kubeCluster sets up the cluster for one test. Nodes: node-a and node-b,
// and node-gpu with one nvidia.com/gpu.
func kubeCluster(t testing.TB) *cluster {
	t.Helper()
	return newCluster(t, roleRules(t, launcherRole(t)))
}

// roleRules reads the rules of Roles in YAML.
func roleRules(t testing.TB, roles ...string) []rbacv1.PolicyRule {
	t.Helper()
	var rules []rbacv1.PolicyRule
	for _, r := range roles {
		rs, err := testservers.KubeRules([]byte(r))
		if err != nil {
			t.Fatal(err)
		}
		rules = append(rules, rs...)
	}
	return rules
}

// newCluster is kubeCluster with these rules for the namespace's service
// account, which the flow programs use.
func newCluster(t testing.TB, rules []rbacv1.PolicyRule) *cluster {
	t.Helper()
	t.Setenv("STEPWISE_USER", "ann")
	t.Setenv("STEPWISE_CONFIG", filepath.Join(t.TempDir(), "config.json"))
	ctx := context.Background()
	k := testservers.Kube(t)
	imgs := testservers.TestImages(t)
	host := testservers.DockerHostIP(t)
	nodes := testservers.StartNodes(t, k,
		testservers.NodeSpec{Name: "node-a-" + shortName(t), CPU: "2", Memory: "4Gi"},
		testservers.NodeSpec{Name: "node-b-" + shortName(t), CPU: "2", Memory: "4Gi"},
		testservers.NodeSpec{Name: "node-gpu-" + shortName(t), CPU: "2", Memory: "4Gi", GPU: 1})
	minio := testservers.MinIOForPods(t)

	ds := fmt.Sprintf("s3://stepwise-kube/t%d-%d", os.Getpid(), teamPrefix.Add(1))
	t.Setenv("AWS_ACCESS_KEY_ID", minio.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", minio.SecretKey)
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_ENDPOINT_URL_S3", minio.Endpoint)
	b, err := s3.New(ctx, ds, s3.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.CreateBucket(ctx); err != nil {
		t.Fatal(err)
	}

	// The metadata service, as a team runs it: with tokens, and with the
	// datastore, so that deployed flows' pods get URLs of their code.
	store, err := postgres.Open(ctx, testservers.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	l, err := net.Listen("tcp", host+":0")
	if err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	code := service.StoredCode{Data: datastore.New(b)}
	go func() {
		done <- service.ServeListener(sctx, l, service.NewHandler(store, service.Options{Tokens: []string{"team-secret"}, Code: code}))
	}()
	t.Cleanup(func() { stop(); <-done })
	metaURL := "http://" + l.Addr().String()

	ns := k.NewNamespace(t, rules)
	admin := k.AdminClient(t)
	for name, data := range map[string]map[string]string{
		"stepwise-token": {"token": "team-secret"},
		"s3-creds":       {"AWS_ACCESS_KEY_ID": minio.AccessKey, "AWS_SECRET_ACCESS_KEY": minio.SecretKey},
	} {
		if _, err := admin.CoreV1().Secrets(ns.Name).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name}, StringData: data}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	var sel []string
	for k, v := range nodes.Selector() {
		sel = append(sel, k+"="+v)
	}
	t.Setenv("STEPWISE_TOKEN", "team-secret") // for the test's own client
	c := &cluster{k: k, nodes: nodes, ns: ns, admin: admin, ds: ds, meta: metaURL, bins: kubeBinaries(t), imgs: imgs, minio: minio}
	c.env = append(os.Environ(),
		"STEPWISE_DATASTORE="+ds, "STEPWISE_METADATA="+metaURL, "STEPWISE_TOKEN=team-secret",
		"STEPWISE_KUBERNETES_KUBECONFIG="+ns.Kubeconfig,
		"STEPWISE_KUBERNETES_NAMESPACE="+ns.Name,
		"STEPWISE_KUBERNETES_IMAGE="+imgs.Empty, // no flow binary, no Go toolchain: the code ships itself
		"STEPWISE_KUBERNETES_FETCH_IMAGE="+imgs.Busybox,
		"STEPWISE_KUBERNETES_TOKEN_SECRET=stepwise-token",
		"STEPWISE_KUBERNETES_AWS_SECRET=s3-creds",
		"STEPWISE_KUBERNETES_NODE_SELECTOR="+strings.Join(sel, ","),
		"STEPWISE_KUBERNETES_UNSCHEDULABLE=10s",
	)
	return c
}

func shortName(t testing.TB) string {
	return fmt.Sprintf("%x", uint32(time.Now().UnixNano()))
}

var kubeBins string

// kubeBinaries builds, once, the flows the cluster tests run: static Linux
// binaries, as pods need them.
func kubeBinaries(t testing.TB) string {
	t.Helper()
	if kubeBins != "" {
		return kubeBins
	}
	// The binaries (tens of MB each) are kept for the test process and
	// removed by the next one: a folder per process id, and those of
	// processes that are gone are removed.
	stale, _ := filepath.Glob(filepath.Join(os.TempDir(), "stepwise-kube-bins-*"))
	for _, d := range stale {
		var pid int
		if _, err := fmt.Sscanf(filepath.Base(d), "stepwise-kube-bins-%d", &pid); err == nil && syscall.Kill(pid, 0) == syscall.ESRCH {
			os.RemoveAll(d)
		}
	}
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("stepwise-kube-bins-%d", os.Getpid()))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"./testdata/kubeseed", "./testdata/kubecases", "./testdata/kubesleep", "./testdata/argoretry", "./testdata/deploybad/required", "./testdata/deploybad/local", "./testdata/downstream"},
		{"-tags", "team", "./examples/foreach", "./examples/linear", "./examples/branchjoin", "./examples/nested", "./examples/hosting"},
	} {
		cmd := exec.Command("go", append([]string{"build", "-trimpath", "-o", dir + "/"}, args...)...)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %v: %v\n%s", args, err, out)
		}
	}
	// The retry flow again, with the fix of its end step: another binary,
	// another code version, for resuming a failed production run.
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-X main.fixed=yes", "-o", filepath.Join(dir, "argoretry-fixed"), "./testdata/argoretry")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build argoretry-fixed: %v\n%s", err, out)
	}
	kubeBins = dir
	return dir
}

// flow runs a flow program of the cluster tests with the cluster's
// settings, and returns its stdout and stderr; it fails the test unless
// the exit code is want.
func (c *cluster) flow(t testing.TB, want int, name string, args ...string) (string, string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(c.bins, name), args...)
	cmd.Dir = t.TempDir()
	cmd.Env = c.env
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s %v: %v", name, args, err)
	}
	if code != want {
		t.Fatalf("%s %v: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", name, args, code, want, out.String(), errOut.String())
	}
	return out.String(), errOut.String()
}

// TestKubernetesSeedFlow runs the seed flow with its branches on the
// cluster, from images that hold neither the flow's binary nor Go: the
// code ships itself, and the run is read as any other.
func TestKubernetesSeedFlow(t *testing.T) {
	c := kubeCluster(t)
	out, errOut := c.flow(t, 0, "kubeseed", "run")
	if !strings.Contains(out, "] 3\n") || !strings.Contains(out, "a runs in pod") || !strings.Contains(out, "b runs in pod") {
		t.Fatalf("the seed flow on Kubernetes:\n%s\n%s", out, errOut)
	}
	id := regexp.MustCompile(`run (\d+)`).FindStringSubmatch(out)[1]
	dump, _ := c.flow(t, 0, "kubeseed", "dump", id+"/end", "--json")
	var task struct {
		Artifacts []struct {
			Name  string
			Value json.RawMessage
		}
	}
	if err := json.Unmarshal([]byte(dump), &task); err != nil {
		t.Fatalf("dump --json: %v\n%s", err, dump)
	}
	for _, a := range task.Artifacts {
		if a.Name == "Where" && (!strings.Contains(string(a.Value), "a:sw-kubeseed") || !strings.Contains(string(a.Value), "b:sw-kubeseed")) {
			t.Errorf("a and b did not run in the Jobs' pods: %s", a.Value)
		}
	}
	logs, _ := c.flow(t, 0, "kubeseed", "logs", id+"/a")
	if !strings.Contains(logs, "a runs in pod sw-kubeseed-"+id+"-a-0-0") {
		t.Errorf("logs of a, written by the task in its pod: %q", logs)
	}
	jobs, err := c.admin.BatchV1().Jobs(c.ns.Name).List(context.Background(), metav1.ListOptions{LabelSelector: "stepwise.dev/run=" + id})
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs.Items) != 2 {
		t.Fatalf("%d Jobs for the run, want 2 (a and b)", len(jobs.Items))
	}
	for _, j := range jobs.Items {
		l := j.Labels
		if l["stepwise.dev/flow"] != "KubeSeed" || l["stepwise.dev/task"] != "0" || l["stepwise.dev/attempt"] != "0" || l["stepwise.dev/user"] != "ann" || l["team"] != "seed" {
			t.Errorf("Job %s labels %v", j.Name, l)
		}
		lim := j.Spec.Template.Spec.Containers[0].Resources.Limits
		if lim.Cpu().MilliValue() != 500 || lim.Memory().Value() != 256<<20 || *j.Spec.BackoffLimit != 0 {
			t.Errorf("Job %s limits %v, backoff %d", j.Name, lim, *j.Spec.BackoffLimit)
		}
	}
	// Resume from a, on the cluster again, reusing start.
	res, _ := c.flow(t, 0, "kubeseed", "resume", "a", "--origin-run-id", id)
	if !strings.Contains(res, "] 3\n") || !strings.Contains(res, "start/0] cloned from the origin run") {
		t.Errorf("resume on Kubernetes:\n%s", res)
	}
}
