// Package deploy holds what the production deployments of a flow share,
// whichever scheduler runs them (Argo Workflows in deploy/argo, a
// Kubernetes CronJob in deploy/cronjob): the command's settings and
// connection to the cluster, the production token that guards a
// deployment, and the checks made before anything is applied.
package deploy

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
	"regexp"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"stepwise.dev/stepwise/internal/compute"
	"stepwise.dev/stepwise/internal/compute/kubernetes"
	"stepwise.dev/stepwise/internal/config"
	"stepwise.dev/stepwise/internal/flowcmd"
	"stepwise.dev/stepwise/internal/graph"
	"stepwise.dev/stepwise/internal/names"
)

// Labels and annotations of deployed resources.
const (
	LabelFlow       = kubernetes.LabelFlow
	LabelDeployment = "stepwise.dev/deployment"
	AnnotationToken = "stepwise.dev/production-token"
	AnnotationBy    = "stepwise.dev/deployed-by"
	AnnotationCode  = "stepwise.dev/code-sha256"
)

// Namespace is the production namespace of a token.
func Namespace(token string) string { return "production:" + token }

var nameUnsafe = regexp.MustCompile(`[^a-z0-9-]+`)

// Name is the default name of a flow's deployed resources: its name in
// lower case, as a DNS name short enough for the names derived from it.
func Name(flow string) string {
	n := strings.Trim(nameUnsafe.ReplaceAllString(strings.ToLower(flow), "-"), "-")
	if len(n) > 52 {
		n = strings.TrimRight(n[:52], "-")
	}
	return n
}

// Cmd is the state of one deployment command: the flow's program, the
// deployment's name, the token given to change someone else's, the
// Kubernetes settings given as flags and, once read, the settings in
// force.
type Cmd struct {
	E         *flowcmd.Env
	Kind      string // the command's name, e.g. argo-workflows
	Name      string
	Authorize string
	Set       map[string]string // --compute-setting
	Cfg       *config.Config
}

// NewCmd is a command of kind for the flow of e.
func NewCmd(e *flowcmd.Env, kind string) *Cmd {
	return &Cmd{E: e, Kind: kind, Set: map[string]string{}}
}

// Flags are the flags every subcommand takes: --name, --authorize and
// --compute-setting.
func (c *Cmd) Flags(sub string) *flag.FlagSet {
	fs := c.E.Flags(c.Kind + " " + sub)
	fs.StringVar(&c.Name, "name", Name(c.E.Def().Name()), "the deployment's name")
	fs.StringVar(&c.Authorize, "authorize", "", "the production token of a deployment someone else made, to change it")
	flowcmd.ComputeSettings(fs, c.Set)
	return fs
}

// Fail prints err as the command's and returns exit code 1.
func (c *Cmd) Fail(err error) int {
	fmt.Fprintf(c.E.Stderr(), "%s %s: %v\n", c.E.Prog(), c.Kind, err)
	return 1
}

// Usage prints a usage error as the command's and returns exit code 2.
func (c *Cmd) Usage(format string, args ...any) int {
	fmt.Fprintf(c.E.Stderr(), "%s %s: %s\n", c.E.Prog(), c.Kind, fmt.Sprintf(format, args...))
	return 2
}

// InForce reads a Kubernetes setting: --compute-setting, then the config
// file and the environment.
func (c *Cmd) InForce(n string) string {
	if v, ok := c.Set["kubernetes."+n]; ok {
		return v
	}
	return c.Cfg.Compute("kubernetes." + n).Value
}

// Settings reads the settings in force.
func (c *Cmd) Settings() error {
	var err error
	c.Cfg, err = c.E.Settings()
	return err
}

// Namespace is the Kubernetes namespace of the deployment: the start
// step's.
func (c *Cmd) Namespace() (string, error) {
	set, err := kubernetes.StepSettings(c.E.Def().Graph.Step("start"), c.InForce)
	return set.Namespace, err
}

// Connect reads the settings and connects to the cluster of the
// deployment's namespace.
func (c *Cmd) Connect(ctx context.Context) (*kubernetes.API, string, error) {
	if err := c.Settings(); err != nil {
		return nil, "", err
	}
	ns, err := c.Namespace()
	if err != nil {
		return nil, "", err
	}
	api, err := kubernetes.Connect(ctx, c.InForce)
	return api, ns, err
}

