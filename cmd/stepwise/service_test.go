package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"stepwise.dev/stepwise/internal/testservers"
)

// selfSigned writes a certificate for 127.0.0.1 and its key to dir, and
// returns their files and a pool that trusts the certificate.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "stepwise test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// running is a `stepwise service` started by startService.
type running struct {
	url  string
	stop func() (string, int) // its output and exit code
}

// startService runs `stepwise service` with args (and --database, --addr
// on a free loopback port unless args set it) until stop, and waits until
// it answers /healthz through hc.
func startService(t *testing.T, hc *http.Client, scheme string, args ...string) running {
	t.Helper()
	if !strings.Contains(strings.Join(args, " "), "--addr") {
		port, err := testservers.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		args = append(args, "--addr", fmt.Sprintf("127.0.0.1:%d", port))
	}
	addr := args[len(args)-1]
	for i, a := range args {
		if a == "--addr" {
			addr = args[i+1]
		}
	}
	if strings.HasPrefix(addr, ":") || strings.HasPrefix(addr, "0.0.0.0:") {
		addr = "127.0.0.1" + addr[strings.LastIndex(addr, ":"):]
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	var (
		out  string
		code int
	)
	go func() {
		out, code = stepwise(ctx, append([]string{"service", "--database", testservers.NewDatabase(t)}, args...)...)
		close(done)
	}()
	url := scheme + "://" + addr
	for deadline := time.Now().Add(30 * time.Second); ; {
		resp, err := hc.Get(url + "/healthz")
		if err == nil {
			resp.Body.Close()
			break
		}
		select {
		case <-done:
			t.Fatalf("stepwise service %s exited %d:\n%s", strings.Join(args, " "), code, out)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the service did not answer on %s: %v", url, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	stopped := false
	stop := func() (string, int) {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
		return out, code
	}
	t.Cleanup(func() { stop() })
	return running{url: url, stop: stop}
}

// status sends a request with a token (none if "") and returns its status.
func status(t *testing.T, hc *http.Client, method, url, token, contentType string) int {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(`{"id": "1"}`))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestServiceTokens checks that tokens are taken from the environment and
// from a file, and never from the command line.
func TestServiceTokens(t *testing.T) {
	t.Setenv(tokensEnv, " env-token , ")
	file := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(file, []byte("# the team's tokens\nfile-token-1\n\n  file-token-2  \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startService(t, http.DefaultClient, "http", "--tokens-file", file)
	for _, c := range []struct {
		token string
		want  int
	}{{"", 401}, {"wrong", 401}, {"env-token", 200}, {"file-token-1", 200}, {"file-token-2", 200}, {"# the team's tokens", 401}} {
		if got := status(t, http.DefaultClient, "GET", s.url+"/v1/flows", c.token, ""); got != c.want {
			t.Errorf("GET /v1/flows with token %q: %d, want %d", c.token, got, c.want)
		}
	}
	if out, code := s.stop(); code != 0 || strings.Contains(out, "file-token") || strings.Contains(out, "env-token") {
		t.Errorf("service exited %d, or logged a token:\n%s", code, out)
	}

	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"token on the command line", []string{"--token", "s3cret"}, "tokens are not taken on the command line"},
		{"missing tokens file", []string{"--tokens-file", filepath.Join(t.TempDir(), "nope")}, "cannot read the tokens file"},
		{"empty tokens file", []string{"--tokens-file", os.DevNull}, "holds no token"},
	} {
		out, code := stepwise(t.Context(), append([]string{"service", "--database", "postgres://nowhere.invalid/x"}, c.args...)...)
		if code == 0 || !strings.Contains(out, c.want) || strings.Contains(out, "s3cret") {
			t.Errorf("%s: exit %d, want an error saying %q (and not the token):\n%s", c.name, code, c.want, out)
		}
	}
	// A tokens file others can read is served, with a warning.
	open := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(open, []byte("t1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s = startService(t, http.DefaultClient, "http", "--tokens-file", open)
	if out, _ := s.stop(); !strings.Contains(out, "chmod 600") {
		t.Errorf("no warning about a tokens file others can read:\n%s", out)
	}
}

// TestServiceOpenNetwork checks that the service does not serve an address
// other than loopback without tokens, unless told it may.
func TestServiceOpenNetwork(t *testing.T) {
	t.Setenv(tokensEnv, "")
	port, err := testservers.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	for _, addr := range []string{fmt.Sprintf("0.0.0.0:%d", port), fmt.Sprintf(":%d", port)} {
		out, code := stepwise(t.Context(), "service", "--database", "postgres://nowhere.invalid/x", "--addr", addr)
		if code != 2 || !strings.Contains(out, "refusing to serve on "+addr+" without tokens") || !strings.Contains(out, "--insecure-no-tokens") {
			t.Errorf("service --addr %s without tokens: exit %d:\n%s", addr, code, out)
		}
	}
	// Told it may, it serves, and says what that means.
	s := startService(t, http.DefaultClient, "http", "--addr", fmt.Sprintf("0.0.0.0:%d", port), "--insecure-no-tokens")
	if got := status(t, http.DefaultClient, "GET", s.url+"/v1/flows", "", ""); got != 200 {
		t.Errorf("GET /v1/flows: %d", got)
	}
	if out, code := s.stop(); code != 0 || !strings.Contains(out, "anyone who can reach it") {
		t.Errorf("service --insecure-no-tokens: exit %d, no warning:\n%s", code, out)
	}
	// Loopback needs no tokens; a web page still cannot write through a
	// browser.
	s = startService(t, http.DefaultClient, "http")
	for _, c := range []struct {
		contentType string
		want        int
	}{{"text/plain", 415}, {"application/x-www-form-urlencoded", 415}, {"application/json", 201}} {
		if got := status(t, http.DefaultClient, "POST", s.url+"/v1/flows/F/runs", "", c.contentType); got != c.want {
			t.Errorf("POST a run as %s: %d, want %d", c.contentType, got, c.want)
		}
	}
}

// TestServiceTLS serves HTTPS with a certificate and key.
func TestServiceTLS(t *testing.T) {
	t.Setenv(tokensEnv, "s3cret")
	dir := t.TempDir()
	cert, key, pool := selfSigned(t, dir)
	trusting := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	s := startService(t, trusting, "https", "--tls-cert", cert, "--tls-key", key)
	if got := status(t, trusting, "GET", s.url+"/v1/flows", "s3cret", ""); got != 200 {
		t.Errorf("GET /v1/flows over TLS: %d", got)
	}
	if _, err := http.Get(s.url + "/healthz"); err == nil {
		t.Error("a client that does not trust the certificate got an answer")
	}
	if resp, err := http.Get("http" + strings.TrimPrefix(s.url, "https") + "/healthz"); err == nil && resp.StatusCode == 200 {
		t.Error("the HTTPS service answered plain HTTP")
	}
	s.stop()
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"certificate without key", []string{"--tls-cert", cert}, "needs both --tls-cert and --tls-key"},
		{"key for a certificate", []string{"--tls-cert", key, "--tls-key", key}, "cannot load the TLS certificate"},
	} {
		out, code := stepwise(t.Context(), append([]string{"service", "--database", testservers.NewDatabase(t), "--addr", "127.0.0.1:0"}, c.args...)...)
		if code == 0 || !strings.Contains(out, c.want) {
			t.Errorf("%s: exit %d, want an error saying %q:\n%s", c.name, code, c.want, out)
		}
	}
}
