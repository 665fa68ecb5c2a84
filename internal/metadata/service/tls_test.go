package service

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestServeTLS serves the API over HTTPS: a client that trusts the
// certificate uses it; one that does not fails at once, without retrying
// for its whole budget.
func TestServeTLS(t *testing.T) {
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "metadata"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "https://" + l.Addr().String()
	ctx, cancel := context.WithCancel(t.Context())
	served := make(chan error, 1)
	go func() {
		served <- ServeListener(ctx, l, NewHandler(openStore(t), Options{Tokens: []string{testToken}}), ServeOptions{TLSCertFile: certFile, TLSKeyFile: keyFile})
	}()
	defer func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("ServeListener: %v", err)
		}
	}()
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	c, err := NewClientWithOptions(url, ClientOptions{Token: testToken, Logger: slog.New(slog.DiscardHandler),
		HTTPClient: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}})
	if err != nil {
		t.Fatal(err)
	}
	var flows []string
	for try := 0; try < 100; try++ { // until it listens
		if flows, err = c.ListFlows(t.Context()); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil || len(flows) != 0 {
		t.Fatalf("ListFlows over TLS: %v, %v", flows, err)
	}
	untrusting, err := NewClientWithOptions(url, ClientOptions{Token: testToken, RetryFor: time.Minute, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = untrusting.ListFlows(t.Context())
	if err == nil || !strings.Contains(err.Error(), "certificate") || time.Since(start) > 30*time.Second {
		t.Errorf("ListFlows from a client that does not trust the certificate: %v after %v; want a certificate error at once", err, time.Since(start))
	}

	if err := ServeListener(t.Context(), mustListen(t), http.NotFoundHandler(), ServeOptions{TLSCertFile: certFile}); err == nil || !strings.Contains(err.Error(), "both") {
		t.Errorf("ServeListener with a certificate and no key: %v", err)
	}
	if err := Serve(t.Context(), "127.0.0.1:0", http.NotFoundHandler(), ServeOptions{TLSCertFile: keyFile, TLSKeyFile: keyFile}); err == nil || !strings.Contains(err.Error(), "cannot load the TLS certificate") {
		t.Errorf("Serve with a key for a certificate: %v", err)
	}
}

func mustListen(t *testing.T) net.Listener {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}
