package testservers

// A Kubernetes control plane for tests: etcd, kube-apiserver,
// kube-controller-manager and kube-scheduler, built once by scripts/kube-bin
// (from the module in testenv/controlplane) and started on loopback, one for
// each test binary, on first use; they die with the test process. There is
// no node: a node agent that tests start registers one itself.
//
// Credentials. Certificates and keys are made here with crypto/x509 into the
// control plane's temporary directory, all signed by one CA (CA, CAFile):
//   - the API server's serving certificate (127.0.0.1, localhost and the
//     in-cluster names of the kubernetes Service);
//   - client certificates for the controller manager
//     (system:kube-controller-manager) and the scheduler
//     (system:kube-scheduler), each in a kubeconfig of its own, and for the
//     API server's calls to node agents (kube-apiserver-kubelet-client);
//   - serving certificates for the controller manager's and the scheduler's
//     health endpoints;
//   - the service account signing key (ECDSA P-256);
//   - a static token file with one admin user in system:masters, for the
//     tests' set-up only (Admin, AdminKubeconfig): what a test checks runs
//     as a service account bound to a Role (NewNamespace).
//
// Flags, beyond the credentials and ports (all on 127.0.0.1):
//
// etcd: --unsafe-no-fsync (test data need not survive a crash of the
// machine; fsync makes every write wait on a shared disk), plain HTTP on
// loopback, --log-level=warn.
//
// kube-apiserver:
//   - --authorization-mode=Node,RBAC and --enable-admission-plugins=NodeRestriction
//     (with the default plugins): node agents are held to their own node
//     and its pods, as kubelets are;
//   - --service-account-issuer, --service-account-key-file and
//     --service-account-signing-key-file: the TokenRequest API issues the
//     tests' tokens and the controllers' own;
//   - --default-not-ready-toleration-seconds=KubeTolerationSeconds and
//     --default-unreachable-toleration-seconds=KubeTolerationSeconds (300 s
//     by default): the tolerations the DefaultTolerationSeconds admission
//     plugin gives every pod, so that pods of a dead node are evicted in
//     seconds (when another node is still Ready: see KubeNodeGracePeriod);
//   - --kubelet-client-certificate/-key, --kubelet-certificate-authority and
//     --kubelet-preferred-address-types=InternalIP,Hostname: logs and exec
//     reach a node agent at its node's InternalIP with a certificate from
//     ServingCert;
//   - --service-cluster-ip-range=10.96.0.0/16: addresses only written into
//     Services; nothing routes them here (there is no kube-proxy);
//   - --endpoint-reconciler-type=none: the kubernetes Service gets no
//     endpoints (its address, 127.0.0.1, is not one an Endpoints object
//     may hold); pods reach the API server through a relay on the Docker
//     bridge instead (ForPods), whose address node agents give them as
//     the kubernetes Service's environment variables.
//
// kube-controller-manager:
//   - --controllers: only what the tests need (job, cronjob, deployment,
//     replicaset, endpointslice, ttl-after-finished, garbage-collector, namespace, serviceaccount,
//     serviceaccount-token, root-ca-certificate-publisher, node-lifecycle,
//     taint-eviction, pod-garbage-collector), not the default forty, which
//     would share two cores with the tests;
//   - --use-service-account-credentials: each controller acts as its own
//     service account under the default RBAC policy, as in a real cluster;
//   - --service-account-private-key-file and --root-ca-file: for the
//     token controller and the kube-root-ca.crt config map of every
//     namespace;
//   - --node-monitor-period=1s, --node-monitor-grace-period and
//     --node-startup-grace-period=KubeNodeGracePeriod (5 s, 50 s and 60 s by
//     default): a node whose agent stops renewing its Lease is marked
//     Unknown in seconds;
//   - --leader-elect=false: a single instance starts at once.
//
// kube-scheduler: its kubeconfig, --leader-elect=false.

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/yaml"
)

