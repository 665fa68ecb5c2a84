// Package argo compiles a flow's graph into Argo Workflows resources: a
// WorkflowTemplate whose DAG runs each step as the pod the Kubernetes
// backend would run it in, a CronWorkflow for a schedule, and the
// Workflow that starts a run. The first task creates the run in the
// metadata store (create-run) and an exit handler finishes it
// (finish-run); tasks find their inputs themselves, so the manifest holds
// no lists of input paths and its size does not grow with a foreach's
// width.
package argo

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"stepwise.dev/stepwise/internal/compute/kubernetes"
	"stepwise.dev/stepwise/internal/deploy"
	"stepwise.dev/stepwise/internal/graph"
)

// Labels and annotations of deployed resources.
const (
	LabelFlow        = deploy.LabelFlow
	LabelDeployment  = deploy.LabelDeployment
	AnnotationToken  = deploy.AnnotationToken
	AnnotationBy     = deploy.AnnotationBy
	AnnotationCode   = deploy.AnnotationCode
	AnnotationGraph  = "stepwise.dev/graph-sha256"
	AnnotationParams = "stepwise.dev/parameters"
)

// Paths of the files the template reads outputs from: a scratch volume
// mounted in the pods that have outputs.
const (
	outDir     = "/stepwise-out"
	runIDFile  = outDir + "/run-id"
	splitsFile = outDir + "/splits.json"
)

// Workflow parameters of every template beyond the flow's: a resume
// names the run it resumes and the step it resumes from.
const (
	ParamOrigin     = "stepwise-origin-run-id"
	ParamTrigger    = "stepwise-trigger"
	ParamResumeStep = "stepwise-resume-step"
)

// Param is a flow parameter, as a workflow argument.
type Param struct {
	Name, Default, Help string
}

// Deployment is a flow to deploy, with everything its pods need.
type Deployment struct {
	Graph *graph.Graph
	// Name is the WorkflowTemplate's name (and the CronWorkflow's).
	Name      string
	Namespace string
	Params    []Param
	// Token is the production token: runs are in namespace
	// production:TOKEN.
	Token    string
	Deployer string
	// Code is the SHA-256 of the flow's static binary in the datastore,
	// fetched by the pods through the metadata service.
	Code string
	Site kubernetes.Site
	// InForce reads the Kubernetes settings in force (config file,
	// environment, --compute-setting), under each step's own.
	InForce func(string) string
	// Schedule (cron syntax) and TimeZone, for a CronWorkflow.
	Schedule, TimeZone string
	// TTL is how long a finished workflow is kept (default a week).
	TTL       time.Duration
	MaxSplits int
	// Tags are added to every run.
	Tags []string
}

// Namespace is the production namespace of a token.
func Namespace(token string) string { return deploy.Namespace(token) }

// TemplateName is the WorkflowTemplate name of a flow.
func TemplateName(flow string) string { return deploy.Name(flow) }

// node is a DAG task's or template's name for a step: Argo's names take
// no underscores.
func node(step string) string { return strings.ReplaceAll(step, "_", "-") }

// Compile compiles the deployment into its WorkflowTemplate.
func Compile(d Deployment) (*WorkflowTemplate, error) {
	if d.TTL == 0 {
		d.TTL = 7 * 24 * time.Hour
	}
	c := &compiler{d: d, g: d.Graph}
	spec, err := c.spec()
	if err != nil {
		return nil, err
	}
	return &WorkflowTemplate{
		APIVersion: APIVersion, Kind: "WorkflowTemplate",
		Metadata: ObjectMeta{Name: d.Name, Namespace: d.Namespace, Labels: c.templateLabels(), Annotations: c.annotations()},
		Spec:     *spec,
	}, nil
}

