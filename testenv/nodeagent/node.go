package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"time"

	vkerrdefs "github.com/virtual-kubelet/virtual-kubelet/errdefs"
	"github.com/virtual-kubelet/virtual-kubelet/node"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	corev1listers "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/record"
)

// Node states.
const (
	stateRunning     = "running"     // heartbeats, leases, pods synced
	statePartitioned = "partitioned" // cut off from the API server; containers go on
	stateStopped     = "stopped"     // dead: containers killed, nothing sent
)

// nodeRun is one node: its registration, Lease and status (virtual-kubelet's
// node controller), the pods bound to it (its pod controller, which calls
// the methods below), and its kubelet endpoint for logs.
type nodeRun struct {
	a      *Agent
	cfg    NodeConfig
	client kubernetes.Interface
	log    *slog.Logger
	port   int

	startMu sync.Mutex // held while the node starts or halts
	mu      sync.Mutex
	state   string
	pods    map[string]*podRun
	notify  func(*corev1.Pod) // the pod controller's, while it runs
	lister  corev1listers.PodLister
	stopRun func() // ends the controllers and the endpoint
	dirty   map[string]bool
	wake    chan struct{}
}

func newNodeRun(a *Agent, cfg NodeConfig) (*nodeRun, error) {
	rc, err := clientcmd.BuildConfigFromFlags("", cfg.Kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("node %s: kubeconfig %s: %w", cfg.Name, cfg.Kubeconfig, err)
	}
	rc.QPS, rc.Burst = 50, 100
	rc.UserAgent = "stepwise-nodeagent/" + cfg.Name
	c, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("node %s: client: %w", cfg.Name, err)
	}
	n := &nodeRun{a: a, cfg: cfg, client: c, log: a.log.With("node", cfg.Name),
		pods: map[string]*podRun{}, dirty: map[string]bool{}, wake: make(chan struct{}, 1)}
	go n.poster()
	return n, nil
}

// allocatable is the node's capacity, all of it allocatable.
func (n *nodeRun) allocatable() corev1.ResourceList {
	l := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse(n.cfg.CPU),
		corev1.ResourceMemory: resource.MustParse(n.cfg.Memory),
		corev1.ResourcePods:   *resource.NewQuantity(int64(n.cfg.Pods), resource.DecimalSI),
	}
	if n.cfg.GPU > 0 {
		l["nvidia.com/gpu"] = *resource.NewQuantity(int64(n.cfg.GPU), resource.DecimalSI)
	}
	return l
}

// object is the Node the agent registers and keeps posting.
func (n *nodeRun) object() *corev1.Node {
	labels := map[string]string{
		"kubernetes.io/hostname": n.cfg.Name,
		"kubernetes.io/os":       "linux",
		"kubernetes.io/arch":     runtime.GOARCH,
	}
	for k, v := range n.cfg.Labels {
		labels[k] = v
	}
	now := metav1.Now()
	cond := func(t corev1.NodeConditionType, s corev1.ConditionStatus, reason, msg string) corev1.NodeCondition {
		return corev1.NodeCondition{Type: t, Status: s, Reason: reason, Message: msg, LastHeartbeatTime: now, LastTransitionTime: now}
	}
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: n.cfg.Name, Labels: labels},
		Spec:       corev1.NodeSpec{Taints: n.cfg.Taints},
		Status: corev1.NodeStatus{
			Capacity:    n.allocatable(),
			Allocatable: n.allocatable(),
			Phase:       corev1.NodeRunning,
			Conditions: []corev1.NodeCondition{
				cond(corev1.NodeReady, corev1.ConditionTrue, "KubeletReady", "stepwise node agent is posting ready status"),
				cond(corev1.NodeMemoryPressure, corev1.ConditionFalse, "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
				cond(corev1.NodeDiskPressure, corev1.ConditionFalse, "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
				cond(corev1.NodePIDPressure, corev1.ConditionFalse, "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
			},
			Addresses: []corev1.NodeAddress{
				{Type: corev1.NodeInternalIP, Address: n.a.cfg.NodeIP},
				{Type: corev1.NodeHostName, Address: n.cfg.Name},
			},
			DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: int32(n.port)}},
			NodeInfo: corev1.NodeSystemInfo{
				KubeletVersion:          "v1.34.0",
				ContainerRuntimeVersion: "docker://" + n.a.dockerVersion,
				OperatingSystem:         "linux",
				Architecture:            runtime.GOARCH,
				OSImage:                 "stepwise node agent",
				KernelVersion:           n.a.kernel,
			},
		},
	}
}

// start registers the node (or takes it up again after a partition) and
// runs its controllers and kubelet endpoint until halt.
func (n *nodeRun) start() error {
	n.startMu.Lock()
	defer n.startMu.Unlock()
	n.mu.Lock()
	state := n.state
	n.mu.Unlock()
	if state == stateRunning {
		return nil
	}
	if state == stateStopped {
		return fmt.Errorf("node %s was stopped (its machine died); it cannot be started again: start a node of another name", n.cfg.Name)
	}
	ctx, cancel := context.WithCancel(n.a.ctx)
	var cleanups []func()
	stop := func() {
		cancel()
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
	}
	if err := n.run(ctx, &cleanups); err != nil {
		stop()
		return fmt.Errorf("node %s: %w", n.cfg.Name, err)
	}
	n.mu.Lock()
	n.stopRun = stop
	n.state = stateRunning
	n.mu.Unlock()
	return nil
}

