package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/pkg/stdcopy"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ctr is one container of a pod: an init container or an app container,
// with the Docker container that runs it now and the one before.
type ctr struct {
	spec     corev1.Container
	init     bool
	id       string // the Docker container of the current attempt ("" before the first)
	prevID   string // of the attempt before, for previous logs
	attempts int
	restarts int32
	state    corev1.ContainerState
	last     corev1.ContainerState
	imageID  string
	msgFile  string // the termination-message file of the current attempt
	// probedReady is what the readiness probe of the current attempt said
	// last (see probe.go).
	probedReady bool
}

func (c *ctr) running() bool { return c.state.Running != nil }

// podRun runs one pod on one node: its sandbox (which holds the network
// namespace its containers share), its init containers one after the
// other, then its containers, restarted as its restartPolicy says; it
// works out the pod's status from what Docker reports.
type podRun struct {
	n   *nodeRun
	key string // namespace/name
	log *slog.Logger
	dir string // volumes and termination messages

	ctx     context.Context // cancelled when the pod is stopped
	cancel  context.CancelFunc
	done    chan struct{} // closed when the start-up sequence has returned
	wg      sync.WaitGroup
	stopped chan struct{} // closed when stop has finished

	mu         sync.Mutex
	pod        *corev1.Pod // as the API server last gave it
	ctrs       []*ctr      // init containers, then containers, in the pod's order
	sandboxID  string
	podIP      string
	startTime  metav1.Time
	phase      corev1.PodPhase
	reason     string
	message    string
	conditions map[corev1.PodConditionType]corev1.PodCondition
	stopping   bool
	deadline   *time.Timer
	volumes    map[string]string
}

func newPodRun(n *nodeRun, pod *corev1.Pod) *podRun {
	ctx, cancel := context.WithCancel(n.a.ctx)
	r := &podRun{
		n: n, key: pod.Namespace + "/" + pod.Name, pod: pod.DeepCopy(),
		log: n.log.With("pod", pod.Namespace+"/"+pod.Name),
		dir: filepath.Join(n.a.cfg.StateDir, "pods", string(pod.UID)),
		ctx: ctx, cancel: cancel, done: make(chan struct{}), stopped: make(chan struct{}),
		startTime: metav1.Now(), phase: corev1.PodPending,
		conditions: map[corev1.PodConditionType]corev1.PodCondition{},
	}
	waiting := "ContainerCreating"
	for _, c := range pod.Spec.InitContainers {
		r.ctrs = append(r.ctrs, &ctr{spec: c, init: true, state: waitingState(waiting, "")})
	}
	for _, c := range pod.Spec.Containers {
		r.ctrs = append(r.ctrs, &ctr{spec: c, state: waitingState(waiting, "")})
	}
	r.setCondition(corev1.PodReadyToStartContainers, false, "")
	r.setCondition(corev1.PodInitialized, len(pod.Spec.InitContainers) == 0, "ContainersNotInitialized")
	r.setCondition(corev1.ContainersReady, false, "ContainersNotReady")
	r.setCondition(corev1.PodReady, false, "ContainersNotReady")
	return r
}

func waitingState(reason, message string) corev1.ContainerState {
	return corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: message}}
}

// setCondition sets a condition the agent owns, keeping its transition
// time while its status does not change. Callers hold r.mu (or own r).
func (r *podRun) setCondition(t corev1.PodConditionType, ok bool, reason string) {
	status := corev1.ConditionFalse
	if ok {
		status, reason = corev1.ConditionTrue, ""
	}
	old, had := r.conditions[t]
	if had && old.Status == status && old.Reason == reason {
		return
	}
	r.conditions[t] = corev1.PodCondition{Type: t, Status: status, Reason: reason, LastTransitionTime: metav1.Now()}
}

// changed records that the pod's status changed: the node posts it.
func (r *podRun) changed() { r.n.changed(r.key) }

// update takes the pod as the API server now has it (labels, annotations,
// activeDeadlineSeconds may change).
func (r *podRun) update(pod *corev1.Pod) {
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.pod.Spec.ActiveDeadlineSeconds
	r.pod = pod.DeepCopy()
	if !int64PtrEqual(old, pod.Spec.ActiveDeadlineSeconds) {
		r.armDeadlineLocked()
	}
}

