package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"
)

// kubeletHandler serves the part of a kubelet's API that the API server
// calls for the tests: container logs (GET pods/log) and a health check.
func (n *nodeRun) kubeletHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })
	mux.HandleFunc("GET /containerLogs/{namespace}/{pod}/{container}", n.serveLogs)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, fmt.Sprintf("%s %s is not served by the stepwise node agent (it serves container logs only)", r.Method, r.URL.Path), http.StatusNotFound)
	})
	return mux
}

// logOptions reads a kubelet's container-log query: follow, previous,
// timestamps, tailLines, sinceSeconds, sinceTime, limitBytes.
func logOptions(q map[string][]string) (opts container.LogsOptions, previous bool, limit int64, err error) {
	get := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	flag := func(k string) (bool, error) {
		v := get(k)
		if v == "" {
			return false, nil
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			return false, fmt.Errorf("%s=%q is not true or false", k, v)
		}
		return b, nil
	}
	opts = container.LogsOptions{ShowStdout: true, ShowStderr: true, Tail: "all"}
	if opts.Follow, err = flag("follow"); err != nil {
		return
	}
	if previous, err = flag("previous"); err != nil {
		return
	}
	if opts.Timestamps, err = flag("timestamps"); err != nil {
		return
	}
	if v := get("tailLines"); v != "" {
		n, perr := strconv.ParseInt(v, 10, 64)
		if perr != nil || n < 0 {
			return opts, false, 0, fmt.Errorf("tailLines=%q is not a count of lines", v)
		}
		opts.Tail = strconv.FormatInt(n, 10)
	}
	if v := get("sinceSeconds"); v != "" {
		n, perr := strconv.ParseInt(v, 10, 64)
		if perr != nil || n <= 0 {
			return opts, false, 0, fmt.Errorf("sinceSeconds=%q is not a positive count of seconds", v)
		}
		opts.Since = strconv.FormatInt(time.Now().Add(-time.Duration(n)*time.Second).Unix(), 10)
	}
	if v := get("sinceTime"); v != "" {
		t, perr := time.Parse(time.RFC3339, v)
		if perr != nil {
			return opts, false, 0, fmt.Errorf("sinceTime=%q is not an RFC 3339 time", v)
		}
		opts.Since = strconv.FormatInt(t.Unix(), 10)
	}
	if v := get("limitBytes"); v != "" {
		n, perr := strconv.ParseInt(v, 10, 64)
		if perr != nil || n <= 0 {
			return opts, false, 0, fmt.Errorf("limitBytes=%q is not a positive count of bytes", v)
		}
		limit = n
	}
	return opts, previous, limit, nil
}

func (n *nodeRun) serveLogs(w http.ResponseWriter, req *http.Request) {
	ns, name, cname := req.PathValue("namespace"), req.PathValue("pod"), req.PathValue("container")
	opts, previous, limit, err := logOptions(req.URL.Query())
	if err != nil {
		http.Error(w, "container logs: "+err.Error(), http.StatusBadRequest)
		return
	}
	r := n.podRun(ns, name)
	if r == nil {
		http.Error(w, fmt.Sprintf("pod %s/%s is not on node %s", ns, name, n.cfg.Name), http.StatusNotFound)
		return
	}
	id, tty, err := r.containerID(cname, previous)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	rc, err := n.a.docker.cli.ContainerLogs(req.Context(), id, opts)
	if err != nil {
		http.Error(w, fmt.Sprintf("logs of container %s of pod %s/%s: %v", cname, ns, name, err), http.StatusInternalServerError)
		return
	}
	defer rc.Close()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	var dst io.Writer = &flushWriter{w: w, f: http.NewResponseController(w)}
	if limit > 0 {
		dst = &limitWriter{w: dst, left: limit}
	}
	if tty {
		_, err = io.Copy(dst, rc)
	} else {
		_, err = stdcopy.StdCopy(dst, dst, rc)
	}
	if err != nil && !errors.Is(err, errLimit) && req.Context().Err() == nil && !strings.Contains(err.Error(), "closed") {
		n.log.Warn("serve logs", "pod", ns+"/"+name, "container", cname, "err", err)
	}
}

// flushWriter sends each write at once (followed logs).
type flushWriter struct {
	w io.Writer
	f *http.ResponseController
}

func (fw *flushWriter) Write(p []byte) (int, error) {
	n, err := fw.w.Write(p)
	if err == nil {
		err = fw.f.Flush()
	}
	return n, err
}

var errLimit = errors.New("limitBytes reached")

// limitWriter writes at most left bytes, then fails with errLimit.
type limitWriter struct {
	w    io.Writer
	left int64
}

func (lw *limitWriter) Write(p []byte) (int, error) {
	if lw.left <= 0 {
		return 0, errLimit
	}
	cut := false
	if int64(len(p)) > lw.left {
		p, cut = p[:lw.left], true
	}
	n, err := lw.w.Write(p)
	lw.left -= int64(n)
	if err == nil && cut {
		err = errLimit
	}
	return n, err
}
