package metadata

import (
	"testing"
	"time"
)

func TestRunLost(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	tests := []struct {
		name string
		run  Run
		want bool
	}{
		{"running, recent heartbeat", Run{Status: Running, Started: ago(time.Hour), Heartbeat: ago(5 * time.Second)}, false},
		{"running, old heartbeat", Run{Status: Running, Started: ago(time.Hour), Heartbeat: ago(LostAfter + time.Second)}, true},
		{"running, just started, no heartbeat yet", Run{Status: Running, Started: ago(HeartbeatInterval)}, false},
		{"running, no heartbeat for long", Run{Status: Running, Started: ago(time.Hour)}, true},
		{"running, heartbeat before a recent start", Run{Status: Running, Started: ago(time.Second), Heartbeat: ago(time.Hour)}, false},
		{"succeeded long ago", Run{Status: Succeeded, Started: ago(48 * time.Hour), Heartbeat: ago(47 * time.Hour)}, false},
		{"failed long ago", Run{Status: Failed, Started: ago(48 * time.Hour)}, false},
	}
	for _, tt := range tests {
		if got := tt.run.Lost(now); got != tt.want {
			t.Errorf("%s: Lost = %v, want %v", tt.name, got, tt.want)
		}
	}
}
