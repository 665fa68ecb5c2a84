package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
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

// TestUI starts `stepwise ui` on a free port: with --json it prints one
// line that says where it listens, and the page there answers; it stops
// when its context ends. Every flag is given; bad ones are refused.
func TestUI(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("STEPWISE_CONFIG", filepath.Join(dir, "config.json"))
	t.Setenv("STEPWISE_DATASTORE", "")
	t.Setenv("STEPWISE_METADATA", "")
	t.Setenv(tokensEnv, "")
	t.Setenv("STEPWISE_TOKEN", "")
	ds := filepath.Join(dir, "ds")
	for _, tc := range []struct {
		name string
		json bool
	}{{"json", true}, {"text", false}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			args := []string{"ui", "--addr", "127.0.0.1:0", "--datastore", ds, "--namespace", "user:ann", "--poll", "2s"}
			if tc.json {
				args = append(args, "--json")
			}
			r, w := io.Pipe()
			var errOut bytes.Buffer
			done := make(chan int, 1)
			go func() {
				code := cli.Run(ctx, cli.Options{Prog: "stepwise", Commands: commands}, args, w, &errOut)
				w.Close()
				done <- code
			}()
			line, err := bufio.NewReader(r).ReadString('\n')
			if err != nil {
				t.Fatalf("ui printed nothing (%v):\n%s", err, errOut.String())
			}
			go io.Copy(io.Discard, r)
			var url string
			if tc.json {
				var ready struct {
					Addr, URL string
					Token     bool
				}
				if err := json.Unmarshal([]byte(line), &ready); err != nil {
					t.Fatalf("ui --json printed %q: %v", line, err)
				}
				if !strings.HasPrefix(ready.Addr, "127.0.0.1:") || strings.HasSuffix(ready.Addr, ":0") || ready.URL != "http://"+ready.Addr+"/" || ready.Token {
					t.Fatalf("ui --json printed %+v", ready)
				}
				url = ready.URL
			} else {
				m := regexp.MustCompile(`^Stepwise UI on (http://127\.0\.0\.1:\d+/); Ctrl-C stops it\n$`).FindStringSubmatch(line)
				if m == nil {
					t.Fatalf("ui printed %q", line)
				}
				url = m[1]
			}
			resp, err := http.Get(url)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			// The namespace given is the runs page's first filter.
			if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `value="user:ann"`) {
				t.Errorf("GET %s: %d\n%s", url, resp.StatusCode, body)
			}
			cancel()
			select {
			case code := <-done:
				if code != 0 {
					t.Errorf("ui exited %d after its context ended:\n%s", code, errOut.String())
				}
			case <-time.After(30 * time.Second):
				t.Fatal("ui did not stop when its context ended")
			}
		})
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"ui", "extra"}, `unexpected argument "extra"`},
		{[]string{"ui", "--poll", "1ms"}, "--poll 1ms: live pages read the stores at most every 100ms"},
		{[]string{"ui", "--port", "1"}, "flag provided but not defined: -port"},
	} {
		out, code := stepwise(t.Context(), c.args...)
		if code != 2 || !strings.Contains(out, c.want) || !strings.Contains(out, "usage: stepwise ui") {
			t.Errorf("stepwise %s: exit %d, want 2 and %q:\n%s", strings.Join(c.args, " "), code, c.want, out)
		}
	}
	out, code := stepwise(t.Context(), "ui", "--addr", "127.0.0.1:99999", "--datastore", ds)
	if code != 1 || !strings.Contains(out, "cannot listen on 127.0.0.1:99999") {
		t.Errorf("ui on a bad address: exit %d:\n%s", code, out)
	}
}
