package runtime

import (
	"runtime"
	"syscall"

	"stepwise.dev/stepwise/internal/graph"
)

// Machine returns what this machine offers to tasks: its cores and memory.
// GPUs are not detected yet and count as none.
func Machine() graph.Resources {
	r := graph.Resources{CPU: float64(runtime.NumCPU())}
	var si syscall.Sysinfo_t
	if syscall.Sysinfo(&si) == nil {
		r.MemoryMB = int64(si.Totalram) * int64(si.Unit) / (1 << 20)
	}
	return r
}

// taskProcAttr puts a task in its own process group, so that stopping a
// task stops all it started, and makes it die with the runtime, so that a
// killed run leaves no orphans behind.
func taskProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