func (n *nodeRun) run(ctx context.Context, cleanups *[]func()) error {
	addr := net.JoinHostPort(n.a.cfg.NodeIP, strconv.Itoa(n.port))
	ln, err := tls.Listen("tcp", addr, n.a.tlsConfig)
	if err != nil {
		return fmt.Errorf("kubelet endpoint on %s: %w", addr, err)
	}
	n.port = ln.Addr().(*net.TCPAddr).Port
	srv := &http.Server{Handler: n.kubeletHandler(), ReadHeaderTimeout: 30 * time.Second}
	go srv.Serve(ln)
	*cleanups = append(*cleanups, func() { srv.Close() })

	podInformers := informers.NewSharedInformerFactoryWithOptions(n.client, time.Minute,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", n.cfg.Name).String()
		}))
	podInformer := podInformers.Core().V1().Pods()
	// Never started: the pod controller needs them, but this agent reads a
	// pod's Secrets and ConfigMaps one by one (a node may not list them).
	unused := informers.NewSharedInformerFactory(n.client, 0)

	eb := record.NewBroadcaster()
	eb.StartRecordingToSink(&corev1client.EventSinkImpl{Interface: n.client.CoreV1().Events("")})
	*cleanups = append(*cleanups, eb.Shutdown)
	recorder := eb.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "stepwise-nodeagent", Host: n.cfg.Name})

	pc, err := node.NewPodController(node.PodControllerConfig{
		PodClient:                 n.client.CoreV1(),
		PodInformer:               podInformer,
		EventRecorder:             recorder,
		Provider:                  n,
		ConfigMapInformer:         unused.Core().V1().ConfigMaps(),
		SecretInformer:            unused.Core().V1().Secrets(),
		ServiceInformer:           unused.Core().V1().Services(),
		SkipDownwardAPIResolution: true,
	})
	if err != nil {
		return fmt.Errorf("pod controller: %w", err)
	}
	nc, err := node.NewNodeController(n, n.object(), n.client.CoreV1().Nodes(),
		node.WithNodeEnableLeaseV1WithRenewInterval(n.client.CoordinationV1().Leases(corev1.NamespaceNodeLease),
			int32(time.Duration(n.a.cfg.LeaseDuration)/time.Second), time.Duration(n.a.cfg.LeaseRenew)),
		node.WithNodeStatusUpdateInterval(time.Duration(n.a.cfg.StatusInterval)),
		node.WithNodePingInterval(time.Duration(n.a.cfg.LeaseRenew)))
	if err != nil {
		return fmt.Errorf("node controller: %w", err)
	}
	n.mu.Lock()
	n.lister = podInformer.Lister()
	n.mu.Unlock()
	podInformer.Informer() // registers it before Start
	podInformers.Start(ctx.Done())
	*cleanups = append(*cleanups, podInformers.Shutdown)

	go pc.Run(ctx, 4)
	*cleanups = append(*cleanups, func() { <-pc.Done() })
	wait := time.NewTimer(2 * time.Minute)
	defer wait.Stop()
	select {
	case <-pc.Ready():
	case <-pc.Done():
		return fmt.Errorf("pod controller: %w", pc.Err())
	case <-wait.C:
		return errors.New("the pod controller did not sync its pods from the API server in 2 minutes")
	}
	go nc.Run(ctx)
	*cleanups = append(*cleanups, func() { <-nc.Done() })
	select {
	case <-nc.Ready():
	case <-nc.Done():
		return fmt.Errorf("registering the node: %w", nc.Err())
	case <-wait.C:
		return errors.New("the node was not registered with the API server in 2 minutes")
	}
	return nil
}

// halt ends the node's controllers and kubelet endpoint: no more
// heartbeats, Lease renewals or pod syncs. Its containers go on.
func (n *nodeRun) halt(next string) {
	n.startMu.Lock()
	defer n.startMu.Unlock()
	n.mu.Lock()
	stop := n.stopRun
	n.stopRun = nil
	n.state = next
	n.notify = nil
	n.mu.Unlock()
	if stop != nil {
		stop()
	}
}

// kill is the node's machine dying: heartbeats stop and every container
// of its pods is killed at once.
func (n *nodeRun) kill() {
	n.halt(stateStopped)
	n.mu.Lock()
	pods := make([]*podRun, 0, len(n.pods))
	for _, r := range n.pods {
		pods = append(pods, r)
	}
	n.mu.Unlock()
	for _, r := range pods {
		r.kill()
	}
}

// podList is the node's pods, by key.
func (n *nodeRun) podList() []*podRun {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]*podRun, 0, len(n.pods))
	for _, r := range n.pods {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].key < out[j].key })
	return out
}

