package testservers

// Nodes for the Kubernetes control plane (Kube): a node agent process
// (testenv/nodeagent, built once by scripts/nodeagent-bin) registers the
// nodes a test asks for and runs the pods bound to them as Docker
// containers on this machine, on Docker's bridge network. Pods reach
// servers of the tests at DockerHostIP (the bridge's gateway), never
// through this machine's loopback: MinIOForPods is a MinIO listening there.
// The images pods run from are built locally by scripts/test-images
// (TestImages): no image registry is reachable.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// NodeGroupLabel is a label on every node of one StartNodes call; its
// value is Nodes.Group. Put Nodes.Selector in a pod's nodeSelector to keep
// it on a test's own nodes.
const NodeGroupLabel = "stepwise.dev/test-nodes"

// GPUResource is the extended resource a node's GPUs are counted in.
const GPUResource = "nvidia.com/gpu"

// NodeSpec is a node for StartNodes.
type NodeSpec struct {
	Name   string            // the Node's name, unique in the cluster while it runs
	CPU    string            // capacity, a Kubernetes quantity: "4" when empty
	Memory string            // capacity: "8Gi" when empty
	GPU    int               // count of nvidia.com/gpu (no device is attached to containers)
	Pods   int               // how many pods it takes: 110 when 0
	Labels map[string]string // added to the node's (kubernetes.io/hostname and NodeGroupLabel among them)
	Taints []corev1.Taint    // the node's at registration
}

// Nodes are the nodes of one node agent process, started by StartNodes
// and stopped when the test ends.
type Nodes struct {
	Names   []string // the nodes' names, in the order given
	Group   string   // the value of NodeGroupLabel on each of them
	HostIP  string   // the nodes' InternalIP and pods' hostIP: DockerHostIP
	Control string   // the agent's control endpoint: http://127.0.0.1:PORT
	Log     string   // the agent's log file
	Dir     string   // its configuration, credentials and pods' volumes

	kube *Kubernetes
	cmd  *exec.Cmd
	done chan struct{} // closed when the agent exits
	err  error         // how it exited
}

// NodeState is a node as its agent reports it.
type NodeState struct {
	Name  string    `json:"name"`
	State string    `json:"state"` // running, partitioned or stopped
	Port  int       `json:"port"`  // of its kubelet endpoint, on HostIP
	Pods  []NodePod `json:"pods"`
}

// NodePod is a pod that an agent runs, with its Docker containers.
type NodePod struct {
	Namespace  string            `json:"namespace"`
	Name       string            `json:"name"`
	UID        string            `json:"uid"`
	Phase      corev1.PodPhase   `json:"phase"`
	Sandbox    string            `json:"sandbox"`    // the Docker container holding its network namespace
	Containers map[string]string `json:"containers"` // Docker container id by container name (latest attempt)
}

// Images are the local Docker images for pods (see scripts/test-images).
type Images struct {
	Busybox string // a static BusyBox: /bin/sh, wget, sha256sum, sleep, ... on PATH
	Empty   string // nothing at all: an empty root filesystem
}

var (
	imagesOnce sync.Once
	images     Images
	imagesErr  error

	hostIPOnce sync.Once
	hostIP     string
	hostIPErr  error

	podS3Once sync.Once
	podS3     *S3
	podS3Err  error
)

// TestImages builds the pods' images if they are missing (scripts/test-images:
// seconds the first time on a machine) and returns their names.
func TestImages(t testing.TB) Images {
	t.Helper()
	imagesOnce.Do(func() {
		cmd := exec.Command(filepath.Join(repoRoot(), "scripts", "test-images"))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			imagesErr = fmt.Errorf("scripts/test-images: %w\n%s", err, stderr.Bytes())
			return
		}
		names := strings.Fields(string(out))
		if len(names) != 2 {
			imagesErr = fmt.Errorf("scripts/test-images printed %q; want the busybox and empty images' names", out)
			return
		}
		images = Images{Busybox: names[0], Empty: names[1]}
	})
	if imagesErr != nil {
		t.Fatalf("testservers: the pods' Docker images are needed and could not be built: %v", imagesErr)
	}
	return images
}

