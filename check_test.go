package stepwise_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"stepwise.dev/stepwise"
	"stepwise.dev/stepwise/steptest"
)

type none = context.Context

// Cycle: a -> b -> a.
type Cycle struct{}

func (f *Cycle) Graph(g *stepwise.Graph) {
	g.Step(f.Start).Next(f.A)
	g.Step(f.A).Next(f.B)
	g.Step(f.B).Next(f.A)
	g.Step(f.End)
}
func (f *Cycle) Start(none) error { return nil }
func (f *Cycle) A(none) error     { return nil }
func (f *Cycle) B(none) error     { return nil }
func (f *Cycle) End(none) error   { return nil }

// Unreachable: orphan is declared but nothing goes to it.
type Unreachable struct{}

func (f *Unreachable) Graph(g *stepwise.Graph) {
	g.Step(f.Start).Next(f.End)
	g.Step(f.Orphan).Next(f.End)
	g.Step(f.End)
}
func (f *Unreachable) Start(none) error  { return nil }
func (f *Unreachable) Orphan(none) error { return nil }
func (f *Unreachable) End(none) error    { return nil }

// UnclosedForeach: the foreach body goes straight to end.
type UnclosedForeach struct{ Items []int }

func (f *UnclosedForeach) Graph(g *stepwise.Graph) {
	g.Step(f.Start).Foreach("Items", f.Body)
	g.Step(f.Body).Next(f.End)
	g.Step(f.End)
}
func (f *UnclosedForeach) Start(none) error         { return nil }
func (f *UnclosedForeach) Body(_ none, _ int) error { return nil }
func (f *UnclosedForeach) End(none) error           { return nil }

// UnclosedBranch: both branches go to an ordinary step.
type UnclosedBranch struct{}

func (f *UnclosedBranch) Graph(g *stepwise.Graph) {
	g.Step(f.Start).Next(f.A, f.B)
	g.Step(f.A).Next(f.End)
	g.Step(f.B).Next(f.End)
	g.Step(f.End)
}
func (f *UnclosedBranch) Start(none) error { return nil }
func (f *UnclosedBranch) A(none) error     { return nil }
func (f *UnclosedBranch) B(none) error     { return nil }
func (f *UnclosedBranch) End(none) error   { return nil }

// WrongArity: start branches three ways, the join gets two.
type WrongArity struct{}

func (f *WrongArity) Graph(g *stepwise.Graph) {
	g.Step(f.Start).Next(f.A, f.B, f.C)
	g.Step(f.A).Next(f.Join)
	g.Step(f.B).Next(f.Join)
	g.Step(f.C).Next(f.Join2)
	g.Step(f.Join).Next(f.Join2)
	g.Step(f.Join2).Next(f.End)
	g.Step(f.End)
}
func (f *WrongArity) Start(none) error                                   { return nil }
func (f *WrongArity) A(none) error                                       { return nil }
func (f *WrongArity) B(none) error                                       { return nil }
func (f *WrongArity) C(none) error                                       { return nil }
func (f *WrongArity) Join(_ none, _ stepwise.Inputs[*WrongArity]) error  { return nil }
func (f *WrongArity) Join2(_ none, _ stepwise.Inputs[*WrongArity]) error { return nil }
func (f *WrongArity) End(none) error                                     { return nil }

// NotInGraph: start goes to a method that was never declared as a step.
type NotInGraph struct{}

func (f *NotInGraph) Graph(g *stepwise.Graph) {
	g.Step(f.Start).Next(f.Helper)
	g.Step(f.End)
}
func (f *NotInGraph) Start(none) error  { return nil }
func (f *NotInGraph) Helper(none) error { return nil }
func (f *NotInGraph) End(none) error    { return nil }

// JoinWithoutSplit: a join that closes nothing.
type JoinWithoutSplit struct{}

func (f *JoinWithoutSplit) Graph(g *stepwise.Graph) {
	g.Step(f.Start).Next(f.Join)
	g.Step(f.Join).Next(f.End)
	g.Step(f.End)
}
func (f *JoinWithoutSplit) Start(none) error                                        { return nil }
func (f *JoinWithoutSplit) Join(_ none, _ stepwise.Inputs[*JoinWithoutSplit]) error { return nil }
func (f *JoinWithoutSplit) End(none) error                                          { return nil }

// BadSignature: a step that takes no context.
type BadSignature struct{}

func (f *BadSignature) Graph(g *stepwise.Graph) {
	g.Step(f.Start).Next(f.End)
	g.Step(f.End)
}
func (f *BadSignature) Start() error   { return nil }
func (f *BadSignature) End(none) error { return nil }

// ForeachNotSlice: a foreach over a number.
type ForeachNotSlice struct{ N int }

