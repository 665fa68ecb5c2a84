package hosting

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"stepwise.dev/stepwise/internal/httpserve"
)

// Limits of the HTTP server, which ServeOptions can change.
const (
	DefaultReadHeaderTimeout = 5 * time.Second
	DefaultReadTimeout       = 30 * time.Second
	DefaultIdleTimeout       = 2 * time.Minute
	DefaultShutdownTimeout   = 30 * time.Second
)

// ServeOptions are the HTTP server's limits. Zero fields take the
// defaults; the write timeout is the request time limit (Options.Timeout)
// and 5 seconds more, so that a request timed out still gets its answer.
type ServeOptions struct {
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	IdleTimeout       time.Duration
	// ShutdownTimeout is how long Serve waits, once its context is done,
	// for the requests in flight to finish.
	ShutdownTimeout time.Duration
	// TLSCertFile and TLSKeyFile, when set, serve HTTPS.
	TLSCertFile, TLSKeyFile string
}

// Serve serves the server on l until ctx is done, while following newer
// runs (Follow); then it stops taking requests and connections, lets the
// requests in flight finish (up to ShutdownTimeout), and returns nil.
func (s *Server) Serve(ctx context.Context, l net.Listener, o ServeOptions) error {
	orDefault(&o.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	orDefault(&o.ReadTimeout, DefaultReadTimeout)
	orDefault(&o.IdleTimeout, DefaultIdleTimeout)
	orDefault(&o.ShutdownTimeout, DefaultShutdownTimeout)
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: o.ReadHeaderTimeout,
		ReadTimeout:       o.ReadTimeout,
		WriteTimeout:      s.o.Timeout + 5*time.Second,
		IdleTimeout:       o.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	fctx, stopFollowing := context.WithCancel(ctx)
	defer stopFollowing()
	go s.Follow(fctx)
	if o.TLSCertFile != "" || o.TLSKeyFile != "" {
		cert, err := tls.LoadX509KeyPair(o.TLSCertFile, o.TLSKeyFile)
		if err != nil {
			l.Close()
			return fmt.Errorf("hosting: cannot load the TLS certificate %s and key %s: %w; give PEM files of a certificate (with its chain) and of its private key", o.TLSCertFile, o.TLSKeyFile, err)
		}
		l = tls.NewListener(l, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	}
	return httpserve.Run(ctx, srv, l, "hosting: service "+s.def.Name, o.ShutdownTimeout, s.log, "flow", s.def.Flow.Name(), "tls", o.TLSCertFile != "")
}
