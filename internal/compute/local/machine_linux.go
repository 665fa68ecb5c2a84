package local

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"

	"stepwise.dev/stepwise/internal/graph"
)

// Machine returns what this machine offers to tasks: its cores, its memory
// and its NVIDIA GPUs (counted from the driver's device files).
func Machine() graph.Resources {
	r := graph.Resources{CPU: float64(runtime.NumCPU()), GPU: gpus("/")}
	var si syscall.Sysinfo_t
	if syscall.Sysinfo(&si) == nil {
		r.MemoryMB = int64(si.Totalram) * int64(si.Unit) / (1 << 20)
	}
	return r
}

// nvidiaDevice reports whether name is a GPU's device, nvidiaN.
func nvidiaDevice(name string) bool {
	n, ok := strings.CutPrefix(name, "nvidia")
	if !ok || n == "" {
		return false
	}
	for _, c := range n {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// gpus counts the NVIDIA GPUs under root: the driver lists each in
// /proc/driver/nvidia/gpus and makes a /dev/nvidiaN device for each.
func gpus(root string) int {
	if ents, err := os.ReadDir(filepath.Join(root, "proc/driver/nvidia/gpus")); err == nil && len(ents) > 0 {
		return len(ents)
	}
	ents, err := os.ReadDir(filepath.Join(root, "dev"))
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range ents {
		if nvidiaDevice(e.Name()) {
			n++
		}
	}
	return n
}

// taskProcAttr puts a task in its own process group, so that stopping a
// task stops all it started, and makes it die with the launcher, so that a
// killed run leaves no orphans behind.
func taskProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