func (f *ForeachNotSlice) Graph(g *stepwise.Graph) {
	g.Step(f.Start).Foreach("N", f.Body)
	g.Step(f.Body).Next(f.Join)
	g.Step(f.Join).Next(f.End)
	g.Step(f.End)
}
func (f *ForeachNotSlice) Start(none) error                                       { return nil }
func (f *ForeachNotSlice) Body(none) error                                        { return nil }
func (f *ForeachNotSlice) Join(_ none, _ stepwise.Inputs[*ForeachNotSlice]) error { return nil }
func (f *ForeachNotSlice) End(none) error                                         { return nil }

// WrongItem: the body takes a string, the foreach is over ints.
type WrongItem struct{ Items []int }

func (f *WrongItem) Graph(g *stepwise.Graph) {
	g.Step(f.Start).Foreach("Items", f.Body)
	g.Step(f.Body).Next(f.Join)
	g.Step(f.Join).Next(f.End)
	g.Step(f.End)
}
func (f *WrongItem) Start(none) error                                 { return nil }
func (f *WrongItem) Body(_ none, _ string) error                      { return nil }
func (f *WrongItem) Join(_ none, _ stepwise.Inputs[*WrongItem]) error { return nil }
func (f *WrongItem) End(none) error                                   { return nil }

// NoEnd: the last step is not called End.
type NoEnd struct{}

func (f *NoEnd) Graph(g *stepwise.Graph) {
	g.Step(f.Start).Next(f.Finish)
	g.Step(f.Finish)
}
func (f *NoEnd) Start(none) error  { return nil }
func (f *NoEnd) Finish(none) error { return nil }

// NotAMethod: a plain function given as a step.
type NotAMethod struct{}

func plain(context.Context) error { return nil }

func (f *NotAMethod) Graph(g *stepwise.Graph) {
	g.Step(f.Start).Next(plain)
	g.Step(f.End)
}
func (f *NotAMethod) Start(none) error { return nil }
func (f *NotAMethod) End(none) error   { return nil }

// TwoParents: an ordinary step reached from two branches.
type TwoParents struct{}

func (f *TwoParents) Graph(g *stepwise.Graph) {
	g.Step(f.Start).Next(f.A, f.B)
	g.Step(f.A).Next(f.Mid)
	g.Step(f.B).Next(f.Mid)
	g.Step(f.Mid).Next(f.End)
	g.Step(f.End)
}
func (f *TwoParents) Start(none) error { return nil }
func (f *TwoParents) A(none) error     { return nil }
func (f *TwoParents) B(none) error     { return nil }
func (f *TwoParents) Mid(none) error   { return nil }
func (f *TwoParents) End(none) error   { return nil }

// BadName names itself with a space.
type BadName struct{}

func (f *BadName) Graph(g *stepwise.Graph) {
	g.Name("my flow")
	g.Step(f.Start).Next(f.End)
	g.Step(f.End)
}
func (f *BadName) Start(none) error { return nil }
func (f *BadName) End(none) error   { return nil }

func TestCheckRejectsBrokenFlows(t *testing.T) {
	tests := []struct {
		name string
		flow stepwise.Flow
		want []string // each must appear in the output
	}{
		{"cycle", &Cycle{}, []string{"step a: is part of a cycle (a -> b -> a)"}},
		{"unreachable", &Unreachable{}, []string{"step orphan: is not reachable from start"}},
		{"unclosed foreach", &UnclosedForeach{}, []string{"step end: is reached while the foreach of start is still open"}},
		{"unclosed branch", &UnclosedBranch{}, []string{"step end: has 2 parents (a, b) but takes no inputs"}},
		{"wrong join arity", &WrongArity{}, []string{"step join: join expects 3 input(s), one per branch (the 3 branches of start), but 2 step(s) go to it (a, b)"}},
		{"transition not in graph", &NotInGraph{}, []string{`step start: transition to "helper", which is not a step of the graph`}},
		{"join without split", &JoinWithoutSplit{}, []string{"step join: takes inputs but closes no branch or foreach"}},
		{"bad signature", &BadSignature{}, []string{"step start: method Start has signature func() error"}},
		{"foreach over non-slice", &ForeachNotSlice{}, []string{"step start: foreach over N, which is a int"}},
		{"wrong item type", &WrongItem{}, []string{"step body: takes an item of type string, but start fans out over Items ([]int); take a int"}},
		{"no end", &NoEnd{}, []string{"the flow has no end step"}},
		{"not a method", &NotAMethod{}, []string{"step start: transition: stepwise.dev/stepwise_test.plain is not a method of *stepwise_test.NotAMethod; steps are methods of the flow, passed as f.Method"}},
		{"ordinary step with two parents", &TwoParents{}, []string{"step mid: has 2 parents (a, b) but takes no inputs; make it a join"}},
		{"flow name the CLI cannot address", &BadName{}, []string{"flow name", "(set it with g.Name)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := steptest.Command(context.Background(), tt.flow, []string{"check"}, &out, &errOut)
			if code != 1 {
				t.Fatalf("check exited %d, want 1; stderr:\n%s", code, errOut.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(errOut.String(), w) {
					t.Errorf("check output lacks %q; got:\n%s", w, errOut.String())
				}
			}
		})
	}
}
