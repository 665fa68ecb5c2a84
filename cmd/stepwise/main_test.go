package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"stepwise.dev/stepwise/internal/cli"
	"stepwise.dev/stepwise/internal/testservers"
)

func stepwise(ctx context.Context, args ...string) (string, int) {
	var out bytes.Buffer
	code := cli.Run(ctx, cli.Options{Prog: "stepwise", Commands: commands}, args, &out, &out)
	return out.String(), code
}

// TestService starts `stepwise service` on a real PostgreSQL database and
// checks that it answers, asks for its token, and stops when told to.
func TestService(t *testing.T) {
	t.Setenv(tokensEnv, "s3cret")
	dsn := testservers.NewDatabase(t)
	port, err := testservers.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan int)
	var out string
	go func() {
		var code int
		out, code = stepwise(ctx, "service", "--addr", addr, "--database", dsn)
		done <- code
	}()
	get := func(token string) (int, error) {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/v1/flows", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := get(""); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("the service did not answer on %s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, c := range []struct {
		token string
		want  int
	}{{"", http.StatusUnauthorized}, {"wrong", http.StatusUnauthorized}, {"s3cret", http.StatusOK}} {
		if got, err := get(c.token); err != nil || got != c.want {
			t.Errorf("GET /v1/flows with token %q: %d, %v; want %d", c.token, got, err, c.want)
		}
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("service exited %d after its context ended:\n%s", code, out)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the service did not stop when its context ended")
	}
}

func TestServiceUsage(t *testing.T) {
	t.Setenv("STEPWISE_DATABASE_URL", "")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"service"}, "say which PostgreSQL database to use"},
		{[]string{"service", "extra"}, `unexpected argument "extra"`},
		{[]string{"service", "--port", "1"}, "flag provided but not defined: -port"},
	} {
		out, code := stepwise(t.Context(), c.args...)
		if code != 2 || !strings.Contains(out, c.want) || !strings.Contains(out, "usage: stepwise service") {
			t.Errorf("stepwise %s: exit %d, want 2 and %q:\n%s", strings.Join(c.args, " "), code, c.want, out)
		}
	}
	out, code := stepwise(t.Context(), "help")
	for _, cmd := range []string{"flows", "runs", "dump", "logs", "tag", "service", "configure", "config show"} {
		if code != 0 || !strings.Contains(out, "\n  "+cmd+" ") {
			t.Errorf("stepwise help (exit %d) does not list %s:\n%s", code, cmd, out)
		}
	}
}
