// Package steptest lets flows be tested with go test: the launcher starts
// each task as a new process of the current binary, and Main makes a test
// binary serve those tasks.
//
//	func TestMain(m *testing.M) { steptest.Main(m, &MyFlow{}) }
package steptest

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"reflect"
	"runtime/debug"
	"slices"
	"syscall"
	"testing"

	"stepwise.dev/stepwise"
	"stepwise.dev/stepwise/internal/flowcmd"
	"stepwise.dev/stepwise/internal/flowdef"
	"stepwise.dev/stepwise/internal/hosting"
)

// Main runs the tests in m, unless this process was started to drive or
// run a task of one of flows (the task, create-run and finish-run commands
// with --flow NAME): then it runs that command and exits.
func Main(m *testing.M, flows ...stepwise.Flow) {
	if len(os.Args) > 1 && slices.Contains(flowcmd.DriverCommands, os.Args[1]) {
		args := os.Args[1:]
		if warm, err := flowcmd.WarmArgs(args, os.Stdin); err != nil {
			fmt.Fprintln(os.Stderr, "steptest:", err)
			os.Exit(2)
		} else if warm != nil {
			args = warm
		}
		name := flagValue(args[1:], "flow")
		for _, f := range flows {
			def, err := flowdef.Describe(f)
			if err != nil || def.Name() != name {
				continue
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			code := flowcmd.Command(ctx, def, args, os.Stdout, os.Stderr)
			stop()
			os.Exit(code)
		}
		fmt.Fprintf(os.Stderr, "steptest: this test binary has no flow %q; pass it to steptest.Main in TestMain\n", name)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// flagValue finds --name VALUE or --name=VALUE in args.
func flagValue(args []string, name string) string {
	for i, a := range args {
		for _, p := range []string{"-" + name, "--" + name} {
			if a == p && i+1 < len(args) {
				return args[i+1]
			}
			if len(a) > len(p) && a[:len(p)+1] == p+"=" {
				return a[len(p)+1:]
			}
		}
	}
	return ""
}

// Command runs one command line of flow f's program in this process, as
// `myflow check` would, and returns its exit code.
func Command(ctx context.Context, f stepwise.Flow, args []string, stdout, stderr io.Writer) int {
	def, err := flowdef.Describe(f)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return flowcmd.Command(ctx, def, args, stdout, stderr)
}

// ServeCommand runs one command line of service svc's program in this
// process, as `myservice show` would, and returns its exit code. serve
// answers until ctx is done.
func ServeCommand(ctx context.Context, svc stepwise.Service, args []string, stdout, stderr io.Writer) int {
	def, err := hosting.Describe(svc)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return hosting.Command(ctx, def, args, stdout, stderr)
}

// Isolate keeps a test apart from the user's settings: no config file, no
// team datastore or metadata service, no token; runs go to a temporary
// directory, with the local metadata store (import
// stepwise.dev/stepwise/backend/sqlite in the test), as user "test". It
// returns the datastore directory. It uses t.Setenv, so the test cannot be
// parallel.
func Isolate(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	ds := filepath.Join(dir, "datastore")
	t.Setenv("STEPWISE_CONFIG", filepath.Join(dir, "no-config.json"))
	t.Setenv("STEPWISE_DATASTORE", ds)
	t.Setenv("STEPWISE_METADATA", "local")
	t.Setenv("STEPWISE_TOKEN", "")
	t.Setenv("STEPWISE_USER", "test")
	return ds
}

// Step runs one step of a flow in the test's own process, on the flow
// value it is a method of, as a task would call it: fn is the method value
// (f.Train), item is the element for the first step of a foreach body, and
// nothing more for other steps. A panic is returned as an error with its
// stack. Nothing is stored: look at the flow's fields afterwards.
//
//	f := &MyFlow{Rows: 10}
//	err := steptest.Step(ctx, f.Train)
//	err = steptest.Step(ctx, f.Square, 3)
func Step(ctx context.Context, fn any, item ...any) error {
	v := reflect.ValueOf(fn)
	if v.Kind() != reflect.Func || v.Type().NumIn() < 1 || v.Type().NumIn() > 2 {
		return fmt.Errorf("steptest: %T is not a step method value such as f.Train", fn)
	}
	args := []reflect.Value{reflect.ValueOf(ctx)}
	switch {
	case v.Type().NumIn() == 2 && len(item) == 1:
		iv := reflect.ValueOf(item[0])
		if !iv.IsValid() || !iv.Type().AssignableTo(v.Type().In(1)) {
			return fmt.Errorf("steptest: the step takes a %s, not %T", v.Type().In(1), item[0])
		}
		args = append(args, iv)
	case v.Type().NumIn() == 2:
		return fmt.Errorf("steptest: the step takes a %s: pass it after the step (use Join for a join)", v.Type().In(1))
	case len(item) > 0:
		return fmt.Errorf("steptest: the step takes no item, got %d", len(item))
	}
	return call(v, args)
}

// Join runs a join step in the test's own process on the given inputs:
// one flow value per parent task, in element order after a foreach. After
// a branch, name the branch each input came from with Branch.
//
//	err := steptest.Join(ctx, f.Join, a, b)
func Join[T any](ctx context.Context, fn func(context.Context, stepwise.Inputs[T]) error, inputs ...T) error {
	return join(ctx, fn, nil, inputs)
}

// Branch runs a join after a branch on one input per branch, by the name
// of the branch's last step, so that in.Step("a") finds its input.
func Branch[T any](ctx context.Context, fn func(context.Context, stepwise.Inputs[T]) error, inputs map[string]T) error {
	steps := make([]string, 0, len(inputs))
	for s := range inputs {
		steps = append(steps, s)
	}
	slices.Sort(steps)
	items := make([]T, len(steps))
	for i, s := range steps {
		items[i] = inputs[s]
	}
	return join(ctx, fn, steps, items)
}

func join[T any](ctx context.Context, fn func(context.Context, stepwise.Inputs[T]) error, steps []string, inputs []T) error {
	items := make([]reflect.Value, len(inputs))
	for i, in := range inputs {
		items[i] = reflect.ValueOf(in)
	}
	if steps == nil {
		steps = make([]string, len(inputs))
	}
	in, err := flowdef.BuildInputs(reflect.TypeFor[stepwise.Inputs[T]](), items, steps)
	if err != nil {
		return err
	}
	return call(reflect.ValueOf(fn), []reflect.Value{reflect.ValueOf(ctx), in})
}

// call calls a step, turning a panic into an error with its stack.
func call(fn reflect.Value, args []reflect.Value) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("step panicked: %v\n%s", r, debug.Stack())
		}
	}()
	out := fn.Call(args)
	if e, _ := out[0].Interface().(error); e != nil {
		return e
	}
	return nil
}
