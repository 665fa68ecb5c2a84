package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// Agent runs the nodes of one configuration.
type Agent struct {
	cfg           *Config
	log           *slog.Logger
	ctx           context.Context // ends when the agent shuts down
	docker        *docker
	dockerVersion string
	kernel        string
	tlsConfig     *tls.Config
	nodes         []*nodeRun
	byName        map[string]*nodeRun
}

// Ready is what the agent writes to its ready file once every node is
// registered and running.
type Ready struct {
	Control string         `json:"control"` // http://127.0.0.1:PORT
	Nodes   map[string]int `json:"nodes"`   // kubelet port by node name
	PID     int            `json:"pid"`
}

// NewAgent connects to Docker and reads the credentials; it starts nothing.
func NewAgent(ctx context.Context, cfg *Config, log *slog.Logger) (*Agent, error) {
	a := &Agent{cfg: cfg, log: log, ctx: ctx, byName: map[string]*nodeRun{}}
	cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("kubelet serving certificate %s and key %s: %w", cfg.TLSCert, cfg.TLSKey, err)
	}
	a.tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if cfg.ClientCA != "" {
		b, err := os.ReadFile(cfg.ClientCA)
		if err != nil {
			return nil, fmt.Errorf("client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("client CA %s holds no PEM certificate", cfg.ClientCA)
		}
		a.tlsConfig.ClientCAs, a.tlsConfig.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	if err := os.MkdirAll(cfg.StateDir, 0o755); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	if a.docker, err = newDocker(ctx, cfg.Network); err != nil {
		return nil, err
	}
	if v, err := a.docker.cli.ServerVersion(ctx); err == nil {
		a.dockerVersion, a.kernel = v.Version, v.KernelVersion
	}
	a.docker.removeStale(ctx, log)
	for _, nc := range cfg.Nodes {
		n, err := newNodeRun(a, nc)
		if err != nil {
			return nil, err
		}
		a.nodes = append(a.nodes, n)
		a.byName[nc.Name] = n
	}
	return a, nil
}

// Start registers every node and serves the control endpoint.
func (a *Agent) Start() (*Ready, error) {
	errs := make([]error, len(a.nodes))
	var wg sync.WaitGroup
	for i, n := range a.nodes {
		wg.Go(func() { errs[i] = n.start() })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", a.cfg.Control)
	if err != nil {
		return nil, fmt.Errorf("control endpoint on %s: %w", a.cfg.Control, err)
	}
	srv := &http.Server{Handler: a.controlHandler(), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	go func() { <-a.ctx.Done(); srv.Close() }()
	r := &Ready{Control: "http://" + ln.Addr().String(), Nodes: map[string]int{}, PID: os.Getpid()}
	for _, n := range a.nodes {
		r.Nodes[n.cfg.Name] = n.port
	}
	return r, nil
}

// Shutdown halts every node and removes every container the agent made,
// and its state directory. The Node objects stay: a node may not delete
// itself; the tests' set-up deletes them.
func (a *Agent) Shutdown() {
	var wg sync.WaitGroup
	for _, n := range a.nodes {
		wg.Go(func() { n.halt(stateStopped) })
	}
	wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cs, err := a.docker.containers(ctx, labelAgent, a.docker.pid)
	if err != nil {
		a.log.Warn("list the agent's containers", "err", err)
	}
	for _, c := range cs {
		if err := a.docker.remove(ctx, c.ID); err != nil {
			a.log.Warn("remove container", "err", err)
		}
	}
	if err := os.RemoveAll(filepath.Join(a.cfg.StateDir, "pods")); err != nil {
		a.log.Warn("remove the pods' directories", "err", err)
	}
}

// NodeInfo is a node as the control endpoint reports it.
type NodeInfo struct {
	Name  string    `json:"name"`
	State string    `json:"state"` // running, partitioned or stopped
	Port  int       `json:"port"`  // of its kubelet endpoint
	Pods  []PodInfo `json:"pods"`
}

// PodInfo is a pod on a node and its Docker containers.
type PodInfo struct {
	Namespace  string            `json:"namespace"`
	Name       string            `json:"name"`
	UID        string            `json:"uid"`
	Phase      corev1.PodPhase   `json:"phase"`
	Sandbox    string            `json:"sandbox"`
	Containers map[string]string `json:"containers"` // Docker container id by container name
}

func (a *Agent) nodeInfo(n *nodeRun) NodeInfo {
	n.mu.Lock()
	info := NodeInfo{Name: n.cfg.Name, State: n.state, Port: n.port, Pods: []PodInfo{}}
	n.mu.Unlock()
	for _, r := range n.podList() {
		r.mu.Lock()
		p := PodInfo{Namespace: r.pod.Namespace, Name: r.pod.Name, UID: string(r.pod.UID), Phase: r.phase, Sandbox: r.sandboxID, Containers: map[string]string{}}
		for _, c := range r.ctrs {
			if c.id != "" {
				p.Containers[c.spec.Name] = c.id
			}
		}
		r.mu.Unlock()
		info.Pods = append(info.Pods, p)
	}
	return info
}

// controlHandler serves what tests do to nodes from outside:
//
//	GET  /nodes                       every node, its state and pods
//	POST /nodes/{node}/stop           the node's machine dies: heartbeats stop, its containers are killed
//	POST /nodes/{node}/partition      the node is cut off from the API server; its containers go on
//	POST /nodes/{node}/heal           a partitioned node comes back
//	POST /pods/{namespace}/{pod}/containers/{container}/kill?signal=KILL
//	                                  sends a signal to a pod's container (KILL by default)
func (a *Agent) controlHandler() http.Handler {
	mux := http.NewServeMux()
	writeJSON := func(w http.ResponseWriter, v any) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(v)
	}
	mux.HandleFunc("GET /nodes", func(w http.ResponseWriter, _ *http.Request) {
		var out []NodeInfo
		for _, n := range a.nodes {
			out = append(out, a.nodeInfo(n))
		}
		writeJSON(w, out)
	})
	mux.HandleFunc("POST /nodes/{node}/{action}", func(w http.ResponseWriter, req *http.Request) {
		n := a.byName[req.PathValue("node")]
		if n == nil {
			http.Error(w, fmt.Sprintf("no node %q in this agent (it runs %s)", req.PathValue("node"), strings.Join(a.names(), ", ")), http.StatusNotFound)
			return
		}
		switch action := req.PathValue("action"); action {
		case "stop":
			n.kill()
		case "partition":
			n.mu.Lock()
			state := n.state
			n.mu.Unlock()
			if state == stateStopped {
				http.Error(w, fmt.Sprintf("node %s is stopped; it cannot be partitioned", n.cfg.Name), http.StatusConflict)
				return
			}
			n.halt(statePartitioned)
		case "heal":
			if err := n.start(); err != nil {
				http.Error(w, err.Error(), http.StatusConflict)
				return
			}
		default:
			http.Error(w, fmt.Sprintf("unknown action %q: use stop, partition or heal", action), http.StatusNotFound)
			return
		}
		a.log.Info("control", "node", n.cfg.Name, "action", req.PathValue("action"))
		writeJSON(w, a.nodeInfo(n))
	})
	mux.HandleFunc("POST /pods/{namespace}/{pod}/containers/{container}/kill", func(w http.ResponseWriter, req *http.Request) {
		ns, name, cname := req.PathValue("namespace"), req.PathValue("pod"), req.PathValue("container")
		signal := req.URL.Query().Get("signal")
		if signal == "" {
			signal = "KILL"
		}
		for _, n := range a.nodes {
			r := n.podRun(ns, name)
			if r == nil {
				continue
			}
			id, _, err := r.containerID(cname, false)
			if err != nil {
				http.Error(w, err.Error(), http.StatusConflict)
				return
			}
			if err := a.docker.cli.ContainerKill(req.Context(), id, signal); err != nil {
				http.Error(w, fmt.Sprintf("send %s to container %s of pod %s/%s: %v", signal, cname, ns, name, err), http.StatusConflict)
				return
			}
			a.log.Info("control: signal sent", "pod", ns+"/"+name, "container", cname, "signal", signal)
			writeJSON(w, map[string]string{"node": n.cfg.Name, "container": id})
			return
		}
		http.Error(w, fmt.Sprintf("pod %s/%s is on none of this agent's nodes (%s)", ns, name, strings.Join(a.names(), ", ")), http.StatusNotFound)
	})
	return mux
}

func (a *Agent) names() []string {
	var out []string
	for _, n := range a.nodes {
		out = append(out, n.cfg.Name)
	}
	return out
}

// pause is a pod sandbox's process: it waits for SIGTERM or SIGINT.
func pause() {
	ch := make(chan os.Signal, 1)
	signalNotify(ch, syscall.SIGTERM, syscall.SIGINT)
	<-ch
}

var sigterm = syscall.SIGTERM
