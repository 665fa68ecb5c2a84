package stepwise

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"time"

	"stepwise.dev/stepwise/internal/flowdef"
	"stepwise.dev/stepwise/internal/graph"
	"stepwise.dev/stepwise/internal/names"
	"stepwise.dev/stepwise/internal/params"
)

// Flow is a workflow: a struct whose exported fields are its artifacts and
// whose methods are its steps. Graph declares the steps and how they follow
// each other; it is called before any step runs, and must only declare.
type Flow interface {
	Graph(g *Graph)
}

// Graph collects the declaration of a flow's steps. It is passed to
// Flow.Graph.
type Graph struct {
	flow     reflect.Value // pointer to the flow the declaration was made on
	name     string
	schedule *graph.Schedule
	triggers []string
	decls    []*StepDecl
	errs     []error
}

// StepDecl is the declaration of one step, returned by Graph.Step so that
// its transition and settings can be chained.
type StepDecl struct {
	g      *Graph
	step   graph.Step
	method reflect.Method
	ok     bool
}

// Resources are what one task of a step needs. The local scheduler never
// runs tasks whose cpu, memory or GPUs add up past the machine's, and
// refuses before the run a step that needs more than the machine has.
type Resources struct {
	CPU      float64 // cores, may be fractional
	MemoryMB int64   // mebibytes
	GPU      int
	DiskMB   int64 // ephemeral disk, mebibytes (on a cluster)
}

// Compute is where a step's tasks run: Local, or a cluster backend.
type Compute interface {
	// computeBackend names the backend and encodes its settings.
	computeBackend() (name string, settings any)
}

// Local runs a step's tasks as processes on the launcher's machine (the
// default for every step).
type Local struct{}

func (Local) computeBackend() (string, any) { return "local", nil }

// Name sets the flow's name (by default the Go type's name).
func (g *Graph) Name(name string) { g.name = name }

// Schedule declares when the flow runs once it is deployed to production
// (FLOW argo-workflows create): a cron schedule of five fields ("0 3 * * *"
// is 03:00 every day) in a time zone ("" for UTC, or a name such as
// "Europe/Amsterdam"). A schedule given at deployment wins over it.
func (g *Graph) Schedule(cron, timezone string) {
	g.schedule = &graph.Schedule{Cron: cron, TimeZone: timezone}
}

// TriggerOnFinish declares that, once deployed to production, the flow
// runs whenever a production run of one of the upstream flows succeeds
// (a flow deployed in the same Kubernetes namespace). A step finds the
// run that started its run with CurrentTask(ctx).Trigger.
func (g *Graph) TriggerOnFinish(upstream ...string) {
	g.triggers = append(g.triggers, upstream...)
}

// Step declares a step. fn is a method of the flow, given as a method value
// (f.Train) so that the compiler checks it exists. The step's name is the
// method's name in snake_case: Start is "start", TrainModel is "train_model".
// A step method has one of these forms:
//
//	func (f *MyFlow) Train(ctx context.Context) error                        // any step
//	func (f *MyFlow) Square(ctx context.Context, item int) error             // first step of a foreach body
//	func (f *MyFlow) Join(ctx context.Context, in stepwise.Inputs[*MyFlow]) error // a join
func (g *Graph) Step(fn any) *StepDecl {
	d := &StepDecl{g: g}
	m, err := g.method(fn)
	if err != nil {
		g.errs = append(g.errs, err)
		d.step.Name = fmt.Sprintf("?%d", len(g.decls))
		g.decls = append(g.decls, d)
		return d
	}
	d.method, d.ok = m, true
	d.step.Method = m.Name
	d.step.Name = graph.SnakeCase(m.Name)
	if err := d.classify(); err != nil {
		g.errs = append(g.errs, err)
		d.ok = false
	}
	g.decls = append(g.decls, d)
	return d
}

// Next declares the steps that follow: one for a linear transition, several
// for a branch whose steps run in parallel.
func (d *StepDecl) Next(steps ...any) *StepDecl {
	for _, fn := range steps {
		d.step.Next = append(d.step.Next, d.g.target(d, fn))
	}
	return d
}

// Foreach declares a fan-out: one task of step body per element of the
// slice artifact named field (an exported field of the flow).
func (d *StepDecl) Foreach(field string, body any) *StepDecl {
	d.step.Foreach = field
	d.step.Next = append(d.step.Next, d.g.target(d, body))
	ft, ok := d.g.flow.Elem().Type().FieldByName(field)
	switch {
	case !ok || !ft.IsExported():
		d.g.errs = append(d.g.errs, &graph.Error{Step: d.step.Name, Msg: fmt.Sprintf("foreach over %q, which is not an exported field of %s", field, d.g.flow.Type().Elem().Name())})
	case ft.Type.Kind() != reflect.Slice && ft.Type.Kind() != reflect.Array:
		d.g.errs = append(d.g.errs, &graph.Error{Step: d.step.Name, Msg: fmt.Sprintf("foreach over %s, which is a %s; a foreach needs a slice or array", field, ft.Type)})
	}
	return d
}

