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
	def, err := declare(f)
	exitWith(err, func(ctx context.Context) int {
		return flowcmd.Command(ctx, def, os.Args[1:], os.Stdout, os.Stderr)
	})
}

// exitWith ends a program's main: it prints err (the program's type could
// not be described) or runs cmd with a context that Ctrl-C and SIGTERM
// cancel, and exits with cmd's code (1 after err).
func exitWith(err error, cmd func(ctx context.Context) int) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := 1
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
	} else {
		code = cmd(ctx)
	}
	stop()
	os.Exit(code)
}