func int64PtrEqual(a, b *int64) bool {
	return (a == nil && b == nil) || (a != nil && b != nil && *a == *b)
}

// armDeadlineLocked (re)starts the activeDeadlineSeconds timer.
func (r *podRun) armDeadlineLocked() {
	if r.deadline != nil {
		r.deadline.Stop()
		r.deadline = nil
	}
	ads := r.pod.Spec.ActiveDeadlineSeconds
	if ads == nil || r.stopping || r.terminalLocked() {
		return
	}
	left := time.Until(r.startTime.Add(time.Duration(*ads) * time.Second))
	r.deadline = time.AfterFunc(max(left, 0), r.deadlineExceeded)
}

func (r *podRun) terminalLocked() bool {
	return r.phase == corev1.PodSucceeded || r.phase == corev1.PodFailed
}

func (r *podRun) restartPolicy() corev1.RestartPolicy {
	if p := r.pod.Spec.RestartPolicy; p != "" {
		return p
	}
	return corev1.RestartPolicyAlways
}

// gracePeriod is how long containers get between SIGTERM and SIGKILL when
// the pod is stopped for a reason of the node's own.
func (r *podRun) gracePeriod() time.Duration {
	if g := r.pod.Spec.TerminationGracePeriodSeconds; g != nil {
		return time.Duration(*g) * time.Second
	}
	return 30 * time.Second
}

// sleep waits d or until the pod is stopped; it says whether to go on.
func (r *podRun) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-r.ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// setWaiting sets the waiting reason of every container that has not
// started yet.
func (r *podRun) setWaiting(pred func(*ctr) bool, reason, message string) {
	r.mu.Lock()
	for _, c := range r.ctrs {
		if c.state.Waiting != nil && c.attempts == 0 && pred(c) {
			c.state = waitingState(reason, message)
		}
	}
	r.mu.Unlock()
	r.changed()
}

func all(*ctr) bool { return true }

// run is the pod's start-up sequence; it returns once its containers run
// (a goroutine for each keeps it as its restart policy says) or the pod
// has ended or been stopped.
func (r *podRun) run() {
	defer close(r.done)
	r.mu.Lock()
	r.armDeadlineLocked()
	r.mu.Unlock()
	r.changed()
	if err := os.MkdirAll(filepath.Join(r.dir, "termination"), 0o755); err != nil {
		r.fail("StateDirError", fmt.Sprintf("make the pod's directory %s: %v", r.dir, err))
		return
	}
	if !r.ensureImages() || !r.startSandbox() || !r.makeVolumes() {
		return
	}
	hasInit := len(r.pod.Spec.InitContainers) > 0
	if hasInit {
		r.setWaiting(func(c *ctr) bool { return true }, "PodInitializing", "")
	}
	for _, c := range r.ctrs {
		if !c.init {
			continue
		}
		if !r.runInit(c) {
			return
		}
	}
	r.mu.Lock()
	r.setCondition(corev1.PodInitialized, true, "")
	r.mu.Unlock()
	if hasInit {
		r.setWaiting(func(c *ctr) bool { return !c.init }, "ContainerCreating", "")
	}
	for _, c := range r.ctrs {
		if c.init {
			continue
		}
		if !r.startRetrying(c) {
			return
		}
		r.wg.Add(1)
		go r.keep(c)
	}
	r.mu.Lock()
	if r.phase == corev1.PodPending {
		r.phase = corev1.PodRunning
	}
	r.readinessLocked()
	r.mu.Unlock()
	r.changed()
	go func() {
		r.wg.Wait()
		r.finish()
	}()
}