const (
	// KubeNodeGracePeriod is how long the node-lifecycle controller waits
	// for a node's Lease to be renewed (or its status posted) before it
	// marks the node's Ready condition Unknown and taints it unreachable;
	// a node that never posted a status gets as long. A node agent renews
	// its Lease well within it: every 2 seconds. When every node is down
	// at once the controller takes it for a partition of its own and
	// evicts no pod (its "master disruption mode"): the node's condition
	// still says Unknown.
	KubeNodeGracePeriod = 10 * time.Second

	// KubeTolerationSeconds is how long every pod tolerates its node being
	// not ready or unreachable before it is evicted, unless the pod says
	// otherwise.
	KubeTolerationSeconds = 5
)

// kubeControllers are the controllers the controller manager runs.
var kubeControllers = []string{
	"job-controller",
	"cronjob-controller",
	"deployment-controller",
	"replicaset-controller",
	"endpointslice-controller",
	"ttl-after-finished-controller",
	"garbage-collector-controller",
	"namespace-controller",
	"serviceaccount-controller",
	"serviceaccount-token-controller",
	"root-ca-certificate-publisher-controller",
	"node-lifecycle-controller",
	"taint-eviction-controller",
	"pod-garbage-collector-controller",
}

// Kubernetes is a Kubernetes control plane that this package started.
type Kubernetes struct {
	URL             string // of the API server: https://127.0.0.1:PORT
	CA              []byte // PEM of the CA that signed every certificate here
	CAFile          string // CA, in a file
	AdminKubeconfig string // a kubeconfig file for the admin user (system:masters), for set-up only
	Dir             string // certificates, kubeconfigs, etcd's data and each program's log

	adminToken string
	ca         *kubeCA
	procs      []*kubeProc

	relayOnce sync.Once // ForPods
	relay     string
	relayErr  error
}

var (
	kubeOnce sync.Once
	kubeSrv  *Kubernetes
	kubeErr  error
)

// Kube returns the test binary's Kubernetes control plane, starting it on
// first use (seconds; building it the first time on a machine takes
// scripts/kube-bin 10 to 30 minutes, which ./scripts/test does before the
// tests). It fails the test when the control plane cannot be started or
// one of its programs has since exited.
func Kube(t testing.TB) *Kubernetes {
	t.Helper()
	kubeOnce.Do(func() { kubeSrv, kubeErr = startKube() })
	if kubeErr != nil {
		t.Fatalf("testservers: the Kubernetes control plane is needed and could not be started: %v (run ./scripts/test, which builds it)", kubeErr)
	}
	if err := kubeSrv.exited(); err != nil {
		t.Fatalf("testservers: the Kubernetes control plane is broken: %v", err)
	}
	return kubeSrv
}

// AdminConfig returns a client configuration for the admin user, in
// system:masters: for a test's set-up only, never for what it checks.
func (k *Kubernetes) AdminConfig() *rest.Config {
	return &rest.Config{
		Host:            k.URL,
		BearerToken:     k.adminToken,
		TLSClientConfig: rest.TLSClientConfig{CAData: k.CA},
		QPS:             100,
		Burst:           200,
	}
}

// AdminClient returns a client for the admin user (see AdminConfig).
func (k *Kubernetes) AdminClient(t testing.TB) *kubernetes.Clientset {
	t.Helper()
	c, err := kubernetes.NewForConfig(k.AdminConfig())
	if err != nil {
		t.Fatalf("testservers: admin client for %s: %v", k.URL, err)
	}
	return c
}

// KubeNamespace is a namespace of one test, with a service account bound
// to the Role that the test asked for.
type KubeNamespace struct {
	Name           string       // the namespace
	ServiceAccount string       // in it, bound to the Role
	Token          string       // the service account's bearer token, valid for a day
	Config         *rest.Config // the API server, its CA and Token
	Kubeconfig     string       // a kubeconfig file with Config, whose context's namespace is Name
}

// NewNamespace creates a namespace for the test and in it a service
// account, a Role with rules and a RoleBinding of one to the other, and
// returns the account's token. It returns once the namespace's default
// service account exists (pods cannot be created before). The namespace is
// deleted when the test ends.
func (k *Kubernetes) NewNamespace(t testing.TB, rules []rbacv1.PolicyRule) *KubeNamespace {
	t.Helper()
	ns, err := k.newNamespace(context.Background(), t.Name(), rules)
	if ns != nil {
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			c, err := k.admin()
			if err == nil {
				err = c.CoreV1().Namespaces().Delete(ctx, ns.Name, metav1.DeleteOptions{})
			}
			if err != nil && !apierrors.IsNotFound(err) {
				t.Errorf("testservers: delete namespace %s: %v", ns.Name, err)
			}
		})
	}
	if err != nil {
		t.Fatalf("testservers: %v", err)
	}
	ns.Kubeconfig = filepath.Join(t.TempDir(), "kubeconfig")
	if err := writeKubeconfig(ns.Kubeconfig, ns.Config, ns.Name, "stepwise-test"); err != nil {
		t.Fatalf("testservers: %v", err)
	}
	return ns
}

