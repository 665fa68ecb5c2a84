package hosted

import (
	"context"
	"flag"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"stepwise.dev/stepwise/internal/compute/kubernetes"
	"stepwise.dev/stepwise/internal/deploy"
	"stepwise.dev/stepwise/internal/flowcmd"
	"stepwise.dev/stepwise/internal/hosting"
	"stepwise.dev/stepwise/internal/names"
)

func init() { hosting.RegisterDeployer(command) }

const deployUsage = `usage: %[1]s serve deploy [flags]

Runs service %[2]s on the Kubernetes cluster of the settings in force: a
Deployment of --replicas pods, each running this program's serve (fetched
from the datastore, SHA-256 checked, as task pods do), and a Service named
--name in front of them. A pod receives requests once its /readyz says
the run it serves is loaded; an update starts new pods before it stops old
ones. It waits until every replica is ready (--wait), and says why when
one cannot start. Run it again to change anything; %[1]s serve undeploy
removes both.

Flags:
`

const undeployUsage = `usage: %[1]s serve undeploy [--name NAME]

Deletes the Deployment and the Service of service %[2]s; its pods stop
after finishing the requests in flight.

Flags:
`

// AnnotationDeployedAt is the time of the deployment on its pods: each
// deployment rolls out new pods, and its wait follows those only.
const AnnotationDeployedAt = "stepwise.dev/deployed-at"

type cmd struct {
	*deploy.Cmd
	svc *hosting.Def
}

func command(ctx context.Context, e *flowcmd.Env, def *hosting.Def, args []string) int {
	c := &cmd{Cmd: deploy.NewCmd(e, "serve "+args[0]), svc: def}
	if args[0] == "undeploy" {
		return c.undeploy(ctx, args[1:])
	}
	return c.deploy(ctx, args[1:])
}

// flags are the flags both commands take.
func (c *cmd) flags(usage string) *flag.FlagSet {
	fs := c.E.Flags(c.Kind)
	fs.StringVar(&c.Name, "name", deploy.Name(c.svc.Name), "the Deployment's and the Service's name")
	flowcmd.ComputeSettings(fs, c.Set)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), usage, c.E.Prog(), c.svc.Name)
		fs.PrintDefaults()
	}
	return fs
}

func (c *cmd) deploy(ctx context.Context, args []string) int {
	fs := c.flags(deployUsage)
	replicas := fs.Int("replicas", 2, "how many pods serve")
	cpu := fs.Float64("cpu", 0.5, "each pod's CPU (request and limit)")
	mem := fs.Int64("memory", 512, "each pod's memory in MiB (request and limit): enough for the artifacts it serves, twice over while it switches runs")
	tokens := fs.String("tokens-secret", "", "Secret in the pods' namespace whose key \"tokens\" holds the bearer tokens clients must send (comma-separated)")
	insecure := fs.Bool("insecure-no-tokens", false, "serve without tokens: anyone who reaches the Service may call it")
	wait := fs.Duration("wait", 5*time.Minute, "how long to wait for every replica to be ready; 0 returns at once")
	dry := fs.Bool("dry-run", false, "print the Deployment and the Service, apply nothing")
	served := map[string]string{}
	for _, f := range []struct{ name, help string }{
		{"namespace", "namespace of the runs to serve: user:NAME, a tag such as production:..., or global (default: yours, user:NAME)"},
		{"tag", "serve the latest successful run with this tag"},
		{"run", "serve this run (its id) and no other"},
		{"poll", "how often to look for a newer successful run (serve's default)"},
		{"timeout", "time limit of one request (serve's default)"},
		{"max-body", "largest request body in bytes (serve's default)"},
	} {
		fs.Func(f.name, f.help, func(v string) error { served[f.name] = v; return nil })
	}
	if code := c.E.Parse(fs, args); code >= 0 {
		return code
	}
	if code := c.E.Problems(); code != 0 {
		return code
	}
	switch {
	case *replicas < 1 || *cpu <= 0 || *mem <= 0 || *wait < 0:
		return c.Usage("--replicas, --cpu and --memory must be positive, and --wait cannot be negative")
	case (*tokens == "") == !*insecure:
		return c.Usage("give --tokens-secret SECRET (a Secret whose key \"tokens\" holds the tokens clients send; kubectl create secret generic %s-tokens --from-literal=tokens=TOKEN) or, to serve anyone who reaches it, --insecure-no-tokens", c.Name)
	case served["tag"] != "" && served["run"] != "":
		return c.Usage("give --tag (follow the latest successful run with a tag) or --run (serve one run), not both")
	}
	if err := checkServed(served); err != nil {
		return c.Usage("%v", err)
	}
	if err := c.Settings(); err != nil {
		return c.Fail(err)
	}
	if _, ok := served["namespace"]; !ok {
		served["namespace"] = "user:" + c.Cfg.User.Value
	}
	def := c.E.Def()
	s := Service{Type: c.svc.Name, Flow: def.Name(), Name: c.Name, Deployer: c.Cfg.User.Value,
		Replicas: int32(*replicas), CPU: *cpu, MemoryMB: *mem, Args: serveArgs(served), TokensSecret: *tokens}
	var err error
	if s.Namespace, err = c.Namespace(); err != nil {
		return c.Fail(err)
	}
	if s.Pod, err = c.PodSettings("the service's pods"); err != nil {
		return c.Fail(err)
	}
	if s.Site, err = c.Site(); err != nil {
		return c.Fail(err)
	}
	if problems := kubernetes.TeamSetUp(s.Site.Datastore, s.Site.Metadata); problems != "" && !*dry {
		return c.Fail(fmt.Errorf("service %s cannot be deployed: its pods read the runs of flow %s, and %s", s.Type, def.Name(), problems))
	}
	at := time.Now().UTC().Format(time.RFC3339Nano)
	if *dry {
		if _, s.Code, err = kubernetes.StaticBinary(ctx); err != nil {
			return c.Fail(err)
		}
		d, svc := Compile(s)
		d.Spec.Template.Metadata.Annotations[AnnotationDeployedAt] = at
		return c.PrintYAML(d, svc)
	}
	api, err := kubernetes.Connect(ctx, c.InForce)
	if err != nil {
		return c.Fail(err)
	}
	if s.Code, err = c.ShipCode(ctx); err != nil {
		return c.Fail(err)
	}
	d, svc := Compile(s)
	d.Spec.Template.Metadata.Annotations[AnnotationDeployedAt] = at
	if err := api.Apply(ctx, deployments(s.Namespace)+"/"+url.PathEscape(s.Name), d); err != nil {
		return c.Fail(fmt.Errorf("cannot apply the Deployment %s/%s: %w", s.Namespace, s.Name, err))
	}
	if err := api.Apply(ctx, services(s.Namespace)+"/"+url.PathEscape(s.Name), svc); err != nil {
		return c.Fail(fmt.Errorf("cannot apply the Service %s/%s: %w", s.Namespace, s.Name, err))
	}
	out := c.E.Stdout()
	fmt.Fprintf(out, "deployed service %s (code %s) as Deployment and Service %s/%s, serving runs of flow %s in namespace %s\n", s.Type, s.Code[:12], s.Namespace, s.Name, def.Name(), served["namespace"])
	if *wait > 0 {
		if err := c.rollout(ctx, api, s, at, *wait); err != nil {
			return c.Fail(fmt.Errorf("%w; the Deployment stays as applied: fix this and run serve deploy again, or remove it with %s serve undeploy", err, c.E.Prog()))
		}
	}
	fmt.Fprintf(out, "in the cluster: http://%s.%s.svc:%d/ (endpoints: %s)\n", s.Name, s.Namespace, ServicePort, c.endpoints())
	fmt.Fprintf(out, "from here: kubectl -n %s port-forward service/%s 8080:%d\n", s.Namespace, s.Name, ServicePort)
	return 0
}