// ensureImages waits until every image of the pod is on this machine,
// trying to pull those that are not (no registry may be reachable).
func (r *podRun) ensureImages() bool {
	d := r.n.a.docker
	for attempt := 0; ; attempt++ {
		var missing []string
		var lastErr error
		for _, c := range r.ctrs {
			id, ok, err := d.imageID(r.ctx, c.spec.Image)
			if err == nil && !ok {
				if err = d.pull(r.ctx, c.spec.Image); err == nil {
					id, ok, err = d.imageID(r.ctx, c.spec.Image)
				}
			}
			if r.ctx.Err() != nil {
				return false
			}
			if err != nil || !ok {
				missing = append(missing, c.spec.Image)
				lastErr = err
				continue
			}
			r.mu.Lock()
			c.imageID = "docker://" + id
			r.mu.Unlock()
		}
		if len(missing) == 0 {
			return true
		}
		reason := "ErrImagePull"
		if attempt > 0 {
			reason = "ImagePullBackOff"
		}
		msg := fmt.Sprintf("image %s is not on node %s's machine and could not be pulled (%v); build it locally (scripts/test-images) or use one that is there", strings.Join(missing, ", "), r.n.cfg.Name, lastErr)
		r.mu.Lock()
		for _, c := range r.ctrs {
			for _, m := range missing {
				if c.spec.Image == m && c.attempts == 0 {
					c.state = waitingState(reason, msg)
				}
			}
		}
		r.mu.Unlock()
		r.changed()
		if !r.sleep(5 * time.Second) {
			return false
		}
	}
}

// labels are a pod's containers' Docker labels.
func (r *podRun) labels(container string) map[string]string {
	return map[string]string{
		labelAgent: r.n.a.docker.pid, labelNode: r.n.cfg.Name,
		labelNamespace: r.pod.Namespace, labelPod: r.pod.Name, labelUID: string(r.pod.UID),
		labelContainer: container,
	}
}

// dockerName is a Docker container name for the pod's container.
func (r *podRun) dockerName(container string, attempt int) string {
	uid := string(r.pod.UID)
	if len(uid) > 8 {
		uid = uid[:8]
	}
	if container == "" {
		return fmt.Sprintf("swna_%s_%s_%s_%s_sandbox", r.n.cfg.Name, r.pod.Namespace, r.pod.Name, uid)
	}
	return fmt.Sprintf("swna_%s_%s_%s_%s_%s_%d", r.n.cfg.Name, r.pod.Namespace, r.pod.Name, uid, container, attempt)
}

// startSandbox starts the container that holds the pod's network
// namespace on the agent's Docker network: its address is the pod's.
func (r *podRun) startSandbox() bool {
	d := r.n.a.docker
	hostname := r.pod.Name
	if r.pod.Spec.Hostname != "" {
		hostname = r.pod.Spec.Hostname
	}
	if len(hostname) > 63 {
		hostname = hostname[:63]
	}
	for {
		err := func() error {
			resp, err := d.cli.ContainerCreate(r.ctx, &container.Config{
				Image: sandboxImage, Entrypoint: []string{"/pause", "pause"}, Hostname: hostname,
				Labels: r.labels(""),
			}, &container.HostConfig{
				NetworkMode: container.NetworkMode(d.network),
				Mounts:      []mount.Mount{{Type: mount.TypeBind, Source: d.self, Target: "/pause", ReadOnly: true}},
			}, nil, nil, r.dockerName("", 0))
			if err != nil {
				return fmt.Errorf("create the pod's sandbox container: %w", err)
			}
			r.mu.Lock()
			r.sandboxID = resp.ID
			r.mu.Unlock()
			if err := d.cli.ContainerStart(r.ctx, resp.ID, container.StartOptions{}); err != nil {
				return fmt.Errorf("start the pod's sandbox container: %w", err)
			}
			info, err := d.cli.ContainerInspect(r.ctx, resp.ID)
			if err != nil {
				return fmt.Errorf("inspect the pod's sandbox container: %w", err)
			}
			ip := ""
			if info.NetworkSettings != nil {
				if ep := info.NetworkSettings.Networks[d.network]; ep != nil {
					ip = ep.IPAddress
				}
			}
			r.mu.Lock()
			r.podIP = ip
			r.setCondition(corev1.PodReadyToStartContainers, true, "")
			r.mu.Unlock()
			r.changed()
			return nil
		}()
		if err == nil {
			return true
		}
		if r.ctx.Err() != nil {
			return false
		}
		r.log.Warn("sandbox", "err", err)
		r.mu.Lock()
		if r.sandboxID != "" {
			d.remove(context.Background(), r.sandboxID)
			r.sandboxID = ""
		}
		r.mu.Unlock()
		r.setWaiting(all, "ContainerCreating", err.Error())
		if !r.sleep(2 * time.Second) {
			return false
		}
	}
}

// facts are what the downward API reads.
func (r *podRun) facts() podFacts {
	r.mu.Lock()
	defer r.mu.Unlock()
	return podFacts{pod: r.pod.DeepCopy(), hostIP: r.n.a.cfg.NodeIP, podIP: r.podIP, allocatable: r.n.allocatable(), apiServer: r.n.a.cfg.APIServer}
}

