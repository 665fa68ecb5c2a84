package testservers

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

func TestPostgres(t *testing.T) {
	dsn := NewDatabase(t)
	out, err := exec.Command("psql", dsn, "-Atc", "select current_database() like 't_%'").CombinedOutput()
	if err != nil || string(out) != "t\n" {
		t.Fatalf("psql on the new database: %v %q", err, out)
	}
}

func TestMinIORestart(t *testing.T) {
	s := MinIO(t)
	ready := func() bool {
		resp, err := http.Get(s.Endpoint + "/minio/health/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}
	if !ready() {
		t.Fatal("minio not ready")
	}
	if s.Dir == "" {
		return // started by the test command: not ours to restart
	}
	if err := s.Restart(context.Background(), 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if !ready() {
		t.Fatal("minio not ready after restart")
	}
}

// The directories of servers whose test process is gone are removed when
// the next one is made; those of live processes are kept.
func TestOwnedTempDirsOfGoneProcessesAreRemoved(t *testing.T) {
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	prefix := "stepwise-ownedtest-" + randomHex(4) + "-"
	stale, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(stale, "owner"), []byte(strconv.Itoa(gone.Process.Pid)), 0o644)
	live, err := ownedTempDir(prefix)
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(live)
	next, err := ownedTempDir(prefix)
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(next)
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("the directory of a gone process is still there: %v", err)
	}
	if _, err := os.Stat(filepath.Join(live, "owner")); err != nil {
		t.Errorf("the directory of this process was removed: %v", err)
	}
}
