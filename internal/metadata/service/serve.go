package service

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"stepwise.dev/stepwise/internal/httpserve"
)

// ShutdownTimeout is how long Serve waits, once its context is done, for
// the requests in flight to finish.
const ShutdownTimeout = 30 * time.Second

// ServeOptions configure Serve and ServeListener.
type ServeOptions struct {
	// TLSCertFile and TLSKeyFile, when set (both), are the PEM files of the
	// certificate (with its chain) and private key to serve HTTPS with.
	// Tokens travel in a header: across a network, serve over TLS.
	TLSCertFile, TLSKeyFile string
	// Logger receives the server's own lines; nil means slog.Default().
	Logger *slog.Logger
}

// Serve serves h on the TCP address addr (such as ":8080") until ctx is
// done, then stops taking requests and waits up to ShutdownTimeout for
// those in flight. It returns nil after a clean shutdown. With
// ServeOptions, it serves HTTPS.
func Serve(ctx context.Context, addr string, h http.Handler, opts ...ServeOptions) error {
	var o ServeOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	tlsConfig, err := o.tlsConfig()
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("metadata service: cannot listen on %s: %w", addr, err)
	}
	return serve(ctx, l, h, o, tlsConfig)
}

// ServeListener is Serve on a listener, which it closes.
func ServeListener(ctx context.Context, l net.Listener, h http.Handler, opts ...ServeOptions) error {
	var o ServeOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	tlsConfig, err := o.tlsConfig()
	if err != nil {
		l.Close()
		return err
	}
	return serve(ctx, l, h, o, tlsConfig)
}

// tlsConfig loads the certificate and key, if any: a missing or bad file is
// an error before the service starts.
func (o ServeOptions) tlsConfig() (*tls.Config, error) {
	switch {
	case o.TLSCertFile == "" && o.TLSKeyFile == "":
		return nil, nil
	case o.TLSCertFile == "" || o.TLSKeyFile == "":
		return nil, errors.New("metadata service: TLS needs both a certificate file and a key file; give both (--tls-cert and --tls-key), or neither")
	}
	cert, err := tls.LoadX509KeyPair(o.TLSCertFile, o.TLSKeyFile)
	if err != nil {
		return nil, fmt.Errorf("metadata service: cannot load the TLS certificate %s and key %s: %w; give PEM files of a certificate (with its chain) and of its private key", o.TLSCertFile, o.TLSKeyFile, err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

func serve(ctx context.Context, l net.Listener, h http.Handler, o ServeOptions, tlsConfig *tls.Config) error {
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		WriteTimeout:      2 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		TLSConfig:         tlsConfig,
	}
	scheme := "http"
	if tlsConfig != nil {
		scheme = "https"
		l = tls.NewListener(l, tlsConfig)
	}
	return httpserve.Run(ctx, srv, l, "metadata service", ShutdownTimeout, log, "scheme", scheme)
}
