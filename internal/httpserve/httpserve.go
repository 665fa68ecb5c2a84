// Package httpserve runs an HTTP server the way Stepwise's servers (the
// metadata service, hosted services) run: until a context is done, then a
// graceful shutdown that lets the requests in flight finish.
package httpserve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Run serves srv on l (already wrapped for TLS, if any) until ctx is done,
// then stops taking connections and waits up to grace for the requests in
// flight, and returns nil after a clean shutdown. name says which server
// it is in messages and log lines ("metadata service").
func Run(ctx context.Context, srv *http.Server, l net.Listener, name string, grace time.Duration, log *slog.Logger, attrs ...any) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	log.Info(name+" listening", append([]any{"addr", l.Addr().String()}, attrs...)...)
	select {
	case err := <-errc:
		return fmt.Errorf("%s: %w", name, err)
	case <-ctx.Done():
	}
	log.Info(name+" shutting down; finishing the requests in flight", "addr", l.Addr().String())
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if err != nil {
		srv.Close()
		return fmt.Errorf("%s: shutting down: %w; requests still in flight after %s were cut", name, err, grace)
	}
	log.Info(name + " shut down")
	return nil
}
