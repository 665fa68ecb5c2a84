package cronjob

import (
	"context"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"stepwise.dev/stepwise/internal/compute/kubernetes"
	"stepwise.dev/stepwise/internal/deploy"
	"stepwise.dev/stepwise/internal/flowcmd"
)

func init() {
	flowcmd.Register(flowcmd.Extra{Name: "cronjob", Run: command,
		Usage: "cronjob create|trigger|list|delete          deploy the flow as a Kubernetes CronJob, for clusters without Argo (docs/production.md)"})
}

const usage = `usage: %[1]s cronjob <command> [flags]

Deploys flow %[2]s as a Kubernetes CronJob on the cluster of the
Kubernetes settings in force, for clusters without Argo Workflows: its pod
runs the flow's launcher with every step on Kubernetes. If the pod dies,
the Job starts another, which resumes the run instead of starting over.
Its runs are in the namespace production:TOKEN.

Commands:
  create --schedule CRON [--timezone TZ] [parameters] [--dry-run]
                          apply the CronJob (parameters given here are
                          every scheduled run's)
  trigger [parameters]    start a run now, as a Job of the CronJob
  list                    the CronJob and its Jobs
  delete                  delete the CronJob (runs in progress finish)

Each takes --name (default %[3]s) and --authorize TOKEN, needed to change a
deployment someone else made.
`

func command(ctx context.Context, e *flowcmd.Env, args []string) int {
	c := &cmd{deploy.NewCmd(e, "cronjob")}
	return c.Dispatch(ctx, usage, args, map[string]func(context.Context, []string) int{
		"create":  c.create,
		"trigger": c.trigger,
		"list":    c.list,
		"delete":  c.remove,
	})
}

type cmd struct {
	*deploy.Cmd
}

func cronJobs(ns string) string {
	return "/apis/batch/v1/namespaces/" + url.PathEscape(ns) + "/cronjobs"
}

func jobs(ns string) string {
	return "/apis/batch/v1/namespaces/" + url.PathEscape(ns) + "/jobs"
}

// deployed reads the deployed CronJob, or returns nil when there is none.
func (c *cmd) deployed(ctx context.Context, api *kubernetes.API, ns string) (*CronJob, error) {
	return deploy.Read[CronJob](ctx, api, cronJobs(ns)+"/"+url.PathEscape(c.Name), "CronJob "+ns+"/"+c.Name)
}

// deployment connects and reads the deployed CronJob, which must exist.
func (c *cmd) deployment(ctx context.Context) (*kubernetes.API, string, *CronJob, error) {
	return deploy.Existing(ctx, c.Cmd, "CronJob", "cronjob create --schedule CRON", c.deployed)
}

// settingsInForce are the Kubernetes settings of the config file, the
// environment and --compute-setting, by name.
func (c *cmd) settingsInForce() map[string]string {
	out := map[string]string{}
	for _, n := range c.Cfg.ComputeNames() {
		if name, ok := strings.CutPrefix(n, kubernetes.Name+"."); ok {
			out[name] = c.InForce(name)
		}
	}
	for k := range c.Set {
		if name, ok := strings.CutPrefix(k, kubernetes.Name+"."); ok {
			out[name] = c.InForce(name)
		}
	}
	return out
}

