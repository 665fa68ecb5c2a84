package kubernetes

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"k8s.io/client-go/rest"
)

// API is a small client of the API server for the commands that deploy
// flows (Argo Workflows resources, CronJobs): objects by path, as JSON.
type API struct {
	c    *client
	Host string
}

// Connect connects to the cluster of the settings in force (the
// kubeconfig and context), and checks that it answers.
func Connect(ctx context.Context, inForce func(string) string) (*API, error) {
	c, host, err := dial(ctx, inForce, nil)
	if err != nil {
		return nil, err
	}
	return &API{c: c, Host: host}, nil
}

// dial makes a client of the cluster of the settings in force (its
// transport wrapped by wrap, when given) and checks, with a deadline, that
// the API server answers: a cluster that does not is said at once, not
// after the first request hangs.
func dial(ctx context.Context, inForce func(string) string, wrap func(http.RoundTripper) http.RoundTripper) (*client, string, error) {
	cfg, host, err := restConfig(inForce)
	if err != nil {
		return nil, "", err
	}
	cfg.WrapTransport = wrap
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, "", fmt.Errorf("kubernetes: cannot make a client for %s: %w", host, err)
	}
	c := &client{http: hc, base: strings.TrimRight(cfg.Host, "/")}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := c.version(pctx); err != nil {
		return nil, "", fmt.Errorf("kubernetes: cannot reach the API server at %s: %w; check the kubeconfig (KUBECONFIG, or stepwise configure --set-compute kubernetes.kubeconfig=PATH) and that the cluster is up", host, err)
	}
	return c, host, nil
}

// Get reads the object at path into out.
func (a *API) Get(ctx context.Context, path string, out any) error {
	return a.c.do(ctx, http.MethodGet, path, nil, nil, out)
}

// List reads the objects under path that match a label selector into out
// (a list's JSON).
func (a *API) List(ctx context.Context, path, sel string, out any) error {
	var q url.Values
	if sel != "" {
		q = selector(sel)
	}
	return a.c.do(ctx, http.MethodGet, path, q, nil, out)
}

// Create creates obj in the collection at path; out (when not nil)
// receives the object created.
func (a *API) Create(ctx context.Context, path string, obj, out any) error {
	return a.c.do(ctx, http.MethodPost, path, nil, obj, out)
}

// Apply applies obj at path (the collection's path and the object's
// name) with server-side apply, as field manager stepwise, taking over
// fields others set.
func (a *API) Apply(ctx context.Context, path string, obj any) error {
	q := url.Values{"fieldManager": {"stepwise"}, "force": {"true"}, "fieldValidation": {"Strict"}}
	resp, err := a.c.sendAs(ctx, http.MethodPatch, path, q, obj, "application/apply-patch+yaml")
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	return resp.Body.Close()
}

// MergePatch changes the fields of the object at path that patch gives.
func (a *API) MergePatch(ctx context.Context, path string, patch any) error {
	resp, err := a.c.sendAs(ctx, http.MethodPatch, path, nil, patch, "application/merge-patch+json")
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	return resp.Body.Close()
}

// Delete deletes the object at path, and what it owns in the background.
func (a *API) Delete(ctx context.Context, path string) error {
	return a.c.do(ctx, http.MethodDelete, path, url.Values{"propagationPolicy": {"Background"}}, nil, nil)
}

// DeleteOrphan deletes the object at path and leaves what it owns (a
// CronJob's Jobs) in place.
func (a *API) DeleteOrphan(ctx context.Context, path string) error {
	return a.c.do(ctx, http.MethodDelete, path, url.Values{"propagationPolicy": {"Orphan"}}, nil, nil)
}

// Logs reads the output of a pod's container.
func (a *API) Logs(ctx context.Context, ns, pod, container string) ([]byte, error) {
	r, err := a.c.logs(ctx, ns, pod, container, false, 0)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

// IsNotFound says whether err is the API server's 404.
func IsNotFound(err error) bool { return isNotFound(err) }

// IsForbidden says whether err is the API server's 403.
func IsForbidden(err error) bool { return isForbidden(err) }