// makeVolumes makes the pod's volumes, trying again while what they refer
// to is missing.
func (r *podRun) makeVolumes() bool {
	for {
		vols, err := volumeDirs(r.ctx, r.dir, newObjects(r.n.client, r.pod.Namespace), r.facts())
		if err == nil {
			r.mu.Lock()
			r.volumes = vols
			r.mu.Unlock()
			return true
		}
		if r.ctx.Err() != nil {
			return false
		}
		r.setWaiting(all, "CreateContainerConfigError", err.Error())
		if !r.sleep(2 * time.Second) {
			return false
		}
	}
}

// startRetrying starts container c, trying again while its configuration
// refers to what is missing. It returns false when the pod was stopped.
func (r *podRun) startRetrying(c *ctr) bool {
	for {
		err := r.start(c)
		if err == nil {
			return true
		}
		if r.ctx.Err() != nil {
			return false
		}
		r.mu.Lock()
		c.state = waitingState("CreateContainerConfigError", err.Error())
		r.mu.Unlock()
		r.changed()
		if !r.sleep(2 * time.Second) {
			return false
		}
	}
}

// start creates and starts a new attempt of container c. An error means
// nothing ran (the configuration refers to something missing, or the pod
// was stopped); a container that Docker could not start is terminated
// with reason ContainerCannotRun, and start returns nil.
func (r *podRun) start(c *ctr) error {
	d := r.n.a.docker
	f := r.facts()
	env, lookup, err := containerEnv(r.ctx, newObjects(r.n.client, f.pod.Namespace), f, &c.spec)
	if err != nil {
		return err
	}
	r.mu.Lock()
	mounts, err := containerMounts(&c.spec, r.volumes, r.pod)
	sandbox := r.sandboxID
	attempt := c.attempts + 1
	r.mu.Unlock()
	if err != nil {
		return err
	}
	msgPath := c.spec.TerminationMessagePath
	if msgPath == "" {
		msgPath = corev1.TerminationMessagePathDefault
	}
	msgFile := filepath.Join(r.dir, "termination", fmt.Sprintf("%s-%d", c.spec.Name, attempt))
	if err := os.WriteFile(msgFile, nil, 0o666); err != nil {
		return fmt.Errorf("termination message file: %w", err)
	}
	os.Chmod(msgFile, 0o666)
	mounts = append(mounts, mount.Mount{Type: mount.TypeBind, Source: msgFile, Target: msgPath})

	cfg := &container.Config{
		Image: c.spec.Image, Env: env, WorkingDir: c.spec.WorkingDir, Labels: r.labels(c.spec.Name),
		Tty: c.spec.TTY, OpenStdin: c.spec.Stdin, StdinOnce: c.spec.StdinOnce,
	}
	for _, a := range c.spec.Command {
		cfg.Entrypoint = append(cfg.Entrypoint, expand(a, lookup))
	}
	for _, a := range c.spec.Args {
		cfg.Cmd = append(cfg.Cmd, expand(a, lookup))
	}
	if u := runAs(r.pod, &c.spec); u != "" {
		cfg.User = u
	}
	host := &container.HostConfig{
		NetworkMode: container.NetworkMode("container:" + sandbox),
		Mounts:      mounts,
		Resources:   resources(&c.spec),
	}
	if r.pod.Spec.ShareProcessNamespace != nil && *r.pod.Spec.ShareProcessNamespace {
		host.PidMode = container.PidMode("container:" + sandbox)
	}
	resp, err := d.cli.ContainerCreate(r.ctx, cfg, host, nil, nil, r.dockerName(c.spec.Name, attempt))
	if err != nil {
		return fmt.Errorf("create container %s: %w", c.spec.Name, err)
	}
	r.mu.Lock()
	c.attempts = attempt
	if c.id != "" {
		c.prevID = c.id
	}
	c.id, c.msgFile, c.probedReady = resp.ID, msgFile, false
	r.mu.Unlock()
	if err := d.cli.ContainerStart(r.ctx, resp.ID, container.StartOptions{}); err != nil {
		if r.ctx.Err() != nil {
			return r.ctx.Err()
		}
		code := int32(128)
		if info, ierr := d.cli.ContainerInspect(r.n.a.ctx, resp.ID); ierr == nil && info.State != nil && info.State.ExitCode != 0 {
			code = int32(info.State.ExitCode)
		}
		now := metav1.Now()
		r.mu.Lock()
		if c.state.Terminated != nil {
			c.last = c.state
		}
		c.state = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
			ExitCode: code, Reason: "ContainerCannotRun", Message: err.Error(),
			StartedAt: now, FinishedAt: now, ContainerID: "docker://" + resp.ID,
		}}
		r.mu.Unlock()
		r.changed()
		return nil
	}
	r.mu.Lock()
	last := c.state
	if last.Terminated != nil {
		c.last = last
	}
	c.state = corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Now()}}
	r.readinessLocked()
	r.mu.Unlock()
	r.changed()
	r.startProbes(c, resp.ID)
	return nil
}

