package stepwise

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// phases measures where a task's time goes. With STEPWISE_DEBUG=timing a
// task prints one line with its phases to stderr.
type phases struct {
	on    bool
	last  time.Time
	parts []string
}

func newPhases() *phases {
	return &phases{on: strings.Contains(os.Getenv("STEPWISE_DEBUG"), "timing"), last: time.Now()}
}

func (p *phases) mark(name string) {
	if p == nil || !p.on {
		return
	}
	now := time.Now()
	p.parts = append(p.parts, fmt.Sprintf("%s=%s", name, now.Sub(p.last).Round(10*time.Microsecond)))
	p.last = now
}

func (p *phases) print(w io.Writer) {
	if p != nil && p.on {
		fmt.Fprintf(w, "stepwise timing: %s\n", strings.Join(p.parts, " "))
	}
}