// NewNamespaceYAML is NewNamespace with the rules of a Role (or
// ClusterRole) written in YAML, as KubeRules reads them.
func (k *Kubernetes) NewNamespaceYAML(t testing.TB, role string) *KubeNamespace {
	t.Helper()
	rules, err := KubeRules([]byte(role))
	if err != nil {
		t.Fatalf("testservers: %v", err)
	}
	return k.NewNamespace(t, rules)
}

func (k *Kubernetes) admin() (*kubernetes.Clientset, error) {
	c, err := kubernetes.NewForConfig(k.AdminConfig())
	if err != nil {
		return nil, fmt.Errorf("admin client for %s: %w", k.URL, err)
	}
	return c, nil
}

func (k *Kubernetes) newNamespace(ctx context.Context, test string, rules []rbacv1.PolicyRule) (*KubeNamespace, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	c, err := k.admin()
	if err != nil {
		return nil, err
	}
	name := "t-" + randomHex(5)
	if _, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name: name, Annotations: map[string]string{"stepwise.dev/test": test}}}, metav1.CreateOptions{}); err != nil {
		return nil, fmt.Errorf("create namespace %s: %w", name, err)
	}
	ns := &KubeNamespace{Name: name, ServiceAccount: "stepwise"}
	meta := metav1.ObjectMeta{Name: ns.ServiceAccount, Namespace: name}
	if _, err := c.CoreV1().ServiceAccounts(name).Create(ctx, &corev1.ServiceAccount{ObjectMeta: meta}, metav1.CreateOptions{}); err != nil {
		return ns, fmt.Errorf("create service account %s/%s: %w", name, ns.ServiceAccount, err)
	}
	if _, err := c.RbacV1().Roles(name).Create(ctx, &rbacv1.Role{ObjectMeta: meta, Rules: rules}, metav1.CreateOptions{}); err != nil {
		return ns, fmt.Errorf("create role %s/%s: %w", name, meta.Name, err)
	}
	if _, err := c.RbacV1().RoleBindings(name).Create(ctx, &rbacv1.RoleBinding{ObjectMeta: meta,
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: meta.Name},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: ns.ServiceAccount, Namespace: name}},
	}, metav1.CreateOptions{}); err != nil {
		return ns, fmt.Errorf("create role binding %s/%s: %w", name, meta.Name, err)
	}
	day := int64(24 * 60 * 60)
	tok, err := c.CoreV1().ServiceAccounts(name).CreateToken(ctx, ns.ServiceAccount, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &day}}, metav1.CreateOptions{})
	if err != nil {
		return ns, fmt.Errorf("create a token for service account %s/%s: %w", name, ns.ServiceAccount, err)
	}
	ns.Token = tok.Status.Token
	ns.Config = &rest.Config{Host: k.URL, BearerToken: ns.Token, TLSClientConfig: rest.TLSClientConfig{CAData: k.CA}}
	for {
		_, err := c.CoreV1().ServiceAccounts(name).Get(ctx, "default", metav1.GetOptions{})
		if err == nil {
			return ns, nil
		}
		if !apierrors.IsNotFound(err) {
			return ns, fmt.Errorf("wait for the default service account of namespace %s: %w", name, err)
		}
		select {
		case <-ctx.Done():
			return ns, fmt.Errorf("namespace %s has no default service account after 2 minutes: is the controller manager's serviceaccount controller running? (its log is in %s): %w", name, k.Dir, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// KubeRules reads the rules of a Role or ClusterRole written in YAML (or
// JSON): a document with kind Role or ClusterRole, or one with only a
// rules list. Unknown fields are errors, as is a rule without verbs or
// without resources or non-resource URLs.
func KubeRules(doc []byte) ([]rbacv1.PolicyRule, error) {
	var role struct {
		metav1.TypeMeta   `json:",inline"`
		metav1.ObjectMeta `json:"metadata,omitempty"`
		Rules             []rbacv1.PolicyRule     `json:"rules"`
		AggregationRule   *rbacv1.AggregationRule `json:"aggregationRule,omitempty"`
	}
	if err := yaml.UnmarshalStrict(doc, &role); err != nil {
		return nil, fmt.Errorf("read role: %w (write a Role: apiVersion: rbac.authorization.k8s.io/v1, kind: Role, rules: [{apiGroups: [...], resources: [...], verbs: [...]}])", err)
	}
	switch role.Kind {
	case "", "Role", "ClusterRole":
	default:
		return nil, fmt.Errorf("read role: kind is %q; write a Role or a ClusterRole", role.Kind)
	}
	if role.AggregationRule != nil {
		return nil, errors.New("read role: an aggregation rule is not supported here; list the rules themselves")
	}
	if len(role.Rules) == 0 {
		return nil, errors.New("read role: it has no rules; list what the account may do under rules:")
	}
	for i, r := range role.Rules {
		if len(r.Verbs) == 0 {
			return nil, fmt.Errorf("read role: rule %d has no verbs; say what it allows (get, list, watch, create, ...)", i+1)
		}
		if len(r.Resources) == 0 && len(r.NonResourceURLs) == 0 {
			return nil, fmt.Errorf("read role: rule %d names no resources; say which (pods, jobs, ...) with their apiGroups", i+1)
		}
	}
	return role.Rules, nil
}

// UserConfig returns a client configuration that authenticates with a
// client certificate for user in groups, signed by the cluster's CA: for
// a node agent, user system:node:NAME in group system:nodes (see
// NodeConfig).
func (k *Kubernetes) UserConfig(t testing.TB, user string, groups ...string) *rest.Config {
	t.Helper()
	certPEM, keyPEM, err := k.ca.issue(user, groups, nil, x509.ExtKeyUsageClientAuth)
	if err != nil {
		t.Fatalf("testservers: client certificate for %s: %v", user, err)
	}
	return &rest.Config{Host: k.URL, TLSClientConfig: rest.TLSClientConfig{CAData: k.CA, CertData: certPEM, KeyData: keyPEM}}
}

// NodeConfig returns a client configuration for the node agent of node
// name: user system:node:NAME in group system:nodes, which the Node
// authorizer and the NodeRestriction admission plugin hold to that node.
func (k *Kubernetes) NodeConfig(t testing.TB, name string) *rest.Config {
	t.Helper()
	return k.UserConfig(t, "system:node:"+name, "system:nodes")
}

// WriteKubeconfig writes cfg (a configuration from this control plane:
// token or client certificate) to a kubeconfig file in a temporary
// directory of the test, with namespace as its context's namespace ("" for
// none), and returns its path.
func (k *Kubernetes) WriteKubeconfig(t testing.TB, cfg *rest.Config, namespace string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := writeKubeconfig(path, cfg, namespace, "stepwise-test"); err != nil {
		t.Fatalf("testservers: %v", err)
	}
	return path
}

// ServingCert writes a serving certificate for hosts (names or IP
// addresses), signed by the cluster's CA, and its key to files in a
// temporary directory of the test: for a node agent's endpoint, which the
// API server verifies with that CA.
func (k *Kubernetes) ServingCert(t testing.TB, hosts ...string) (certFile, keyFile string) {
	t.Helper()
	if len(hosts) == 0 {
		t.Fatal("testservers: ServingCert needs at least one host name or address")
	}
	certPEM, keyPEM, err := k.ca.issue(hosts[0], nil, hosts, x509.ExtKeyUsageServerAuth)
	if err != nil {
		t.Fatalf("testservers: serving certificate for %v: %v", hosts, err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := os.WriteFile(certFile, certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func writeKubeconfig(path string, cfg *rest.Config, namespace, name string) error {
	auth := &clientcmdapi.AuthInfo{Token: cfg.BearerToken, ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData}
	kc := clientcmdapi.Config{
		Clusters:       map[string]*clientcmdapi.Cluster{name: {Server: cfg.Host, CertificateAuthorityData: cfg.CAData}},
		AuthInfos:      map[string]*clientcmdapi.AuthInfo{name: auth},
		Contexts:       map[string]*clientcmdapi.Context{name: {Cluster: name, AuthInfo: name, Namespace: namespace}},
		CurrentContext: name,
	}
	if err := clientcmd.WriteToFile(kc, path); err != nil {
		return fmt.Errorf("write kubeconfig %s: %w", path, err)
	}
	return nil
}

// kubeCA signs the control plane's certificates.
type kubeCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newKubeCA() (*kubeCA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "stepwise-test-ca"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(7 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &kubeCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	return n
}

// issue makes a certificate for cn in orgs (the groups of a client), for
// hosts (names and addresses of a server), and its key.
func (ca *kubeCA) issue(cn string, orgs, hosts []string, usage x509.ExtKeyUsage) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: cn, Organization: orgs},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(7 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
}

// kubeProc is one program of the control plane.
type kubeProc struct {
	name string
	log  string
	cmd  *exec.Cmd
	done chan struct{} // closed when it exits
	err  error         // how it exited
}

func (p *kubeProc) exitErr() error {
	select {
	case <-p.done:
		return fmt.Errorf("%s exited (%v); the end of its log %s:\n%s", p.name, p.err, p.log, tail(p.log, 30))
	default:
		return nil
	}
}

func (k *Kubernetes) exited() error {
	for _, p := range k.procs {
		if err := p.exitErr(); err != nil {
			return err
		}
	}
	return nil
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read it: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (k *Kubernetes) run(bin, name string, args ...string) (*kubeProc, error) {
	p := &kubeProc{name: name, log: filepath.Join(k.Dir, name+".log"), done: make(chan struct{})}
	logf, err := os.OpenFile(p.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	p.cmd = exec.Command(filepath.Join(bin, name), args...)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := dying(p.cmd); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	k.procs = append(k.procs, p)
	go func() {
		p.err = p.cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	return p, nil
}

// waitHealthy polls url until it answers 200, p exits or limit passes.
func waitHealthy(client *http.Client, url, token string, p *kubeProc, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	var last error
	for time.Now().Before(deadline) {
		if err := p.exitErr(); err != nil {
			return err
		}
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err == nil {
			body := make([]byte, 2048)
			n, _ := resp.Body.Read(body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Errorf("%s answered %s: %s", url, resp.Status, bytes.TrimSpace(body[:n]))
		} else {
			last = err
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s is not healthy after %s: %v; the end of its log %s:\n%s", p.name, limit, last, p.log, tail(p.log, 30))
}

// writeFiles writes name → content into dir, keys readable by the owner
// only.
func writeFiles(dir string, files map[string][]byte) error {
	for name, b := range files {
		mode := os.FileMode(0o644)
		if strings.HasSuffix(name, ".key") || strings.HasSuffix(name, ".csv") || strings.HasSuffix(name, ".kubeconfig") {
			mode = 0o600
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, mode); err != nil {
			return err
		}
	}
	return nil
}

func startKube() (*Kubernetes, error) {
	out, err := exec.Command(filepath.Join(repoRoot(), "scripts", "kube-bin")).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return nil, fmt.Errorf("scripts/kube-bin: %w\n%s", err, ee.Stderr)
		}
		return nil, fmt.Errorf("scripts/kube-bin: %w", err)
	}
	bin := strings.TrimSpace(string(out))
	dir, err := ownedTempDir("stepwise-controlplane-")
	if err != nil {
		return nil, err
	}
	k := &Kubernetes{Dir: dir, CAFile: filepath.Join(dir, "ca.crt"), adminToken: randomHex(24)}
	if err := k.start(bin); err != nil {
		for _, p := range k.procs {
			p.cmd.Process.Kill()
		}
		return nil, fmt.Errorf("%w (its files are in %s)", err, dir)
	}
	return k, nil
}

// apiServerHosts are the names in the API server's certificate: loopback,
// the in-cluster names of the kubernetes Service, and the Docker bridge's
// gateway when there is one, where pods reach it (ForPods).
func apiServerHosts() []string {
	hosts := []string{"127.0.0.1", "localhost", "kubernetes", "kubernetes.default",
		"kubernetes.default.svc", "kubernetes.default.svc.cluster.local", "10.96.0.1"}
	hostIPOnce.Do(func() { hostIP, hostIPErr = dockerBridgeGateway() })
	if hostIPErr == nil {
		hosts = append(hosts, hostIP)
	}
	return hosts
}

// ForPods returns host:port at which pods reach the API server: a TCP
// relay on DockerHostIP to the API server on loopback, started on first
// use for the test binary. The API server's certificate names that
// address. Node agents give it to every container as
// KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT, as kubelets give
// the kubernetes Service's, so in-cluster clients in pods work.
func (k *Kubernetes) ForPods(t testing.TB) string {
	t.Helper()
	host := DockerHostIP(t)
	k.relayOnce.Do(func() {
		target := strings.TrimPrefix(k.URL, "https://")
		k.relay, k.relayErr = relay(host, target)
	})
	if k.relayErr != nil {
		t.Fatalf("testservers: cannot relay the API server to pods on %s: %v", host, k.relayErr)
	}
	return k.relay
}

// relay listens on host (any free port) and copies every connection to
// target and back, for the life of the process; it returns the address it
// listens on.
func relay(host, target string) (string, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return "", err
	}
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer in.Close()
				out, err := net.DialTimeout("tcp", target, 10*time.Second)
				if err != nil {
					return
				}
				defer out.Close()
				done := make(chan struct{})
				go func() { io.Copy(out, in); out.(*net.TCPConn).CloseWrite(); close(done) }()
				io.Copy(in, out)
				in.(*net.TCPConn).CloseWrite()
				<-done
			}()
		}
	}()
	return ln.Addr().String(), nil
}

func (k *Kubernetes) start(bin string) error {
	ports := map[string]int{}
	for _, name := range []string{"etcd", "etcd-peer", "apiserver", "controller-manager", "scheduler"} {
		p, err := FreePort()
		if err != nil {
			return err
		}
		ports[name] = p
	}
	k.URL = fmt.Sprintf("https://127.0.0.1:%d", ports["apiserver"])
	var err error
	if k.ca, err = newKubeCA(); err != nil {
		return fmt.Errorf("make the CA: %w", err)
	}
	k.CA = k.ca.pem
	files := map[string][]byte{"ca.crt": k.CA,
		"tokens.csv": []byte(k.adminToken + ",stepwise-admin,stepwise-admin,system:masters\n")}
	issue := func(name, cn string, orgs, hosts []string, usage x509.ExtKeyUsage) error {
		c, key, err := k.ca.issue(cn, orgs, hosts, usage)
		if err != nil {
			return fmt.Errorf("make the certificate of %s: %w", cn, err)
		}
		files[name+".crt"], files[name+".key"] = c, key
		return nil
	}
	for _, c := range []struct {
		name, cn string
		orgs     []string
		hosts    []string
		usage    x509.ExtKeyUsage
	}{
		{"apiserver", "kube-apiserver", nil, apiServerHosts(), x509.ExtKeyUsageServerAuth},
		{"apiserver-kubelet-client", "kube-apiserver-kubelet-client", []string{"system:masters"}, nil, x509.ExtKeyUsageClientAuth},
		{"controller-manager-client", "system:kube-controller-manager", nil, nil, x509.ExtKeyUsageClientAuth},
		{"controller-manager-serving", "kube-controller-manager", nil, []string{"127.0.0.1", "localhost"}, x509.ExtKeyUsageServerAuth},
		{"scheduler-client", "system:kube-scheduler", nil, nil, x509.ExtKeyUsageClientAuth},
		{"scheduler-serving", "kube-scheduler", nil, []string{"127.0.0.1", "localhost"}, x509.ExtKeyUsageServerAuth},
	} {
		if err := issue(c.name, c.cn, c.orgs, c.hosts, c.usage); err != nil {
			return err
		}
	}
	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	saDER, err := x509.MarshalPKCS8PrivateKey(saKey)
	if err != nil {
		return err
	}
	saPub, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		return err
	}
	files["sa.key"] = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: saDER})
	files["sa.pub"] = pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: saPub})
	if err := writeFiles(k.Dir, files); err != nil {
		return err
	}
	f := func(name string) string { return filepath.Join(k.Dir, name) }
	for _, c := range []struct{ file, cert string }{
		{"controller-manager.kubeconfig", "controller-manager-client"},
		{"scheduler.kubeconfig", "scheduler-client"},
	} {
		cfg := &rest.Config{Host: k.URL, TLSClientConfig: rest.TLSClientConfig{CAData: k.CA, CertData: files[c.cert+".crt"], KeyData: files[c.cert+".key"]}}
		if err := writeKubeconfig(f(c.file), cfg, "", "stepwise-test"); err != nil {
			return err
		}
	}
	k.AdminKubeconfig = f("admin.kubeconfig")
	if err := writeKubeconfig(k.AdminKubeconfig, k.AdminConfig(), "", "stepwise-test"); err != nil {
		return err
	}

	// etcd
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", ports["etcd"])
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", ports["etcd-peer"])
	etcd, err := k.run(bin, "etcd",
		"--name=stepwise-test", "--data-dir="+f("etcd"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=stepwise-test="+peerURL,
		"--unsafe-no-fsync", "--log-level=warn")
	if err != nil {
		return err
	}
	if err := waitHealthy(http.DefaultClient, etcdURL+"/health", "", etcd, time.Minute); err != nil {
		return err
	}

	// kube-apiserver
	tol := strconv.Itoa(KubeTolerationSeconds)
	api, err := k.run(bin, "kube-apiserver",
		"--etcd-servers="+etcdURL,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", "--secure-port="+strconv.Itoa(ports["apiserver"]),
		"--tls-cert-file="+f("apiserver.crt"), "--tls-private-key-file="+f("apiserver.key"),
		"--client-ca-file="+f("ca.crt"), "--token-auth-file="+f("tokens.csv"),
		"--authorization-mode=Node,RBAC", "--enable-admission-plugins=NodeRestriction",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+f("sa.pub"), "--service-account-signing-key-file="+f("sa.key"),
		"--service-cluster-ip-range=10.96.0.0/16", "--endpoint-reconciler-type=none",
		"--default-not-ready-toleration-seconds="+tol, "--default-unreachable-toleration-seconds="+tol,
		"--kubelet-client-certificate="+f("apiserver-kubelet-client.crt"), "--kubelet-client-key="+f("apiserver-kubelet-client.key"),
		"--kubelet-certificate-authority="+f("ca.crt"), "--kubelet-preferred-address-types=InternalIP,Hostname",
		"--profiling=false")
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(k.CA)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	if err := waitHealthy(client, k.URL+"/readyz", k.adminToken, api, 3*time.Minute); err != nil {
		return err
	}

	// kube-controller-manager and kube-scheduler
	grace := KubeNodeGracePeriod.String()
	kcm, err := k.run(bin, "kube-controller-manager",
		"--kubeconfig="+f("controller-manager.kubeconfig"),
		"--bind-address=127.0.0.1", "--secure-port="+strconv.Itoa(ports["controller-manager"]),
		"--tls-cert-file="+f("controller-manager-serving.crt"), "--tls-private-key-file="+f("controller-manager-serving.key"),
		"--controllers="+strings.Join(kubeControllers, ","),
		"--use-service-account-credentials",
		"--service-account-private-key-file="+f("sa.key"), "--root-ca-file="+f("ca.crt"),
		"--node-monitor-period=1s", "--node-monitor-grace-period="+grace, "--node-startup-grace-period="+grace,
		"--leader-elect=false", "--profiling=false")
	if err != nil {
		return err
	}
	sched, err := k.run(bin, "kube-scheduler",
		"--kubeconfig="+f("scheduler.kubeconfig"),
		"--bind-address=127.0.0.1", "--secure-port="+strconv.Itoa(ports["scheduler"]),
		"--tls-cert-file="+f("scheduler-serving.crt"), "--tls-private-key-file="+f("scheduler-serving.key"),
		"--leader-elect=false", "--profiling=false")
	if err != nil {
		return err
	}
	if err := waitHealthy(client, fmt.Sprintf("https://127.0.0.1:%d/healthz", ports["controller-manager"]), "", kcm, 2*time.Minute); err != nil {
		return err
	}
	return waitHealthy(client, fmt.Sprintf("https://127.0.0.1:%d/healthz", ports["scheduler"]), "", sched, 2*time.Minute)
}