func (c *cmd) create(ctx context.Context, args []string) int {
	fs := c.Flags("create")
	dry := fs.Bool("dry-run", false, "print the CronJob, apply nothing")
	schedule := fs.String("schedule", "", "when runs start, in cron syntax, e.g. '0 3 * * *' (default the flow's g.Schedule)")
	tz := fs.String("timezone", "", "the schedule's time zone, e.g. Europe/Amsterdam (default the cluster's, usually UTC)")
	restarts := fs.Int("restarts", 6, "how many times the launcher's pod is started again after it dies, each time resuming the run")
	ttl := fs.Duration("ttl", 7*24*time.Hour, "how long a finished Job and its pod are kept")
	cpu := fs.Float64("launcher-cpu", 0.5, "the launcher pod's CPU")
	mem := fs.Int64("launcher-memory", 512, "the launcher pod's memory, MiB")
	workers := fs.Int("max-workers", 0, "tasks that may run at the same time (default the launcher's)")
	var tags []string
	deploy.TagFlag(fs, &tags)
	given := c.E.BindParams(fs)
	if code := c.E.Parse(fs, args); code >= 0 {
		return code
	}
	if code := c.E.Problems(); code != 0 {
		return code
	}
	def := c.E.Def()
	var err error
	if *schedule, *tz, err = c.Schedule(*schedule, *tz); err != nil {
		return c.Usage("%v", err)
	}
	if *schedule == "" {
		return c.Usage("give --schedule CRON (e.g. '0 3 * * *'), or declare one in the flow with g.Schedule; a CronJob runs on a schedule")
	}
	if *restarts < 0 || *ttl <= 0 || *cpu <= 0 || *mem <= 0 || *workers < 0 {
		return c.Usage("--restarts and --max-workers cannot be negative, and --ttl, --launcher-cpu and --launcher-memory must be positive")
	}
	if err := c.Settings(); err != nil {
		return c.Fail(err)
	}
	if err := deploy.CheckPlacement(def.Graph); err != nil {
		return c.Fail(err)
	}
	values := given()
	for _, p := range def.Params {
		if _, ok := values[p.Name]; p.Required && !ok {
			return c.Fail(fmt.Errorf("parameter --%s is required, and a scheduled run starts with no one to give it: give it here (cronjob create --%s VALUE) or a default in the flow", p.Name, p.Name))
		}
	}
	d := Deployment{Graph: def.Graph, Name: c.Name, Deployer: c.Cfg.User.Value, Schedule: *schedule, TimeZone: *tz,
		Restarts: int32(*restarts), TTL: *ttl, CPU: *cpu, MemoryMB: *mem, Settings: c.settingsInForce()}
	d.Args = paramArgs(values)
	for _, t := range tags {
		d.Args = append(d.Args, "--tag", t)
	}
	if *workers > 0 {
		d.Args = append(d.Args, fmt.Sprintf("--max-workers=%d", *workers))
	}
	if d.Namespace, err = c.Namespace(); err != nil {
		return c.Fail(err)
	}
	if d.Launcher, err = c.PodSettings("the launcher's pod"); err != nil {
		return c.Fail(err)
	}
	if d.Site, err = c.Site(); err != nil {
		return c.Fail(err)
	}
	if problems := kubernetes.TeamSetUp(d.Site.Datastore, d.Site.Metadata); problems != "" && !*dry {
		return c.Fail(fmt.Errorf("flow %s cannot be deployed: %s", def.Name(), problems))
	}
	if *dry {
		if _, d.Code, err = kubernetes.StaticBinary(ctx); err != nil {
			return c.Fail(err)
		}
		if d.Token = c.Authorize; d.Token == "" {
			d.Token = "TOKEN"
		}
		return c.PrintYAML(Compile(d))
	}
	api, err := kubernetes.Connect(ctx, c.InForce)
	if err != nil {
		return c.Fail(err)
	}
	old, err := c.deployed(ctx, api, d.Namespace)
	if err != nil {
		return c.Fail(err)
	}
	var deployed map[string]string
	if old != nil {
		deployed = old.Metadata.Annotations
		if deployed == nil {
			deployed = map[string]string{}
		}
	}
	if d.Token, err = c.Token(deployed, d.Deployer, "cronjob"); err != nil {
		return c.Fail(err)
	}
	if d.Code, err = c.ShipCode(ctx); err != nil {
		return c.Fail(err)
	}
	if err := api.Apply(ctx, cronJobs(d.Namespace)+"/"+url.PathEscape(d.Name), Compile(d)); err != nil {
		return c.Fail(fmt.Errorf("cannot apply the CronJob %s/%s: %w", d.Namespace, d.Name, err))
	}
	out := c.E.Stdout()
	zone := d.TimeZone
	if zone == "" {
		zone = "the cluster's time zone"
	}
	fmt.Fprintf(out, "deployed flow %s as CronJob %s/%s (code %s), on schedule %q (%s)\n", def.Name(), d.Namespace, d.Name, d.Code[:12], d.Schedule, zone)
	fmt.Fprintf(out, "its runs are in namespace %s: %s runs --namespace %s\n", deploy.Namespace(d.Token), c.E.Prog(), deploy.Namespace(d.Token))
	fmt.Fprintf(out, "start a run now with: %s cronjob trigger\n", c.E.Prog())
	return 0
}

// paramArgs are parameters as run's flags.
func paramArgs(values map[string]string) []string {
	var args []string
	for _, n := range slices.Sorted(maps.Keys(values)) {
		args = append(args, "--"+n+"="+values[n])
	}
	return args
}

