package argo

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"sigs.k8s.io/yaml"

	"stepwise.dev/stepwise/internal/compute"
	"stepwise.dev/stepwise/internal/compute/kubernetes"
	"stepwise.dev/stepwise/internal/config"
	"stepwise.dev/stepwise/internal/flowcmd"
	"stepwise.dev/stepwise/internal/graph"
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
  create [--schedule CRON] [--timezone TZ] [--dry-run]
                          compile the graph into a WorkflowTemplate (and a
                          CronWorkflow) and apply it
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
	name := TemplateName(e.Def().Name())
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintf(e.Stderr(), usage, e.Prog(), e.Def().Name(), name)
		return 2
	}
	c := &cmd{e: e, set: map[string]string{}}
	switch args[0] {
	case "create":
		return c.create(ctx, args[1:])
	case "trigger":
		return c.trigger(ctx, args[1:])
	case "list":
		return c.list(ctx, args[1:])
	case "terminate":
		return c.terminate(ctx, args[1:])
	case "delete":
		return c.remove(ctx, args[1:])
	case "resume":
		return c.resume(ctx, args[1:])
	}
	fmt.Fprintf(e.Stderr(), "%s argo-workflows: unknown command %q\n\n", e.Prog(), args[0])
	fmt.Fprintf(e.Stderr(), usage, e.Prog(), e.Def().Name(), name)
	return 2
}

type cmd struct {
	e         *flowcmd.Env
	name      string
	authorize string
	set       map[string]string // --compute-setting
	cfg       *config.Config
}

func (c *cmd) flags(sub string) *flag.FlagSet {
	fs := c.e.Flags("argo-workflows " + sub)
	fs.StringVar(&c.name, "name", TemplateName(c.e.Def().Name()), "the deployment's name (the WorkflowTemplate's)")
	fs.StringVar(&c.authorize, "authorize", "", "the production token of a deployment someone else made, to change it")
	flowcmd.ComputeSettings(fs, c.set)
	return fs
}

func (c *cmd) fail(err error) int {
	fmt.Fprintf(c.e.Stderr(), "%s argo-workflows: %v\n", c.e.Prog(), err)
	return 1
}

// inForce reads a Kubernetes setting: --compute-setting, then the config
// file and the environment.
func (c *cmd) inForce(n string) string {
	if v, ok := c.set["kubernetes."+n]; ok {
		return v
	}
	return c.cfg.Compute("kubernetes." + n).Value
}

// namespace is the Kubernetes namespace of the deployment: the start
// step's.
func (c *cmd) namespace() (string, error) {
	set, err := kubernetes.StepSettings(c.e.Def().Graph.Step("start"), c.inForce)
	return set.Namespace, err
}

// connect reads the settings and connects to the cluster of the
// deployment's namespace.
func (c *cmd) connect(ctx context.Context) (*kubernetes.API, string, error) {
	var err error
	if c.cfg, err = c.e.Settings(); err != nil {
		return nil, "", err
	}
	ns, err := c.namespace()
	if err != nil {
		return nil, "", err
	}
	api, err := kubernetes.Connect(ctx, c.inForce)
	return api, ns, err
}

// deployed reads the deployed template, or returns nil when there is
// none.
func (c *cmd) deployed(ctx context.Context, api *kubernetes.API, ns string) (*WorkflowTemplate, error) {
	var t WorkflowTemplate
	err := api.Get(ctx, resources(ns, "workflowtemplates")+"/"+url.PathEscape(c.name), &t)
	switch {
	case kubernetes.IsNotFound(err):
		if strings.Contains(err.Error(), "the server could not find the requested resource") {
			return nil, fmt.Errorf("the cluster at %s has no Argo Workflows (it serves no WorkflowTemplate resource): install Argo Workflows in it to deploy flows there", api.Host)
		}
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("cannot read the WorkflowTemplate %s/%s: %w", ns, c.name, err)
	}
	return &t, nil
}

// deployment reads the settings, connects to the cluster and reads the
// deployed template, which must exist.
func (c *cmd) deployment(ctx context.Context) (*kubernetes.API, string, *WorkflowTemplate, error) {
	api, ns, err := c.connect(ctx)
	if err != nil {
		return nil, "", nil, err
	}
	t, err := c.deployed(ctx, api, ns)
	if err != nil {
		return nil, "", nil, err
	}
	if t == nil {
		return nil, "", nil, fmt.Errorf("flow %s is not deployed as %s in namespace %s: deploy it with %s argo-workflows create", c.e.Def().Name(), c.name, ns, c.e.Prog())
	}
	return api, ns, t, nil
}

