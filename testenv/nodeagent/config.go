package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Config is what one agent process runs: the nodes it registers and how it
// reaches the API server and Docker. It is read from a JSON file.
type Config struct {
	// Nodes are registered with the cluster, each with its own
	// credentials and kubelet endpoint.
	Nodes []NodeConfig `json:"nodes"`
	// NodeIP is every node's InternalIP: where the API server reaches the
	// nodes' kubelet endpoints (each node listens on a port of its own)
	// and what pods see as status.hostIP. It must be an address of this
	// machine; the Docker bridge's gateway lets pods reach it too.
	NodeIP string `json:"nodeIP"`
	// TLSCert and TLSKey are the kubelet endpoints' serving certificate,
	// valid for NodeIP, signed by a CA the API server trusts.
	TLSCert string `json:"tlsCert"`
	TLSKey  string `json:"tlsKey"`
	// ClientCA, if set, is a CA file: callers of the kubelet endpoints
	// must present a client certificate it signed (as the API server does).
	ClientCA string `json:"clientCA,omitempty"`
	// APIServer, if set, is host:port at which pods reach the API server:
	// every container gets KUBERNETES_SERVICE_HOST and
	// KUBERNETES_SERVICE_PORT (and _HTTPS) for it, as a kubelet gives the
	// address of the kubernetes Service, so that in-cluster clients work.
	APIServer string `json:"apiServer,omitempty"`
	// Network is the Docker network pods' sandboxes join ("bridge" by
	// default, Docker's own).
	Network string `json:"network,omitempty"`
	// StateDir holds the pods' volumes and termination-message files.
	StateDir string `json:"stateDir"`
	// Control is the address of the agent's control endpoint
	// (127.0.0.1:0 by default: any free port, written to the ready file).
	Control string `json:"control,omitempty"`
	// LeaseDuration is the nodes' Lease duration and LeaseRenew how often
	// it is renewed (40s and 2s by default).
	LeaseDuration Duration `json:"leaseDuration,omitempty"`
	LeaseRenew    Duration `json:"leaseRenew,omitempty"`
	// StatusInterval is how often a node's status is posted even when
	// nothing changed (10s by default).
	StatusInterval Duration `json:"statusInterval,omitempty"`
	// RestartBackoffMax caps the wait before a failed container is
	// restarted (pods with restartPolicy OnFailure or Always): 1s, then
	// doubling up to it (10s by default; a kubelet waits up to 5 minutes).
	RestartBackoffMax Duration `json:"restartBackoffMax,omitempty"`
}

// NodeConfig is one node.
type NodeConfig struct {
	// Name is the Node's name.
	Name string `json:"name"`
	// Kubeconfig holds this node's credentials (a kubelet's:
	// system:node:NAME in group system:nodes).
	Kubeconfig string `json:"kubeconfig"`
	// CPU and Memory are the node's capacity and allocatable, as
	// Kubernetes quantities ("4", "8Gi"); GPU is its count of
	// nvidia.com/gpu, an extended resource (no device is attached to
	// containers); Pods is how many pods it takes (110 by default).
	CPU    string `json:"cpu"`
	Memory string `json:"memory"`
	GPU    int    `json:"gpu,omitempty"`
	Pods   int    `json:"pods,omitempty"`
	// Labels are added to the node's (kubernetes.io/hostname, /os, /arch).
	Labels map[string]string `json:"labels,omitempty"`
	// Taints are the node's at registration.
	Taints []corev1.Taint `json:"taints,omitempty"`
}

// Duration is a time.Duration written as "2s" in JSON.
type Duration time.Duration

// UnmarshalJSON reads "1.5s", "100ms" or "2m".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration is a string such as \"2s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	if v <= 0 {
		return fmt.Errorf("duration %q is not positive", s)
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes the duration as "2s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// LoadConfig reads and checks the configuration file at path.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read the configuration: %w", err)
	}
	c, err := ParseConfig(b)
	if err != nil {
		return nil, fmt.Errorf("configuration %s: %w", path, err)
	}
	return c, nil
}