// runAs is the Docker user of a container from the security contexts.
func runAs(p *corev1.Pod, c *corev1.Container) string {
	var uid, gid *int64
	if sc := p.Spec.SecurityContext; sc != nil {
		uid, gid = sc.RunAsUser, sc.RunAsGroup
	}
	if sc := c.SecurityContext; sc != nil {
		if sc.RunAsUser != nil {
			uid = sc.RunAsUser
		}
		if sc.RunAsGroup != nil {
			gid = sc.RunAsGroup
		}
	}
	switch {
	case uid == nil:
		return ""
	case gid == nil:
		return strconv.FormatInt(*uid, 10)
	default:
		return strconv.FormatInt(*uid, 10) + ":" + strconv.FormatInt(*gid, 10)
	}
}

// resources turns a container's limits into Docker's: memory without
// swap (so the kernel's OOM killer ends a container past it), cpu as a
// quota; requests.cpu as shares.
func resources(c *corev1.Container) container.Resources {
	var res container.Resources
	if m, ok := c.Resources.Limits[corev1.ResourceMemory]; ok && m.Value() > 0 {
		res.Memory, res.MemorySwap = m.Value(), m.Value()
	}
	if q, ok := c.Resources.Limits[corev1.ResourceCPU]; ok && q.MilliValue() > 0 {
		res.NanoCPUs = q.MilliValue() * 1_000_000
	}
	if q, ok := c.Resources.Requests[corev1.ResourceCPU]; ok && q.MilliValue() > 0 {
		res.CPUShares = max(2, q.MilliValue()*1024/1000)
	}
	return res
}

// waitExit waits for the current attempt of c to end, records how it
// ended and returns its exit code.
func (r *podRun) waitExit(c *ctr) int32 {
	r.mu.Lock()
	id, running := c.id, c.running()
	r.mu.Unlock()
	if running {
		d := r.n.a.docker
		okc, errc := d.cli.ContainerWait(r.n.a.ctx, id, container.WaitConditionNotRunning)
		select {
		case <-okc:
		case err := <-errc:
			if r.n.a.ctx.Err() == nil {
				r.log.Warn("wait for container", "container", c.spec.Name, "err", err)
			}
		}
		r.recordExit(id)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if t := c.state.Terminated; t != nil {
		return t.ExitCode
	}
	return -1
}

// recordExit records how Docker container id ended, once.
func (r *podRun) recordExit(id string) {
	d := r.n.a.docker
	info, err := d.cli.ContainerInspect(r.n.a.ctx, id)
	r.mu.Lock()
	var c *ctr
	for _, x := range r.ctrs {
		if x.id == id {
			c = x
		}
	}
	if c == nil || !c.running() {
		r.mu.Unlock()
		return
	}
	t := &corev1.ContainerStateTerminated{ContainerID: "docker://" + id, StartedAt: c.state.Running.StartedAt, FinishedAt: metav1.Now()}
	switch {
	case err != nil:
		t.ExitCode, t.Reason, t.Message = 137, "ContainerStatusUnknown", fmt.Sprintf("inspect the Docker container: %v", err)
	case info.State == nil || info.State.Running:
		r.mu.Unlock()
		return
	default:
		t.ExitCode = int32(info.State.ExitCode)
		if ts, err := time.Parse(time.RFC3339Nano, info.State.StartedAt); err == nil {
			t.StartedAt = metav1.NewTime(ts)
		}
		if ts, err := time.Parse(time.RFC3339Nano, info.State.FinishedAt); err == nil {
			t.FinishedAt = metav1.NewTime(ts)
		}
		switch {
		case info.State.OOMKilled:
			t.Reason = "OOMKilled"
		case t.ExitCode == 0:
			t.Reason = "Completed"
		default:
			t.Reason = "Error"
		}
	}
	msgFile, policy, tty := c.msgFile, c.spec.TerminationMessagePolicy, c.spec.TTY
	r.mu.Unlock()

	if b, err := readAtMost(msgFile, 4096); err == nil && len(b) > 0 {
		t.Message = string(b)
	} else if t.ExitCode != 0 && policy == corev1.TerminationMessageFallbackToLogsOnError && t.Message == "" {
		t.Message = r.tailLogs(id, tty)
	}

	r.mu.Lock()
	if c.id == id && c.running() {
		c.state = corev1.ContainerState{Terminated: t}
		r.readinessLocked()
	}
	r.mu.Unlock()
	r.changed()
}

func readAtMost(path string, n int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, n))
}

