package testservers

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// podRules are what the tests' service account may do in its namespace.
var podRules = []rbacv1.PolicyRule{
	{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "watch", "create", "delete"}},
	{APIGroups: []string{""}, Resources: []string{"pods/log"}, Verbs: []string{"get"}},
	{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get", "create"}},
}

// nodeTest is a namespace of the test, a client of its service account,
// and nodes.
type nodeTest struct {
	k      *Kubernetes
	ns     *KubeNamespace
	c      *kubernetes.Clientset
	nodes  *Nodes
	images Images
}

func newNodeTest(t *testing.T, specs ...NodeSpec) *nodeTest {
	t.Helper()
	k := Kube(t)
	nt := &nodeTest{k: k, ns: k.NewNamespace(t, podRules), images: TestImages(t)}
	var err error
	if nt.c, err = kubernetes.NewForConfig(nt.ns.Config); err != nil {
		t.Fatal(err)
	}
	nt.nodes = StartNodes(t, k, specs...)
	return nt
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// pod is a pod on the test's nodes that is never restarted.
func (nt *nodeTest) pod(name string, containers ...corev1.Container) *corev1.Pod {
	zero := int64(0)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: nt.ns.Name},
		Spec: corev1.PodSpec{
			RestartPolicy:                 corev1.RestartPolicyNever,
			NodeSelector:                  nt.nodes.Selector(),
			Containers:                    containers,
			AutomountServiceAccountToken:  new(bool),
			TerminationGracePeriodSeconds: &zero,
		},
	}
}

func (nt *nodeTest) sh(name, script string) corev1.Container {
	return corev1.Container{Name: name, Image: nt.images.Busybox, Command: []string{"sh", "-c", script}}
}

func (nt *nodeTest) create(t *testing.T, p *corev1.Pod) {
	t.Helper()
	if _, err := nt.c.CoreV1().Pods(p.Namespace).Create(ctxT(t), p, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create pod %s: %v", p.Name, err)
	}
}

