package argo

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"stepwise.dev/stepwise/internal/compute/kubernetes"
	"stepwise.dev/stepwise/internal/config"
	"stepwise.dev/stepwise/internal/deploy"
	"stepwise.dev/stepwise/internal/flowcmd"
	"stepwise.dev/stepwise/internal/names"
	"stepwise.dev/stepwise/internal/params"
)

func init() {
	flowcmd.Register(flowcmd.Extra{Name: "argo-workflows", Run: command,
		Usage: "argo-workflows create|trigger|list|terminate|resume|delete   deploy the flow to Argo Workflows (docs/production.md)"})
}

const usage = `usage: %[1]s argo-workflows <command> [flags]

Deploys flow %[2]s to Argo Workflows on the cluster of the Kubernetes
settings in force; its runs are in the namespace production:TOKEN.

Commands:
  create [--schedule CRON] [--timezone TZ] [parameters] [--dry-run]
                          compile the graph into a WorkflowTemplate (and a
                          CronWorkflow) and apply it; parameters given here
                          are the workflow arguments' defaults
  trigger [parameters]    start a run now
  list                    the deployed template and its recent workflows
  terminate WORKFLOW      stop a running workflow
  resume RUN [STEP]       run a production run again from STEP (default: the
                          first that failed) with the deployed code, reusing
                          what succeeded before it
  delete                  delete the template and its schedule

Each takes --name (default %[3]s) and --authorize TOKEN, needed to change a
deployment someone else made.
`

// Paths of Argo's resources.
func resources(ns, kind string) string {
	return "/apis/argoproj.io/v1alpha1/namespaces/" + url.PathEscape(ns) + "/" + kind
}

func command(ctx context.Context, e *flowcmd.Env, args []string) int {
	c := &cmd{deploy.NewCmd(e, "argo-workflows")}
	return c.Dispatch(ctx, usage, args, map[string]func(context.Context, []string) int{
		"create":    c.create,
		"trigger":   c.trigger,
		"list":      c.list,
		"terminate": c.terminate,
		"delete":    c.remove,
		"resume":    c.resume,
	})
}

type cmd struct {
	*deploy.Cmd
}

// deployed reads the deployed template, or returns nil when there is
// none.
func (c *cmd) deployed(ctx context.Context, api *kubernetes.API, ns string) (*WorkflowTemplate, error) {
	t, err := deploy.Read[WorkflowTemplate](ctx, api, resources(ns, "workflowtemplates")+"/"+url.PathEscape(c.Name), "WorkflowTemplate "+ns+"/"+c.Name)
	if errors.Is(err, deploy.ErrNotServed) {
		return nil, fmt.Errorf("the cluster at %s has no Argo Workflows (it serves no WorkflowTemplate resource): install Argo Workflows in it to deploy flows there, or deploy as a CronJob (%s cronjob create)", api.Host, c.E.Prog())
	}
	return t, err
}

// deployment reads the settings, connects to the cluster and reads the
// deployed template, which must exist.
func (c *cmd) deployment(ctx context.Context) (*kubernetes.API, string, *WorkflowTemplate, error) {
	return deploy.Existing(ctx, c.Cmd, "WorkflowTemplate", "argo-workflows create", c.deployed)
}

