package hosting

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
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
	if o.ReadHeaderTimeout == 0 {
		o.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if o.ReadTimeout == 0 {
		o.ReadTimeout = DefaultReadTimeout
	}
	if o.IdleTimeout == 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.ShutdownTimeout == 0 {
		o.ShutdownTimeout = DefaultShutdownTimeout
	}
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
	errc := make(chan error, 1)
	go func() {
		if o.TLSCertFile != "" || o.TLSKeyFile != "" {
			errc <- srv.ServeTLS(l, o.TLSCertFile, o.TLSKeyFile)
			return
		}
		errc <- srv.Serve(l)
	}()
	s.log.Info("hosting: listening", "service", s.def.Name, "flow", s.def.Flow.Name(), "addr", l.Addr().String(), "tls", o.TLSCertFile != "")
	select {
	case err := <-errc:
		return fmt.Errorf("hosting: serving on %s: %w", l.Addr(), err)
	case <-ctx.Done():
	}
	s.log.Info("hosting: shutting down; finishing the requests in flight", "addr", l.Addr().String())
	sctx, cancel := context.WithTimeout(context.Background(), o.ShutdownTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if err != nil {
		srv.Close()
		return fmt.Errorf("hosting: shutting down: %w; requests still in flight after %s were cut", err, o.ShutdownTimeout)
	}
	s.log.Info("hosting: shut down")
	return nil
}
