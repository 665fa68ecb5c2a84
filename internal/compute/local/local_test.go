package local

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"stepwise.dev/stepwise/internal/compute"
	"stepwise.dev/stepwise/internal/graph"
)

func TestGPUsAreCountedFromTheDriversDevices(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files []string
		want  int
	}{
		{"none", []string{"dev/null", "dev/nvidiactl"}, 0},
		{"two devices", []string{"dev/nvidia0", "dev/nvidia1", "dev/nvidiactl", "dev/nvidia-uvm"}, 2},
		{"driver list wins", []string{"proc/driver/nvidia/gpus/0000:01:00.0/information", "proc/driver/nvidia/gpus/0000:02:00.0/information", "proc/driver/nvidia/gpus/0000:03:00.0/information", "dev/nvidia0"}, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			for _, f := range tc.files {
				p := filepath.Join(root, f)
				os.MkdirAll(filepath.Dir(p), 0o755)
				os.WriteFile(p, nil, 0o644)
			}
			if got := gpus(root); got != tc.want {
				t.Errorf("gpus = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestCheckRefusesWhatTheMachineLacks(t *testing.T) {
	for _, tc := range []struct {
		name     string
		capacity graph.Resources
		need     graph.Resources
		want     string // "" when accepted
	}{
		{"fits", graph.Resources{CPU: 4, MemoryMB: 1024, GPU: 2}, graph.Resources{CPU: 4, MemoryMB: 1024, GPU: 2}, ""},
		{"gpu on a machine without", graph.Resources{CPU: 4}, graph.Resources{GPU: 1}, "gpu=1 but this machine has none (no NVIDIA GPU device found)"},
		{"too many gpus", graph.Resources{CPU: 4, GPU: 2}, graph.Resources{GPU: 3}, "gpu=3 but this machine has 2"},
		{"cpu and memory", graph.Resources{CPU: 2, MemoryMB: 100}, graph.Resources{CPU: 3, MemoryMB: 200}, "cpu=3 but this machine has 2 cores and memory=200MiB but this machine has 100MiB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := New(Options{Capacity: &tc.capacity})
			if err != nil {
				t.Fatal(err)
			}
			err = b.Check(&graph.Step{Name: "train", Resources: tc.need})
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "step train")):
				t.Errorf("Check = %v, want it to say %q", err, tc.want)
			}
		})
	}
}

// TestStartWaitStopTimeout starts real processes through the backend.
func TestStartWaitStopTimeout(t *testing.T) {
	ctx := context.Background()
	b, err := New(Options{Exe: "/bin/sh", TimeoutGrace: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	run := func(script string, timeout time.Duration) (compute.Handle, error) {
		return b.Start(ctx, compute.Spec{Run: "1", Step: "s", Task: "0", Args: []string{"-c", script}, Timeout: timeout})
	}
	h, _ := run("exit 0", 0)
	if err := h.Wait(); err != nil {
		t.Errorf("exit 0: %v", err)
	}
	h, _ = run("exit 3", 0)
	var ee *compute.ExitError
	if err := h.Wait(); !errors.As(err, &ee) || ee.Code != 3 {
		t.Errorf("exit 3: %v", err)
	}
	h, _ = run("sleep 30", 200*time.Millisecond)
	began := time.Now()
	if err := h.Wait(); !errors.Is(err, compute.ErrTimeout) || time.Since(began) > 10*time.Second {
		t.Errorf("timeout: %v after %s", err, time.Since(began))
	}
	// A task that ignores the request to stop is killed after the grace.
	h, _ = run("trap '' TERM; sleep 30 & wait; sleep 30", 0)
	time.Sleep(100 * time.Millisecond)
	began = time.Now()
	h.Stop(200 * time.Millisecond)
	if err := h.Wait(); !errors.As(err, &ee) || ee.Signal == "" || time.Since(began) > 10*time.Second {
		t.Errorf("stopped: %v after %s, want killed by a signal after the grace", err, time.Since(began))
	}
}