func (c *cmd) create(ctx context.Context, args []string) int {
	fs := c.Flags("create")
	dry := fs.Bool("dry-run", false, "print the manifests, apply nothing")
	schedule := fs.String("schedule", "", "run on this schedule (cron syntax, e.g. '0 3 * * *'; default the flow's g.Schedule); without one, runs start with trigger")
	tz := fs.String("timezone", "", "the schedule's time zone, e.g. Europe/Amsterdam (default UTC)")
	ttl := fs.Duration("ttl", 7*24*time.Hour, "how long a finished workflow is kept")
	maxSplits := fs.Int("max-num-splits", 0, "the most tasks one foreach may fan out to (default the run's default)")
	var tags []string
	deploy.TagFlag(fs, &tags)
	given := c.E.BindParams(fs)
	if code := c.E.Parse(fs, args); code >= 0 {
		return code
	}
	if code := c.E.Problems(); code != 0 {
		return code
	}
	var err error
	if *schedule, *tz, err = c.Schedule(*schedule, *tz); err != nil {
		fmt.Fprintf(c.E.Stderr(), "argo-workflows create: %v\n", err)
		return 2
	}
	if *ttl <= 0 {
		fmt.Fprintln(c.E.Stderr(), "argo-workflows create: --ttl must be positive")
		return 2
	}
	if err := c.Settings(); err != nil {
		return c.Fail(err)
	}
	def := c.E.Def()
	if err := deploy.CheckPlacement(def.Graph); err != nil {
		return c.Fail(err)
	}
	d := Deployment{Graph: def.Graph, Name: c.Name, Deployer: c.Cfg.User.Value, Schedule: *schedule, TimeZone: *tz,
		TTL: *ttl, MaxSplits: *maxSplits, Tags: tags, InForce: c.InForce}
	if d.Namespace, err = c.Namespace(); err != nil {
		return c.Fail(err)
	}
	if d.Site, err = c.Site(); err != nil {
		return c.Fail(err)
	}
	if problems := kubernetes.TeamSetUp(d.Site.Datastore, d.Site.Metadata); problems != "" && !*dry {
		return c.Fail(fmt.Errorf("flow %s cannot be deployed: %s", def.Name(), problems))
	}
	values := given()
	for _, p := range def.Params {
		v, ok := values[p.Name]
		if !ok && p.Required {
			return c.Fail(fmt.Errorf("parameter --%s is required, and a deployed flow's runs start with no one to give it: give its default here (argo-workflows create --%s VALUE) or in the flow", p.Name, p.Name))
		}
		if !ok {
			v = params.Format(p.In(def.Defaults))
		}
		d.Params = append(d.Params, Param{Name: p.Name, Default: v, Help: p.Help})
	}
	if *dry {
		_, d.Code, err = kubernetes.StaticBinary(ctx)
		if err != nil {
			return c.Fail(err)
		}
		d.Token = c.Authorize
		if d.Token == "" {
			d.Token = "TOKEN"
		}
		return c.print(d)
	}
	api, _, err := c.Connect(ctx)
	if err != nil {
		return c.Fail(err)
	}
	old, err := c.deployed(ctx, api, d.Namespace)
	if err != nil {
		return c.Fail(err)
	}
	if d.Token, err = c.Token(annotations(old), d.Deployer, "workflowtemplate"); err != nil {
		return c.Fail(err)
	}
	if d.Code, err = c.ShipCode(ctx); err != nil {
		return c.Fail(err)
	}
	t, err := Compile(d)
	if err != nil {
		return c.Fail(err)
	}
	if err := api.Apply(ctx, resources(d.Namespace, "workflowtemplates")+"/"+url.PathEscape(d.Name), t); err != nil {
		return c.Fail(fmt.Errorf("cannot apply the WorkflowTemplate %s/%s: %w", d.Namespace, d.Name, err))
	}
	cronPath := resources(d.Namespace, "cronworkflows") + "/" + url.PathEscape(d.Name)
	if d.Schedule != "" {
		if err := api.Apply(ctx, cronPath, Cron(d)); err != nil {
			return c.Fail(fmt.Errorf("the WorkflowTemplate is deployed, but its schedule is not: cannot apply the CronWorkflow %s/%s: %w", d.Namespace, d.Name, err))
		}
	} else if err := api.Delete(ctx, cronPath); err != nil && !kubernetes.IsNotFound(err) {
		return c.Fail(fmt.Errorf("the WorkflowTemplate is deployed, but its old schedule could not be removed: %w", err))
	}
	out := c.E.Stdout()
	fmt.Fprintf(out, "deployed flow %s as WorkflowTemplate %s/%s (code %s)\n", def.Name(), d.Namespace, d.Name, d.Code[:12])
	if d.Schedule != "" {
		tz := d.TimeZone
		if tz == "" {
			tz = "UTC"
		}
		fmt.Fprintf(out, "it runs on schedule %q (%s)\n", d.Schedule, tz)
	}
	if len(def.Graph.Triggers) > 0 {
		fmt.Fprintf(out, "it runs after each successful production run of %s deployed in namespace %s\n", strings.Join(def.Graph.Triggers, ", "), d.Namespace)
	}
	fmt.Fprintf(out, "its runs are in namespace %s: %s runs --namespace %s\n", Namespace(d.Token), c.E.Prog(), Namespace(d.Token))
	fmt.Fprintf(out, "start a run now with: %s argo-workflows trigger\n", c.E.Prog())
	return 0
}

// print writes the manifests as YAML documents.
func (c *cmd) print(d Deployment) int {
	t, err := Compile(d)
	if err != nil {
		return c.Fail(err)
	}
	docs := []any{t}
	if d.Schedule != "" {
		docs = append(docs, Cron(d))
	}
	return c.PrintYAML(docs...)
}