// token is the production token a change of the deployment uses: the
// deployed one when the caller may change it, a new one for a first
// deployment.
func (c *cmd) token(t *WorkflowTemplate, user string) (string, error) {
	return c.tokenFor(c.e.Def().Name(), t, user)
}

func (c *cmd) tokenFor(flow string, t *WorkflowTemplate, user string) (string, error) {
	if t == nil {
		if c.authorize != "" {
			return c.authorize, nil
		}
		return newToken(flow)
	}
	tok, by := t.Metadata.Annotations[AnnotationToken], t.Metadata.Annotations[AnnotationBy]
	switch {
	case c.authorize == tok:
		return tok, nil
	case c.authorize != "":
		return "", fmt.Errorf("--authorize %q is not the production token of deployment %s (deployed by %s); ask them for it", c.authorize, c.name, by)
	case by == user:
		return tok, nil
	}
	return "", fmt.Errorf("deployment %s of flow %s was made by %s, not you (%s): changing it needs its production token; ask %s for it (it is in the deployment's annotation %s: kubectl get workflowtemplate %s -o jsonpath='{.metadata.annotations.stepwise\\.dev/production-token}') and give it with --authorize TOKEN",
		c.name, flow, by, user, by, AnnotationToken, c.name)
}

// newToken is a new production token: the flow's name and random letters.
func newToken(flow string) (string, error) {
	b := make([]byte, 5)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return TemplateName(flow) + "-" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b)), nil
}