// waitPod waits until ok says the pod is as wanted; it fails the test
// with the pod's last status when that does not come in limit.
func (nt *nodeTest) waitPod(t *testing.T, name string, limit time.Duration, what string, ok func(*corev1.Pod) bool) *corev1.Pod {
	t.Helper()
	deadline := time.Now().Add(limit)
	var last *corev1.Pod
	for {
		p, err := nt.c.CoreV1().Pods(nt.ns.Name).Get(ctxT(t), name, metav1.GetOptions{})
		if err == nil {
			last = p
			if ok(p) {
				return p
			}
		} else if !apierrors.IsNotFound(err) {
			t.Fatalf("get pod %s: %v", name, err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod %s: not %s after %s; last seen: phase %s, reason %q, conditions %+v, init %+v, containers %+v (agent log %s)",
				name, what, limit, phaseOf(last), reasonOf(last), condsOf(last), statusesOf(last, true), statusesOf(last, false), nt.nodes.Log)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func phaseOf(p *corev1.Pod) corev1.PodPhase {
	if p == nil {
		return "(none)"
	}
	return p.Status.Phase
}

func reasonOf(p *corev1.Pod) string {
	if p == nil {
		return ""
	}
	return p.Status.Reason
}

func condsOf(p *corev1.Pod) []corev1.PodCondition {
	if p == nil {
		return nil
	}
	return p.Status.Conditions
}

func statusesOf(p *corev1.Pod, init bool) []corev1.ContainerState {
	if p == nil {
		return nil
	}
	list := p.Status.ContainerStatuses
	if init {
		list = p.Status.InitContainerStatuses
	}
	var out []corev1.ContainerState
	for _, s := range list {
		out = append(out, s.State)
	}
	return out
}

func ended(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
}

func running(p *corev1.Pod) bool {
	for _, s := range p.Status.ContainerStatuses {
		if s.State.Running == nil {
			return false
		}
	}
	return p.Status.Phase == corev1.PodRunning
}

func terminated(t *testing.T, p *corev1.Pod, container string) *corev1.ContainerStateTerminated {
	t.Helper()
	for _, list := range [][]corev1.ContainerStatus{p.Status.InitContainerStatuses, p.Status.ContainerStatuses} {
		for _, s := range list {
			if s.Name == container {
				if s.State.Terminated == nil {
					t.Fatalf("pod %s: container %s is not terminated: %+v", p.Name, container, s.State)
				}
				return s.State.Terminated
			}
		}
	}
	t.Fatalf("pod %s has no status for container %s", p.Name, container)
	return nil
}

// logs reads a container's log through the API server, as kubectl logs.
func (nt *nodeTest) logs(t *testing.T, pod, container string) string {
	t.Helper()
	b, err := nt.c.CoreV1().Pods(nt.ns.Name).GetLogs(pod, &corev1.PodLogOptions{Container: container}).DoRaw(ctxT(t))
	if err != nil {
		t.Fatalf("logs of %s/%s through the API server: %v", pod, container, err)
	}
	return string(b)
}

// TestNodesPod runs a pod whose init container writes to an emptyDir that
// its container reads, with environment from a Secret and the downward API,
// that reaches a server of the test at the Docker host's address; its
// status and its logs (through the API server) say what happened.
func TestNodesPod(t *testing.T) {
	nt := newNodeTest(t, NodeSpec{Name: "pod-a"})
	ctx := ctxT(t)
	if _, err := nt.c.CoreV1().Secrets(nt.ns.Name).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "creds"}, StringData: map[string]string{"token": "s3cr3t"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// A server of the test on the Docker host's address, as MinIO and the
	// metadata service are for pods.
	ln, err := net.Listen("tcp", net.JoinHostPort(nt.nodes.HostIP, "0"))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "pong") })}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	init := nt.sh("init", `echo "from init" > /shared/msg`)
	init.VolumeMounts = []corev1.VolumeMount{{Name: "shared", MountPath: "/shared"}}
	main := nt.sh("main", `echo "msg=$(cat /shared/msg) pod=$POD_NAME token=$TOKEN arg=$1"; echo "server=$(wget -q -O - http://`+ln.Addr().String()+`/)"`)
	main.Args = []string{"x", "$(POD_NAME)-arg"}
	main.VolumeMounts = init.VolumeMounts
	main.Env = []corev1.EnvVar{
		{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
		{Name: "TOKEN", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: "creds"}, Key: "token"}}},
	}
	main.Resources.Limits = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("64Mi")}
	p := nt.pod("hello", main)
	p.Spec.InitContainers = []corev1.Container{init}
	p.Spec.Volumes = []corev1.Volume{{Name: "shared", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	nt.create(t, p)

	got := nt.waitPod(t, "hello", 2*time.Minute, "ended", ended)
	if got.Status.Phase != corev1.PodSucceeded {
		t.Fatalf("phase %s, want Succeeded; containers %+v, init %+v", got.Status.Phase, statusesOf(got, false), statusesOf(got, true))
	}
	for _, c := range []string{"init", "main"} {
		if term := terminated(t, got, c); term.ExitCode != 0 || term.Reason != "Completed" {
			t.Errorf("container %s ended %d %q, want 0 Completed", c, term.ExitCode, term.Reason)
		}
	}
	if got.Spec.NodeName != "pod-a" || got.Status.HostIP != nt.nodes.HostIP || got.Status.PodIP == "" {
		t.Errorf("node %q hostIP %q podIP %q; want pod-a, %s and an address", got.Spec.NodeName, got.Status.HostIP, got.Status.PodIP, nt.nodes.HostIP)
	}
	want := "msg=from init pod=hello token=s3cr3t arg=hello-arg\nserver=pong\n"
	if logs := nt.logs(t, "hello", "main"); logs != want {
		t.Errorf("logs of main:\n%q\nwant\n%q", logs, want)
	}
}

// TestNodesEmptyImage runs a container from the image with nothing in it,
// from a binary that an init container put in an emptyDir, as a flow
// binary ships itself.
func TestNodesEmptyImage(t *testing.T) {
	nt := newNodeTest(t, NodeSpec{Name: "empty-a"})
	init := nt.sh("fetch", "cp /bin/busybox /shared/busybox")
	init.VolumeMounts = []corev1.VolumeMount{{Name: "shared", MountPath: "/shared"}}
	main := corev1.Container{Name: "main", Image: nt.images.Empty, Command: []string{"/shared/busybox", "echo", "shipped"}, VolumeMounts: init.VolumeMounts}
	p := nt.pod("empty", main)
	p.Spec.InitContainers = []corev1.Container{init}
	p.Spec.Volumes = []corev1.Volume{{Name: "shared", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	nt.create(t, p)
	got := nt.waitPod(t, "empty", 2*time.Minute, "ended", ended)
	if got.Status.Phase != corev1.PodSucceeded {
		t.Fatalf("phase %s, want Succeeded; containers %+v", got.Status.Phase, statusesOf(got, false))
	}
	if logs := nt.logs(t, "empty", "main"); logs != "shipped\n" {
		t.Errorf("logs %q, want %q", logs, "shipped\n")
	}
}

// TestNodesEnds checks how containers end: past the memory limit (the
// kernel's OOM killer), with an error, killed from outside, a command the
// image lacks, an image the machine lacks; and that a pod asking for a GPU
// goes to the node that has one.
func TestNodesEnds(t *testing.T) {
	nt := newNodeTest(t, NodeSpec{Name: "ends-a"}, NodeSpec{Name: "ends-gpu", GPU: 1})
	oom := nt.sh("main", `x=0123456789; while true; do x="$x$x"; done`)
	oom.Resources.Limits = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("16Mi")}
	gpu := nt.sh("main", "echo gpu")
	gpu.Resources.Limits = corev1.ResourceList{GPUResource: resource.MustParse("1")}
	for _, p := range []*corev1.Pod{
		nt.pod("oom", oom),
		nt.pod("fails", nt.sh("main", "echo failing >&2; exit 3")),
		nt.pod("killed", nt.sh("main", "sleep 600")),
		nt.pod("noexec", corev1.Container{Name: "main", Image: nt.images.Empty, Command: []string{"/no/such/binary"}}),
		nt.pod("noimage", corev1.Container{Name: "main", Image: "stepwise-test/missing:1", Command: []string{"true"}}),
		nt.pod("gpu", gpu),
	} {
		nt.create(t, p)
	}
	nt.waitPod(t, "killed", 2*time.Minute, "running", running)
	nt.nodes.Kill(t, nt.ns.Name, "killed", "main", "KILL")

	for _, c := range []struct {
		pod    string
		code   int32
		reason string
	}{
		{"oom", 137, "OOMKilled"},
		{"fails", 3, "Error"},
		{"killed", 137, "Error"},
		{"noexec", 0, "ContainerCannotRun"}, // any non-zero code
		{"gpu", 0, "Completed"},
	} {
		got := nt.waitPod(t, c.pod, 2*time.Minute, "ended", ended)
		term := terminated(t, got, "main")
		if term.Reason != c.reason || (c.code != 0 && term.ExitCode != c.code) || (c.reason == "ContainerCannotRun" && term.ExitCode == 0) {
			t.Errorf("pod %s: container ended %d %q (%s), want %d %q", c.pod, term.ExitCode, term.Reason, term.Message, c.code, c.reason)
		}
		wantPhase := corev1.PodFailed
		if c.code == 0 && c.reason == "Completed" {
			wantPhase = corev1.PodSucceeded
		}
		if got.Status.Phase != wantPhase {
			t.Errorf("pod %s: phase %s, want %s", c.pod, got.Status.Phase, wantPhase)
		}
		if c.pod == "gpu" && got.Spec.NodeName != "ends-gpu" {
			t.Errorf("the pod that asks for a GPU ran on %s, want ends-gpu", got.Spec.NodeName)
		}
	}
	if logs := nt.logs(t, "fails", "main"); logs != "failing\n" {
		t.Errorf("logs of the failing pod: %q", logs)
	}
	got := nt.waitPod(t, "noimage", time.Minute, "waiting for its image", func(p *corev1.Pod) bool {
		s := p.Status.ContainerStatuses
		return len(s) == 1 && s[0].State.Waiting != nil && (s[0].State.Waiting.Reason == "ErrImagePull" || s[0].State.Waiting.Reason == "ImagePullBackOff")
	})
	if msg := got.Status.ContainerStatuses[0].State.Waiting.Message; !strings.Contains(msg, "stepwise-test/missing:1") {
		t.Errorf("the waiting message does not name the image: %q", msg)
	}
}

// TestNodesDeleteGrace deletes a running pod whose container ignores
// SIGTERM: it gets SIGTERM, goes on for the grace period, then is killed.
func TestNodesDeleteGrace(t *testing.T) {
	nt := newNodeTest(t, NodeSpec{Name: "grace-a"})
	out := t.TempDir()
	c := nt.sh("main", `trap 'echo term $(date +%s) >> /out/log' TERM
echo started >> /out/log
while true; do echo tick $(date +%s) >> /out/log; sleep 0.2; done`)
	c.VolumeMounts = []corev1.VolumeMount{{Name: "out", MountPath: "/out"}}
	p := nt.pod("graceful", c)
	p.Spec.Volumes = []corev1.Volume{{Name: "out", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: out}}}}
	nt.create(t, p)
	nt.waitPod(t, "graceful", 2*time.Minute, "running", running)
	logPath := filepath.Join(out, "log")
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		if b, _ := os.ReadFile(logPath); strings.Contains(string(b), "tick") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the container wrote no tick in a minute")
		}
	}
	const grace = 4
	if err := nt.c.CoreV1().Pods(nt.ns.Name).Delete(ctxT(t), "graceful", metav1.DeleteOptions{GracePeriodSeconds: new(int64(grace))}); err != nil {
		t.Fatal(err)
	}
	// The pod leaves the API server, and its containers the machine.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		_, err := nt.c.CoreV1().Pods(nt.ns.Name).Get(ctxT(t), "graceful", metav1.GetOptions{})
		gone := apierrors.IsNotFound(err)
		for _, n := range nt.nodes.State(t) {
			if len(n.Pods) > 0 {
				gone = false
			}
		}
		if gone {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the deleted pod is still there a minute later (get: %v; agent log %s)", err, nt.nodes.Log)
		}
	}
	b, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	var term, lastTick int64 = -1, -1
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		v, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "term":
			term = v
		case "tick":
			lastTick = v
		}
	}
	if term < 0 {
		t.Fatalf("the container never got SIGTERM; its log:\n%s", b)
	}
	// It ran on after SIGTERM until SIGKILL, the grace period later (the
	// clock reads whole seconds).
	if lastTick < term+grace-2 {
		t.Errorf("last tick at %d, SIGTERM at %d: it stopped %d s after SIGTERM, before the %d s grace period; its log:\n%s", lastTick, term, lastTick-term, grace, b)
	}
	time.Sleep(time.Second)
	if b2, _ := os.ReadFile(logPath); len(b2) != len(b) {
		t.Errorf("the container still writes after its pod was deleted")
	}
}

