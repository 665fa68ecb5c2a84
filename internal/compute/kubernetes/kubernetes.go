// Package kubernetes is the compute backend that runs each task attempt as
// a Kubernetes Job (batch/v1, backoffLimit 0: Stepwise owns retries), with
// the step's resources as requests and limits, its timeout as the Job's
// deadline, and labels naming flow, run, step, task, attempt and user. The
// flow's binary ships itself through the datastore (see Code). One watch
// of the run's pods and Jobs turns what the cluster does into outcomes: the
// exit code; "out of memory: raise MemoryMB" for an OOM kill; a timeout; an
// eviction or a lost node; a pod unschedulable for too long, failed with
// the scheduler's own message. Stopping an attempt deletes its Job and pod
// with the grace period; a launcher killed with kill -9 leaves its Jobs
// running, and resume reuses what they finished.
package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"stepwise.dev/stepwise/internal/compute"
	"stepwise.dev/stepwise/internal/graph"
	"stepwise.dev/stepwise/internal/timing"
)

// Name is the backend's name in the graph and on the command line.
const Name = "kubernetes"

// Labels the Jobs and pods carry.
const (
	LabelFlow    = "stepwise.dev/flow"
	LabelRun     = "stepwise.dev/run"
	LabelStep    = "stepwise.dev/step"
	LabelTask    = "stepwise.dev/task"
	LabelAttempt = "stepwise.dev/attempt"
	LabelUser    = "stepwise.dev/user"
	labelAttempt = "stepwise.dev/job" // the Job's own name, to find its pod
)

func init() {
	compute.Register(Name, func(ctx context.Context, env compute.Env) (compute.Backend, error) { return Open(ctx, env) })
}

// Backend runs task attempts as Jobs.
type Backend struct {
	env     compute.Env
	api     *client
	host    string
	inForce func(string) string

	codeOnce sync.Once
	code     *Code
	codeErr  error

	site Site // what every task pod shares

	requests requestCounter // API requests made, for STEPWISE_DEBUG=timing
	closed   sync.Once
	sweeper  sync.Once // starts the one loop that fails long-unschedulable pods

	mu      sync.Mutex
	jobs    map[string]*job // by Job name
	watched map[string]bool // namespace|run whose pods and Jobs are watched
	stop    chan struct{}
}

var _ compute.Backend = (*Backend)(nil)

// Open connects to the cluster of the settings in force.
func Open(ctx context.Context, env compute.Env) (*Backend, error) {
	inForce := env.Settings
	if inForce == nil {
		inForce = func(string) string { return "" }
	}
	b := &Backend{env: env, inForce: inForce, site: SiteFor(env, inForce), jobs: map[string]*job{}, watched: map[string]bool{}, stop: make(chan struct{})}
	if err := b.site.Check(); err != nil {
		return nil, err
	}
	api, host, err := dial(ctx, inForce, b.requests.wrap)
	if err != nil {
		return nil, err
	}
	b.api, b.host = api, host
	return b, nil
}

// requestCounter counts the API requests of a backend by verb.
type requestCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *requestCounter) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripper(func(r *http.Request) (*http.Response, error) {
		verb := r.Method
		if r.URL.Query().Get("watch") == "true" {
			verb = "WATCH"
		}
		c.mu.Lock()
		if c.n == nil {
			c.n = map[string]int{}
		}
		c.n[verb]++
		c.mu.Unlock()
		return rt.RoundTrip(r)
	})
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// String is the count, e.g. "212 (GET 3, POST 103, ...)".
func (c *requestCounter) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	verbs := slices.Sorted(maps.Keys(c.n))
	total := 0
	var parts []string
	for _, v := range verbs {
		total += c.n[v]
		parts = append(parts, fmt.Sprintf("%s %d", v, c.n[v]))
	}
	return fmt.Sprintf("%d (%s)", total, strings.Join(parts, ", "))
}

// restConfig reads the kubeconfig in force.
func restConfig(inForce func(string) string) (*rest.Config, string, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if p := inForce(SetKubeconfig); p != "" {
		rules.ExplicitPath = p
	}
	over := &clientcmd.ConfigOverrides{CurrentContext: inForce(SetContext)}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, over).ClientConfig()
	if err != nil {
		return nil, "", fmt.Errorf("kubernetes: no cluster to run on: %w; point KUBECONFIG (or stepwise configure --set-compute kubernetes.kubeconfig=PATH) at a kubeconfig", err)
	}
	cfg.QPS, cfg.Burst = 50, 100
	return cfg, cfg.Host, nil
}