// tailLogs is the end of a container's log: its last 80 lines, at most
// 2048 bytes, as a kubelet gives for FallbackToLogsOnError.
func (r *podRun) tailLogs(id string, tty bool) string {
	rc, err := r.n.a.docker.cli.ContainerLogs(r.n.a.ctx, id, container.LogsOptions{ShowStdout: true, ShowStderr: true, Tail: "80"})
	if err != nil {
		return ""
	}
	defer rc.Close()
	var b strings.Builder
	if tty {
		io.Copy(&b, io.LimitReader(rc, 1<<20))
	} else {
		stdcopy.StdCopy(&b, &b, io.LimitReader(rc, 1<<20))
	}
	s := b.String()
	if len(s) > 2048 {
		s = s[len(s)-2048:]
	}
	return s
}

// readinessLocked sets the ready conditions from the containers' states.
func (r *podRun) readinessLocked() {
	ready := r.phase != corev1.PodSucceeded && r.phase != corev1.PodFailed
	for _, c := range r.ctrs {
		if !c.init && !c.ready() {
			ready = false
		}
	}
	r.setCondition(corev1.ContainersReady, ready, "ContainersNotReady")
	r.setCondition(corev1.PodReady, ready, "ContainersNotReady")
}

// backoff is the wait before restart number n of a container.
func (r *podRun) backoff(n int32) time.Duration {
	d := time.Second
	for i := int32(0); i < n && d < time.Duration(r.n.a.cfg.RestartBackoffMax); i++ {
		d *= 2
	}
	return min(d, time.Duration(r.n.a.cfg.RestartBackoffMax))
}

// restartAfter waits out a failed container's back-off and says whether
// to go on.
func (r *podRun) restartAfter(c *ctr) bool {
	r.mu.Lock()
	wait := r.backoff(c.restarts)
	c.restarts++
	c.last = c.state
	c.state = waitingState("CrashLoopBackOff", fmt.Sprintf("back-off %s restarting failed container %s of pod %s", wait, c.spec.Name, r.key))
	r.mu.Unlock()
	r.changed()
	return r.sleep(wait)
}

// runInit runs init container c to success, restarting it on failure
// unless the pod's restartPolicy is Never (then the pod fails).
func (r *podRun) runInit(c *ctr) bool {
	for {
		if !r.startRetrying(c) {
			return false
		}
		code := r.waitExitOrStop(c)
		if r.ctx.Err() != nil {
			return false
		}
		if code == 0 {
			return true
		}
		if r.restartPolicy() == corev1.RestartPolicyNever {
			r.mu.Lock()
			r.phase = corev1.PodFailed
			for _, x := range r.ctrs {
				if !x.init && x.state.Waiting != nil {
					x.state = waitingState("PodInitializing", "")
				}
			}
			r.readinessLocked()
			r.setCondition(corev1.PodInitialized, false, "ContainersNotInitialized")
			r.mu.Unlock()
			r.stopSandbox()
			r.changed()
			return false
		}
		if !r.restartAfter(c) {
			return false
		}
	}
}

// waitExitOrStop is waitExit, returning early when the pod is stopped
// (stop then records the container's end).
func (r *podRun) waitExitOrStop(c *ctr) int32 {
	done := make(chan int32, 1)
	go func() { done <- r.waitExit(c) }()
	select {
	case code := <-done:
		return code
	case <-r.ctx.Done():
		return -1
	}
}