// Token is the production token a change of the deployment uses, given
// the annotations of the deployed resource (nil when there is none); what
// names the resource's kind for kubectl, e.g. workflowtemplate.
func (c *Cmd) Token(deployed map[string]string, user, what string) (string, error) {
	return ChooseToken(c.E.Def().Name(), c.Name, c.Authorize, user, what, deployed)
}

// ChooseToken is the production token a change of deployment name of flow
// by user uses: the deployed one when they may change it (they made it, or
// give its token as authorize), a new one (or authorize) for a first
// deployment, whose annotations deployed are nil.
func ChooseToken(flow, name, authorize, user, what string, deployed map[string]string) (string, error) {
	if deployed == nil {
		if authorize != "" {
			return authorize, nil
		}
		return newToken(flow)
	}
	tok, by := deployed[AnnotationToken], deployed[AnnotationBy]
	switch {
	case authorize == tok:
		return tok, nil
	case authorize != "":
		return "", fmt.Errorf("--authorize %q is not the production token of deployment %s (deployed by %s); ask them for it", authorize, name, by)
	case by == user:
		return tok, nil
	}
	return "", fmt.Errorf("deployment %s of flow %s was made by %s, not you (%s): changing it needs its production token; ask %s for it (it is in the deployment's annotation %s: kubectl get %s %s -o jsonpath='{.metadata.annotations.stepwise\\.dev/production-token}') and give it with --authorize TOKEN",
		name, flow, by, user, by, AnnotationToken, what, name)
}

// newToken is a new production token: the flow's name and random letters.
func newToken(flow string) (string, error) {
	b := make([]byte, 5)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return Name(flow) + "-" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b)), nil
}

