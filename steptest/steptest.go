// Package steptest lets flows be tested with go test: the runtime starts
// each task as a new process of the current binary, and Main makes a test
// binary serve those tasks.
//
//	func TestMain(m *testing.M) { steptest.Main(m, &MyFlow{}) }
package steptest

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"testing"

	"stepwise.dev/stepwise"
)

// Main runs the tests in m, unless this process was started by the runtime
// to run a task of one of flows: then it runs that task and exits.
func Main(m *testing.M, flows ...stepwise.Flow) {
	if len(os.Args) > 1 && os.Args[1] == "step" {
		name := os.Getenv(stepwise.FlowEnv)
		for _, f := range flows {
			if stepwise.FlowName(f) == name {
				ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
				code := stepwise.Command(ctx, f, os.Args[1:], os.Stdout, os.Stderr)
				stop()
				os.Exit(code)
			}
		}
		fmt.Fprintf(os.Stderr, "steptest: this test binary has no flow %q; pass it to steptest.Main in TestMain\n", name)
		os.Exit(1)
	}
	os.Exit(m.Run())
}