// TestNodesStopped stops a node: the control plane marks it NotReady
// (Unknown) and its pod not ready; and a partitioned node, marked so too,
// is Ready again when it heals, and so is its pod, whose container ran on.
func TestNodesStopped(t *testing.T) {
	// Five nodes, so that two lost are under the share (55%) past which
	// the node-lifecycle controller of a small cluster takes it for a
	// disruption of its own and evicts nothing.
	nt := newNodeTest(t, NodeSpec{Name: "lost-a"}, NodeSpec{Name: "lost-b"}, NodeSpec{Name: "lost-c"}, NodeSpec{Name: "lost-d"}, NodeSpec{Name: "lost-e"})
	for _, node := range []string{"lost-a", "lost-b"} {
		p := nt.pod("on-"+node, nt.sh("main", "sleep 600"))
		p.Spec.NodeSelector["kubernetes.io/hostname"] = node
		nt.create(t, p)
		nt.waitPod(t, "on-"+node, 2*time.Minute, "running", running)
	}
	nt.nodes.Stop(t, "lost-a")
	nt.nodes.Partition(t, "lost-b")
	limit := KubeNodeGracePeriod + time.Minute
	for _, node := range []string{"lost-a", "lost-b"} {
		nt.nodes.WaitNodeReady(t, node, corev1.ConditionUnknown, limit)
		// The node-lifecycle controller marks the pods of a node it lost
		// not ready.
		nt.waitPod(t, "on-"+node, limit, "not ready", func(p *corev1.Pod) bool {
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodReady && c.Status == corev1.ConditionFalse {
					return true
				}
			}
			return false
		})
	}
	// The stopped node's container died with it; the partitioned node's
	// goes on until it heals.
	for _, n := range nt.nodes.State(t) {
		switch n.Name {
		case "lost-a":
			if n.State != "stopped" {
				t.Errorf("lost-a is %s, want stopped", n.State)
			}
		case "lost-b":
			if n.State != "partitioned" || len(n.Pods) != 1 {
				t.Errorf("lost-b is %s with %d pods, want partitioned with 1", n.State, len(n.Pods))
			}
		}
	}
	nt.nodes.Heal(t, "lost-b")
	nt.nodes.WaitNodeReady(t, "lost-b", corev1.ConditionTrue, time.Minute)
	// Healed, it posts its pod's status again: the pod is ready.
	nt.waitPod(t, "on-lost-b", time.Minute, "ready again", func(p *corev1.Pod) bool {
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				return true
			}
		}
		return false
	})
}

// TestDockerHostIP checks that the Docker host's address is one of this
// machine's.
func TestDockerHostIP(t *testing.T) {
	ip := DockerHostIP(t)
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatalf("DockerHostIP %s is not an address of this machine: %v", ip, err)
	}
	ln.Close()
}