func (n *nodeRun) podRun(namespace, name string) *podRun {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.pods[namespace+"/"+name]
}

// changed marks a pod's status for posting.
func (n *nodeRun) changed(key string) {
	n.mu.Lock()
	n.dirty[key] = true
	n.mu.Unlock()
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// poster posts the statuses of changed pods, in order, through the pod
// controller, while the node runs.
func (n *nodeRun) poster() {
	for {
		select {
		case <-n.a.ctx.Done():
			return
		case <-n.wake:
		}
		for {
			n.mu.Lock()
			var key string
			for k := range n.dirty {
				key = k
				break
			}
			if key == "" {
				n.mu.Unlock()
				break
			}
			delete(n.dirty, key)
			n.mu.Unlock()
			n.flush(key)
		}
	}
}

// flush posts a pod's status now.
func (n *nodeRun) flush(key string) {
	n.mu.Lock()
	r, cb, lister := n.pods[key], n.notify, n.lister
	n.mu.Unlock()
	if r == nil || cb == nil {
		return
	}
	var current *corev1.Pod
	if lister != nil {
		current, _ = lister.Pods(r.pod.Namespace).Get(r.pod.Name)
	}
	cb(r.status(current))
}

func (n *nodeRun) forget(r *podRun) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.pods[r.key] == r {
		delete(n.pods, r.key)
	}
}

// The node.PodLifecycleHandler and node.PodNotifier methods: the pod
// controller calls them for the pods bound to this node.

// CreatePod starts running a pod bound to the node.
func (n *nodeRun) CreatePod(_ context.Context, pod *corev1.Pod) error {
	if err := checkPod(pod); err != nil {
		return fmt.Errorf("pod %s/%s cannot run on node %s: %w", pod.Namespace, pod.Name, n.cfg.Name, err)
	}
	n.mu.Lock()
	key := pod.Namespace + "/" + pod.Name
	if old := n.pods[key]; old != nil && old.pod.UID == pod.UID {
		n.mu.Unlock()
		return nil
	}
	r := newPodRun(n, pod)
	n.pods[key] = r
	n.mu.Unlock()
	n.log.Info("pod bound", "pod", key, "uid", pod.UID)
	go r.run()
	return nil
}

// UpdatePod takes changes to a running pod's labels, annotations and
// deadline.
func (n *nodeRun) UpdatePod(_ context.Context, pod *corev1.Pod) error {
	r := n.podRun(pod.Namespace, pod.Name)
	if r == nil || r.pod.UID != pod.UID {
		return vkerrdefs.NotFoundf("pod %s/%s is not on node %s", pod.Namespace, pod.Name, n.cfg.Name)
	}
	r.update(pod)
	return nil
}

// DeletePod stops a pod's containers (its deletion grace period between
// SIGTERM and SIGKILL), posts their ends and removes them. It returns at
// once; the stopping goes on.
func (n *nodeRun) DeletePod(_ context.Context, pod *corev1.Pod) error {
	r := n.podRun(pod.Namespace, pod.Name)
	if r == nil {
		return vkerrdefs.NotFoundf("pod %s/%s is not on node %s", pod.Namespace, pod.Name, n.cfg.Name)
	}
	grace := r.gracePeriod()
	if g := pod.DeletionGracePeriodSeconds; g != nil {
		grace = time.Duration(*g) * time.Second
	}
	n.log.Info("pod deleted", "pod", r.key, "grace", grace)
	go r.remove(grace)
	return nil
}

// GetPod returns a pod the node runs.
func (n *nodeRun) GetPod(_ context.Context, namespace, name string) (*corev1.Pod, error) {
	r := n.podRun(namespace, name)
	if r == nil {
		return nil, vkerrdefs.NotFoundf("pod %s/%s is not on node %s", namespace, name, n.cfg.Name)
	}
	return r.status(nil), nil
}

// GetPodStatus returns the status of a pod the node runs.
func (n *nodeRun) GetPodStatus(ctx context.Context, namespace, name string) (*corev1.PodStatus, error) {
	p, err := n.GetPod(ctx, namespace, name)
	if err != nil {
		return nil, err
	}
	return &p.Status, nil
}

// GetPods returns the pods the node runs.
func (n *nodeRun) GetPods(context.Context) ([]*corev1.Pod, error) {
	var out []*corev1.Pod
	for _, r := range n.podList() {
		out = append(out, r.status(nil))
	}
	return out, nil
}

// NotifyPods takes the pod controller's callback for status changes and
// sends it every pod's status (after a partition, what changed meanwhile).
func (n *nodeRun) NotifyPods(_ context.Context, cb func(*corev1.Pod)) {
	n.mu.Lock()
	n.notify = cb
	for k := range n.pods {
		n.dirty[k] = true
	}
	n.mu.Unlock()
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// The node.NodeProvider methods.

// Ping says the node is alive.
func (n *nodeRun) Ping(context.Context) error { return nil }

// NotifyNodeStatus is not used: the node's status does not change.
func (n *nodeRun) NotifyNodeStatus(context.Context, func(*corev1.Node)) {}