// dockerClient talks to the Docker Engine on its local socket (or the one
// DOCKER_HOST names), with the standard library only.
func dockerClient() (*http.Client, error) {
	sock := "/var/run/docker.sock"
	if h := os.Getenv("DOCKER_HOST"); h != "" {
		p, ok := strings.CutPrefix(h, "unix://")
		if !ok {
			return nil, fmt.Errorf("DOCKER_HOST=%s: only a unix:// socket is supported here", h)
		}
		sock = p
	}
	return &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}, nil
}

// DockerHostIP returns the address at which containers on Docker's bridge
// network reach this machine: the bridge's gateway (172.17.0.1 unless
// dockerd is configured otherwise). A server that pods must reach listens
// there; this machine reaches it there too.
func DockerHostIP(t testing.TB) string {
	t.Helper()
	hostIPOnce.Do(func() { hostIP, hostIPErr = dockerBridgeGateway() })
	if hostIPErr != nil {
		t.Fatalf("testservers: the Docker bridge's address is needed: %v (is dockerd running? it is started before every session and CI run)", hostIPErr)
	}
	return hostIP
}

func dockerBridgeGateway() (string, error) {
	c, err := dockerClient()
	if err != nil {
		return "", err
	}
	resp, err := c.Get("http://docker/networks/bridge")
	if err != nil {
		return "", fmt.Errorf("ask the Docker Engine for its bridge network: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("the Docker Engine answered %s for its bridge network: %s", resp.Status, bytes.TrimSpace(body))
	}
	var nw struct {
		IPAM struct {
			Config []struct {
				Gateway string
			}
		}
	}
	if err := json.Unmarshal(body, &nw); err != nil {
		return "", fmt.Errorf("read the Docker bridge network: %w", err)
	}
	for _, c := range nw.IPAM.Config {
		if ip := net.ParseIP(c.Gateway); ip != nil && ip.To4() != nil {
			return c.Gateway, nil
		}
	}
	// Some engines (20.10) list only the subnet of the default bridge; its
	// gateway is then the address of the bridge's interface, docker0.
	if ifc, err := net.InterfaceByName("docker0"); err == nil {
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
				return ipn.IP.String(), nil
			}
		}
	}
	return "", errors.New("the Docker bridge network has no IPv4 gateway")
}

// MinIOForPods returns a MinIO server listening on DockerHostIP, for tests
// whose pods use it: its Endpoint works from pods and from this machine.
// One is started for the test binary, apart from MinIO's.
func MinIOForPods(t testing.TB) *S3 {
	t.Helper()
	host := DockerHostIP(t)
	podS3Once.Do(func() { podS3, podS3Err = startMinIOOn(host) })
	if podS3Err != nil {
		t.Fatalf("testservers: a MinIO for pods (on %s) is needed and could not be started: %v", host, podS3Err)
	}
	return podS3
}

// nodeAgentConfig is the agent's configuration file (testenv/nodeagent's
// Config).
type nodeAgentConfig struct {
	Nodes          []nodeAgentNode `json:"nodes"`
	NodeIP         string          `json:"nodeIP"`
	TLSCert        string          `json:"tlsCert"`
	TLSKey         string          `json:"tlsKey"`
	ClientCA       string          `json:"clientCA"`
	StateDir       string          `json:"stateDir"`
	LeaseRenew     string          `json:"leaseRenew"`
	StatusInterval string          `json:"statusInterval"`
	APIServer      string          `json:"apiServer,omitempty"`
}

type nodeAgentNode struct {
	Name       string            `json:"name"`
	Kubeconfig string            `json:"kubeconfig"`
	CPU        string            `json:"cpu"`
	Memory     string            `json:"memory"`
	GPU        int               `json:"gpu,omitempty"`
	Pods       int               `json:"pods,omitempty"`
	Labels     map[string]string `json:"labels,omitempty"`
	Taints     []corev1.Taint    `json:"taints,omitempty"`
}