// checkServed checks the flags passed on to serve, so that a mistake is
// said now rather than by every pod.
func checkServed(served map[string]string) error {
	if n, ok := served["namespace"]; ok && n != "global" {
		if err := names.Tag(n); err != nil {
			return fmt.Errorf("--namespace: %w", err)
		}
	}
	if t, ok := served["tag"]; ok {
		if err := names.Tag(t); err != nil {
			return fmt.Errorf("--tag: %w", err)
		}
	}
	if r, ok := served["run"]; ok {
		if err := names.RunID(r); err != nil {
			return fmt.Errorf("--run: %w", err)
		}
	}
	for _, n := range []string{"poll", "timeout"} {
		if v, ok := served[n]; ok {
			if d, err := time.ParseDuration(v); err != nil || d <= 0 {
				return fmt.Errorf("--%s %q is not a positive duration such as 10s", n, v)
			}
		}
	}
	if v, ok := served["max-body"]; ok {
		var n int64
		if _, err := fmt.Sscan(v, &n); err != nil || n <= 0 || fmt.Sprint(n) != v {
			return fmt.Errorf("--max-body %q is not a positive number of bytes", v)
		}
	}
	return nil
}

func (c *cmd) endpoints() string {
	var paths []string
	for _, e := range c.svc.Endpoints {
		paths = append(paths, e.Path)
	}
	return strings.Join(paths, ", ")
}

func deployments(ns string) string {
	return "/apis/apps/v1/namespaces/" + url.PathEscape(ns) + "/deployments"
}

func services(ns string) string {
	return "/api/v1/namespaces/" + url.PathEscape(ns) + "/services"
}

func pods(ns string) string {
	return "/api/v1/namespaces/" + url.PathEscape(ns) + "/pods"
}

// unschedulableFor is how long a pod of the service may wait for a node
// before the rollout is said to fail with the scheduler's message.
const unschedulableFor = 30 * time.Second

