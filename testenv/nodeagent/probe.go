package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Probes, as a kubelet runs them: a readiness probe decides whether the
// container (and so the pod) is Ready, which is what a Deployment's
// rollout and a Service's endpoints follow; a liveness probe that fails
// failureThreshold times in a row stops the container, which is then
// restarted as the pod's restartPolicy says. httpGet and tcpSocket probes
// are run from the node against the pod's address; exec and grpc probes
// are not supported here: they fail, with a message that says so.

// probeKind names a probe for logs and events.
type probeKind string

const (
	readiness probeKind = "readiness"
	liveness  probeKind = "liveness"
)

// startProbes starts the probes of app container c's attempt id.
func (r *podRun) startProbes(c *ctr, id string) {
	if c.init {
		return
	}
	if p := c.spec.ReadinessProbe; p != nil {
		go r.runProbe(c, id, p, readiness)
	}
	if p := c.spec.LivenessProbe; p != nil {
		go r.runProbe(c, id, p, liveness)
	}
}

// current says whether attempt id of c still runs.
func (r *podRun) current(c *ctr, id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return c.id == id && c.running()
}

func seconds(n int32, def int32) time.Duration {
	if n <= 0 {
		n = def
	}
	return time.Duration(n) * time.Second
}

// runProbe runs probe p of attempt id of c every period until the
// attempt ends or the pod is stopped.
func (r *podRun) runProbe(c *ctr, id string, p *corev1.Probe, kind probeKind) {
	if p.InitialDelaySeconds > 0 && !r.sleep(time.Duration(p.InitialDelaySeconds)*time.Second) {
		return
	}
	period, timeout := seconds(p.PeriodSeconds, 10), seconds(p.TimeoutSeconds, 1)
	success, failure := max(p.SuccessThreshold, 1), max(p.FailureThreshold, 3)
	var oks, fails int32
	for r.current(c, id) {
		ctx, cancel := context.WithTimeout(r.ctx, timeout)
		err := r.check(ctx, c, p)
		cancel()
		if r.ctx.Err() != nil {
			return
		}
		if err == nil {
			oks, fails = oks+1, 0
		} else {
			oks, fails = 0, fails+1
			r.log.Debug("probe failed", "probe", kind, "container", c.spec.Name, "err", err)
		}
		switch {
		case kind == readiness && oks >= success:
			r.setReady(c, id, true)
		case kind == readiness && fails >= failure:
			r.setReady(c, id, false)
		case kind == liveness && fails >= failure:
			r.log.Info("liveness probe failed; stopping the container", "container", c.spec.Name, "err", err)
			if err := r.n.a.docker.stop(r.n.a.ctx, id, r.gracePeriod()); err != nil {
				r.log.Warn("stop container after its liveness probe failed", "container", c.spec.Name, "err", err)
			}
			return
		}
		if !r.sleep(period) {
			return
		}
	}
}

// setReady records what the readiness probe of attempt id of c says.
func (r *podRun) setReady(c *ctr, id string, ready bool) {
	r.mu.Lock()
	if c.id != id || c.probedReady == ready {
		r.mu.Unlock()
		return
	}
	c.probedReady = ready
	r.readinessLocked()
	r.mu.Unlock()
	r.changed()
}

// ready says whether app container c is ready: running, and its
// readiness probe, if it has one, has succeeded.
func (c *ctr) ready() bool {
	return c.running() && !c.init && (c.spec.ReadinessProbe == nil || c.probedReady)
}

// check runs probe p once against the pod.
func (r *podRun) check(ctx context.Context, c *ctr, p *corev1.Probe) error {
	r.mu.Lock()
	ip := r.podIP
	r.mu.Unlock()
	switch {
	case p.HTTPGet != nil:
		g := p.HTTPGet
		port, err := probePort(g.Port, c.spec)
		if err != nil {
			return err
		}
		host := ip
		if g.Host != "" {
			host = g.Host
		}
		scheme := "http"
		if g.Scheme == corev1.URISchemeHTTPS {
			scheme = "https"
		}
		path := g.Path
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+net.JoinHostPort(host, strconv.Itoa(port))+path, nil)
		if err != nil {
			return err
		}
		req.Header.Set("User-Agent", "kube-probe/1.34")
		for _, h := range g.HTTPHeaders {
			req.Header.Set(h.Name, h.Value)
		}
		resp, err := probeClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode >= 400 {
			return fmt.Errorf("HTTP probe answered %s", resp.Status)
		}
		return nil
	case p.TCPSocket != nil:
		port, err := probePort(p.TCPSocket.Port, c.spec)
		if err != nil {
			return err
		}
		host := ip
		if p.TCPSocket.Host != "" {
			host = p.TCPSocket.Host
		}
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			return err
		}
		return conn.Close()
	}
	return errors.New("this node agent runs httpGet and tcpSocket probes only, not exec or grpc")
}

// probeClient follows no redirects beyond the default and, as a kubelet,
// does not check the certificates of HTTPS probes.
var probeClient = &http.Client{Transport: &http.Transport{
	TLSClientConfig:   &tls.Config{InsecureSkipVerify: true},
	DisableKeepAlives: true,
}}

// probePort resolves a probe's port: a number, or the name of one of the
// container's ports.
func probePort(p intstr.IntOrString, c corev1.Container) (int, error) {
	if p.Type == intstr.Int {
		return int(p.IntVal), nil
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return int(cp.ContainerPort), nil
		}
	}
	if n, err := strconv.Atoi(p.StrVal); err == nil {
		return n, nil
	}
	return 0, fmt.Errorf("probe port %q is not a port of container %s", p.StrVal, c.Name)
}
