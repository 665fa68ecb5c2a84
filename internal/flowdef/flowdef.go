// Package flowdef is a flow as the machinery sees it: its checked graph,
// its Go type, the method behind each step, its parameters, and the few
// hooks into the public package that only it can provide (building a
// join's Inputs, putting the current task into a step's context). Package
// stepwise builds a Def from the user's flow; the executor, the launcher
// and the command line work from the Def alone.
package flowdef

import (
	"context"
	"fmt"
	"reflect"
	"strings"

	"stepwise.dev/stepwise/internal/card"
	"stepwise.dev/stepwise/internal/graph"
	"stepwise.dev/stepwise/internal/params"
)

// Def is a declared flow.
type Def struct {
	// Graph is the flow's graph; with GraphErr set it is what could be
	// built (for show), not a graph to run.
	Graph    *graph.Graph
	GraphErr error
	// Type is the flow's pointer type (*MyFlow); Defaults is the value
	// given to Main (or Run), whose fields are the parameters' defaults.
	Type     reflect.Type
	Defaults reflect.Value
	// Params are the flow's parameters; ParamsErr is set when a field is
	// tagged as one but cannot be.
	Params    []params.Param
	ParamsErr error
	// Steps are the methods behind the steps, by step name.
	Steps map[string]Step
	// WithTask returns ctx carrying the task a step runs as, for
	// stepwise.CurrentTask.
	WithTask func(ctx context.Context, t Task) context.Context
}

// Step is the code of one step.
type Step struct {
	// Func is the method as a function taking the receiver first.
	Func reflect.Value
	// Inputs builds the Inputs value a join receives, from one flow value
	// per parent task, the parent's step name and its artifacts' content
	// keys. Nil for a step that is not a join.
	Inputs func(items []reflect.Value, steps []string, keys []map[string]string) reflect.Value
}

// Task is the task a step runs as.
type Task struct {
	Flow, RunID, Step, ID string
	Attempt               int
	Indexes               []int  // foreach indexes, outermost first
	Trigger               string // FLOW/RUN whose success started the run, or ""
	Datastore             string // the run's datastore: s3://bucket/prefix or a directory
	// Cards are the cards of the attempt, for stepwise.CardOf; nil when
	// the step is not run by the executor.
	Cards *card.Set
}

// Name is the flow's name.
func (d *Def) Name() string { return d.Graph.Flow }

// Problems is every reason the flow cannot run: the graph's problems and
// the parameters'.
func (d *Def) Problems() error {
	if d.GraphErr != nil {
		return d.GraphErr
	}
	if d.ParamsErr != nil {
		return fmt.Errorf("flow %s: %w", d.Name(), d.ParamsErr)
	}
	return nil
}

// New returns a fresh flow value (a pointer) holding the defaults.
func (d *Def) New() reflect.Value {
	v := reflect.New(d.Type.Elem())
	v.Elem().Set(d.Defaults.Elem())
	return v
}

// Param finds a parameter by its flag name.
func (d *Def) Param(name string) (params.Param, bool) {
	for _, p := range d.Params {
		if p.Name == name {
			return p, true
		}
	}
	return params.Param{}, false
}

// ParamNames lists the flags of the parameters, for messages.
func (d *Def) ParamNames() string {
	var names []string
	for _, p := range d.Params {
		names = append(names, "--"+p.Name)
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// StepNames lists the steps, for messages.
func StepNames(g *graph.Graph) string {
	var names []string
	for _, s := range g.Steps {
		names = append(names, s.Name)
	}
	return strings.Join(names, ", ")
}

// BuildInputs builds a value of an Inputs type (stepwise.Inputs[T]) from
// one value per parent task and the parents' step names; package stepwise
// sets it, for steptest.
var BuildInputs func(inputs reflect.Type, items []reflect.Value, steps []string) (reflect.Value, error)

// Describe builds the Def of a flow value; package stepwise sets it, so
// that packages which cannot import stepwise (steptest's helpers) can
// describe a flow.
var Describe func(flow any) (*Def, error)

// Signature prints the type of a method taken from its type (with the
// receiver first, as reflect.Method.Type has it) without the receiver, as
// it is written in Go: "func(context.Context, int) error".
func Signature(t reflect.Type) string {
	var in, out []string
	for i := 1; i < t.NumIn(); i++ {
		in = append(in, t.In(i).String())
	}
	for i := range t.NumOut() {
		out = append(out, t.Out(i).String())
	}
	s := "func(" + strings.Join(in, ", ") + ")"
	switch len(out) {
	case 0:
	case 1:
		s += " " + out[0]
	default:
		s += " (" + strings.Join(out, ", ") + ")"
	}
	return s
}
