package stepwise_test

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"stepwise.dev/stepwise/client"
	"stepwise.dev/stepwise/internal/deploy/argo"
)

// argoExec runs a Workflow the way Argo's controller decides what runs,
// for the parts a generated template uses: a DAG's tasks in the order of
// their depends expressions; withParam fan-out over a JSON list; the
// substitution of {{inputs.parameters.*}}, {{workflow.*}}, {{tasks.*}},
// {{item}} and {{retries}}; failFast, and failures a task depends on
// (.Failed) not failing the DAG; retryStrategy with backoff; output parameters
// read from files (as Argo's executor reads them, here through the
// container's termination message); global outputs; the exit handler.
// Each container template runs as the pod it describes, on the test
// cluster. What it does not do of Argo's: its executor's sidecar, archived
// logs and artifacts, pod garbage collection, suspend and resume, and the
// controller's own validation of the template.
type argoExec struct {
	t      *testing.T
	c      *cluster
	name   string // the workflow's
	spec   argo.WorkflowSpec
	params map[string]string

	mu     sync.Mutex
	global map[string]string // workflow.outputs.parameters
	pods   []string          // every pod, in order of creation
}

// runWorkflow reads a Workflow created on the cluster (by trigger),
// resolves its WorkflowTemplate and runs it to the end; it returns the
// workflow's status.
func (c *cluster) runWorkflow(t *testing.T, name string) (string, *argoExec) {
	t.Helper()
	var w argo.Workflow
	raw, err := c.admin.CoreV1().RESTClient().Get().AbsPath("/apis/argoproj.io/v1alpha1/namespaces/" + c.ns.Name + "/workflows/" + name).DoRaw(context.Background())
	if err != nil {
		t.Fatalf("read workflow %s: %v", name, err)
	}
	if err := json.Unmarshal(raw, &w); err != nil {
		t.Fatal(err)
	}
	if w.Spec.WorkflowTemplateRef == nil {
		t.Fatalf("workflow %s names no template", name)
	}
	var tmpl argo.WorkflowTemplate
	raw, err = c.admin.CoreV1().RESTClient().Get().AbsPath("/apis/argoproj.io/v1alpha1/namespaces/" + c.ns.Name + "/workflowtemplates/" + w.Spec.WorkflowTemplateRef.Name).DoRaw(context.Background())
	if err != nil {
		t.Fatalf("read the template of workflow %s: %v", name, err)
	}
	if err := json.Unmarshal(raw, &tmpl); err != nil {
		t.Fatal(err)
	}
	x := &argoExec{t: t, c: c, name: name, spec: tmpl.Spec, params: map[string]string{}, global: map[string]string{}}
	if a := tmpl.Spec.Arguments; a != nil {
		for _, p := range a.Parameters {
			x.params[p.Name] = deref(p.Value)
		}
	}
	if a := w.Spec.Arguments; a != nil {
		for _, p := range a.Parameters {
			if _, ok := x.params[p.Name]; !ok {
				t.Fatalf("workflow %s sets parameter %s, which its template does not have", name, p.Name)
			}
			x.params[p.Name] = deref(p.Value)
		}
	}
	status, _ := x.template(x.spec.Entrypoint, nil)
	if x.spec.OnExit != "" {
		x.template(x.spec.OnExit, nil)
	}
	return status, x
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func (x *argoExec) find(name string) *argo.Template {
	for i := range x.spec.Templates {
		if x.spec.Templates[i].Name == name {
			return &x.spec.Templates[i]
		}
	}
	x.t.Fatalf("the template has no template %q", name)
	return nil
}

var placeholder = regexp.MustCompile(`\{\{([^{}]+)\}\}`)

// substitute fills in the placeholders of s from vars and the workflow's
// own; a placeholder that nothing fills fails the test, as it would the
// workflow.
func (x *argoExec) substitute(s string, vars map[string]string) string {
	return placeholder.ReplaceAllStringFunc(s, func(m string) string {
		key := strings.TrimSpace(m[2 : len(m)-2])
		if v, ok := vars[key]; ok {
			return v
		}
		switch {
		case key == "workflow.name":
			return x.name
		case strings.HasPrefix(key, "workflow.parameters."):
			if v, ok := x.params[strings.TrimPrefix(key, "workflow.parameters.")]; ok {
				return v
			}
		case strings.HasPrefix(key, "workflow.outputs.parameters."):
			x.mu.Lock()
			v, ok := x.global[strings.TrimPrefix(key, "workflow.outputs.parameters.")]
			x.mu.Unlock()
			if ok {
				return v
			}
		}
		x.t.Errorf("workflow %s: nothing fills in %s", x.name, m)
		return m
	})
}

// template runs a template with its inputs and returns its status and
// outputs.
func (x *argoExec) template(name string, inputs map[string]string) (string, map[string]string) {
	tm := x.find(name)
	vars := map[string]string{}
	if tm.Inputs != nil {
		for _, p := range tm.Inputs.Parameters {
			v, ok := inputs[p.Name]
			if !ok {
				x.t.Fatalf("template %s: input %s not given", name, p.Name)
			}
			vars["inputs.parameters."+p.Name] = v
		}
	}
	if tm.DAG != nil {
		return x.dag(tm, vars), nil
	}
	return x.container(tm, vars)
}

// task is a DAG task's outcome.
type taskState struct {
	status  string // Succeeded, Failed, Omitted
	outputs map[string]string
}

func (x *argoExec) dag(tm *argo.Template, vars map[string]string) string {
	states := map[string]*taskState{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	started := map[string]bool{}
	failFast := tm.DAG.FailFast == nil || *tm.DAG.FailFast
	for {
		mu.Lock()
		progress := false
		failed := false
		for _, st := range states {
			failed = failed || st.status == "Failed"
		}
		for _, task := range tm.DAG.Tasks {
			if started[task.Name] {
				continue
			}
			if failed && failFast {
				// Failing fast: no new task starts after a failure.
				started[task.Name] = true
				states[task.Name] = &taskState{status: "Omitted"}
				progress = true
				continue
			}
			ok, ready := evalDepends(task.Depends, states)
			if !ready {
				continue
			}
			started[task.Name] = true
			progress = true
			if !ok {
				states[task.Name] = &taskState{status: "Omitted"}
				continue
			}
			// Arguments may name the outputs of tasks done before.
			local := map[string]string{}
			for k, v := range vars {
				local[k] = v
			}
			for tn, st := range states {
				for k, v := range st.outputs {
					local["tasks."+tn+".outputs.parameters."+k] = v
				}
			}
			wg.Add(1)
			go func(task argo.DAGTask) {
				defer wg.Done()
				st := x.dagTask(task, local)
				mu.Lock()
				states[task.Name] = st
				mu.Unlock()
			}(task)
		}
		done := len(states) == len(tm.DAG.Tasks)
		mu.Unlock()
		if done {
			break
		}
		if !progress {
			time.Sleep(100 * time.Millisecond)
		}
	}
	wg.Wait()
	// A failure fails the DAG unless a task depends on it (.Failed): a
	// handler of the failure.
	status := "Succeeded"
	for _, task := range tm.DAG.Tasks {
		if states[task.Name].status != "Failed" {
			continue
		}
		handled := false
		for _, other := range tm.DAG.Tasks {
			handled = handled || strings.Contains(other.Depends, task.Name+".Failed")
		}
		if !handled {
			status = "Failed"
		}
	}
	return status
}

// dagTask runs one DAG task: once, or once per element of its withParam.
func (x *argoExec) dagTask(task argo.DAGTask, vars map[string]string) *taskState {
	args := func(item string) map[string]string {
		in := map[string]string{}
		v := map[string]string{}
		for k, val := range vars {
			v[k] = val
		}
		if item != "" {
			v["item"] = item
		}
		if task.Arguments != nil {
			for _, p := range task.Arguments.Parameters {
				in[p.Name] = x.substitute(deref(p.Value), v)
			}
		}
		return in
	}
	if task.WithParam == "" {
		status, out := x.template(task.Template, args(""))
		return &taskState{status: status, outputs: out}
	}
	list := x.substitute(task.WithParam, vars)
	var items []json.RawMessage
	if err := json.Unmarshal([]byte(list), &items); err != nil {
		x.t.Errorf("task %s: withParam %q is not a JSON list: %v", task.Name, list, err)
		return &taskState{status: "Failed"}
	}
	results := make([]string, len(items))
	var wg sync.WaitGroup
	for i, it := range items {
		wg.Add(1)
		go func() {
			defer wg.Done()
			item := strings.Trim(string(it), `"`)
			results[i], _ = x.template(task.Template, args(item))
		}()
	}
	wg.Wait()
	for _, r := range results {
		if r != "Succeeded" {
			return &taskState{status: "Failed"}
		}
	}
	return &taskState{status: "Succeeded"}
}

// evalDepends evaluates a depends expression once every task it names has
// an outcome: "a", "a && b", "(a.Succeeded || b.Succeeded)", "a.Failed".
// A bare name holds when the task succeeded (or was skipped).
func evalDepends(expr string, states map[string]*taskState) (ok, ready bool) {
	if strings.TrimSpace(expr) == "" {
		return true, true
	}
	tokens := regexp.MustCompile(`\(|\)|&&|\|\||[A-Za-z0-9_.-]+`).FindAllString(expr, -1)
	pos := 0
	ready = true
	var or func() bool
	atom := func() bool {
		tok := tokens[pos]
		pos++
		if tok == "(" {
			v := or()
			pos++ // ")"
			return v
		}
		name, want, _ := strings.Cut(tok, ".")
		st := states[name]
		if st == nil {
			ready = false
			return false
		}
		if want == "" {
			return st.status == "Succeeded"
		}
		return st.status == want
	}
	and := func() bool {
		v := atom()
		for pos < len(tokens) && tokens[pos] == "&&" {
			pos++
			w := atom()
			v = v && w
		}
		return v
	}
	or = func() bool {
		v := and()
		for pos < len(tokens) && tokens[pos] == "||" {
			pos++
			w := and()
			v = v || w
		}
		return v
	}
	ok = or()
	return ok, ready
}

// container runs a container template as its pod, with its retries, and
// returns its status and output parameters.
func (x *argoExec) container(tm *argo.Template, vars map[string]string) (string, map[string]string) {
	limit, wait, factor := 0, time.Duration(0), int64(1)
	if r := tm.RetryStrategy; r != nil {
		if r.Limit != nil {
			limit = int(*r.Limit)
		}
		if r.Backoff != nil {
			wait, _ = time.ParseDuration(r.Backoff.Duration)
			if r.Backoff.Factor != nil {
				factor = *r.Backoff.Factor
			}
		}
	}
	for attempt := 0; ; attempt++ {
		v := map[string]string{"retries": strconv.Itoa(attempt)}
		for k, val := range vars {
			v[k] = val
		}
		status, out := x.pod(tm, v)
		if status == "Succeeded" || attempt >= limit {
			return status, out
		}
		time.Sleep(wait)
		wait *= time.Duration(factor)
	}
}

// pod runs one attempt of a container template.
func (x *argoExec) pod(tm *argo.Template, vars map[string]string) (string, map[string]string) {
	t := x.t
	raw, err := json.Marshal(tm)
	if err != nil {
		t.Fatal(err)
	}
	// Argo fills in the whole template, then makes the pod.
	var filled argo.Template
	if err := json.Unmarshal([]byte(x.substitute(string(raw), vars)), &filled); err != nil {
		t.Fatalf("template %s after substitution: %v", tm.Name, err)
	}
	var pod corev1.Pod
	convert := func(from, to any) {
		b, err := json.Marshal(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, to); err != nil {
			t.Fatalf("template %s: %v", tm.Name, err)
		}
	}
	var main corev1.Container
	convert(filled.Container, &main)
	pod.Spec.Containers = []corev1.Container{main}
	convert(filled.InitContainers, &pod.Spec.InitContainers)
	convert(filled.Volumes, &pod.Spec.Volumes)
	convert(filled.Tolerations, &pod.Spec.Tolerations)
	pod.Spec.NodeSelector = filled.NodeSelector
	pod.Spec.ServiceAccountName = filled.ServiceAccountName
	if pod.Spec.ServiceAccountName == "" {
		pod.Spec.ServiceAccountName = x.spec.ServiceAccountName
	}
	for _, s := range x.spec.ImagePullSecrets {
		pod.Spec.ImagePullSecrets = append(pod.Spec.ImagePullSecrets, corev1.LocalObjectReference{Name: s.Name})
	}
	pod.Spec.RestartPolicy = corev1.RestartPolicyNever
	pod.Spec.ActiveDeadlineSeconds = filled.ActiveDeadlineSeconds
	if filled.Metadata != nil {
		pod.Labels, pod.Annotations = filled.Metadata.Labels, filled.Metadata.Annotations
	}
	// An output parameter's file is read when the container ends: here,
	// as the container's termination message.
	var outputs []argo.Parameter
	if filled.Outputs != nil {
		outputs = filled.Outputs.Parameters
		if len(outputs) > 1 {
			t.Fatalf("template %s has %d output parameters; the test runs templates with one", tm.Name, len(outputs))
		}
		for _, o := range outputs {
			pod.Spec.Containers[0].TerminationMessagePath = o.ValueFrom.Path
		}
	}
	h := fnv.New32a()
	fmt.Fprint(h, tm.Name, vars)
	pod.Name = fmt.Sprintf("%s-%s-%08x", x.name, tm.Name, h.Sum32())
	if len(pod.Name) > 63 {
		pod.Name = fmt.Sprintf("%s-%08x", strings.TrimRight(pod.Name[:50], "-"), h.Sum32())
	}
	ctx := context.Background()
	pods := x.c.admin.CoreV1().Pods(x.c.ns.Name)
	if _, err := pods.Create(ctx, &pod, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create pod of template %s: %v", tm.Name, err)
	}
	x.mu.Lock()
	x.pods = append(x.pods, pod.Name)
	x.mu.Unlock()
	deadline := time.Now().Add(5 * time.Minute)
	for {
		p, err := pods.Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("pod %s: %v", pod.Name, err)
		}
		switch p.Status.Phase {
		case corev1.PodSucceeded:
			out := map[string]string{}
			for _, o := range outputs {
				for _, cs := range p.Status.ContainerStatuses {
					if cs.Name == "main" && cs.State.Terminated != nil {
						out[o.Name] = strings.TrimSpace(cs.State.Terminated.Message)
					}
				}
				if o.GlobalName != "" {
					x.mu.Lock()
					x.global[o.GlobalName] = out[o.Name]
					x.mu.Unlock()
				}
			}
			return "Succeeded", out
		case corev1.PodFailed:
			out, _ := pods.GetLogs(pod.Name, &corev1.PodLogOptions{Container: "main"}).DoRaw(ctx)
			t.Logf("pod %s of template %s failed (%s): %s", pod.Name, tm.Name, p.Status.Message, out)
			for _, cs := range append(p.Status.InitContainerStatuses, p.Status.ContainerStatuses...) {
				if tr := cs.State.Terminated; tr != nil && tr.ExitCode != 0 {
					t.Logf("  container %s: exit %d %s: %s", cs.Name, tr.ExitCode, tr.Reason, tr.Message)
				}
			}
			return "Failed", nil
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod %s of template %s did not finish in 5 minutes: %s %+v", pod.Name, tm.Name, p.Status.Phase, p.Status.ContainerStatuses)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// logs returns the output of the main container of the workflow's pods
// whose step label is step.
func (x *argoExec) logs(step string) string {
	ctx := context.Background()
	var b strings.Builder
	for _, name := range x.pods {
		p, err := x.c.admin.CoreV1().Pods(x.c.ns.Name).Get(ctx, name, metav1.GetOptions{})
		if err != nil || p.Labels["stepwise.dev/step"] != step {
			continue
		}
		out, err := x.c.admin.CoreV1().Pods(x.c.ns.Name).GetLogs(name, &corev1.PodLogOptions{Container: "main"}).DoRaw(ctx)
		if err != nil {
			x.t.Errorf("logs of pod %s: %v", name, err)
		}
		b.Write(out)
	}
	return b.String()
}

// prodCluster is the cluster of the production tests: Argo's resources
// (v3.7.9's schemas) and a namespace whose account has the launcher's and
// the deployer's Roles of the docs.
func prodCluster(t *testing.T) *cluster {
	t.Helper()
	c := newCluster(t, roleRules(t, launcherRole(t), docRole(t, "docs/production.md")))
	installArgoCRDs(t, c.k, argoVersions[0])
	// The pods run as the account the Roles are bound to: a workflow's
	// exit handler starts triggered flows, a CronJob's launcher its tasks.
	c.env = append(c.env, "STEPWISE_KUBERNETES_SERVICE_ACCOUNT="+c.ns.ServiceAccount)
	return c
}

// trigger starts a run of a deployed flow and returns its workflow's name.
func (c *cluster) trigger(t *testing.T, flow string, args ...string) string {
	t.Helper()
	out, _ := c.flow(t, 0, flow, append([]string{"argo-workflows", "trigger"}, args...)...)
	m := regexp.MustCompile(`started workflow [^/]+/(\S+) `).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("trigger printed no workflow: %s", out)
	}
	return m[1]
}

// TestArgoTemplateRuns deploys flows with argo-workflows create and runs
// the templates the API server keeps, each DAG task as the pod it
// describes: the seed flow prints 3, the foreach example sums its squares
// over a withParam fan-out, a failed step is retried by the template and a
// failing step caught; the runs are in the production namespace.
func TestArgoTemplateRuns(t *testing.T) {
	c := prodCluster(t)
	// Downstream runs after each successful production run of the seed
	// flow: deployed first, it is started by the seed's exit handler.
	out, _ := c.flow(t, 0, "downstream", "argo-workflows", "create")
	if !strings.Contains(out, "after each successful production run of KubeSeed") {
		t.Errorf("create of a triggered flow does not say what triggers it: %s", out)
	}
	out, _ = c.flow(t, 0, "kubeseed", "argo-workflows", "create")
	m := regexp.MustCompile(`namespace (production:\S+):`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("create said no production namespace: %s", out)
	}
	prod := m[1]
	wf := c.trigger(t, "kubeseed")
	status, x := c.runWorkflow(t, wf)
	if status != "Succeeded" {
		t.Fatalf("workflow %s: %s", wf, status)
	}
	if got := x.logs("end"); strings.TrimSpace(got) != "3" {
		t.Errorf("the seed flow's end printed %q, want 3", got)
	}
	runs, _ := c.flow(t, 0, "kubeseed", "runs", "--namespace", prod)
	if !strings.Contains(runs, "succeeded") {
		t.Errorf("runs --namespace %s: %s", prod, runs)
	}
	mine, _ := c.flow(t, 0, "kubeseed", "runs")
	if strings.Contains(mine, "succeeded") {
		t.Errorf("a production run is listed in ann's own namespace: %s", mine)
	}

	// The seed's success started Downstream, which read the seed's result.
	seedRun := latestRun(t, c.client(t), "KubeSeed")
	var started struct {
		Items []argo.Workflow `json:"items"`
	}
	raw, err := c.admin.CoreV1().RESTClient().Get().AbsPath("/apis/argoproj.io/v1alpha1/namespaces/"+c.ns.Name+"/workflows").Param("labelSelector", argo.LabelFlow+"=Downstream").DoRaw(context.Background())
	if err != nil || json.Unmarshal(raw, &started) != nil || len(started.Items) != 1 {
		t.Fatalf("workflows of Downstream after the seed succeeded: %v, %s", err, raw)
	}
	status, x = c.runWorkflow(t, started.Items[0].Metadata.Name)
	if status != "Succeeded" {
		t.Fatalf("the triggered workflow %s: %s", started.Items[0].Metadata.Name, status)
	}
	if got, want := x.logs("end"), "triggered by KubeSeed/"+seedRun.ID+": doubled 6"; !strings.Contains(got, want) {
		t.Errorf("Downstream's end printed %q, want %q", got, want)
	}

	// The foreach example, with a parameter given at trigger time.
	c.flow(t, 0, "foreach", "argo-workflows", "create")
	wf = c.trigger(t, "foreach", "--n", "5")
	if status, x = c.runWorkflow(t, wf); status != "Succeeded" {
		t.Fatalf("workflow %s: %s", wf, status)
	}
	if got := x.logs("end"); !strings.Contains(got, "= 55") {
		t.Errorf("the foreach example's end printed %q, want the sum of squares of 1..5 = 55", got)
	}

	// A step that fails once is retried by the template; one that always
	// fails is caught.
	// Its schedule is the one the flow declares.
	c.flow(t, 0, "argoretry", "argo-workflows", "create")
	if list, _ := c.flow(t, 0, "argoretry", "argo-workflows", "list"); !strings.Contains(list, "30 2 * * 1-5 Europe/Amsterdam") {
		t.Errorf("list does not show the flow's schedule:\n%s", list)
	}
	wf = c.trigger(t, "argoretry", "--greeting", "hi")
	if status, x = c.runWorkflow(t, wf); status != "Succeeded" {
		t.Fatalf("workflow %s: %s", wf, status)
	}
	if got := x.logs("end"); !strings.Contains(got, `hi: tries=2 caught="step broken failed`) {
		t.Errorf("argoretry's end printed %q", got)
	}

	// terminate asks Argo to stop a workflow; list shows the workflows.
	wf = c.trigger(t, "argoretry")
	out, _ = c.flow(t, 0, "argoretry", "argo-workflows", "terminate", wf)
	var w struct {
		Spec struct{ Shutdown string } `json:"spec"`
	}
	raw, err = c.admin.CoreV1().RESTClient().Get().AbsPath("/apis/argoproj.io/v1alpha1/namespaces/" + c.ns.Name + "/workflows/" + wf).DoRaw(context.Background())
	if err != nil || json.Unmarshal(raw, &w) != nil || w.Spec.Shutdown != "Terminate" {
		t.Errorf("terminate %s (%s): the workflow's spec.shutdown is %q (%v)", wf, out, w.Spec.Shutdown, err)
	}
	if list, _ := c.flow(t, 0, "argoretry", "argo-workflows", "list"); !strings.Contains(list, wf) {
		t.Errorf("list does not show workflow %s:\n%s", wf, list)
	}

	// Someone else cannot deploy over it, or delete it, without its token.
	bob := []string{"STEPWISE_USER=bob"}
	for _, cmd := range [][]string{{"argo-workflows", "create"}, {"argo-workflows", "delete"}} {
		f := c.start(t, bob, "argoretry", cmd...)
		if code := f.wait(t); code != 1 || !strings.Contains(f.errOut.String(), "made by ann, not you (bob)") || !strings.Contains(f.errOut.String(), "--authorize") {
			t.Errorf("bob's %v: exit %d: %s", cmd, code, f.errOut.String())
		}
	}
	token := strings.TrimPrefix(prodNamespace(t, c, "argoretry"), "production:")
	f := c.start(t, bob, "argoretry", "argo-workflows", "delete", "--authorize", token)
	if code := f.wait(t); code != 0 || !strings.Contains(f.out.String(), "deleted deployment") {
		t.Errorf("bob's delete with the token: exit %d: %s%s", code, f.out.String(), f.errOut.String())
	}
	f = c.start(t, nil, "argoretry", "argo-workflows", "trigger")
	if code := f.wait(t); code != 1 || !strings.Contains(f.errOut.String(), "is not deployed") {
		t.Errorf("trigger after delete: exit %d: %s", code, f.errOut.String())
	}
}

// prodNamespace is the production namespace of a deployed flow, from
// argo-workflows list.
func prodNamespace(t *testing.T, c *cluster, flow string) string {
	t.Helper()
	list, _ := c.flow(t, 0, flow, "argo-workflows", "list")
	m := regexp.MustCompile(`production:\S+`).FindString(list)
	if m == "" {
		t.Fatalf("list shows no production namespace:\n%s", list)
	}
	return m
}

// TestArgoResumeFailedProductionRun deploys a flow whose end step fails,
// runs it, deploys the fixed code and resumes the failed run with
// argo-workflows resume: the new run clones every task before end, runs
// end with the deployed code, and succeeds.
func TestArgoResumeFailedProductionRun(t *testing.T) {
	c := prodCluster(t)
	c.flow(t, 0, "argoretry", "argo-workflows", "create")
	wf := c.trigger(t, "argoretry", "--greeting", "break")
	if status, _ := c.runWorkflow(t, wf); status != "Failed" {
		t.Fatalf("workflow %s: %s, want Failed (end breaks)", wf, status)
	}
	cl := c.client(t)
	ctx := context.Background()
	failed := latestRun(t, cl, "ArgoRetry")
	if failed.Status != client.Failed {
		t.Fatalf("run %s: %s, want failed (finished by the exit handler)", failed.ID, failed.Status)
	}

	// The fix is deployed over it: the same deployer keeps the token.
	out, _ := c.flow(t, 0, "argoretry-fixed", "argo-workflows", "create")
	if !strings.Contains(out, "deployed flow ArgoRetry") {
		t.Fatalf("create: %s", out)
	}
	out, _ = c.flow(t, 0, "argoretry-fixed", "argo-workflows", "resume", failed.ID)
	m := regexp.MustCompile(`started workflow [^/]+/(\S+):`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("resume printed no workflow: %s", out)
	}
	status, x := c.runWorkflow(t, m[1])
	if status != "Succeeded" {
		t.Fatalf("resumed workflow %s: %s", m[1], status)
	}
	if got := x.logs("end"); !strings.Contains(got, "break: tries=2") {
		t.Errorf("the resumed end printed %q", got)
	}
	resumed := latestRun(t, cl, "ArgoRetry")
	if resumed.ID == failed.ID || resumed.Origin != failed.ID || resumed.Status != client.Succeeded {
		t.Fatalf("resumed run %+v, want a new succeeded run whose origin is %s", resumed, failed.ID)
	}
	tasks, err := resumed.Tasks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, tk := range tasks {
		cloned := tk.ClonedFrom != ""
		if want := tk.Step != "end"; cloned != want {
			t.Errorf("task %s/%s of the resumed run: cloned %v, want %v", tk.Step, tk.ID, cloned, want)
		}
	}
	if resumed.Code.BinarySHA256 == failed.Code.BinarySHA256 {
		t.Errorf("the resumed run records the code %s of the failed one, not the deployed fix", resumed.Code.BinarySHA256)
	}
}

// latestRun is the newest run of a flow in any namespace.
func latestRun(t *testing.T, cl *client.Client, flow string) *client.Run {
	t.Helper()
	cl.SetNamespace(client.Global)
	runs, err := cl.Flow(flow).Runs(context.Background(), client.Filter{Limit: 1})
	if err != nil || len(runs) == 0 {
		t.Fatalf("runs of %s: %v (%d)", flow, err, len(runs))
	}
	return runs[0]
}