// keep watches app container c and restarts it as the restartPolicy says
// until the pod is stopped.
func (r *podRun) keep(c *ctr) {
	defer r.wg.Done()
	for {
		code := r.waitExit(c)
		if r.ctx.Err() != nil {
			return
		}
		switch r.restartPolicy() {
		case corev1.RestartPolicyNever:
			return
		case corev1.RestartPolicyOnFailure:
			if code == 0 {
				return
			}
		}
		if !r.restartAfter(c) {
			return
		}
		if !r.startRetrying(c) {
			return
		}
	}
}

// finish ends the pod once none of its containers will run again.
func (r *podRun) finish() {
	r.mu.Lock()
	if r.stopping || r.terminalLocked() {
		r.mu.Unlock()
		return
	}
	r.phase = corev1.PodSucceeded
	for _, c := range r.ctrs {
		if !c.init && (c.state.Terminated == nil || c.state.Terminated.ExitCode != 0) {
			r.phase = corev1.PodFailed
		}
	}
	r.readinessLocked()
	if r.deadline != nil {
		r.deadline.Stop()
	}
	r.mu.Unlock()
	r.stopSandbox()
	r.changed()
}

// fail ends the pod Failed with a reason of the node's.
func (r *podRun) fail(reason, message string) {
	r.mu.Lock()
	r.phase, r.reason, r.message = corev1.PodFailed, reason, message
	r.readinessLocked()
	r.mu.Unlock()
	r.log.Warn("pod failed", "reason", reason, "message", message)
	r.changed()
}

// stopSandbox stops the sandbox of a pod that has ended; its containers
// stay, for their logs, until the pod is deleted.
func (r *podRun) stopSandbox() {
	r.mu.Lock()
	id := r.sandboxID
	r.mu.Unlock()
	if id != "" {
		if err := r.n.a.docker.stop(r.n.a.ctx, id, 0); err != nil {
			r.log.Warn("stop sandbox", "err", err)
		}
	}
}

// deadlineExceeded stops a pod active past its activeDeadlineSeconds.
func (r *podRun) deadlineExceeded() {
	r.mu.Lock()
	ads := r.pod.Spec.ActiveDeadlineSeconds
	r.mu.Unlock()
	r.stop(r.gracePeriod())
	r.mu.Lock()
	if !r.terminalLocked() {
		r.phase, r.reason = corev1.PodFailed, "DeadlineExceeded"
		r.message = fmt.Sprintf("Pod was active on the node longer than the specified deadline (%ds)", *ads)
	}
	r.readinessLocked()
	r.mu.Unlock()
	r.stopSandbox()
	r.changed()
}

// stop stops the pod's containers: SIGTERM (or the image's stop signal),
// then SIGKILL after grace; it returns when they have ended and their ends
// are recorded. Calls after the first wait for it.
func (r *podRun) stop(grace time.Duration) {
	r.mu.Lock()
	if r.stopping {
		r.mu.Unlock()
		<-r.stopped
		return
	}
	r.stopping = true
	if r.deadline != nil {
		r.deadline.Stop()
	}
	r.mu.Unlock()
	defer close(r.stopped)
	r.cancel()
	<-r.done
	r.mu.Lock()
	var ids []string
	for _, c := range r.ctrs {
		if c.running() {
			ids = append(ids, c.id)
		}
	}
	r.mu.Unlock()
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Go(func() {
			if err := r.n.a.docker.stop(r.n.a.ctx, id, grace); err != nil {
				r.log.Warn("stop container", "err", err)
			}
			r.recordExit(id)
		})
	}
	wg.Wait()
	r.wg.Wait()
}

// remove stops the pod for its deletion (grace between SIGTERM and
// SIGKILL), posts its final status, then removes its Docker containers and
// its directory.
func (r *podRun) remove(grace time.Duration) {
	r.stop(grace)
	r.mu.Lock()
	if !r.terminalLocked() {
		r.phase = corev1.PodSucceeded
		for _, c := range r.ctrs {
			if !c.init && (c.state.Terminated == nil || c.state.Terminated.ExitCode != 0) {
				r.phase = corev1.PodFailed
			}
		}
	}
	r.readinessLocked()
	r.mu.Unlock()
	r.changed()
	r.n.flush(r.key)
	r.removeContainers()
	r.n.forget(r)
}