// Cron is the CronWorkflow that starts the deployed template on its
// schedule, one run at a time.
func Cron(d Deployment) *CronWorkflow {
	c := &compiler{d: d, g: d.Graph}
	one, keep := int32(3), int64(300)
	return &CronWorkflow{
		APIVersion: APIVersion, Kind: "CronWorkflow",
		Metadata: ObjectMeta{Name: d.Name, Namespace: d.Namespace, Labels: c.labels(), Annotations: c.annotations()},
		Spec: CronWorkflowSpec{
			Schedules: []string{d.Schedule}, Timezone: d.TimeZone,
			ConcurrencyPolicy:          "Forbid",
			StartingDeadlineSeconds:    &keep,
			SuccessfulJobsHistoryLimit: &one, FailedJobsHistoryLimit: &one,
			WorkflowMetadata: &ObjectMeta{Labels: c.labels()},
			WorkflowSpec:     WorkflowSpec{WorkflowTemplateRef: &TemplateRef{Name: d.Name}},
		},
	}
}

// Submit is a Workflow that runs the deployed template now, with these
// parameter values (the others keep their defaults).
func Submit(d Deployment, values map[string]string) *Workflow {
	c := &compiler{d: d, g: d.Graph}
	w := &Workflow{
		APIVersion: APIVersion, Kind: "Workflow",
		Metadata: ObjectMeta{GenerateName: d.Name + "-", Namespace: d.Namespace, Labels: c.labels()},
		Spec:     WorkflowSpec{WorkflowTemplateRef: &TemplateRef{Name: d.Name}},
	}
	if len(values) > 0 {
		w.Spec.Arguments = &Arguments{}
		for _, k := range sortedKeys(values) {
			w.Spec.Arguments.Parameters = append(w.Spec.Arguments.Parameters, Parameter{Name: k, Value: ptr(values[k])})
		}
	}
	return w
}

type compiler struct {
	d         Deployment
	g         *graph.Graph
	templates []Template
}

func (c *compiler) labels() map[string]string {
	return map[string]string{LabelFlow: c.g.Flow, LabelDeployment: c.d.Name}
}

// templateLabels are the template's: its flow's and deployment's, and one
// for each flow whose successful runs trigger it, which the exit handler
// of that flow's workflows looks for.
func (c *compiler) templateLabels() map[string]string {
	l := c.labels()
	for _, up := range c.g.Triggers {
		l[OnFinishLabel(up)] = "true"
	}
	return l
}

// OnFinishLabel is the label of the templates of flows that a successful
// run of flow upstream starts.
func OnFinishLabel(upstream string) string { return "on-finish.stepwise.dev/" + upstream }

func (c *compiler) annotations() map[string]string {
	return map[string]string{AnnotationToken: c.d.Token, AnnotationBy: c.d.Deployer, AnnotationCode: c.d.Code}
}

func ptr[T any](v T) *T { return &v }

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (c *compiler) spec() (*WorkflowSpec, error) {
	start := c.g.Step("start")
	if start == nil {
		return nil, fmt.Errorf("flow %s has no start step", c.g.Flow)
	}
	set, err := kubernetes.StepSettings(start, c.d.InForce)
	if err != nil {
		return nil, err
	}
	if set.Image == "" {
		return nil, fmt.Errorf("flow %s names no image for its pods: give stepwise.Kubernetes{Image: ...} or set one (stepwise configure --set-compute kubernetes.image=IMAGE, or --compute-setting kubernetes.image=IMAGE)", c.g.Flow)
	}
	args := &Arguments{}
	for _, p := range c.d.Params {
		args.Parameters = append(args.Parameters, Parameter{Name: p.Name, Value: ptr(p.Default), Description: p.Help})
	}
	args.Parameters = append(args.Parameters,
		Parameter{Name: ParamOrigin, Value: ptr(""), Description: "set by argo-workflows resume: the run this one resumes"},
		Parameter{Name: ParamResumeStep, Value: ptr(""), Description: "set by argo-workflows resume: the step it resumes from"},
		Parameter{Name: ParamTrigger, Value: ptr(""), Description: "set when an upstream flow's success starts this run: that run, FLOW/RUN_ID"})
	main, err := c.scope(nil, start, "")
	if err != nil {
		return nil, err
	}
	tasks := append([]DAGTask{{Name: "create-run", Template: "create-run"}}, main...)
	for i := 1; i < len(tasks); i++ {
		if tasks[i].Depends == "" {
			tasks[i].Depends = "create-run"
		}
	}
	createRun, err := c.driver("create-run", set)
	if err != nil {
		return nil, err
	}
	finish, err := c.driver("finish-run", set)
	if err != nil {
		return nil, err
	}
	ttl := int32(c.d.TTL.Seconds())
	spec := &WorkflowSpec{
		Entrypoint: "main",
		OnExit:     "finish-run",
		TTLStrategy: &TTLStrategy{
			SecondsAfterCompletion: &ttl,
		},
		PodGC:            &PodGC{Strategy: "OnWorkflowSuccess"},
		WorkflowMetadata: &WorkflowMetadata{Labels: c.labels()},
		Templates:        append([]Template{{Name: "main", DAG: dag(tasks)}, *createRun, *finish}, c.templates...),
	}
	spec.Arguments = args
	if set.ServiceAccount != "" {
		spec.ServiceAccountName = set.ServiceAccount
	}
	for _, n := range set.ImagePullSecrets {
		spec.ImagePullSecrets = append(spec.ImagePullSecrets, kubernetes.LocalObjectRef{Name: n})
	}
	return spec, nil
}