func (c *cmd) create(ctx context.Context, args []string) int {
	fs := c.flags("create")
	dry := fs.Bool("dry-run", false, "print the manifests, apply nothing")
	schedule := fs.String("schedule", "", "run on this schedule (cron syntax, e.g. '0 3 * * *'; default the flow's g.Schedule); without one, runs start with trigger")
	tz := fs.String("timezone", "", "the schedule's time zone, e.g. Europe/Amsterdam (default UTC)")
	ttl := fs.Duration("ttl", 7*24*time.Hour, "how long a finished workflow is kept")
	maxSplits := fs.Int("max-num-splits", 0, "the most tasks one foreach may fan out to (default the run's default)")
	var tags []string
	fs.Func("tag", "add a tag to every run (repeatable)", func(t string) error {
		if err := names.UserTag(t); err != nil {
			return err
		}
		tags = append(tags, t)
		return nil
	})
	if code := c.e.Parse(fs, args); code >= 0 {
		return code
	}
	if code := c.e.Problems(); code != 0 {
		return code
	}
	if *schedule == "" && *tz != "" {
		fmt.Fprintln(c.e.Stderr(), "argo-workflows create: --timezone goes with --schedule")
		return 2
	}
	if *schedule == "" && c.e.Def().Graph.Schedule != nil {
		// The flow's own schedule, unless one is given here.
		*schedule, *tz = c.e.Def().Graph.Schedule.Cron, c.e.Def().Graph.Schedule.TimeZone
	}
	if *schedule != "" {
		sc := &graph.Schedule{Cron: *schedule, TimeZone: *tz}
		if err := errors.Join(sc.Check(), sc.CheckZone()); err != nil {
			fmt.Fprintf(c.e.Stderr(), "argo-workflows create: %v\n", err)
			return 2
		}
	}
	if *ttl <= 0 {
		fmt.Fprintln(c.e.Stderr(), "argo-workflows create: --ttl must be positive")
		return 2
	}
	var err error
	if c.cfg, err = c.e.Settings(); err != nil {
		return c.fail(err)
	}
	def := c.e.Def()
	d := Deployment{Graph: def.Graph, Name: c.name, Deployer: c.cfg.User.Value, Schedule: *schedule, TimeZone: *tz,
		TTL: *ttl, MaxSplits: *maxSplits, Tags: tags, InForce: c.inForce}
	if d.Namespace, err = c.namespace(); err != nil {
		return c.fail(err)
	}
	d.Site = kubernetes.SiteFor(compute.Env{Datastore: c.cfg.Datastore.Value, Metadata: c.cfg.Metadata.Value}, c.inForce)
	if problems := teamSetUp(d.Site); problems != "" && !*dry {
		return c.fail(fmt.Errorf("flow %s cannot be deployed: %s", def.Name(), problems))
	}
	for _, p := range def.Params {
		if p.Required {
			return c.fail(fmt.Errorf("parameter --%s is required, and a deployed flow's runs start with no one to give it: give it a default in the flow", p.Name))
		}
		d.Params = append(d.Params, Param{Name: p.Name, Default: params.Format(p.In(def.Defaults)), Help: p.Help})
	}
	if *dry {
		_, d.Code, err = kubernetes.StaticBinary(ctx)
		if err != nil {
			return c.fail(err)
		}
		d.Token = c.authorize
		if d.Token == "" {
			d.Token = "TOKEN"
		}
		return c.print(d)
	}
	api, _, err := c.connect(ctx)
	if err != nil {
		return c.fail(err)
	}
	old, err := c.deployed(ctx, api, d.Namespace)
	if err != nil {
		return c.fail(err)
	}
	if d.Token, err = c.token(old, d.Deployer); err != nil {
		return c.fail(err)
	}
	data, err := config.OpenDatastore(ctx, c.cfg.Datastore.Value)
	if err != nil {
		return c.fail(err)
	}
	code, err := kubernetes.ShipCode(ctx, data)
	if err != nil {
		return c.fail(err)
	}
	d.Code = code.SHA256
	if err := c.checkCodeURL(ctx, d.Code); err != nil {
		return c.fail(err)
	}
	t, err := Compile(d)
	if err != nil {
		return c.fail(err)
	}
	if err := api.Apply(ctx, resources(d.Namespace, "workflowtemplates")+"/"+url.PathEscape(d.Name), t); err != nil {
		return c.fail(fmt.Errorf("cannot apply the WorkflowTemplate %s/%s: %w", d.Namespace, d.Name, err))
	}
	cronPath := resources(d.Namespace, "cronworkflows") + "/" + url.PathEscape(d.Name)
	if d.Schedule != "" {
		if err := api.Apply(ctx, cronPath, Cron(d)); err != nil {
			return c.fail(fmt.Errorf("the WorkflowTemplate is deployed, but its schedule is not: cannot apply the CronWorkflow %s/%s: %w", d.Namespace, d.Name, err))
		}
	} else if err := api.Delete(ctx, cronPath); err != nil && !kubernetes.IsNotFound(err) {
		return c.fail(fmt.Errorf("the WorkflowTemplate is deployed, but its old schedule could not be removed: %w", err))
	}
	out := c.e.Stdout()
	fmt.Fprintf(out, "deployed flow %s as WorkflowTemplate %s/%s (code %s)\n", def.Name(), d.Namespace, d.Name, d.Code[:12])
	if d.Schedule != "" {
		tz := d.TimeZone
		if tz == "" {
			tz = "UTC"
		}
		fmt.Fprintf(out, "it runs on schedule %q (%s)\n", d.Schedule, tz)
	}
	fmt.Fprintf(out, "its runs are in namespace %s: %s runs --namespace %s\n", Namespace(d.Token), c.e.Prog(), Namespace(d.Token))
	fmt.Fprintf(out, "start a run now with: %s argo-workflows trigger\n", c.e.Prog())
	return 0
}

// teamSetUp says what keeps pods from reaching the stores, or "".
func teamSetUp(site kubernetes.Site) string {
	var problems []string
	if !strings.HasPrefix(site.Datastore, "s3://") {
		problems = append(problems, fmt.Sprintf("the datastore is %s, which pods cannot reach: set an S3 datastore (stepwise configure --set-datastore s3://bucket/prefix, or STEPWISE_DATASTORE)", site.Datastore))
	}
	if !strings.HasPrefix(site.Metadata, "http://") && !strings.HasPrefix(site.Metadata, "https://") {
		problems = append(problems, fmt.Sprintf("the metadata store is %q, which pods cannot reach: set a metadata service (stepwise configure --set-metadata https://host:port, or STEPWISE_METADATA)", site.Metadata))
	}
	return strings.Join(problems, "; ")
}

