// Package stepwise runs machine-learning and data workflows written as
// ordinary Go types.
//
// # Flows
//
// A flow is a struct. Its exported fields are its artifacts: after every
// step they are stored, content-addressed, so any run can be inspected and
// resumed. Its methods are its steps, and its Graph method declares how they
// follow each other:
//
//	type BranchJoin struct {
//		X   int
//		Out int
//	}
//
//	func (f *BranchJoin) Graph(g *stepwise.Graph) {
//		g.Step(f.Start).Next(f.A, f.B) // a branch: a and b run in parallel
//		g.Step(f.A).Next(f.Join)
//		g.Step(f.B).Next(f.Join)
//		g.Step(f.Join).Next(f.End)
//		g.Step(f.End)
//	}
//
//	func (f *BranchJoin) Start(context.Context) error { f.X = 0; return nil }
//	func (f *BranchJoin) A(context.Context) error     { f.X += 2; return nil }
//	func (f *BranchJoin) B(context.Context) error     { f.X += 3; return nil }
//	func (f *BranchJoin) Join(_ context.Context, in stepwise.Inputs[*BranchJoin]) error {
//		for _, i := range in.All() {
//			f.Out = max(f.Out, i.X)
//		}
//		return nil
//	}
//	func (f *BranchJoin) End(context.Context) error { fmt.Println(f.Out); return nil }
//
//	func main() { stepwise.Main(&BranchJoin{}) }
//
// with the local metadata store imported:
//
//	import _ "stepwise.dev/stepwise/backend/sqlite"
//
// # Transitions
//
// Next with one step is a linear transition, with several a branch.
// Foreach fans out over a slice field, one task per element; the first
// step of the body may take the element as its second parameter. A join
// takes Inputs: one flow value per parent task. Foreach nests. The graph is
// checked before anything runs (see the check command), and every problem
// names its step.
//
// # Parameters, resources and failure policies
//
// A field with a `param` tag is a command-line flag of run; the value in the
// flow given to Main is its default. Resources, Retry, Timeout and Catch are
// declared with the step.
//
// # Running
//
// Main gives the program the commands run, resume, show and check. Every
// task runs as its own process of the same binary, so a task can run on
// another machine unchanged. Run and Resume do the same from Go code, for
// tests (see package steptest) and other programs; package client reads
// runs and artifacts.
//
// # Serving results
//
// A Service is a type whose methods are HTTP endpoints answering from the
// artifacts of a flow's latest successful run; Serve gives its program the
// commands serve and show, and the flow's own. The service follows new
// runs: when a newer one succeeds it is loaded and swapped in atomically,
// and a run that cannot be loaded leaves the one served in place.
package stepwise