// Resources declares what each task of the step needs.
func (d *StepDecl) Resources(r Resources) *StepDecl {
	d.step.Resources = graph.Resources{CPU: r.CPU, MemoryMB: r.MemoryMB, GPU: r.GPU, DiskMB: r.DiskMB}
	return d
}

// Retry lets a failed task run again, up to n more attempts, with backoff.
func (d *StepDecl) Retry(n int) *StepDecl {
	d.step.Retries = n
	return d
}

// Timeout kills an attempt of the step that runs longer than limit.
func (d *StepDecl) Timeout(limit time.Duration) *StepDecl {
	d.step.Timeout = graph.Duration(limit)
	return d
}

// Compute places the step's tasks on a compute backend; by default they
// run locally. A run's --compute flag overrides it for every step, so that
// a flow can always run on a laptop with --compute local.
func (d *StepDecl) Compute(c Compute) *StepDecl {
	name, settings := c.computeBackend()
	d.step.Compute = name
	d.step.ComputeSettings = nil
	if settings != nil {
		data, err := json.Marshal(settings)
		if err != nil {
			d.g.errs = append(d.g.errs, &graph.Error{Step: d.step.Name, Msg: fmt.Sprintf("compute settings for %s cannot be encoded: %v", name, err)})
		}
		d.step.ComputeSettings = data
	}
	return d
}

// Catch lets the flow go on when the step fails for good (after its
// retries): the error message is stored in field, an exported string field
// of the flow, and the task counts as done with the artifacts it received.
// Steps after it can look at field to see what went wrong.
func (d *StepDecl) Catch(field string) *StepDecl {
	d.step.Catch = field
	ft, ok := d.g.flow.Type().Elem().FieldByName(field)
	if !ok || !ft.IsExported() || ft.Type.Kind() != reflect.String {
		d.g.errs = append(d.g.errs, &graph.Error{Step: d.step.Name, Msg: fmt.Sprintf("catch into %q, which is not an exported string field of %s", field, d.g.flow.Type().Elem().Name())})
	}
	return d
}

func (g *Graph) target(d *StepDecl, fn any) string {
	m, err := g.method(fn)
	if err != nil {
		g.errs = append(g.errs, &graph.Error{Step: d.step.Name, Msg: "transition: " + err.Error()})
		return "?"
	}
	return graph.SnakeCase(m.Name)
}

var (
	ctxType   = reflect.TypeFor[context.Context]()
	errorType = reflect.TypeFor[error]()
)

// method finds which method of the flow fn is. A method value's function
// name, kept in every Go binary, is "pkg.(*Type).Method-fm" (or
// "pkg.Type.Method-fm" for a value receiver), where Type is the flow's type
// or, for a promoted method, the type of a struct the flow embeds.
func (g *Graph) method(fn any) (reflect.Method, error) {
	v := reflect.ValueOf(fn)
	if v.Kind() != reflect.Func {
		return reflect.Method{}, fmt.Errorf("got %T; pass a method of the flow, like f.Train", fn)
	}
	name := runtime.FuncForPC(v.Pointer()).Name()
	full, isMethodValue := strings.CutSuffix(name, "-fm")
	base := full
	if i := strings.LastIndexByte(full, '.'); i >= 0 {
		base = full[i+1:]
	}
	t := g.flow.Type()
	m, ok := t.MethodByName(base)
	if !isMethodValue || !ok || !g.receiverOf(full) {
		return reflect.Method{}, fmt.Errorf("%s is not a method of %s; steps are methods of the flow, passed as f.Method", name, t)
	}
	return m, nil
}

// receiverOf reports whether the method value named full ("pkg.(*T).M")
// has the flow's type, or a type the flow embeds, as its receiver.
func (g *Graph) receiverOf(full string) bool {
	names := []string{g.flow.Type().Elem().Name()}
	for _, f := range reflect.VisibleFields(g.flow.Type().Elem()) {
		if f.Anonymous {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			names = append(names, ft.Name())
		}
	}
	for _, n := range names {
		if n != "" && (strings.Contains(full, "(*"+n+").") || strings.Contains(full, "."+n+".")) {
			return true
		}
	}
	return false
}

// classify reads the step's kind from its method's signature.
func (d *StepDecl) classify() error {
	t := d.method.Type // includes the receiver
	bad := func() error {
		sig := flowdef.Signature(t)
		return &graph.Error{Step: d.step.Name, Msg: fmt.Sprintf("method %s has signature %s; a step is func(ctx context.Context) error, func(ctx context.Context, item T) error after a foreach, or func(ctx context.Context, in stepwise.Inputs[*%s]) error for a join",
			d.method.Name, sig, d.g.flow.Type().Elem().Name())}
	}
	if t.NumOut() != 1 || t.Out(0) != errorType || t.NumIn() < 2 || t.NumIn() > 3 || t.In(1) != ctxType {
		return bad()
	}
	if t.NumIn() == 3 {
		p := t.In(2)
		if p.Implements(inputsMarker) {
			if elem := reflect.Zero(p).Interface().(inputsType).elemType(); elem != d.g.flow.Type() {
				return &graph.Error{Step: d.step.Name, Msg: fmt.Sprintf("join takes %s; it must take stepwise.Inputs[%s]", p, d.g.flow.Type())}
			}
			d.step.Join = true
		} else {
			d.step.Item = p.String()
		}
	}
	return nil
}