// removeContainers removes every Docker container of the pod (found by
// its labels, so that one created as the pod was stopped goes too) and
// the pod's directory.
func (r *podRun) removeContainers() {
	d := r.n.a.docker
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cs, err := d.containers(ctx, labelUID, string(r.pod.UID))
	if err != nil {
		r.log.Warn("list the pod's containers", "err", err)
	}
	for _, c := range cs {
		if err := d.remove(ctx, c.ID); err != nil {
			r.log.Warn("remove container", "err", err)
		}
	}
	if err := os.RemoveAll(r.dir); err != nil {
		r.log.Warn("remove the pod's directory", "err", err)
	}
}

// kill ends the pod's containers at once (SIGKILL, sandbox too), as when
// its node's machine dies; nothing is posted.
func (r *podRun) kill() {
	r.mu.Lock()
	r.stopping = true
	if r.deadline != nil {
		r.deadline.Stop()
	}
	r.mu.Unlock()
	r.cancel()
	d := r.n.a.docker
	cs, _ := d.containers(context.Background(), labelUID, string(r.pod.UID))
	for _, c := range cs {
		if c.State == "running" {
			if err := d.cli.ContainerKill(context.Background(), c.ID, "KILL"); err != nil {
				r.log.Warn("kill container", "err", err)
			}
		}
	}
}

// status is the pod with the status the node reports for it; conditions
// that others own (PodScheduled, DisruptionTarget, ...) are taken from
// current, the pod as the API server has it now, when known.
func (r *podRun) status(current *corev1.Pod) *corev1.Pod {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.pod.DeepCopy()
	st := corev1.PodStatus{
		Phase: r.phase, Reason: r.reason, Message: r.message,
		HostIP: r.n.a.cfg.NodeIP, HostIPs: []corev1.HostIP{{IP: r.n.a.cfg.NodeIP}},
		StartTime: &r.startTime, QOSClass: r.pod.Status.QOSClass,
	}
	if r.podIP != "" {
		st.PodIP, st.PodIPs = r.podIP, []corev1.PodIP{{IP: r.podIP}}
	}
	owned := map[corev1.PodConditionType]bool{}
	for _, t := range []corev1.PodConditionType{corev1.PodReadyToStartContainers, corev1.PodInitialized, corev1.ContainersReady, corev1.PodReady} {
		st.Conditions = append(st.Conditions, r.conditions[t])
		owned[t] = true
	}
	others := r.pod.Status.Conditions
	if current != nil && current.UID == r.pod.UID {
		others = current.Status.Conditions
	}
	for _, c := range others {
		if !owned[c.Type] {
			st.Conditions = append(st.Conditions, c)
		}
	}
	for _, c := range r.ctrs {
		started := c.running()
		cs := corev1.ContainerStatus{
			Name: c.spec.Name, State: c.state, LastTerminationState: c.last,
			Ready: c.ready(), RestartCount: c.restarts,
			Image: c.spec.Image, ImageID: c.imageID, Started: &started,
		}
		if c.id != "" {
			cs.ContainerID = "docker://" + c.id
		}
		if c.init {
			st.InitContainerStatuses = append(st.InitContainerStatuses, cs)
		} else {
			st.ContainerStatuses = append(st.ContainerStatuses, cs)
		}
	}
	p.Status = st
	return p
}

// containerID is the Docker container of the pod's container name: its
// current attempt, or the one before when previous is set.
func (r *podRun) containerID(name string, previous bool) (id string, tty bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.ctrs {
		if c.spec.Name != name {
			continue
		}
		id = c.id
		if previous {
			id = c.prevID
		}
		if id == "" {
			if previous {
				return "", false, fmt.Errorf("previous terminated container %q in pod %q not found", name, r.pod.Name)
			}
			return "", false, fmt.Errorf("container %q in pod %q is waiting to start: %s", name, r.pod.Name, waitingReason(c.state))
		}
		return id, c.spec.TTY, nil
	}
	return "", false, fmt.Errorf("container %q is not in pod %q", name, r.pod.Name)
}

func waitingReason(s corev1.ContainerState) string {
	if s.Waiting != nil {
		return s.Waiting.Reason
	}
	return "unknown"
}
