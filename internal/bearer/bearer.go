// Package bearer holds what the HTTP servers of Stepwise (the metadata
// service, hosted services) share about bearer tokens: reading them from
// the environment and a file, never from the command line; checking a
// request's Authorization header in constant time; and telling whether an
// address is loopback only, where serving without tokens is safe.
package bearer

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
)

// Load reads the tokens from the environment variable env
// (comma-separated) and from file (when not ""): one per line, blank lines
// and lines starting with # left out.
func Load(env, file string, logger *slog.Logger) ([]string, error) {
	var tokens []string
	for _, t := range strings.Split(os.Getenv(env), ",") {
		if t = strings.TrimSpace(t); t != "" {
			tokens = append(tokens, t)
		}
	}
	if file == "" {
		return tokens, nil
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("cannot read the tokens file: %w; give a file of tokens, one per line, to --tokens-file", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Mode().Perm()&0o077 != 0 {
		logger.Warn("the tokens file can be read by other users; make it readable by the service's user only (chmod 600)", "file", file, "mode", fi.Mode().Perm().String())
	}
	n, line := 0, 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line++
		t := strings.TrimSpace(sc.Text())
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		if strings.ContainsAny(t, " \t") {
			return nil, fmt.Errorf("tokens file %s: line %d holds a space inside a token; write one token per line", file, line)
		}
		tokens = append(tokens, t)
		n++
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading the tokens file %s: %w", file, err)
	}
	if n == 0 {
		return nil, errors.New("the tokens file " + file + " holds no token; write one token per line")
	}
	return tokens, nil
}

// OnCommandLine returns an error when args hold a --token or --tokens
// flag: tokens are not taken on the command line, where every user of the
// machine can read them (ps). It looks before the flags are parsed, so
// that a token is not echoed in a parse error.
func OnCommandLine(args []string, env string) error {
	for _, a := range args {
		if a == "--" {
			break
		}
		if name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "="); strings.HasPrefix(a, "-") && (name == "token" || name == "tokens") {
			return fmt.Errorf("tokens are not taken on the command line, where every user of the machine can read them (ps); put them in %s (comma-separated) or in a file named by --tokens-file", env)
		}
	}
	return nil
}

// IsLoopback reports whether addr (host:port) listens on loopback only: an
// empty host (every address) is not, a name is when all its addresses are.
func IsLoopback(ctx context.Context, addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return false
	}
	if ip := net.ParseIP(host); ip != nil {
		return ip.IsLoopback()
	}
	ips, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil || len(ips) == 0 {
		return false
	}
	for _, ip := range ips {
		if !ip.IP.IsLoopback() {
			return false
		}
	}
	return true
}

// Set is a set of accepted tokens, kept as their SHA-256 sums. The zero
// Set accepts every request.
type Set struct {
	sums [][sha256.Size]byte
	on   bool
}

// NewSet makes the set of tokens; empty tokens are left out (and logged).
// A Set made from tokens that are all empty refuses every request.
func NewSet(tokens []string, logger *slog.Logger) Set {
	s := Set{on: len(tokens) > 0}
	for _, t := range tokens {
		if t == "" {
			logger.Warn("ignoring an empty token in the configuration")
			continue
		}
		s.sums = append(s.sums, sha256.Sum256([]byte(t)))
	}
	if s.on && len(s.sums) == 0 {
		logger.Error("every configured token is empty: every request will be refused")
	}
	return s
}

// On reports whether the set asks for tokens.
func (s Set) On() bool { return s.on }

// Check checks the value of an Authorization header, comparing its token
// with every accepted one in constant time. It returns "" when the request
// may go on, or why it is refused; who names the server in the message
// ("this metadata service").
func (s Set) Check(header, who string) string {
	if !s.on {
		return ""
	}
	if header == "" {
		return who + " needs a token: send the header \"Authorization: Bearer <token>\" with one of the tokens it was configured with"
	}
	scheme, tok, _ := strings.Cut(header, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return fmt.Sprintf("the Authorization header uses the scheme %q; %s wants \"Authorization: Bearer <token>\"", scheme, who)
	}
	tok = strings.TrimSpace(tok)
	if tok == "" {
		return "the Authorization header has no token after Bearer; send \"Authorization: Bearer <token>\""
	}
	sum := sha256.Sum256([]byte(tok))
	ok := 0
	for _, t := range s.sums {
		ok |= subtle.ConstantTimeCompare(sum[:], t[:])
	}
	if ok != 1 {
		return "the token is not one " + who + " accepts; check the token in your Stepwise configuration"
	}
	return ""
}

// Exposure is how a server is about to listen, for Check.
type Exposure struct {
	Addr     string // host:port
	Tokens   int    // how many tokens it has
	TLS      bool   // serving HTTPS
	Insecure bool   // --insecure-no-tokens was given
	Env      string // the environment variable of its tokens
	// Risk says what anyone could do without tokens ("read and write
	// every run").
	Risk string
}

// Check refuses to serve on an address other than loopback without
// tokens (unless Insecure), and logs a warning for the other risky set-ups:
// no tokens on loopback, no tokens by choice, tokens over plain HTTP.
func (e Exposure) Check(ctx context.Context, logger *slog.Logger) error {
	loopback := IsLoopback(ctx, e.Addr)
	switch {
	case e.Tokens == 0 && !loopback && !e.Insecure:
		return fmt.Errorf("refusing to serve on %s without tokens: anyone who can reach it could %s; set %s or --tokens-file (and serve over TLS), listen on loopback (--addr 127.0.0.1:8080), or give --insecure-no-tokens if the network is yours alone", e.Addr, e.Risk, e.Env)
	case e.Tokens == 0 && !loopback:
		logger.Warn("no tokens, on an address other than loopback (--insecure-no-tokens): anyone who can reach it may "+e.Risk, "addr", e.Addr)
	case e.Tokens == 0:
		logger.Warn("no tokens configured: every local client may " + e.Risk + "; set " + e.Env + " or --tokens-file")
	case !loopback && !e.TLS:
		logger.Warn("tokens travel in clear text over plain HTTP: serve with --tls-cert and --tls-key, or behind a proxy that terminates TLS", "addr", e.Addr)
	}
	return nil
}