// build turns the declaration into a checked graph.
func (g *Graph) build() (*graph.Graph, error) {
	steps := make([]*graph.Step, len(g.decls))
	for i, d := range g.decls {
		s := d.step
		// Transitions that could not be resolved were reported already.
		s.Next = slices.DeleteFunc(slices.Clone(s.Next), func(n string) bool { return n == "?" })
		steps[i] = &s
	}
	name := g.name
	if name == "" {
		name = g.flow.Type().Elem().Name()
	}
	gr, err := graph.New(name, steps)
	var errs graph.Errors
	if g.schedule != nil {
		if serr := g.schedule.Check(); serr != nil {
			errs = append(errs, &graph.Error{Msg: serr.Error()})
		}
		if gr != nil {
			gr.Schedule = g.schedule
		}
	}
	if nerr := names.Flow(name); nerr != nil {
		errs = append(errs, &graph.Error{Msg: nerr.Error() + " (set it with g.Name)"})
	}
	for _, up := range g.triggers {
		if nerr := names.Flow(up); nerr != nil {
			errs = append(errs, &graph.Error{Msg: fmt.Sprintf("TriggerOnFinish(%q): %v", up, nerr)})
		} else if up == name {
			errs = append(errs, &graph.Error{Msg: fmt.Sprintf("TriggerOnFinish(%q): a flow cannot be triggered by its own runs, which would start it again forever", up)})
		}
	}
	if gr != nil {
		gr.Triggers = g.triggers
	}
	for _, e := range g.errs {
		if ge, ok := e.(*graph.Error); ok {
			errs = append(errs, ge)
		} else {
			errs = append(errs, &graph.Error{Msg: e.Error()})
		}
	}
	if err != nil {
		errs = append(errs, err.(graph.Errors)...)
	}
	if len(errs) == 0 {
		errs = append(errs, g.checkItems(gr)...)
	}
	if len(errs) > 0 {
		return gr, errs
	}
	return gr, nil
}

// checkItems checks that a step taking a foreach element takes the element
// type of the slice its parent fans out over.
func (g *Graph) checkItems(gr *graph.Graph) graph.Errors {
	var errs graph.Errors
	ft := g.flow.Type().Elem()
	for _, d := range g.decls {
		s := gr.Step(d.step.Name)
		if s.Item == "" || len(s.Parents) != 1 {
			continue
		}
		p := gr.Step(s.Parents[0])
		f, _ := ft.FieldByName(p.Foreach)
		if want := d.method.Type.In(2); f.Type.Elem() != want {
			errs = append(errs, &graph.Error{Step: s.Name, Msg: fmt.Sprintf("takes an item of type %s, but %s fans out over %s (%s); take a %s", want, p.Name, p.Foreach, f.Type, f.Type.Elem())})
		}
	}
	return errs
}

// declare calls the flow's Graph method on a fresh value of its type and
// describes the flow for the machinery.
func declare(f Flow) (*flowdef.Def, error) {
	t := reflect.TypeOf(f)
	if f == nil || t.Kind() != reflect.Pointer || t.Elem().Kind() != reflect.Struct || reflect.ValueOf(f).IsNil() {
		return nil, fmt.Errorf("stepwise: a flow is a non-nil pointer to a struct, got %T; pass &MyFlow{}", f)
	}
	g := &Graph{flow: reflect.New(t.Elem())}
	g.flow.Interface().(Flow).Graph(g)
	gr, gerr := g.build()
	def := &flowdef.Def{Graph: gr, GraphErr: gerr, Type: t, Defaults: reflect.ValueOf(f), Steps: map[string]flowdef.Step{}, WithTask: withTask}
	def.Params, def.ParamsErr = params.List(t.Elem())
	for _, d := range g.decls {
		if !d.ok {
			continue
		}
		st := flowdef.Step{Func: d.method.Func}
		if d.step.Join {
			in := reflect.Zero(d.method.Type.In(2)).Interface().(inputsType)
			st.Inputs = in.build
		}
		def.Steps[d.step.Name] = st
	}
	return def, nil
}

func init() {
	flowdef.BuildInputs = func(t reflect.Type, items []reflect.Value, steps []string) (reflect.Value, error) {
		in, ok := reflect.Zero(t).Interface().(inputsType)
		if !ok {
			return reflect.Value{}, fmt.Errorf("stepwise: %s is not stepwise.Inputs", t)
		}
		return in.build(items, steps, nil), nil
	}
	flowdef.Describe = func(f any) (*flowdef.Def, error) {
		fl, ok := f.(Flow)
		if !ok {
			return nil, fmt.Errorf("stepwise: %T is not a flow: it has no Graph(*stepwise.Graph) method", f)
		}
		return declare(fl)
	}
}
