//go:build !linux

package runtime

import (
	"runtime"

	"stepwise.dev/stepwise/internal/graph"
)

// Machine returns what this machine offers to tasks: its cores. Memory is
// not detected on this system and is not limited.
func Machine() graph.Resources {
	return graph.Resources{CPU: float64(runtime.NumCPU())}
}
