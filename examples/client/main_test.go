package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestReport runs the branchjoin example as two users, then reads their
// runs with the client.
func TestReport(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "branchjoin")
	if out, err := exec.Command("go", "build", "-o", bin, "../branchjoin").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	t.Setenv("STEPWISE_DATASTORE", filepath.Join(dir, "ds"))
	t.Setenv("STEPWISE_CONFIG", filepath.Join(dir, "config.json"))
	t.Setenv("STEPWISE_METADATA", "")
	ids := map[string]string{}
	for _, user := range []string{"user1", "user2"} {
		cmd := exec.Command(bin, "run", "--tag", "team-"+user)
		cmd.Env = append(os.Environ(), "STEPWISE_USER="+user)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("run as %s: %v\n%s", user, err, out)
		}
		ids[user] = regexp.MustCompile(`run (\d+)`).FindStringSubmatch(string(out))[1]
	}
	t.Setenv("STEPWISE_USER", "user1")
	var buf bytes.Buffer
	if err := report(context.Background(), &buf, "BranchJoin", "user:user1"); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(buf.String(), "\n")
	if want := "user:user1 " + ids["user1"] + " [team-user1 user:user1]"; lines[0] != want {
		t.Errorf("namespace line %q, want %q", lines[0], want)
	}
	if want := "global " + ids["user2"] + " [team-user2 user:user2]"; lines[1] != want {
		t.Errorf("global line %q, want %q", lines[1], want)
	}
	if !strings.Contains(buf.String(), "  Out = 3") {
		t.Errorf("no Out = 3 in:\n%s", buf.String())
	}
}