// StartNodes starts a node agent that registers the nodes specs with
// Kubernetes k (each with a kubelet's credentials, system:node:NAME) and
// runs the pods bound to them; it returns once every node is Ready. It
// builds the agent the first time (scripts/nodeagent-bin, a few minutes)
// and the pods' images (TestImages). When the test ends the agent is
// stopped, its containers removed and its Node objects deleted.
func StartNodes(t testing.TB, k *Kubernetes, specs ...NodeSpec) *Nodes {
	t.Helper()
	if len(specs) == 0 {
		t.Fatal("testservers: StartNodes needs at least one NodeSpec")
	}
	TestImages(t)
	ip := DockerHostIP(t)
	out, err := exec.Command(filepath.Join(repoRoot(), "scripts", "nodeagent-bin")).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("testservers: scripts/nodeagent-bin: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("testservers: scripts/nodeagent-bin: %v", err)
	}
	bin := strings.TrimSpace(string(out))

	n := &Nodes{Group: "g" + randomHex(5), HostIP: ip, Dir: t.TempDir(), kube: k, done: make(chan struct{})}
	cert, key := k.ServingCert(t, ip, "127.0.0.1")
	cfg := nodeAgentConfig{NodeIP: ip, TLSCert: cert, TLSKey: key, ClientCA: k.CAFile,
		StateDir: filepath.Join(n.Dir, "state"), LeaseRenew: "1s", StatusInterval: "10s", APIServer: k.ForPods(t)}
	for _, s := range specs {
		nc := nodeAgentNode{Name: s.Name, CPU: s.CPU, Memory: s.Memory, GPU: s.GPU, Pods: s.Pods, Taints: s.Taints,
			Kubeconfig: k.WriteKubeconfig(t, k.NodeConfig(t, s.Name), ""),
			Labels:     map[string]string{NodeGroupLabel: n.Group}}
		if nc.CPU == "" {
			nc.CPU = "4"
		}
		if nc.Memory == "" {
			nc.Memory = "8Gi"
		}
		for lk, lv := range s.Labels {
			nc.Labels[lk] = lv
		}
		cfg.Nodes = append(cfg.Nodes, nc)
		n.Names = append(n.Names, s.Name)
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	cfgPath, readyPath := filepath.Join(n.Dir, "agent.json"), filepath.Join(n.Dir, "ready.json")
	if err := os.WriteFile(cfgPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	n.Log = filepath.Join(n.Dir, "agent.log")
	logf, err := os.Create(n.Log)
	if err != nil {
		t.Fatal(err)
	}
	n.cmd = exec.Command(bin, "-config", cfgPath, "-ready-file", readyPath)
	n.cmd.Stdout, n.cmd.Stderr = logf, logf
	if err := startTermOnDeath(n.cmd); err != nil {
		logf.Close()
		t.Fatalf("testservers: start the node agent: %v", err)
	}
	go func() {
		n.err = n.cmd.Wait()
		logf.Close()
		close(n.done)
	}()
	t.Cleanup(func() { n.shutdown(t) })

	deadline := time.Now().Add(3 * time.Minute)
	for {
		if b, err := os.ReadFile(readyPath); err == nil {
			var ready struct{ Control string }
			if err := json.Unmarshal(b, &ready); err != nil {
				t.Fatalf("testservers: the node agent's ready file %s: %v", readyPath, err)
			}
			n.Control = ready.Control
			break
		}
		select {
		case <-n.done:
			t.Fatalf("testservers: the node agent exited before its nodes ran (%v); the end of its log %s:\n%s", n.err, n.Log, tail(n.Log, 30))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("testservers: the node agent's nodes did not run in 3 minutes; the end of its log %s:\n%s", n.Log, tail(n.Log, 30))
		}
	}
	for _, name := range n.Names {
		n.WaitNodeReady(t, name, corev1.ConditionTrue, time.Minute)
	}
	return n
}

// startTermOnDeath starts cmd so that it gets SIGTERM (and cleans up) when
// this process dies; as in dying, the thread that starts it is kept.
func startTermOnDeath(cmd *exec.Cmd) error {
	errc := make(chan error)
	go func() {
		goruntime.LockOSThread()
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
		errc <- cmd.Start()
		select {} // keep the thread
	}()
	return <-errc
}

// shutdown stops the agent (it removes its containers) and deletes its
// Node objects, which a node may not do itself.
func (n *Nodes) shutdown(t testing.TB) {
	select {
	case <-n.done:
	default:
		n.cmd.Process.Signal(syscall.SIGTERM)
		// It stops its pods, then removes their containers for up to a
		// minute: after a benchmark's 2,000 pods that alone takes it the
		// minute.
		select {
		case <-n.done:
		case <-time.After(3 * time.Minute):
			n.cmd.Process.Kill()
			<-n.done
			t.Errorf("testservers: the node agent did not stop in 3 minutes after SIGTERM; killed (its containers are removed by the next agent to start); its log: %s", n.Log)
		}
	}
	c, err := n.kube.admin()
	if err != nil {
		t.Errorf("testservers: %v", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, name := range n.Names {
		if err := c.CoreV1().Nodes().Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("testservers: delete node %s: %v", name, err)
		}
	}
}

// Selector is a nodeSelector that keeps a pod on these nodes.
func (n *Nodes) Selector() map[string]string {
	return map[string]string{NodeGroupLabel: n.Group}
}

// control calls the agent's control endpoint.
func (n *Nodes) control(t testing.TB, method, path string, out any) {
	t.Helper()
	req, err := http.NewRequest(method, n.Control+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{Timeout: time.Minute}).Do(req)
	if err != nil {
		t.Fatalf("testservers: node agent %s %s: %v (its log: %s)", method, path, err, n.Log)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("testservers: node agent %s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(body))
	}
	if out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			t.Fatalf("testservers: node agent %s %s: %v", method, path, err)
		}
	}
}

// State returns every node of the agent as it reports it, with its pods.
func (n *Nodes) State(t testing.TB) []NodeState {
	t.Helper()
	var out []NodeState
	n.control(t, http.MethodGet, "/nodes", &out)
	return out
}

// Stop is node's machine dying: its heartbeats and Lease renewals stop and
// every container of its pods is killed at once (SIGKILL), with no status
// posted. After KubeNodeGracePeriod the control plane marks the node's
// Ready condition Unknown and taints it; its pods get Ready False, then
// (after KubeTolerationSeconds, unless every node is down) are evicted:
// deleted, with a DisruptionTarget condition, and left Terminating since
// no kubelet confirms it. A stopped node cannot come back.
func (n *Nodes) Stop(t testing.TB, node string) {
	t.Helper()
	n.control(t, http.MethodPost, "/nodes/"+node+"/stop", nil)
}

// Partition cuts node off from the API server: no heartbeats, Lease
// renewals, pod syncs or logs; its containers go on. Heal ends it.
func (n *Nodes) Partition(t testing.TB, node string) {
	t.Helper()
	n.control(t, http.MethodPost, "/nodes/"+node+"/partition", nil)
}

// Heal ends node's partition: it posts its status (Ready again) and syncs
// its pods: those deleted meanwhile (evicted) are stopped and removed, and
// the statuses of the others are posted.
func (n *Nodes) Heal(t testing.TB, node string) {
	t.Helper()
	n.control(t, http.MethodPost, "/nodes/"+node+"/heal", nil)
}

// Kill sends signal ("KILL", "TERM", ...) to the latest attempt of a
// pod's container from outside, as when a process is killed on the node.
func (n *Nodes) Kill(t testing.TB, namespace, pod, container, signal string) {
	t.Helper()
	n.control(t, http.MethodPost, fmt.Sprintf("/pods/%s/%s/containers/%s/kill?signal=%s", namespace, pod, container, signal), nil)
}

// WaitNodeReady waits up to limit for node's Ready condition to have
// status want (True, False or Unknown) in the API server.
func (n *Nodes) WaitNodeReady(t testing.TB, node string, want corev1.ConditionStatus, limit time.Duration) *corev1.Node {
	t.Helper()
	c, err := n.kube.admin()
	if err != nil {
		t.Fatalf("testservers: %v", err)
	}
	deadline := time.Now().Add(limit)
	var last string
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		obj, err := c.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		cancel()
		if err == nil {
			last = "no Ready condition"
			for _, cond := range obj.Status.Conditions {
				if cond.Type == corev1.NodeReady {
					if cond.Status == want {
						return obj
					}
					last = fmt.Sprintf("Ready is %s (%s: %s)", cond.Status, cond.Reason, cond.Message)
				}
			}
		} else {
			last = err.Error()
		}
		select {
		case <-n.done:
			t.Fatalf("testservers: the node agent exited (%v); the end of its log %s:\n%s", n.err, n.Log, tail(n.Log, 30))
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("testservers: node %s: Ready is not %s after %s: %s (agent log: %s)", node, want, limit, last, n.Log)
		}
	}
}
