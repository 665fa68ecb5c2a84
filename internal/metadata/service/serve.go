package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// ShutdownTimeout is how long Serve waits, once its context is done, for
// the requests in flight to finish.
const ShutdownTimeout = 30 * time.Second

// Serve serves h on the TCP address addr (such as ":8080") until ctx is
// done, then stops taking requests and waits up to ShutdownTimeout for
// those in flight. It returns nil after a clean shutdown.
func Serve(ctx context.Context, addr string, h http.Handler) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("metadata service: cannot listen on %s: %w", addr, err)
	}
	return ServeListener(ctx, l, h)
}

// ServeListener is Serve on a listener, which it closes.
func ServeListener(ctx context.Context, l net.Listener, h http.Handler) error {
	log := slog.Default()
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		WriteTimeout:      2 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	log.Info("metadata service listening", "addr", l.Addr().String())
	select {
	case err := <-errc:
		return fmt.Errorf("metadata service: %w", err)
	case <-ctx.Done():
	}
	log.Info("metadata service shutting down", "addr", l.Addr().String())
	sctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if err != nil {
		srv.Close()
		return fmt.Errorf("metadata service: shutting down: %w", err)
	}
	return nil
}
