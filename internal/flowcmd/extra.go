package flowcmd

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"stepwise.dev/stepwise/internal/config"
	"stepwise.dev/stepwise/internal/flowdef"
	"stepwise.dev/stepwise/internal/params"
)

// Extra is a command that a backend adds to flow programs when it is
// imported (argo-workflows, with the Kubernetes backend), so that flows
// that do not use it do not carry its code.
type Extra struct {
	Name  string
	Usage string // one line for the program's usage
	Run   func(ctx context.Context, e *Env, args []string) int
}

var (
	extrasMu sync.Mutex
	extras   = map[string]Extra{}
)

// Register adds a command to every flow program of this binary.
func Register(x Extra) {
	extrasMu.Lock()
	defer extrasMu.Unlock()
	extras[x.Name] = x
}

func extra(name string) (Extra, bool) {
	extrasMu.Lock()
	defer extrasMu.Unlock()
	x, ok := extras[name]
	return x, ok
}

func extraUsage() string {
	extrasMu.Lock()
	defer extrasMu.Unlock()
	if len(extras) == 0 {
		return ""
	}
	var lines []string
	for _, x := range extras {
		lines = append(lines, "  "+x.Usage)
	}
	sort.Strings(lines)
	return "\nCommands added by imported backends:\n" + strings.Join(lines, "\n") + "\n"
}

// knownExtras name the import that adds a command, for a program that
// lacks it.
var knownExtras = map[string]string{
	"argo-workflows": "stepwise.dev/stepwise/backend/kubernetes",
	"cronjob":        "stepwise.dev/stepwise/backend/kubernetes",
}

// SuccessHook runs in finish-run, after a run of a scheduler succeeded,
// when finish-run is given --on-success with its name (argo-trigger, which
// starts the deployed flows triggered by this one).
type SuccessHook func(ctx context.Context, e *Env, runID string) error

var (
	hooksMu sync.Mutex
	hooks   = map[string]SuccessHook{}
)

// RegisterSuccessHook adds a hook that finish-run --on-success NAME runs.
func RegisterSuccessHook(name string, h SuccessHook) {
	hooksMu.Lock()
	defer hooksMu.Unlock()
	hooks[name] = h
}

func successHook(name string) (SuccessHook, bool) {
	hooksMu.Lock()
	defer hooksMu.Unlock()
	h, ok := hooks[name]
	return h, ok
}

// Env is what an extra command sees of the flow program.
type Env struct{ p *program }

// Def is the flow.
func (e *Env) Def() *flowdef.Def { return e.p.def }

// Prog is the program's name.
func (e *Env) Prog() string { return e.p.prog }

// Stdout is the command's output.
func (e *Env) Stdout() io.Writer { return e.p.stdout }

// Stderr is where errors go.
func (e *Env) Stderr() io.Writer { return e.p.stderr }

// Flags makes a flag set with --datastore and --metadata.
func (e *Env) Flags(name string) *flag.FlagSet { return e.p.flags(name) }

// Parse parses flags; it returns an exit code, or -1 to go on.
func (e *Env) Parse(fs *flag.FlagSet, args []string) int { return e.p.parse(fs, args) }

// Problems prints why the flow cannot run: 1, or 0 when it can.
func (e *Env) Problems() int { return e.p.problems() }

// Settings are the settings in force with the command's flags.
func (e *Env) Settings() (*config.Config, error) { return e.p.settings() }

// BindParams binds the flow's parameters to fs; after parsing, given
// returns the values of those given on the command line, in the run
// record's form.
func (e *Env) BindParams(fs *flag.FlagSet) (given func() map[string]string) {
	flow := e.p.def.New()
	vals := params.Bind(fs, e.p.def.Params, flow)
	return func() map[string]string {
		out := map[string]string{}
		all := params.Values(e.p.def.Params, flow)
		for name, v := range vals {
			if v.Given {
				out[name] = all[name]
			}
		}
		return out
	}
}

// ComputeSettings binds --compute-setting BACKEND.NAME=VALUE (repeatable)
// into m.
func ComputeSettings(fs *flag.FlagSet, m map[string]string) {
	fs.Func("compute-setting", "a compute backend's setting, BACKEND.NAME=VALUE, e.g. kubernetes.namespace=ml (repeatable; over the config file and the environment, under the graph's)", func(kv string) error {
		k, v, ok := strings.Cut(kv, "=")
		backend, name, dotted := strings.Cut(k, ".")
		if !ok || !dotted || backend == "" || name == "" {
			return fmt.Errorf("write BACKEND.NAME=VALUE, e.g. kubernetes.namespace=ml; got %q", kv)
		}
		m[k] = v
		return nil
	})
}

// NewEnv is the Env of flow def for a command that a program built on a
// flow adds of its own (a service's serve deploy), writing to stdout and
// stderr.
func NewEnv(def *flowdef.Def, stdout, stderr io.Writer) *Env {
	return &Env{p: &program{def: def, stdout: stdout, stderr: stderr, prog: filepath.Base(os.Args[0])}}
}
