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
		{"scheduled, quiet for 5 minutes", Run{Status: Running, SystemTags: []string{"runtime:scheduler", "user:ann"}, Started: ago(time.Hour), Heartbeat: ago(5 * time.Minute)}, false},
		{"scheduled, quiet for longer than its window", Run{Status: Running, SystemTags: []string{"runtime:scheduler"}, Started: ago(time.Hour), Heartbeat: ago(ScheduledLostAfter + time.Second)}, true},
		{"scheduled, just started", Run{Status: Running, SystemTags: []string{"runtime:scheduler"}, Started: ago(10 * time.Minute)}, false},
		{"scheduler tag as a user tag only", Run{Status: Running, Tags: []string{"runtime:scheduler"}, Started: ago(time.Hour), Heartbeat: ago(5 * time.Minute)}, true},
	}
	for _, tt := range tests {
		if got := tt.run.Lost(now); got != tt.want {
			t.Errorf("%s: Lost = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestAttemptLost(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	tests := []struct {
		name    string
		attempt Attempt
		after   time.Duration
		want    bool
	}{
		{"running, recent heartbeat", Attempt{Status: Running, Started: ago(time.Hour), Heartbeat: ago(5 * time.Second)}, LostAfter, false},
		{"running, old heartbeat", Attempt{Status: Running, Started: ago(time.Hour), Heartbeat: ago(LostAfter + time.Second)}, LostAfter, true},
		{"running, heartbeat exactly at the window", Attempt{Status: Running, Started: ago(time.Hour), Heartbeat: ago(LostAfter)}, LostAfter, false},
		{"running, just started, no heartbeat yet", Attempt{Status: Running, Started: ago(time.Second)}, LostAfter, false},
		{"running, no heartbeat ever", Attempt{Status: Running, Started: ago(time.Hour)}, LostAfter, true},
		{"running, heartbeat before a recent start", Attempt{Status: Running, Started: ago(time.Second), Heartbeat: ago(time.Hour)}, LostAfter, false},
		{"running, a wider window", Attempt{Status: Running, Started: ago(time.Hour), Heartbeat: ago(5 * time.Minute)}, ScheduledLostAfter, false},
		{"succeeded long ago", Attempt{Status: Succeeded, Started: ago(48 * time.Hour), Heartbeat: ago(47 * time.Hour)}, LostAfter, false},
		{"failed long ago", Attempt{Status: Failed, Started: ago(48 * time.Hour)}, LostAfter, false},
	}
	for _, tt := range tests {
		if got := tt.attempt.Lost(now, tt.after); got != tt.want {
			t.Errorf("%s: Lost = %v, want %v", tt.name, got, tt.want)
		}
	}
}
