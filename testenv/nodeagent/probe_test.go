package main

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// TestProbeCheck runs probes against a real HTTP server and a closed port
// on loopback, as the node runs them against a pod's address.
func TestProbeCheck(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/readyz":
			w.WriteHeader(http.StatusOK)
		case "/moved":
			w.WriteHeader(http.StatusFound)
		default:
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	_, portText, _ := net.SplitHostPort(srv.Listener.Addr().String())
	port, _ := strconv.Atoi(portText)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().(*net.TCPAddr).Port
	l.Close()

	ctr := &ctr{spec: corev1.Container{Name: "serve", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: int32(port)}}}}
	r := &podRun{podIP: "127.0.0.1"}
	get := func(path string, p intstr.IntOrString) *corev1.Probe {
		return &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: p}}}
	}
	for _, c := range []struct {
		name  string
		probe *corev1.Probe
		bad   string // what the error says; "" when the probe succeeds
	}{
		{"http by port name", get("/readyz", intstr.FromString("http")), ""},
		{"http by number", get("/readyz", intstr.FromInt32(int32(port))), ""},
		{"a redirect is success", get("/moved", intstr.FromString("http")), ""},
		{"503", get("/other", intstr.FromString("http")), "503"},
		{"unknown port name", get("/readyz", intstr.FromString("metrics")), `"metrics" is not a port`},
		{"nothing listening", get("/readyz", intstr.FromInt32(int32(closed))), "refused"},
		{"tcp", &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromString("http")}}}, ""},
		{"tcp closed", &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(int32(closed))}}}, "refused"},
		{"exec", &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"true"}}}}, "httpGet and tcpSocket probes only"},
	} {
		err := r.check(context.Background(), ctr, c.probe)
		switch {
		case c.bad == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.bad != "" && (err == nil || !strings.Contains(err.Error(), c.bad)):
			t.Errorf("%s: error %v, want one that says %q", c.name, err, c.bad)
		}
	}
}

// TestReadyNeedsProbe: a running container with a readiness probe is
// ready only once the probe said so; one without is ready when running.
func TestReadyNeedsProbe(t *testing.T) {
	running := corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}
	plain := &ctr{spec: corev1.Container{Name: "a"}, state: running}
	probed := &ctr{spec: corev1.Container{Name: "b", ReadinessProbe: &corev1.Probe{}}, state: running}
	if !plain.ready() || probed.ready() {
		t.Fatalf("ready: without a probe %v (want true), with one not yet passed %v (want false)", plain.ready(), probed.ready())
	}
	probed.probedReady = true
	if !probed.ready() {
		t.Fatal("a container whose probe passed is not ready")
	}
}