func (c *cmd) trigger(ctx context.Context, args []string) int {
	fs := c.Flags("trigger")
	given := c.E.BindParams(fs)
	if code := c.E.Parse(fs, args); code >= 0 {
		return code
	}
	api, ns, cj, err := c.deployment(ctx)
	if err != nil {
		return c.Fail(err)
	}
	var made kubernetes.Job
	if err := api.Create(ctx, jobs(ns), Manual(cj, paramArgs(given())), &made); err != nil {
		return c.Fail(fmt.Errorf("cannot create a Job of CronJob %s/%s: %w", ns, c.Name, err))
	}
	fmt.Fprintf(c.E.Stdout(), "started Job %s/%s of flow %s; its run is in namespace %s\n", ns, made.Metadata.Name, c.E.Def().Name(), deploy.Namespace(cj.Metadata.Annotations[deploy.AnnotationToken]))
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
	sel := deploy.LabelFlow + "=" + c.E.Def().Name()
	var cjs struct{ Items []CronJob }
	if err := api.List(ctx, cronJobs(ns), sel, &cjs); err != nil {
		return c.Fail(fmt.Errorf("cannot list the CronJobs in namespace %s: %w", ns, err))
	}
	if len(cjs.Items) == 0 {
		fmt.Fprintf(c.E.Stderr(), "flow %s is not deployed as a CronJob in namespace %s\n", c.E.Def().Name(), ns)
		return 0
	}
	tw := tabwriter.NewWriter(c.E.Stdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DEPLOYMENT\tNAMESPACE\tDEPLOYED BY\tCODE\tSCHEDULE\tLAST SCHEDULED\tRUNS IN")
	for _, cj := range cjs.Items {
		a := cj.Metadata.Annotations
		s := cj.Spec.Schedule
		if cj.Spec.TimeZone != "" {
			s += " " + cj.Spec.TimeZone
		}
		if cj.Spec.Suspend != nil && *cj.Spec.Suspend {
			s += " (suspended)"
		}
		last := "-"
		if cj.Status != nil && cj.Status.LastScheduleTime != nil {
			last = cj.Status.LastScheduleTime.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", cj.Metadata.Name, ns, a[deploy.AnnotationBy], short(a[deploy.AnnotationCode]), s, last, deploy.Namespace(a[deploy.AnnotationToken]))
	}
	tw.Flush()
	var js struct{ Items []kubernetes.Job }
	if err := api.List(ctx, jobs(ns), sel, &js); err == nil && len(js.Items) > 0 {
		fmt.Fprintln(c.E.Stdout())
		tw = tabwriter.NewWriter(c.E.Stdout(), 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "JOB\tSTATE\tPODS FAILED\tCREATED")
		for _, j := range js.Items {
			created := "-"
			if j.Metadata.CreationTimestamp != nil {
				created = j.Metadata.CreationTimestamp.UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", j.Metadata.Name, jobState(j), j.Status.Failed, created)
		}
		tw.Flush()
	}
	return 0
}

// jobState says whether a Job runs, succeeded or failed.
func jobState(j kubernetes.Job) string {
	for _, cond := range j.Status.Conditions {
		if cond.Status == "True" && (cond.Type == "Complete" || cond.Type == "Failed") {
			if cond.Type == "Complete" {
				return "succeeded"
			}
			return "failed: " + cond.Reason
		}
	}
	if j.Status.Active > 0 {
		return "running"
	}
	return "pending"
}

func short(sum string) string {
	if len(sum) > 12 {
		return sum[:12]
	}
	return sum
}

func (c *cmd) remove(ctx context.Context, args []string) int {
	fs := c.Flags("delete")
	if code := c.E.Parse(fs, args); code >= 0 {
		return code
	}
	api, ns, cj, err := c.deployment(ctx)
	if err != nil {
		return c.Fail(err)
	}
	if _, err := c.Token(cj.Metadata.Annotations, c.Cfg.User.Value, "cronjob"); err != nil {
		return c.Fail(err)
	}
	// Its Jobs are left to finish (and to be removed by their TTL): a run
	// in progress is not cut off.
	if err := api.DeleteOrphan(ctx, cronJobs(ns)+"/"+url.PathEscape(c.Name)); err != nil && !kubernetes.IsNotFound(err) {
		return c.Fail(fmt.Errorf("cannot delete CronJob %s/%s: %w", ns, c.Name, err))
	}
	fmt.Fprintf(c.E.Stdout(), "deleted CronJob %s/%s of flow %s; a run in progress finishes; runs stay readable in namespace %s\n", ns, c.Name, c.E.Def().Name(), deploy.Namespace(cj.Metadata.Annotations[deploy.AnnotationToken]))
	return 0
}