// runIDArg is how a task of a scope gets the run's id: from create-run at
// the top, from its caller's input inside a foreach body.
func runIDArg(top bool) string {
	if top {
		return "{{tasks.create-run.outputs.parameters.run-id}}"
	}
	return "{{inputs.parameters.run-id}}"
}

// scope compiles the steps of one foreach nesting level, from entry up to
// the join that closes opener (nil at the top), into DAG tasks; each
// foreach inside it becomes a task that calls its body's template over the
// foreach's element indexes. taskID is the tasks' id expression ("" at
// the top, where it is 0).
func (c *compiler) scope(opener, entry *graph.Step, taskID string) ([]DAGTask, error) {
	top := opener == nil
	id := taskID
	if top {
		id = "0"
	}
	var tasks []DAGTask
	seen := map[string]bool{}
	queue := []*graph.Step{entry}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		if seen[s.Name] {
			continue
		}
		seen[s.Name] = true
		tmpl, err := c.step(s)
		if err != nil {
			return nil, err
		}
		t := DAGTask{Name: node(s.Name), Template: tmpl,
			Arguments: &Arguments{Parameters: []Parameter{{Name: "run-id", Value: ptr(runIDArg(top))}, {Name: "task-id", Value: ptr(id)}}}}
		var deps []string
		for _, p := range s.Parents {
			switch {
			case s == entry && !top:
				// The body's first step: its parent is outside, done.
			case s.Join && s.Closes != "" && c.g.Step(s.Closes).SplitKind == "foreach":
				// A foreach's join waits for every element's body.
				deps = append(deps, node(s.Closes)+"-body")
			default:
				deps = append(deps, c.done(c.g.Step(p)))
			}
		}
		t.Depends = strings.Join(unique(deps), " && ")
		tasks = append(tasks, t)
		if s.Catch != "" {
			catch, err := c.catch(s)
			if err != nil {
				return nil, err
			}
			// It runs only when the step failed for good (after its
			// retries); otherwise Argo omits it. A failure some task
			// depends on does not fail the DAG.
			tasks = append(tasks, DAGTask{Name: node(s.Name) + "-catch", Template: catch,
				Depends: node(s.Name) + ".Failed", Arguments: t.Arguments})
		}
		if s.SplitKind == "foreach" {
			body := s.Next[0]
			elem := "{{item}}"
			if !top {
				elem = "{{inputs.parameters.task-id}}.{{item}}"
			}
			name, err := c.body(s, c.g.Step(body))
			if err != nil {
				return nil, err
			}
			tasks = append(tasks, DAGTask{Name: node(s.Name) + "-body", Template: name, Depends: c.done(s),
				WithParam: fmt.Sprintf("{{tasks.%s.outputs.parameters.splits}}", node(s.Name)),
				Arguments: &Arguments{Parameters: []Parameter{{Name: "run-id", Value: ptr(runIDArg(top))}, {Name: "task-id", Value: ptr(elem)}}}})
			if j := c.joinOf(s); j != nil {
				queue = append(queue, j)
			}
			continue
		}
		for _, n := range s.Next {
			ns := c.g.Step(n)
			if !top && ns.Join && ns.Closes == opener.Name {
				continue // the join that closes this body is the caller's
			}
			queue = append(queue, ns)
		}
	}
	return tasks, nil
}