// ParseConfig reads a configuration from JSON, fills in defaults and
// checks it: every problem is reported, each naming its field.
func ParseConfig(b []byte) (*Config, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var c Config
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("not a valid configuration (JSON with nodes, nodeIP, tlsCert, tlsKey, stateDir): %w", err)
	}
	if dec.More() {
		return nil, errors.New("not a valid configuration: more than one JSON value")
	}
	c.defaults()
	if err := c.check(); err != nil {
		return nil, err
	}
	return &c, nil
}

func (c *Config) defaults() {
	if c.Network == "" {
		c.Network = "bridge"
	}
	if c.Control == "" {
		c.Control = "127.0.0.1:0"
	}
	if c.LeaseDuration == 0 {
		c.LeaseDuration = Duration(40 * time.Second)
	}
	if c.LeaseRenew == 0 {
		c.LeaseRenew = Duration(2 * time.Second)
	}
	if c.StatusInterval == 0 {
		c.StatusInterval = Duration(10 * time.Second)
	}
	if c.RestartBackoffMax == 0 {
		c.RestartBackoffMax = Duration(10 * time.Second)
	}
	for i := range c.Nodes {
		if c.Nodes[i].Pods == 0 {
			c.Nodes[i].Pods = 110
		}
	}
}

func (c *Config) check() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if len(c.Nodes) == 0 {
		bad("nodes: none; list at least one node (name, kubeconfig, cpu, memory)")
	}
	if net.ParseIP(c.NodeIP) == nil {
		bad("nodeIP: %q is not an IP address; give an address of this machine (the Docker bridge's gateway, such as 172.17.0.1)", c.NodeIP)
	}
	if c.TLSCert == "" || c.TLSKey == "" {
		bad("tlsCert, tlsKey: both are needed: the API server reaches the nodes' logs over TLS")
	}
	if c.StateDir == "" {
		bad("stateDir: empty; give a directory for the pods' volumes")
	}
	if c.APIServer != "" {
		if _, _, err := net.SplitHostPort(c.APIServer); err != nil {
			bad("apiServer: %q is not host:port: %v", c.APIServer, err)
		}
	}
	if _, _, err := net.SplitHostPort(c.Control); err != nil {
		bad("control: %q is not host:port: %v", c.Control, err)
	}
	if time.Duration(c.LeaseRenew) >= time.Duration(c.LeaseDuration) {
		bad("leaseRenew %s must be shorter than leaseDuration %s", time.Duration(c.LeaseRenew), time.Duration(c.LeaseDuration))
	}
	seen := map[string]bool{}
	for i, n := range c.Nodes {
		at := fmt.Sprintf("nodes[%d]", i)
		if n.Name != "" {
			at = fmt.Sprintf("node %q", n.Name)
		}
		for _, msg := range validation.IsDNS1123Subdomain(n.Name) {
			bad("%s: name: %s", at, msg)
		}
		if seen[n.Name] {
			bad("%s: the name is given twice", at)
		}
		seen[n.Name] = true
		if n.Kubeconfig == "" {
			bad("%s: kubeconfig: empty; give the file with the node's credentials", at)
		}
		for _, q := range []struct{ field, v string }{{"cpu", n.CPU}, {"memory", n.Memory}} {
			v, err := resource.ParseQuantity(q.v)
			switch {
			case err != nil:
				bad("%s: %s: %q is not a quantity such as \"4\" or \"8Gi\"", at, q.field, q.v)
			case v.Sign() <= 0:
				bad("%s: %s: %q is not positive", at, q.field, q.v)
			}
		}
		if n.GPU < 0 {
			bad("%s: gpu: %d is negative", at, n.GPU)
		}
		if n.Pods < 0 {
			bad("%s: pods: %d is negative", at, n.Pods)
		}
		for k, v := range n.Labels {
			for _, msg := range validation.IsQualifiedName(k) {
				bad("%s: label %q: %s", at, k, msg)
			}
			for _, msg := range validation.IsValidLabelValue(v) {
				bad("%s: label %q value %q: %s", at, k, v, msg)
			}
		}
		for _, t := range n.Taints {
			switch t.Effect {
			case corev1.TaintEffectNoSchedule, corev1.TaintEffectPreferNoSchedule, corev1.TaintEffectNoExecute:
			default:
				bad("%s: taint %q: effect %q is not NoSchedule, PreferNoSchedule or NoExecute", at, t.Key, t.Effect)
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%d problem(s):\n%w", len(errs), errors.Join(errs...))
	}
	return nil
}