// Name is "kubernetes".
func (b *Backend) Name() string { return Name }

// Capacity is unlimited: the cluster queues what it cannot place.
func (b *Backend) Capacity() graph.Resources { return graph.Resources{} }

// TeamSetUp says what keeps pods from reaching a datastore and a metadata
// store, or "".
func TeamSetUp(datastore, metadata string) string {
	var problems []string
	if !strings.HasPrefix(datastore, "s3://") {
		problems = append(problems, fmt.Sprintf("the datastore is %s, which pods cannot reach: set an S3 datastore (stepwise configure --set-datastore s3://bucket/prefix, or STEPWISE_DATASTORE)", datastore))
	}
	if !strings.HasPrefix(metadata, "http://") && !strings.HasPrefix(metadata, "https://") {
		problems = append(problems, fmt.Sprintf("the metadata store is %q, which pods cannot reach: set a metadata service (stepwise configure --set-metadata https://host:port, or STEPWISE_METADATA)", metadata))
	}
	return strings.Join(problems, "; ")
}

// Check refuses a step whose settings are wrong, or whose Secrets do not
// exist, before the run.
func (b *Backend) Check(s *graph.Step) error {
	if problems := TeamSetUp(b.env.Datastore, b.env.Metadata); problems != "" {
		return fmt.Errorf("step %s runs on Kubernetes, which needs the team set-up: %s; or run it here with --compute local", s.Name, problems)
	}
	set, err := settings(s.ComputeSettings, b.inForce)
	if err != nil {
		return fmt.Errorf("step %s: %w", s.Name, err)
	}
	if set.Image == "" {
		return fmt.Errorf("step %s runs on Kubernetes but names no image; give stepwise.Kubernetes{Image: ...} or set one (stepwise configure --set-compute kubernetes.image=IMAGE)", s.Name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	secrets := map[string]bool{}
	for _, k := range set.SecretEnv {
		secrets[k.Secret] = true
	}
	for _, n := range []string{b.inForce(SetTokenSecret), b.inForce(SetAWSSecret)} {
		if n != "" {
			secrets[n] = true
		}
	}
	for name := range secrets {
		err := b.api.secretExists(ctx, set.Namespace, name)
		switch {
		case isNotFound(err):
			return fmt.Errorf("step %s uses the Secret %s, which does not exist in namespace %s; create it (kubectl create secret generic %s ...) or fix the name", s.Name, name, set.Namespace, name)
		case isForbidden(err):
			// The launcher may not read Secrets; the pod will say.
		case err != nil:
			return fmt.Errorf("step %s: cannot look for the Secret %s in namespace %s: %w", s.Name, name, set.Namespace, err)
		}
	}
	return nil
}

// Close stops the watches. With STEPWISE_DEBUG=timing it prints how many
// API requests the run made.
func (b *Backend) Close() error {
	b.closed.Do(func() {
		if timing.On() {
			fmt.Fprintf(os.Stderr, "stepwise timing: kubernetes API requests=%s\n", &b.requests)
		}
	})
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case <-b.stop:
	default:
		close(b.stop)
	}
	return nil
}

// job is one attempt's Job.
type job struct {
	name, ns string
	spec     compute.Spec
	set      Settings
	created  time.Time
	done     chan struct{}
	err      error
	once     sync.Once
	logs     sync.Once
	logsDone chan struct{} // closed when the pod's output has been copied
	pending  time.Time     // when the pod was first seen unschedulable
	why      string        // the scheduler's last message about it
	clock    sync.Once     // the timeout's, started with the task's container
	b        *Backend
}

// startClock stops the attempt at its step's timeout, counted from when
// the task's container started (as a local task's, from its process).
func (j *job) startClock(p *Pod) {
	if j.spec.Timeout <= 0 || p.Metadata.DeletionTimestamp != nil {
		return
	}
	for _, cs := range p.Status.ContainerStatuses {
		if r := cs.State.Running; cs.Name == "task" && r != nil {
			j.clock.Do(func() {
				left := j.spec.Timeout - time.Since(r.StartedAt)
				time.AfterFunc(max(left, 0), func() {
					j.finish(compute.ErrTimeout)
					j.Stop(3 * time.Second)
				})
			})
		}
	}
}

func (j *job) finish(err error) {
	j.once.Do(func() {
		j.err = err
		close(j.done)
	})
}

// Wait waits for the attempt's outcome.
func (j *job) Wait() error {
	<-j.done
	j.b.mu.Lock()
	delete(j.b.jobs, j.name)
	j.b.mu.Unlock()
	return j.err
}

// Stop deletes the Job and its pod; the pod gets grace to stop.
func (j *job) Stop(grace time.Duration) {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		secs := int64(grace.Seconds())
		j.b.api.deletePods(ctx, j.ns, labelAttempt+"="+j.name, &secs)
		err := j.b.api.deleteJob(ctx, j.ns, j.name, &secs)
		if err != nil && !isNotFound(err) {
			j.finish(fmt.Errorf("stopped; deleting its Job %s/%s failed: %w", j.ns, j.name, err))
			return
		}
		j.finish(fmt.Errorf("stopped: its Job %s/%s was deleted", j.ns, j.name))
	}()
}