// dag is a DAG of tasks; one with a catch task does not fail fast, so
// that the catch task and the other branches run after the step failed.
func dag(tasks []DAGTask) *DAG {
	d := &DAG{Tasks: tasks}
	for _, t := range tasks {
		if strings.HasSuffix(t.Depends, ".Failed") {
			d.FailFast = ptr(false)
		}
	}
	return d
}

// done is the depends expression that holds when step s is done: it
// succeeded, or it failed and its catch task recorded the failure.
func (c *compiler) done(s *graph.Step) string {
	if s.Catch != "" {
		return fmt.Sprintf("(%s.Succeeded || %s-catch.Succeeded)", node(s.Name), node(s.Name))
	}
	return node(s.Name)
}

func unique(xs []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, x := range xs {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

// joinOf is the join that closes a foreach.
func (c *compiler) joinOf(s *graph.Step) *graph.Step {
	for _, t := range c.g.Steps {
		if t.Join && t.Closes == s.Name {
			return t
		}
	}
	return nil
}

// body adds the template of a foreach's body: a DAG over one element,
// called once per element index.
func (c *compiler) body(opener, entry *graph.Step) (string, error) {
	tasks, err := c.scope(opener, entry, "{{inputs.parameters.task-id}}")
	if err != nil {
		return "", err
	}
	name := "body-" + node(opener.Name)
	c.templates = append(c.templates, Template{Name: name,
		Inputs: &Inputs{Parameters: []Parameter{{Name: "run-id"}, {Name: "task-id"}}},
		DAG:    dag(tasks)})
	return name, nil
}

// step adds the template of a step's pod.
func (c *compiler) step(s *graph.Step) (string, error) {
	attempt := "0"
	if s.Retries > 0 {
		attempt = "{{retries}}"
	}
	args := []string{"task", "--flow", c.g.Flow, "--run-id", "{{inputs.parameters.run-id}}", "--step", s.Name,
		"--task-id", "{{inputs.parameters.task-id}}", "--attempt", attempt, "--skip-cloned"}
	var outputs *Outputs
	if s.SplitKind == "foreach" {
		args = append(args, "--splits-out", splitsFile)
		outputs = &Outputs{Parameters: []Parameter{{Name: "splits", ValueFrom: &ValueFrom{Path: splitsFile}}}}
	}
	t, err := c.pod("step-"+node(s.Name), s, args, true)
	if err != nil {
		return "", err
	}
	t.Inputs = &Inputs{Parameters: []Parameter{{Name: "run-id"}, {Name: "task-id"}}}
	t.Outputs = outputs
	if s.Retries > 0 {
		t.RetryStrategy = &RetryStrategy{Limit: ptr(int64(s.Retries)), RetryPolicy: "Always",
			Backoff: &Backoff{Duration: "2s", Factor: ptr(int64(2))}}
	}
	if s.Timeout > 0 {
		// The pod's deadline counts from its start, which includes
		// fetching the code: a minute is allowed for that.
		t.ActiveDeadlineSeconds = ptr(int64((time.Duration(s.Timeout) + time.Minute).Seconds()))
	}
	c.templates = append(c.templates, *t)
	return t.Name, nil
}

// catch adds the template that records a step's failure in its catch
// field, after its last attempt failed.
func (c *compiler) catch(s *graph.Step) (string, error) {
	args := []string{"task", "--flow", c.g.Flow, "--run-id", "{{inputs.parameters.run-id}}", "--step", s.Name,
		"--task-id", "{{inputs.parameters.task-id}}", "--attempt", strconv.Itoa(s.Retries + 1),
		"--catch-error", fmt.Sprintf("step %s failed on each of its %d attempt(s); their errors and logs are in the task's attempts", s.Name, s.Retries+1)}
	var none graph.Step = *s
	none.Resources = graph.Resources{}
	t, err := c.pod("catch-"+node(s.Name), &none, args, true)
	if err != nil {
		return "", err
	}
	t.Inputs = &Inputs{Parameters: []Parameter{{Name: "run-id"}, {Name: "task-id"}}}
	c.templates = append(c.templates, *t)
	return t.Name, nil
}

// driver is the template of create-run or finish-run, on the start
// step's settings.
func (c *compiler) driver(cmd string, set kubernetes.Settings) (*Template, error) {
	start := *c.g.Step("start")
	start.Resources = graph.Resources{}
	var args []string
	var outputs *Outputs
	switch cmd {
	case "create-run":
		args = []string{"create-run", "--flow", c.g.Flow, "--namespace", Namespace(c.d.Token),
			"--run-id-out", runIDFile, "--system-tag", "runtime:argo-workflow:{{workflow.name}}"}
		if c.d.MaxSplits > 0 {
			args = append(args, "--max-num-splits", strconv.Itoa(c.d.MaxSplits))
		}
		for _, t := range c.d.Tags {
			args = append(args, "--tag", t)
		}
		for _, p := range c.d.Params {
			args = append(args, fmt.Sprintf("--%s={{workflow.parameters.%s}}", p.Name, p.Name))
		}
		args = append(args, "--origin-run-id={{workflow.parameters."+ParamOrigin+"}}", "--resume-step={{workflow.parameters."+ParamResumeStep+"}}",
			"--trigger={{workflow.parameters."+ParamTrigger+"}}")
		outputs = &Outputs{Parameters: []Parameter{{Name: "run-id", ValueFrom: &ValueFrom{Path: runIDFile}, GlobalName: "run-id"}}}
	case "finish-run":
		// After a success, the deployed flows triggered by this one
		// start (argo-trigger).
		args = []string{"finish-run", "--flow", c.g.Flow, "--run-id", "{{workflow.outputs.parameters.run-id}}", "--on-success", HookTrigger}
	}
	t, err := c.pod(cmd, &start, args, false)
	if err != nil {
		return nil, err
	}
	t.Outputs = outputs
	t.RetryStrategy = &RetryStrategy{Limit: ptr(int64(3)), RetryPolicy: "Always", Backoff: &Backoff{Duration: "5s", Factor: ptr(int64(2))}}
	return t, nil
}

// pod is a container template: the pod the Kubernetes backend would run
// the step's task in, with a scratch volume for output files.
func (c *compiler) pod(name string, s *graph.Step, args []string, task bool) (*Template, error) {
	set, err := kubernetes.StepSettings(s, c.d.InForce)
	if err != nil {
		return nil, err
	}
	var code *kubernetes.CodeFetch
	if set.Binary == "" {
		code = &kubernetes.CodeFetch{SHA256: c.d.Code}
	}
	labels := map[string]string{LabelFlow: c.g.Flow, LabelDeployment: c.d.Name}
	pathspec := c.g.Flow + " (workflow {{workflow.name}})"
	if task {
		// Argo fills in the run and the task when it makes the pod.
		labels[kubernetes.LabelStep] = s.Name
		labels[kubernetes.LabelRun] = "{{inputs.parameters.run-id}}"
		labels[kubernetes.LabelTask] = "{{inputs.parameters.task-id}}"
		pathspec = c.g.Flow + "/{{inputs.parameters.run-id}}/" + s.Name + "/{{inputs.parameters.task-id}}"
	}
	p := c.d.Site.Pod(kubernetes.TaskPod{
		Labels: labels, Pathspec: pathspec, Args: args, Resources: s.Resources,
		Settings: set, Code: code,
		Env:     []kubernetes.EnvVar{{Name: "STEPWISE_USER", Value: c.d.Deployer}},
		Volumes: []kubernetes.Volume{{Name: "out", EmptyDir: &kubernetes.EmptyDir{}}},
		Mounts:  []kubernetes.VolumeMount{{Name: "out", MountPath: outDir}},
	})
	main := p.Spec.Containers[0]
	main.Name = "main"
	t := &Template{
		Name:           name,
		Metadata:       &WorkflowMetadata{Labels: p.Metadata.Labels, Annotations: p.Metadata.Annotations},
		Container:      &main,
		InitContainers: p.Spec.InitContainers,
		Volumes:        p.Spec.Volumes,
		NodeSelector:   p.Spec.NodeSelector,
		Tolerations:    p.Spec.Tolerations,
	}
	if set.ServiceAccount != "" {
		t.ServiceAccountName = set.ServiceAccount
	}
	return t, nil
}
