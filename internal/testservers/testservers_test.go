package testservers

import (
	"context"
	"net/http"
	"os/exec"
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