// Start creates the attempt's Job.
func (b *Backend) Start(ctx context.Context, s compute.Spec) (compute.Handle, error) {
	set, err := settings(s.Settings, b.inForce)
	if err != nil {
		return nil, err
	}
	if set.Binary == "" {
		b.codeOnce.Do(func() { b.code, b.codeErr = ShipCode(ctx, b.env.Data) })
		if b.codeErr != nil {
			return nil, b.codeErr
		}
	}
	if err := b.watch(set.Namespace, s.Run); err != nil {
		return nil, err
	}
	j := &job{name: JobName(s), ns: set.Namespace, spec: s, set: set, created: time.Now(), done: make(chan struct{}), logsDone: make(chan struct{}), b: b}
	manifest := b.manifest(s, set, j.name)
	b.mu.Lock()
	b.jobs[j.name] = j
	b.mu.Unlock()
	err = b.api.createJob(ctx, set.Namespace, manifest)
	if isAlreadyExists(err) {
		// A Job of this attempt from a launcher that died: start over.
		b.api.deleteJob(ctx, set.Namespace, j.name, nil)
		for i := 0; i < 50 && isAlreadyExists(err); i++ {
			time.Sleep(200 * time.Millisecond)
			err = b.api.createJob(ctx, set.Namespace, manifest)
		}
	}
	if err != nil {
		b.mu.Lock()
		delete(b.jobs, j.name)
		b.mu.Unlock()
		return nil, fmt.Errorf("kubernetes: cannot create the Job of task %s in namespace %s: %w", s.Path(), set.Namespace, err)
	}
	return j, nil
}

// StartAllowance is the time a Job's deadline allows beyond the step's
// timeout for its pod to be scheduled, pulled and started.
func StartAllowance(set Settings) time.Duration { return set.Unschedulable + 10*time.Minute }

var (
	dnsUnsafe   = regexp.MustCompile(`[^a-z0-9-]+`)
	labelUnsafe = regexp.MustCompile(`[^A-Za-z0-9._-]+`)
)

// JobName is the Job of an attempt: sw-<flow>-<run>-<step>-<task>-<attempt>,
// cut to the 63 characters of a name, with a hash of the whole when cut.
func JobName(s compute.Spec) string {
	part := func(v string) string { return strings.Trim(dnsUnsafe.ReplaceAllString(strings.ToLower(v), "-"), "-") }
	name := strings.Join([]string{"sw", part(s.Flow), s.Run, part(s.Step), part(s.Task), strconv.Itoa(s.Attempt)}, "-")
	if len(name) <= 52 {
		return name
	}
	h := fnv.New32a()
	io.WriteString(h, s.Flow+"/"+s.Path()+"/"+strconv.Itoa(s.Attempt))
	return fmt.Sprintf("%s-%08x", strings.TrimRight(name[:43], "-"), h.Sum32())
}

// labelValue makes v a valid label value (63 characters of [A-Za-z0-9._-]).
func labelValue(v string) string {
	v = labelUnsafe.ReplaceAllString(v, "_")
	if len(v) > 63 {
		v = v[:63]
	}
	return strings.Trim(v, "._-")
}

