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
	"slices"
	"syscall"
	"testing"

	"stepwise.dev/stepwise"
	"stepwise.dev/stepwise/internal/flowcmd"
	"stepwise.dev/stepwise/internal/flowdef"
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