func (c *cmd) trigger(ctx context.Context, args []string) int {
	fs := c.Flags("trigger")
	given := c.E.BindParams(fs)
	if code := c.E.Parse(fs, args); code >= 0 {
		return code
	}
	api, ns, t, err := c.deployment(ctx)
	if err != nil {
		return c.Fail(err)
	}
	w := Submit(Deployment{Graph: c.E.Def().Graph, Name: c.Name, Namespace: ns}, given())
	var made Workflow
	if err := api.Create(ctx, resources(ns, "workflows"), w, &made); err != nil {
		return c.Fail(fmt.Errorf("cannot create a Workflow of %s/%s: %w", ns, c.Name, err))
	}
	fmt.Fprintf(c.E.Stdout(), "started workflow %s/%s of flow %s; its run is in namespace %s\n", ns, made.Metadata.Name, c.E.Def().Name(), Namespace(t.Metadata.Annotations[AnnotationToken]))
	return 0
}

func (c *cmd) list(ctx context.Context, args []string) int {
	fs := c.Flags("list")
	if code := c.E.Parse(fs, args); code >= 0 {
		return code
	}
	api, ns, err := c.Connect(ctx)
	if err != nil {
		return c.Fail(err)
	}
	var templates struct{ Items []WorkflowTemplate }
	if err := api.List(ctx, resources(ns, "workflowtemplates"), LabelFlow+"="+c.E.Def().Name(), &templates); err != nil {
		return c.Fail(fmt.Errorf("cannot list the WorkflowTemplates in namespace %s: %w", ns, err))
	}
	if len(templates.Items) == 0 {
		fmt.Fprintf(c.E.Stderr(), "flow %s is not deployed in namespace %s\n", c.E.Def().Name(), ns)
		return 0
	}
	var crons struct{ Items []CronWorkflow }
	api.List(ctx, resources(ns, "cronworkflows"), LabelFlow+"="+c.E.Def().Name(), &crons)
	schedule := map[string]string{}
	for _, cw := range crons.Items {
		schedule[cw.Metadata.Name] = strings.Join(cw.Spec.Schedules, ",") + " " + cw.Spec.Timezone
	}
	tw := tabwriter.NewWriter(c.E.Stdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DEPLOYMENT\tNAMESPACE\tDEPLOYED BY\tCODE\tSCHEDULE\tRUNS IN")
	for _, t := range templates.Items {
		a := t.Metadata.Annotations
		code := a[AnnotationCode]
		if len(code) > 12 {
			code = code[:12]
		}
		s := strings.TrimSpace(schedule[t.Metadata.Name])
		if s == "" {
			s = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t.Metadata.Name, ns, a[AnnotationBy], code, s, Namespace(a[AnnotationToken]))
	}
	tw.Flush()
	var wfs struct{ Items []Workflow }
	if err := api.List(ctx, resources(ns, "workflows"), LabelFlow+"="+c.E.Def().Name(), &wfs); err == nil && len(wfs.Items) > 0 {
		fmt.Fprintln(c.E.Stdout())
		tw = tabwriter.NewWriter(c.E.Stdout(), 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "WORKFLOW\tPHASE\tSTARTED\tFINISHED")
		for _, w := range wfs.Items {
			phase, started, finished := "Pending", "-", "-"
			if w.Status != nil {
				phase, started, finished = or(w.Status.Phase, phase), or(w.Status.StartedAt, "-"), or(w.Status.FinishedAt, "-")
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", w.Metadata.Name, phase, started, finished)
		}
		tw.Flush()
	}
	return 0
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func (c *cmd) terminate(ctx context.Context, args []string) int {
	fs := c.Flags("terminate")
	var wf string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		wf, args = args[0], args[1:]
	}
	if code := c.E.Parse(fs, args); code >= 0 {
		return code
	}
	if wf == "" {
		fmt.Fprintf(c.E.Stderr(), "argo-workflows terminate: name the workflow (%s argo-workflows list shows them)\n", c.E.Prog())
		return 2
	}
	api, ns, err := c.Connect(ctx)
	if err != nil {
		return c.Fail(err)
	}
	path := resources(ns, "workflows") + "/" + url.PathEscape(wf)
	var w Workflow
	if err := api.Get(ctx, path, &w); kubernetes.IsNotFound(err) {
		return c.Fail(fmt.Errorf("no workflow %s in namespace %s (%s argo-workflows list shows them)", wf, ns, c.E.Prog()))
	} else if err != nil {
		return c.Fail(err)
	}
	if w.Metadata.Labels[LabelFlow] != c.E.Def().Name() {
		return c.Fail(fmt.Errorf("workflow %s is not a run of flow %s", wf, c.E.Def().Name()))
	}
	if err := api.MergePatch(ctx, path, map[string]any{"spec": map[string]any{"shutdown": "Terminate"}}); err != nil {
		return c.Fail(fmt.Errorf("cannot terminate workflow %s/%s: %w", ns, wf, err))
	}
	fmt.Fprintf(c.E.Stdout(), "terminating workflow %s/%s: its pods are stopped and its run is finished as failed\n", ns, wf)
	return 0
}

func (c *cmd) remove(ctx context.Context, args []string) int {
	fs := c.Flags("delete")
	if code := c.E.Parse(fs, args); code >= 0 {
		return code
	}
	api, ns, t, err := c.deployment(ctx)
	if err != nil {
		return c.Fail(err)
	}
	if _, err := c.Token(t.Metadata.Annotations, c.Cfg.User.Value, "workflowtemplate"); err != nil {
		return c.Fail(err)
	}
	var errs []error
	for _, kind := range []string{"cronworkflows", "workflowtemplates"} {
		if err := api.Delete(ctx, resources(ns, kind)+"/"+url.PathEscape(c.Name)); err != nil && !kubernetes.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("cannot delete %s %s/%s: %w", kind, ns, c.Name, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return c.Fail(err)
	}
	fmt.Fprintf(c.E.Stdout(), "deleted deployment %s/%s of flow %s and its schedule; its runs stay readable in namespace %s\n", ns, c.Name, c.E.Def().Name(), Namespace(t.Metadata.Annotations[AnnotationToken]))
	return 0
}

func (c *cmd) resume(ctx context.Context, args []string) int {
	fs := c.Flags("resume")
	var pos []string
	for len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		pos, args = append(pos, args[0]), args[1:]
	}
	if code := c.E.Parse(fs, args); code >= 0 {
		return code
	}
	if len(pos) == 0 || len(pos) > 2 {
		fmt.Fprintf(c.E.Stderr(), "argo-workflows resume: name the run, and optionally the step: resume RUN [STEP] (%s runs --namespace production:TOKEN lists the runs)\n", c.E.Prog())
		return 2
	}
	origin, step := pos[0], ""
	if len(pos) == 2 {
		step = pos[1]
		if c.E.Def().Graph.Step(step) == nil {
			fmt.Fprintf(c.E.Stderr(), "argo-workflows resume: flow %s has no step %q\n", c.E.Def().Name(), step)
			return 2
		}
	}
	if err := names.RunID(origin); err != nil {
		fmt.Fprintf(c.E.Stderr(), "argo-workflows resume: %v\n", err)
		return 2
	}
	api, ns, t, err := c.deployment(ctx)
	if err != nil {
		return c.Fail(err)
	}
	meta, err := config.OpenMetadata(ctx, c.Cfg)
	if err != nil {
		return c.Fail(err)
	}
	defer meta.Close()
	run, err := meta.GetRun(ctx, c.E.Def().Name(), origin)
	if err != nil {
		return c.Fail(fmt.Errorf("run %s of flow %s: %w", origin, c.E.Def().Name(), err))
	}
	prod := Namespace(t.Metadata.Annotations[AnnotationToken])
	if !slices.Contains(run.SystemTags, prod) {
		return c.Fail(fmt.Errorf("run %s is not a run of deployment %s (namespace %s); resume a person's run with %s resume --origin-run-id %s", origin, c.Name, prod, c.E.Prog(), origin))
	}
	values := map[string]string{ParamOrigin: origin, ParamResumeStep: step}
	if t.Spec.Arguments != nil {
		for _, p := range t.Spec.Arguments.Parameters {
			if v, ok := run.Params[p.Name]; ok {
				values[p.Name] = v
			}
		}
	}
	w := Submit(Deployment{Graph: c.E.Def().Graph, Name: c.Name, Namespace: ns}, values)
	var made Workflow
	if err := api.Create(ctx, resources(ns, "workflows"), w, &made); err != nil {
		return c.Fail(fmt.Errorf("cannot create a Workflow of %s/%s: %w", ns, c.Name, err))
	}
	from := step
	if from == "" {
		from = "the first step that did not succeed"
	}
	fmt.Fprintf(c.E.Stdout(), "started workflow %s/%s: it resumes run %s from %s with the deployed code (%s); its run is in namespace %s\n",
		ns, made.Metadata.Name, origin, from, short(t.Metadata.Annotations[AnnotationCode]), prod)
	return 0
}

func short(sum string) string {
	if len(sum) > 12 {
		return sum[:12]
	}
	return sum
}

// annotations are the deployed template's, or nil when there is none.
func annotations(t *WorkflowTemplate) map[string]string {
	if t == nil {
		return nil
	}
	if t.Metadata.Annotations == nil {
		return map[string]string{}
	}
	return t.Metadata.Annotations
}