// manifest is the attempt's Job.
func (b *Backend) manifest(s compute.Spec, set Settings, name string) *Job {
	labels := map[string]string{}
	for k, v := range map[string]string{LabelFlow: s.Flow, LabelRun: s.Run, LabelStep: s.Step, LabelTask: s.Task,
		LabelAttempt: strconv.Itoa(s.Attempt), LabelUser: b.env.User, labelAttempt: name} {
		labels[k] = labelValue(v)
	}
	var code *CodeFetch
	if set.Binary == "" {
		code = &CodeFetch{SHA256: b.code.SHA256, URL: b.code.URL}
	}
	pod := b.site.Pod(TaskPod{Labels: labels, Pathspec: s.Flow + "/" + s.Path(), Args: s.Args, Resources: s.Resources,
		Settings: set, Code: code, Env: []EnvVar{{Name: "STEPWISE_USER", Value: b.env.User}}})
	backoff := int32(0)
	ttl := int32(set.TTLAfterFinished.Seconds())
	job := &Job{
		APIVersion: "batch/v1", Kind: "Job",
		Metadata: ObjectMeta{Name: name, Labels: pod.Metadata.Labels, Annotations: pod.Metadata.Annotations},
		Spec: JobSpec{
			BackoffLimit:            &backoff,
			TTLSecondsAfterFinished: &ttl,
			Template:                pod,
		},
	}
	if s.Timeout > 0 {
		// The launcher stops the task at its timeout, counted from when its
		// container starts. The Job's deadline counts from its creation, so
		// it allows for scheduling and pulling too: it is the backstop when
		// no launcher watches (one killed with kill -9).
		secs := int64((s.Timeout + StartAllowance(set)).Seconds())
		job.Spec.ActiveDeadlineSeconds = &secs
	}
	return job
}

// watch starts, once per namespace and run, one watch of the run's pods
// and Jobs.
func (b *Backend) watch(ns, run string) error {
	b.mu.Lock()
	key := ns + "|" + run
	if b.watched[key] {
		b.mu.Unlock()
		return nil
	}
	b.watched[key] = true
	b.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-b.stop; cancel() }()
	sel := LabelRun + "=" + labelValue(run)
	pods := &watcher[Pod]{c: b.api, path: podsPath(ns), sel: sel, on: b.pod,
		name: func(p *Pod) string { return p.Metadata.Name }, rv: func(p *Pod) string { return p.Metadata.ResourceVersion }}
	jobs := &watcher[Job]{c: b.api, path: jobsPath(ns), sel: sel, on: b.jobEvent,
		name: func(j *Job) string { return j.Metadata.Name }, rv: func(j *Job) string { return j.Metadata.ResourceVersion }}
	for what, start := range map[string]func(context.Context) error{"pods": pods.start, "Jobs": jobs.start} {
		if err := start(ctx); err != nil {
			return fmt.Errorf("kubernetes: cannot watch the %s of run %s in namespace %s on %s (does the launcher's Role allow list and watch?): %w", what, run, ns, b.host, err)
		}
	}
	b.sweeper.Do(func() { go b.unschedulable() })
	return nil
}

func (b *Backend) find(labels map[string]string) *job {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.jobs[labels[labelAttempt]]
}

// pod turns a pod's state into the attempt's outcome.
func (b *Backend) pod(p *Pod, deleted bool) {
	j := b.find(p.Metadata.Labels)
	if j == nil {
		return
	}
	name := p.Metadata.Name
	removing := p.Metadata.DeletionTimestamp != nil || deleted
	switch p.Status.Phase {
	case PodSucceeded:
		j.finishAfterLogs(name, nil)
		return
	case PodFailed:
		if removing {
			// Killed because its pod was being deleted: say why it was
			// deleted, not how the process died.
			j.finish(j.removed(p))
			return
		}
		j.finishAfterLogs(name, j.failure(p))
		return
	case PodRunning:
		j.streamLogs(name)
		j.startClock(p)
	case PodPending:
		for _, c := range p.Status.Conditions {
			if c.Type == condPodScheduled && c.Status == condFalse && c.Reason == reasonUnschedulable {
				b.mu.Lock()
				if j.pending.IsZero() {
					j.pending = time.Now()
				}
				j.why = c.Message
				b.mu.Unlock()
			}
		}
		for _, cs := range append(p.Status.InitContainerStatuses, p.Status.ContainerStatuses...) {
			if w := cs.State.Waiting; w != nil && (w.Reason == "CreateContainerConfigError" || w.Reason == "InvalidImageName" || w.Reason == "ErrImageNeverPull") {
				j.finish(fmt.Errorf("its pod cannot start: %s: %s", w.Reason, w.Message))
				j.Stop(0)
				return
			}
		}
	}
	if deleted || removing && disrupted(p) != nil {
		// Gone, or being evicted: a pod on a node that stopped answering
		// stays Terminating until the node comes back, if ever.
		j.finish(j.removed(p))
	}
}

