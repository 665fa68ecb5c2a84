//go:build !linux

package local

import (
	"runtime"
	"syscall"

	"stepwise.dev/stepwise/internal/graph"
)

// Machine returns what this machine offers to tasks: its cores. Memory is
// not detected on this system and is not limited.
func Machine() graph.Resources {
	return graph.Resources{CPU: float64(runtime.NumCPU())}
}

// taskProcAttr puts a task in its own process group, so that stopping a
// task stops all it started.
func taskProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