// checkCodeURL asks the metadata service for a URL of the code, as the
// pods will: a service that serves no code is said now, not by every pod.
func (c *cmd) checkCodeURL(ctx context.Context, sum string) error {
	u := strings.TrimRight(c.cfg.Metadata.Value, "/") + kubernetes.CodeURLPath(sum)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	if t := c.cfg.Token.Value; t != "" {
		req.Header.Set("Authorization", "Bearer "+t)
	}
	cl := &http.Client{Timeout: 15 * time.Second}
	resp, err := cl.Do(req)
	if err != nil {
		return fmt.Errorf("cannot ask the metadata service %s for the code's URL, as the pods will: %w", c.cfg.Metadata.Value, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		msg := strings.TrimSpace(string(body))
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		return fmt.Errorf("the deployed flow's pods fetch their code through the metadata service, which answered %s: %s", resp.Status, msg)
	}
	return nil
}

// print writes the manifests as YAML documents.
func (c *cmd) print(d Deployment) int {
	t, err := Compile(d)
	if err != nil {
		return c.fail(err)
	}
	docs := []any{t}
	if d.Schedule != "" {
		docs = append(docs, Cron(d))
	}
	for i, doc := range docs {
		y, err := yaml.Marshal(doc)
		if err != nil {
			return c.fail(err)
		}
		if i > 0 {
			fmt.Fprintln(c.e.Stdout(), "---")
		}
		c.e.Stdout().Write(y)
	}
	return 0
}

func (c *cmd) trigger(ctx context.Context, args []string) int {
	fs := c.flags("trigger")
	given := c.e.BindParams(fs)
	if code := c.e.Parse(fs, args); code >= 0 {
		return code
	}
	api, ns, t, err := c.deployment(ctx)
	if err != nil {
		return c.fail(err)
	}
	w := Submit(Deployment{Graph: c.e.Def().Graph, Name: c.name, Namespace: ns}, given())
	var made Workflow
	if err := api.Create(ctx, resources(ns, "workflows"), w, &made); err != nil {
		return c.fail(fmt.Errorf("cannot create a Workflow of %s/%s: %w", ns, c.name, err))
	}
	fmt.Fprintf(c.e.Stdout(), "started workflow %s/%s of flow %s; its run is in namespace %s\n", ns, made.Metadata.Name, c.e.Def().Name(), Namespace(t.Metadata.Annotations[AnnotationToken]))
	return 0
}

func (c *cmd) list(ctx context.Context, args []string) int {
	fs := c.flags("list")
	if code := c.e.Parse(fs, args); code >= 0 {
		return code
	}
	api, ns, err := c.connect(ctx)
	if err != nil {
		return c.fail(err)
	}
	var templates struct{ Items []WorkflowTemplate }
	if err := api.List(ctx, resources(ns, "workflowtemplates"), LabelFlow+"="+c.e.Def().Name(), &templates); err != nil {
		return c.fail(fmt.Errorf("cannot list the WorkflowTemplates in namespace %s: %w", ns, err))
	}
	if len(templates.Items) == 0 {
		fmt.Fprintf(c.e.Stderr(), "flow %s is not deployed in namespace %s\n", c.e.Def().Name(), ns)
		return 0
	}
	var crons struct{ Items []CronWorkflow }
	api.List(ctx, resources(ns, "cronworkflows"), LabelFlow+"="+c.e.Def().Name(), &crons)
	schedule := map[string]string{}
	for _, cw := range crons.Items {
		schedule[cw.Metadata.Name] = strings.Join(cw.Spec.Schedules, ",") + " " + cw.Spec.Timezone
	}
	tw := tabwriter.NewWriter(c.e.Stdout(), 0, 4, 2, ' ', 0)
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
	if err := api.List(ctx, resources(ns, "workflows"), LabelFlow+"="+c.e.Def().Name(), &wfs); err == nil && len(wfs.Items) > 0 {
		fmt.Fprintln(c.e.Stdout())
		tw = tabwriter.NewWriter(c.e.Stdout(), 0, 4, 2, ' ', 0)
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
	fs := c.flags("terminate")
	var wf string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		wf, args = args[0], args[1:]
	}
	if code := c.e.Parse(fs, args); code >= 0 {
		return code
	}
	if wf == "" {
		fmt.Fprintf(c.e.Stderr(), "argo-workflows terminate: name the workflow (%s argo-workflows list shows them)\n", c.e.Prog())
		return 2
	}
	api, ns, err := c.connect(ctx)
	if err != nil {
		return c.fail(err)
	}
	path := resources(ns, "workflows") + "/" + url.PathEscape(wf)
	var w Workflow
	if err := api.Get(ctx, path, &w); kubernetes.IsNotFound(err) {
		return c.fail(fmt.Errorf("no workflow %s in namespace %s (%s argo-workflows list shows them)", wf, ns, c.e.Prog()))
	} else if err != nil {
		return c.fail(err)
	}
	if w.Metadata.Labels[LabelFlow] != c.e.Def().Name() {
		return c.fail(fmt.Errorf("workflow %s is not a run of flow %s", wf, c.e.Def().Name()))
	}
	if err := api.MergePatch(ctx, path, map[string]any{"spec": map[string]any{"shutdown": "Terminate"}}); err != nil {
		return c.fail(fmt.Errorf("cannot terminate workflow %s/%s: %w", ns, wf, err))
	}
	fmt.Fprintf(c.e.Stdout(), "terminating workflow %s/%s: its pods are stopped and its run is finished as failed\n", ns, wf)
	return 0
}

func (c *cmd) remove(ctx context.Context, args []string) int {
	fs := c.flags("delete")
	if code := c.e.Parse(fs, args); code >= 0 {
		return code
	}
	api, ns, t, err := c.deployment(ctx)
	if err != nil {
		return c.fail(err)
	}
	if _, err := c.token(t, c.cfg.User.Value); err != nil {
		return c.fail(err)
	}
	var errs []error
	for _, kind := range []string{"cronworkflows", "workflowtemplates"} {
		if err := api.Delete(ctx, resources(ns, kind)+"/"+url.PathEscape(c.name)); err != nil && !kubernetes.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("cannot delete %s %s/%s: %w", kind, ns, c.name, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return c.fail(err)
	}
	fmt.Fprintf(c.e.Stdout(), "deleted deployment %s/%s of flow %s and its schedule; its runs stay readable in namespace %s\n", ns, c.name, c.e.Def().Name(), Namespace(t.Metadata.Annotations[AnnotationToken]))
	return 0
}

func (c *cmd) resume(ctx context.Context, args []string) int {
	fs := c.flags("resume")
	var pos []string
	for len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		pos, args = append(pos, args[0]), args[1:]
	}
	if code := c.e.Parse(fs, args); code >= 0 {
		return code
	}
	if len(pos) == 0 || len(pos) > 2 {
		fmt.Fprintf(c.e.Stderr(), "argo-workflows resume: name the run, and optionally the step: resume RUN [STEP] (%s runs --namespace production:TOKEN lists the runs)\n", c.e.Prog())
		return 2
	}
	origin, step := pos[0], ""
	if len(pos) == 2 {
		step = pos[1]
		if c.e.Def().Graph.Step(step) == nil {
			fmt.Fprintf(c.e.Stderr(), "argo-workflows resume: flow %s has no step %q\n", c.e.Def().Name(), step)
			return 2
		}
	}
	if err := names.RunID(origin); err != nil {
		fmt.Fprintf(c.e.Stderr(), "argo-workflows resume: %v\n", err)
		return 2
	}
	api, ns, t, err := c.deployment(ctx)
	if err != nil {
		return c.fail(err)
	}
	meta, err := config.OpenMetadata(ctx, c.cfg)
	if err != nil {
		return c.fail(err)
	}
	defer meta.Close()
	run, err := meta.GetRun(ctx, c.e.Def().Name(), origin)
	if err != nil {
		return c.fail(fmt.Errorf("run %s of flow %s: %w", origin, c.e.Def().Name(), err))
	}
	prod := Namespace(t.Metadata.Annotations[AnnotationToken])
	if !slices.Contains(run.SystemTags, prod) {
		return c.fail(fmt.Errorf("run %s is not a run of deployment %s (namespace %s); resume a person's run with %s resume --origin-run-id %s", origin, c.name, prod, c.e.Prog(), origin))
	}
	values := map[string]string{ParamOrigin: origin, ParamResumeStep: step}
	if t.Spec.Arguments != nil {
		for _, p := range t.Spec.Arguments.Parameters {
			if v, ok := run.Params[p.Name]; ok {
				values[p.Name] = v
			}
		}
	}
	w := Submit(Deployment{Graph: c.e.Def().Graph, Name: c.name, Namespace: ns}, values)
	var made Workflow
	if err := api.Create(ctx, resources(ns, "workflows"), w, &made); err != nil {
		return c.fail(fmt.Errorf("cannot create a Workflow of %s/%s: %w", ns, c.name, err))
	}
	from := step
	if from == "" {
		from = "the first step that did not succeed"
	}
	fmt.Fprintf(c.e.Stdout(), "started workflow %s/%s: it resumes run %s from %s with the deployed code (%s); its run is in namespace %s\n",
		ns, made.Metadata.Name, origin, from, short(t.Metadata.Annotations[AnnotationCode]), prod)
	return 0
}

func short(sum string) string {
	if len(sum) > 12 {
		return sum[:12]
	}
	return sum
}