// disrupted is the pod's DisruptionTarget condition (eviction, a tainted
// or lost node, preemption), or nil.
func disrupted(p *Pod) *Condition {
	for i, c := range p.Status.Conditions {
		if c.Type == condDisruptionTarget && c.Status == condTrue {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}

// removed says why a pod that is deleted, or being deleted, ended its
// attempt: the Job's deadline, an eviction, or someone's delete.
func (j *job) removed(p *Pod) error {
	if j.deadlineExceeded() {
		return compute.ErrTimeout
	}
	why := "its pod was deleted"
	if c := disrupted(p); c != nil {
		why = fmt.Sprintf("its pod was removed (%s: %s)", c.Reason, c.Message)
	}
	if p.Spec.NodeName != "" {
		why += " from node " + p.Spec.NodeName
	}
	return errors.New(why + "; the attempt is lost")
}

// deadlineExceeded says whether the attempt's Job ran past its deadline
// (the Job controller then deletes its pod).
func (j *job) deadlineExceeded() bool {
	if j.spec.Timeout <= 0 {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	jb, err := j.b.api.getJob(ctx, j.ns, j.name)
	return err == nil && jobDeadline(jb)
}

// jobDeadline says whether a Job failed, or is failing, by its deadline.
func jobDeadline(jb *Job) bool {
	for _, c := range jb.Status.Conditions {
		if (c.Type == condJobFailed || c.Type == condJobFailureTarget) && c.Status == condTrue && c.Reason == reasonDeadlineExeeded {
			return true
		}
	}
	return false
}

// failure says how a failed pod ended.
func (j *job) failure(p *Pod) error {
	if p.Status.Reason == "DeadlineExceeded" {
		return compute.ErrTimeout
	}
	if p.Status.Reason == "Evicted" || p.Status.Reason == "NodeLost" || p.Status.Reason == "Terminated" {
		return fmt.Errorf("its pod was %s on node %s: %s", strings.ToLower(p.Status.Reason), p.Spec.NodeName, p.Status.Message)
	}
	for _, cs := range p.Status.InitContainerStatuses {
		if t := cs.State.Terminated; t != nil && t.ExitCode != 0 {
			msg := strings.TrimSpace(t.Message)
			if msg == "" {
				msg = j.tailLogs(p.Metadata.Name, cs.Name)
			}
			if msg == "" {
				msg = t.Reason
			}
			return fmt.Errorf("its pod could not fetch the flow's code (exit status %d): %s", t.ExitCode, msg)
		}
	}
	for _, cs := range p.Status.ContainerStatuses {
		t := cs.State.Terminated
		if t == nil {
			continue
		}
		e := &compute.ExitError{Code: int(t.ExitCode)}
		switch t.Reason {
		case "OOMKilled":
			e.Reason = fmt.Sprintf("out of memory: raise MemoryMB (asked %d)", j.spec.Resources.MemoryMB)
		case "Error", "Completed", "":
		default:
			e.Reason = t.Reason
		}
		return e
	}
	return fmt.Errorf("its pod failed: %s %s", p.Status.Reason, p.Status.Message)
}

// tailLogs is the end of a container's output, for a message.
func (j *job) tailLogs(pod, container string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := j.b.api.logs(ctx, j.ns, pod, container, false, 5)
	if err != nil {
		return ""
	}
	defer r.Close()
	out, _ := io.ReadAll(io.LimitReader(r, 4<<10))
	return strings.TrimSpace(string(out))
}

// jobEvent looks at the Job itself: its deadline, its deletion.
func (b *Backend) jobEvent(jb *Job, deleted bool) {
	j := b.find(jb.Metadata.Labels)
	if j == nil {
		return
	}
	if jobDeadline(jb) {
		j.finish(compute.ErrTimeout)
	}
	if deleted {
		j.finish(fmt.Errorf("its Job %s was deleted", jb.Metadata.Name))
	}
}

// unschedulable fails attempts whose pod waited unschedulable too long,
// with the scheduler's message.
func (b *Backend) unschedulable() {
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-tick.C:
		}
		b.mu.Lock()
		late := map[*job]string{}
		for _, j := range b.jobs {
			if !j.pending.IsZero() && time.Since(j.pending) > j.set.Unschedulable {
				late[j] = j.why
			}
		}
		b.mu.Unlock()
		for j, why := range late {
			j.finish(fmt.Errorf("its pod could not be scheduled for %s: %s", j.set.Unschedulable, strings.TrimSuffix(why, ".")))
			j.Stop(0)
		}
	}
}

// streamLogs copies the pod's output to the launcher's console as it comes
// (the task also writes it to the datastore itself). logsDone is closed
// when the stream ends.
func (j *job) streamLogs(pod string) {
	j.logs.Do(func() {
		go func() {
			defer close(j.logsDone)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go func() { <-j.done; time.Sleep(logGrace); cancel() }()
			r, err := j.b.api.logs(ctx, j.ns, pod, "task", true, 0)
			if err != nil {
				return
			}
			defer r.Close()
			if j.spec.Stdout != nil {
				io.Copy(j.spec.Stdout, r)
			}
		}()
	})
}

// logGrace is how long an attempt's end waits for its output to reach the
// console (from the pod's node, through the API server).
const logGrace = 10 * time.Second

// finishAfterLogs ends the attempt once its output has reached the
// console (a task may end before its pod was ever seen running), waiting
// a few seconds at most.
func (j *job) finishAfterLogs(pod string, err error) {
	j.streamLogs(pod)
	go func() {
		select {
		case <-j.logsDone:
		case <-time.After(logGrace):
		}
		j.finish(err)
	}()
}

// Kubeconfig is the kubeconfig file the settings in force point at, for
// messages.
func Kubeconfig(inForce func(string) string) string {
	if p := inForce(SetKubeconfig); p != "" {
		return p
	}
	if p := os.Getenv("KUBECONFIG"); p != "" {
		return p
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".kube", "config")
}

// Jobs lists the Jobs of a run in the namespace in force, for people.
func (b *Backend) Jobs(ctx context.Context, run string) ([]compute.JobInfo, error) {
	set, err := settings(nil, b.inForce)
	if err != nil {
		return nil, err
	}
	jobs, err := b.api.listJobs(ctx, set.Namespace, LabelRun+"="+labelValue(run))
	if err != nil {
		return nil, fmt.Errorf("kubernetes: cannot list the Jobs of run %s in namespace %s: %w", run, set.Namespace, err)
	}
	var out []compute.JobInfo
	for _, j := range jobs {
		st := "running"
		switch {
		case j.Status.Succeeded > 0:
			st = "succeeded"
		case j.Status.Failed > 0:
			st = "failed"
		case j.Status.Active == 0:
			st = "pending"
		}
		for _, c := range j.Status.Conditions {
			if c.Status == condTrue && (c.Type == condJobFailed || c.Type == condJobComplete) && c.Reason != "" && st == "failed" {
				st = "failed: " + c.Reason
			}
		}
		info := compute.JobInfo{Name: set.Namespace + "/" + j.Metadata.Name, Step: j.Metadata.Labels[LabelStep], Task: j.Metadata.Labels[LabelTask],
			Attempt: j.Metadata.Labels[LabelAttempt], Status: st}
		if t := j.Metadata.CreationTimestamp; t != nil {
			info.Created = *t
		}
		out = append(out, info)
	}
	return out, nil
}

// Kill deletes the Jobs of a run (and their pods), and says how many.
func (b *Backend) Kill(ctx context.Context, run string) (int, error) {
	jobs, err := b.Jobs(ctx, run)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, j := range jobs {
		ns, name, _ := strings.Cut(j.Name, "/")
		err := b.api.deleteJob(ctx, ns, name, nil)
		if err != nil && !isNotFound(err) {
			return n, fmt.Errorf("kubernetes: cannot delete Job %s: %w", j.Name, err)
		}
		n++
	}
	return n, nil
}