// rollout waits until every replica of the deployment made at at is
// ready, printing progress; it fails early, with the reason, when a pod
// cannot start: its image, a missing Secret, its program that fetches or
// crashes, no node for it.
func (c *cmd) rollout(ctx context.Context, api *kubernetes.API, s Service, at string, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	last := ""
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		var d Deployment
		if err := api.Get(ctx, deployments(s.Namespace)+"/"+url.PathEscape(s.Name), &d); err != nil {
			return waitErr(ctx, limit, fmt.Errorf("cannot read the Deployment %s/%s: %w", s.Namespace, s.Name, err))
		}
		var ps struct{ Items []kubernetes.Pod }
		if err := api.List(ctx, pods(s.Namespace), LabelService+"="+s.Name, &ps); err != nil {
			return waitErr(ctx, limit, fmt.Errorf("cannot list the pods of %s/%s: %w", s.Namespace, s.Name, err))
		}
		ready := 0
		for _, p := range ps.Items {
			if p.Metadata.Annotations[AnnotationDeployedAt] != at || p.Metadata.DeletionTimestamp != nil {
				continue
			}
			if err := trouble(p); err != nil {
				return err
			}
			if podReady(p) {
				ready++
			}
		}
		st := d.Status
		if st == nil {
			st = &DeploymentStatus{}
		}
		now := fmt.Sprintf("%d of %d new replicas ready", ready, s.Replicas)
		if old := st.Replicas - st.UpdatedReplicas; old > 0 {
			now += fmt.Sprintf(", %d old still serving", old)
		}
		if now != last {
			fmt.Fprintf(c.E.Stdout(), "  %s\n", now)
			last = now
		}
		if st.ObservedGeneration >= d.Metadata.Generation && st.UpdatedReplicas == s.Replicas &&
			st.Replicas == s.Replicas && st.AvailableReplicas >= s.Replicas && ready >= int(s.Replicas) {
			return nil
		}
		select {
		case <-ctx.Done():
			return waitErr(ctx, limit, nil)
		case <-tick.C:
		}
	}
}

// waitErr is the error of a rollout that ended with err, or ran out of
// time.
func waitErr(ctx context.Context, limit time.Duration, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("not every replica was ready within --wait %s (kubectl describe pods -l %s says why; wait longer with --wait)", limit, LabelService)
	}
	return err
}

// podReady says whether the pod's Ready condition holds.
func podReady(p kubernetes.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == "Ready" {
			return c.Status == "True"
		}
	}
	return false
}

// stuck are the waiting reasons of a container that will not start by
// waiting longer.
var stuck = []string{"CreateContainerConfigError", "CreateContainerError", "ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName", "CrashLoopBackOff"}

// trouble is why pod p cannot serve, when that is plain.
func trouble(p kubernetes.Pod) error {
	name := p.Metadata.Name
	for _, cs := range p.Status.InitContainerStatuses {
		if t := cs.State.Terminated; t != nil && t.ExitCode != 0 {
			return fmt.Errorf("pod %s cannot fetch the program: %s", name, strings.TrimSpace(t.Message))
		}
		if w := cs.State.Waiting; w != nil && w.Reason == "CrashLoopBackOff" && cs.LastState.Terminated != nil {
			return fmt.Errorf("pod %s cannot fetch the program: %s", name, strings.TrimSpace(cs.LastState.Terminated.Message))
		}
	}
	for _, cs := range append(p.Status.InitContainerStatuses, p.Status.ContainerStatuses...) {
		w := cs.State.Waiting
		if w == nil || !slices.Contains(stuck, w.Reason) {
			continue
		}
		msg := w.Message
		if t := cs.LastState.Terminated; t != nil {
			msg = fmt.Sprintf("it exited with code %d: %s", t.ExitCode, strings.TrimSpace(t.Message))
		}
		return fmt.Errorf("pod %s: container %s cannot run (%s): %s", name, cs.Name, w.Reason, msg)
	}
	for _, cond := range p.Status.Conditions {
		if cond.Type == "PodScheduled" && cond.Status == "False" && cond.Reason == "Unschedulable" &&
			p.Metadata.CreationTimestamp != nil && time.Since(*p.Metadata.CreationTimestamp) > unschedulableFor {
			return fmt.Errorf("pod %s has waited %s for a node: %s (ask for less with --cpu and --memory, or change the node selector)", name, unschedulableFor, cond.Message)
		}
	}
	return nil
}

func (c *cmd) undeploy(ctx context.Context, args []string) int {
	fs := c.flags(undeployUsage)
	if code := c.E.Parse(fs, args); code >= 0 {
		return code
	}
	api, ns, err := c.Connect(ctx)
	if err != nil {
		return c.Fail(err)
	}
	gone := 0
	for _, obj := range []struct{ what, path string }{
		{"Deployment", deployments(ns)}, {"Service", services(ns)},
	} {
		err := api.Delete(ctx, obj.path+"/"+url.PathEscape(c.Name))
		switch {
		case kubernetes.IsNotFound(err):
			gone++
		case err != nil:
			return c.Fail(fmt.Errorf("cannot delete the %s %s/%s: %w", obj.what, ns, c.Name, err))
		}
	}
	if gone == 2 {
		fmt.Fprintf(c.E.Stderr(), "service %s is not deployed as %s in namespace %s: nothing to delete\n", c.svc.Name, c.Name, ns)
		return 0
	}
	fmt.Fprintf(c.E.Stdout(), "deleted the Deployment and the Service %s/%s of service %s; its pods stop after the requests in flight\n", ns, c.Name, c.svc.Name)
	return 0
}
