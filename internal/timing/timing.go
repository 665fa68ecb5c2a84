// Package timing measures where the time of a task or a launch goes. With
// STEPWISE_DEBUG=timing in the environment, each prints one line of its
// phases to stderr when it ends.
package timing

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// Phases records the time between successive marks. A nil *Phases, or one
// made without STEPWISE_DEBUG=timing, records nothing.
type Phases struct {
	on    bool
	last  time.Time
	parts []string
}

// On says whether STEPWISE_DEBUG asks for timing.
func On() bool { return strings.Contains(os.Getenv("STEPWISE_DEBUG"), "timing") }

// New starts measuring, if STEPWISE_DEBUG asks for timing.
func New() *Phases {
	return &Phases{on: On(), last: time.Now()}
}

// Mark ends the phase called name.
func (p *Phases) Mark(name string) {
	if p == nil || !p.on {
		return
	}
	now := time.Now()
	p.parts = append(p.parts, fmt.Sprintf("%s=%s", name, now.Sub(p.last).Round(10*time.Microsecond)))
	p.last = now
}

// Print writes the phases as one line.
func (p *Phases) Print(w io.Writer) {
	if p != nil && p.on {
		fmt.Fprintf(w, "stepwise timing: %s\n", strings.Join(p.parts, " "))
	}
}