// CheckPlacement refuses a graph with a step placed on this machine
// (Compute(stepwise.Local{})) or on a backend other than Kubernetes: a
// deployed flow has no machine of its own to run it on.
func CheckPlacement(g *graph.Graph) error {
	var bad []string
	for _, s := range g.Steps {
		switch s.Compute {
		case "", kubernetes.Name:
		case "local":
			bad = append(bad, fmt.Sprintf("step %s is placed on the launcher's machine (Compute(stepwise.Local{})), and a deployed flow has none: remove the placement, or place it on Kubernetes", s.Name))
		default:
			bad = append(bad, fmt.Sprintf("step %s is placed on %s, and a deployed flow's steps run on Kubernetes: place it there", s.Name, s.Compute))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("flow %s cannot be deployed: %s", g.Flow, strings.Join(bad, "; "))
	}
	return nil
}

// CheckCodeURL asks the metadata service for a URL of the code, as the
// pods will: a service that serves no code is said now, not by every pod.
func (c *Cmd) CheckCodeURL(ctx context.Context, sum string) error {
	u := strings.TrimRight(c.Cfg.Metadata.Value, "/") + kubernetes.CodeURLPath(sum)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	if t := c.Cfg.Token.Value; t != "" {
		req.Header.Set("Authorization", "Bearer "+t)
	}
	cl := &http.Client{Timeout: 15 * time.Second}
	resp, err := cl.Do(req)
	if err != nil {
		return fmt.Errorf("cannot ask the metadata service %s for the code's URL, as the pods will: %w", c.Cfg.Metadata.Value, err)
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

// ErrNotServed is returned by Read when the cluster does not serve the
// resource's kind at all (Argo's CRDs are not installed).
var ErrNotServed = errors.New("the cluster does not serve this kind of resource")

// Read reads the deployed resource at path (the collection's path and the
// name), what names it for errors ("WorkflowTemplate ml/train"); it
// returns nil when there is none.
func Read[T any](ctx context.Context, api *kubernetes.API, path, what string) (*T, error) {
	var v T
	err := api.Get(ctx, path, &v)
	switch {
	case kubernetes.IsNotFound(err):
		// A kind the cluster does not know is a 404 too: "the server could
		// not find the requested resource" when its group is served, a
		// plain "404 page not found" when not even that.
		if msg := err.Error(); strings.Contains(msg, "the server could not find the requested resource") || strings.Contains(msg, "404 page not found") {
			return nil, fmt.Errorf("%w: %s", ErrNotServed, what)
		}
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("cannot read the %s: %w", what, err)
	}
	return &v, nil
}

// Existing connects and reads, with read, the deployed resource (a what,
// e.g. CronJob), which must exist; create is the command that deploys it,
// for the error when it does not.
func Existing[T any](ctx context.Context, c *Cmd, what, create string, read func(context.Context, *kubernetes.API, string) (*T, error)) (*kubernetes.API, string, *T, error) {
	api, ns, err := c.Connect(ctx)
	if err != nil {
		return nil, "", nil, err
	}
	v, err := read(ctx, api, ns)
	if err != nil {
		return nil, "", nil, err
	}
	if v == nil {
		return nil, "", nil, fmt.Errorf("flow %s is not deployed as %s %s in namespace %s: deploy it with %s %s", c.E.Def().Name(), what, c.Name, ns, c.E.Prog(), create)
	}
	return api, ns, v, nil
}

// TagFlag binds --tag (repeatable, a user tag every run gets) to fs.
func TagFlag(fs *flag.FlagSet, tags *[]string) {
	fs.Func("tag", "add a tag to every run (repeatable)", func(t string) error {
		if err := names.UserTag(t); err != nil {
			return err
		}
		*tags = append(*tags, t)
		return nil
	})
}

// Schedule is the deployment's schedule: the one given (cron and its
// time zone), else the flow's own (g.Schedule), checked; cron is "" when
// there is neither.
func (c *Cmd) Schedule(cron, tz string) (string, string, error) {
	if cron == "" && tz != "" {
		return "", "", errors.New("--timezone goes with --schedule")
	}
	if sc := c.E.Def().Graph.Schedule; cron == "" && sc != nil {
		cron, tz = sc.Cron, sc.TimeZone
	}
	if cron != "" {
		sc := &graph.Schedule{Cron: cron, TimeZone: tz}
		if err := errors.Join(sc.Check(), sc.CheckZone()); err != nil {
			return "", "", err
		}
	}
	return cron, tz, nil
}

// ShipCode stores the flow's static binary in the datastore, and checks
// that the metadata service gives pods a URL of it; it returns its
// SHA-256.
func (c *Cmd) ShipCode(ctx context.Context) (string, error) {
	data, err := config.OpenDatastore(ctx, c.Cfg.Datastore.Value)
	if err != nil {
		return "", err
	}
	code, err := kubernetes.ShipCode(ctx, data)
	if err != nil {
		return "", err
	}
	return code.SHA256, c.CheckCodeURL(ctx, code.SHA256)
}

// Dispatch runs the subcommand args[0] of c's command; usage (with the
// program, the flow and the default deployment name as %[1]s, %[2]s,
// %[3]s) is printed for help and for an unknown subcommand.
func (c *Cmd) Dispatch(ctx context.Context, usage string, args []string, subs map[string]func(context.Context, []string) int) int {
	e := c.E
	help := func() int {
		fmt.Fprintf(e.Stderr(), usage, e.Prog(), e.Def().Name(), Name(e.Def().Name()))
		return 2
	}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		return help()
	}
	if sub, ok := subs[args[0]]; ok {
		return sub(ctx, args[1:])
	}
	fmt.Fprintf(e.Stderr(), "%s %s: unknown command %q\n\n", e.Prog(), c.Kind, args[0])
	return help()
}

// Site is where the deployment's pods find the stores, as the settings
// in force say; an error if it would write a secret into their spec.
func (c *Cmd) Site() (kubernetes.Site, error) {
	site := kubernetes.SiteFor(compute.Env{Datastore: c.Cfg.Datastore.Value, Metadata: c.Cfg.Metadata.Value}, c.InForce)
	return site, site.Check()
}

// PodSettings are the settings of the deployment's own pod (a launcher,
// a service): the start step's, which must name an image; what names the
// pod for the error.
func (c *Cmd) PodSettings(what string) (kubernetes.Settings, error) {
	set, err := kubernetes.StepSettings(c.E.Def().Graph.Step("start"), c.InForce)
	if err == nil && set.Image == "" {
		err = fmt.Errorf("%s needs an image: set one (stepwise configure --set-compute kubernetes.image=IMAGE, or --compute-setting kubernetes.image=IMAGE); any image works, the program ships itself", what)
	}
	return set, err
}

// PrintYAML writes objects as YAML documents to the command's output; it
// returns the exit code.
func (c *Cmd) PrintYAML(objs ...any) int {
	for i, obj := range objs {
		y, err := yaml.Marshal(obj)
		if err != nil {
			return c.Fail(err)
		}
		if i > 0 {
			fmt.Fprintln(c.E.Stdout(), "---")
		}
		c.E.Stdout().Write(y)
	}
	return 0
}
