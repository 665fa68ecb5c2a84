package bearer

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSetCheck(t *testing.T) {
	var log bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&log, nil))
	on := NewSet([]string{"", "tok-1", "tok-2"}, logger)
	allEmpty := NewSet([]string{""}, logger)
	tests := []struct {
		name   string
		set    Set
		header string
		want   string // in the refusal; "" to accept
	}{
		{"no tokens configured", Set{}, "", ""},
		{"good token", on, "Bearer tok-2", ""},
		{"scheme in another case", on, "bearer tok-1", ""},
		{"no header", on, "", "needs a token"},
		{"another scheme", on, "Basic dG9rLTE=", `uses the scheme "Basic"`},
		{"no token after Bearer", on, "Bearer ", "no token after Bearer"},
		{"wrong token", on, "Bearer tok-3", "not one this service accepts"},
		{"only empty tokens configured", allEmpty, "Bearer ", "no token after Bearer"},
		{"only empty tokens configured, any token", allEmpty, "Bearer x", "not one this service accepts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.set.Check(tt.header, "this service")
			if tt.want == "" && got != "" || !strings.Contains(got, tt.want) {
				t.Errorf("Check(%q) = %q, want %q", tt.header, got, tt.want)
			}
		})
	}
	if !strings.Contains(log.String(), "ignoring an empty token") || !strings.Contains(log.String(), "every request will be refused") {
		t.Errorf("empty tokens are not logged:\n%s", log.String())
	}
}

func TestExposureCheck(t *testing.T) {
	tests := []struct {
		name    string
		e       Exposure
		refused bool
		warns   string
	}{
		{"loopback, no tokens", Exposure{Addr: "127.0.0.1:8080"}, false, "no tokens configured"},
		{"every address, no tokens", Exposure{Addr: ":8080"}, true, ""},
		{"every address, no tokens, insecure", Exposure{Addr: ":8080", Insecure: true}, false, "anyone who can reach it may call it"},
		{"every address, tokens, plain HTTP", Exposure{Addr: "0.0.0.0:8080", Tokens: 1}, false, "clear text"},
		{"every address, tokens, TLS", Exposure{Addr: "0.0.0.0:8080", Tokens: 1, TLS: true}, false, ""},
		{"loopback, tokens", Exposure{Addr: "[::1]:8080", Tokens: 2}, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var log bytes.Buffer
			tt.e.Env, tt.e.Risk = "TOKENS", "call it"
			err := tt.e.Check(context.Background(), slog.New(slog.NewTextHandler(&log, nil)))
			if tt.refused != (err != nil) {
				t.Fatalf("Check: %v, want refused %v", err, tt.refused)
			}
			if err != nil && (!strings.Contains(err.Error(), "refusing to serve on "+tt.e.Addr) || !strings.Contains(err.Error(), "--insecure-no-tokens")) {
				t.Errorf("refusal %q does not say what to do", err)
			}
			if tt.warns == "" && log.Len() > 0 || !strings.Contains(log.String(), tt.warns) {
				t.Errorf("logged %q, want %q", log.String(), tt.warns)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	logger := slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil))
	tests := []struct {
		name, env, file string
		want            string // the tokens joined by "|", or the error's text
		fails           bool
	}{
		{"environment only", " a, b ,,", "", "a|b", false},
		{"file and environment", "a", write("ok", "# comment\n\nb\n c \n"), "a|b|c", false},
		{"space inside a token", "", write("space", "b c\n"), "line 1 holds a space inside a token", true},
		{"no token in the file", "", write("empty", "# only a comment\n"), "holds no token", true},
		{"no file", "", filepath.Join(dir, "missing"), "cannot read the tokens file", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("TEST_TOKENS", tt.env)
			got, err := Load("TEST_TOKENS", tt.file, logger)
			if tt.fails {
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Errorf("Load: %v, want an error with %q", err, tt.want)
				}
				return
			}
			if err != nil || strings.Join(got, "|") != tt.want {
				t.Errorf("Load = %q, %v; want %s", got, err, tt.want)
			}
		})
	}
	if err := OnCommandLine([]string{"--addr", "x", "--token=abc"}, "TEST_TOKENS"); err == nil || strings.Contains(err.Error(), "abc") {
		t.Errorf("a token on the command line: %v", err)
	}
	if err := OnCommandLine([]string{"--", "--token=abc"}, "TEST_TOKENS"); err != nil {
		t.Errorf("after --: %v", err)
	}
}
