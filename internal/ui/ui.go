// Package ui is the web UI of `stepwise ui`: pages rendered on the server
// with html/template from assets compiled into the binary, a little
// JavaScript of its own for live updates over Server-Sent Events, and
// nothing loaded from elsewhere. It reads through package client, like the
// command line, so it shows the local datastore and a team's S3 and
// metadata service alike; artifacts and logs are served by it, read in
// ranges so that a large one is never loaded whole.
package ui

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"stepwise.dev/stepwise/client"
)

//go:embed assets
var assets embed.FS

// Options configure a Server.
type Options struct {
	// Token, when set, is asked of every visitor before anything is
	// shown (the team's service token); it is never written to a page.
	Token string
	// Namespace is the runs page's namespace filter when the address
	// gives none (default: every run).
	Namespace string
	// Poll is how often live pages look for changes (default 1s).
	Poll time.Duration
	// Log receives one line per failed request (default slog.Default()).
	Log *slog.Logger
}

// Server serves the UI over one client, which must read the global
// namespace (namespaces are filters of the runs page).
type Server struct {
	c        *client.Client
	o        Options
	pages    map[string]*template.Template
	mu       sync.Mutex
	sessions map[string]time.Time
	states   pageStates // of the pages that follow runs live
}

// New returns the UI over c.
func New(c *client.Client, o Options) (*Server, error) {
	if o.Poll <= 0 {
		o.Poll = time.Second
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	s := &Server{c: c, o: o, pages: map[string]*template.Template{}, sessions: map[string]time.Time{}}
	for _, p := range []string{"runs", "run", "task", "error", "login"} {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(assets, "assets/layout.html", "assets/"+p+".html")
		if err != nil {
			return nil, fmt.Errorf("ui: template %s: %w", p, err)
		}
		s.pages[p] = t
	}
	return s, nil
}

// Handler returns the UI's routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	static, _ := fs.Sub(assets, "assets/static")
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	mux.HandleFunc("GET /login", s.login)
	mux.HandleFunc("POST /login", s.login)
	mux.HandleFunc("GET /{$}", s.runsPage)
	mux.HandleFunc("GET /events", s.runsEvents)
	mux.HandleFunc("GET /runs/{flow}/{run}", s.runPage)
	mux.HandleFunc("POST /runs/{flow}/{run}/tags", s.tags)
	mux.HandleFunc("GET /runs/{flow}/{run}/events", s.runEvents)
	mux.HandleFunc("GET /runs/{flow}/{run}/{step}/{task}", s.taskPage)
	mux.HandleFunc("GET /runs/{flow}/{run}/{step}/{task}/artifacts/{name}", s.artifact)
	mux.HandleFunc("GET /runs/{flow}/{run}/{step}/{task}/logs/{attempt}/{stream}", s.log)
	mux.HandleFunc("GET /runs/{flow}/{run}/{step}/{task}/logs/{attempt}/{stream}/events", s.logEvents)
	mux.HandleFunc("GET /runs/{flow}/{run}/{step}/{task}/cards/{attempt}/{name}", s.cardPage)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, r, http.StatusNotFound, fmt.Errorf("there is no page %s; start from the list of runs", r.URL.Path))
	})
	return s.guard(mux)
}

// guard sets the headers every response has, and asks for the token when
// one is configured.
func (s *Server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin") // a form sends its Origin, which tags checks
		if h.Get("Content-Security-Policy") == "" {
			h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-src 'self'; object-src 'none'; base-uri 'none'")
		}
		if s.o.Token != "" && r.URL.Path != "/login" && !pathHasPrefix(r.URL.Path, "/static/") && !s.signedIn(r) {
			http.Redirect(w, r, "/login", http.StatusSeeOther)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func pathHasPrefix(p, prefix string) bool { return len(p) >= len(prefix) && p[:len(prefix)] == prefix }

const sessionCookie = "stepwise_session"

func (s *Server) signedIn(r *http.Request) bool {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	exp, ok := s.sessions[c.Value]
	return ok && time.Now().Before(exp)
}

// login asks for the token; a right one opens a session whose cookie holds
// a random id, not the token.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	data := map[string]any{"Title": "Sign in"}
	if r.Method == http.MethodPost {
		given := r.PostFormValue("token")
		if s.o.Token != "" && subtle.ConstantTimeCompare([]byte(given), []byte(s.o.Token)) == 1 {
			b := make([]byte, 32)
			rand.Read(b)
			id := hex.EncodeToString(b)
			s.mu.Lock()
			s.sessions[id] = time.Now().Add(12 * time.Hour)
			s.mu.Unlock()
			http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: id, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode, MaxAge: 12 * 3600})
			http.Redirect(w, r, "/", http.StatusSeeOther)
			return
		}
		w.WriteHeader(http.StatusUnauthorized)
		data["Wrong"] = true
	}
	s.render(w, r, "login", data)
}

// render executes a page template; a failure is logged (the page is
// already partly written).
func (s *Server) render(w http.ResponseWriter, r *http.Request, page string, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := s.pages[page].Execute(w, data); err != nil {
		s.o.Log.Error("ui: cannot render page", "page", page, "path", r.URL.Path, "err", err)
	}
}

// fail writes an error page: status 404 for what does not exist, 400 for
// a malformed address, 500 otherwise.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, status int, err error) {
	if status == 0 {
		status = http.StatusInternalServerError
		var ue *badRequest
		switch {
		case errors.Is(err, client.ErrNotFound):
			status = http.StatusNotFound
		case errors.As(err, &ue):
			status = http.StatusBadRequest
		}
	}
	if status == http.StatusInternalServerError {
		s.o.Log.Error("ui: request failed", "path", r.URL.Path, "err", err)
	}
	w.WriteHeader(status)
	s.render(w, r, "error", map[string]any{"Title": http.StatusText(status), "Status": status, "Message": err.Error()})
}

// badRequest is a malformed address or form.
type badRequest struct{ err error }

// Error is the message of the wrapped error.
func (e *badRequest) Error() string { return e.err.Error() }

// Unwrap returns the wrapped error.
func (e *badRequest) Unwrap() error { return e.err }

// Serve serves the UI on addr until ctx is done; ready, if not nil,
// receives the address it listens on.
func (s *Server) Serve(ctx context.Context, addr string, ready func(addr string)) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("ui: cannot listen on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second, BaseContext: func(net.Listener) context.Context { return ctx }}
	if ready != nil {
		ready(l.Addr().String())
	}
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		srv.Shutdown(shut)
	}()
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("ui: %w", err)
	}
	return nil
}
