package stepwise

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"stepwise.dev/stepwise/internal/flowcmd"
)

// Main is the whole main function of a flow program:
//
//	func main() { stepwise.Main(&MyFlow{N: 10}) }
//
// It reads the command line (run, resume, show, check, runs, dump, ...;
// `help` lists them), does what it says and exits. Field values of f are
// the defaults of the flow's parameters.
func Main(f Flow) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	def, err := declare(f)
	code := 1
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
	} else {
		code = flowcmd.Command(ctx, def, os.Args[1:], os.Stdout, os.Stderr)
	}
	stop()
	os.Exit(code)
}
