package main

import (
	"context"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestExpand(t *testing.T) {
	vars := map[string]string{"A": "1", "LONG_NAME": "x y", "EMPTY": ""}
	lookup := func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
	for _, c := range []struct{ in, want string }{
		{"plain", "plain"},
		{"$(A)", "1"},
		{"a$(A)b$(LONG_NAME)c", "a1bx yc"},
		{"$(EMPTY)!", "!"},
		{"$(MISSING)", "$(MISSING)"},
		{"$$(A)", "$(A)"},
		{"$$$(A)", "$1"},
		{"$A", "$A"},
		{"$", "$"},
		{"x$", "x$"},
		{"$(A", "$(A"},
		{"$()", "$()"},
		{"$(A)$(A)", "11"},
	} {
		if got := expand(c.in, lookup); got != c.want {
			t.Errorf("expand(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// FuzzExpand checks that expansion never fails, leaves text without $ as
// it is, and gives back any text whose $ are escaped as $$.
func FuzzExpand(f *testing.F) {
	for _, s := range []string{"", "$(A)", "$$", "a$(b", "$()", "$(A)$(B)x$", "\x00$(\xff)"} {
		f.Add(s)
	}
	lookup := func(k string) (string, bool) { return "<" + k + ">", k != "" }
	f.Fuzz(func(t *testing.T, s string) {
		got := expand(s, lookup)
		if !strings.Contains(s, "$") && got != s {
			t.Fatalf("expand(%q) = %q: text without $ changed", s, got)
		}
		if back := expand(strings.ReplaceAll(s, "$", "$$"), lookup); back != s {
			t.Fatalf("expand of escaped %q = %q", s, back)
		}
	})
}

func TestParseConfig(t *testing.T) {
	good := `{"nodes":[{"name":"node-a","kubeconfig":"/k","cpu":"4","memory":"8Gi","gpu":1}],
		"nodeIP":"172.17.0.1","tlsCert":"/c","tlsKey":"/k","stateDir":"/s","leaseRenew":"1s"}`
	c, err := ParseConfig([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if c.Network != "bridge" || c.Nodes[0].Pods != 110 || c.Control != "127.0.0.1:0" || time.Duration(c.LeaseRenew) != time.Second {
		t.Errorf("defaults: %+v", c)
	}
	for _, bad := range []struct{ doc, want string }{
		{`{`, "not a valid configuration"},
		{`{"nodes":[], "unknown": 1}`, "unknown field"},
		{`{"nodeIP":"172.17.0.1","tlsCert":"c","tlsKey":"k","stateDir":"s"}`, "nodes: none"},
		{`{"nodes":[{"name":"Bad_Name","kubeconfig":"k","cpu":"4","memory":"1Gi"}],"nodeIP":"x","tlsCert":"c","tlsKey":"k","stateDir":"s"}`, `nodeIP: "x"`},
		{`{"nodes":[{"name":"Bad_Name","kubeconfig":"k","cpu":"4","memory":"1Gi"}],"nodeIP":"1.2.3.4","tlsCert":"c","tlsKey":"k","stateDir":"s"}`, `node "Bad_Name": name`},
		{`{"nodes":[{"name":"a","kubeconfig":"k","cpu":"four","memory":"-1Gi"}],"nodeIP":"1.2.3.4","tlsCert":"c","tlsKey":"k","stateDir":"s"}`, `cpu: "four"`},
		{`{"nodes":[{"name":"a","kubeconfig":"k","cpu":"4","memory":"-1Gi"}],"nodeIP":"1.2.3.4","tlsCert":"c","tlsKey":"k","stateDir":"s"}`, `memory: "-1Gi" is not positive`},
		{`{"nodes":[{"name":"a","kubeconfig":"k","cpu":"4","memory":"1Gi"},{"name":"a","kubeconfig":"k","cpu":"4","memory":"1Gi"}],"nodeIP":"1.2.3.4","tlsCert":"c","tlsKey":"k","stateDir":"s"}`, "given twice"},
		{`{"nodes":[{"name":"a","kubeconfig":"k","cpu":"4","memory":"1Gi","taints":[{"key":"k","effect":"Sometimes"}]}],"nodeIP":"1.2.3.4","tlsCert":"c","tlsKey":"k","stateDir":"s"}`, `effect "Sometimes"`},
		{`{"nodes":[{"name":"a","kubeconfig":"k","cpu":"4","memory":"1Gi"}],"nodeIP":"1.2.3.4","tlsCert":"c","tlsKey":"k","stateDir":"s","leaseRenew":"50s"}`, "leaseRenew 50s must be shorter"},
		{`{"nodes":[{"name":"a","kubeconfig":"k","cpu":"4","memory":"1Gi"}],"nodeIP":"1.2.3.4","tlsCert":"c","tlsKey":"k","stateDir":"s","leaseRenew":"-1s"}`, "not positive"},
	} {
		_, err := ParseConfig([]byte(bad.doc))
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("ParseConfig(%s): %v, want an error with %q", bad.doc, err, bad.want)
		}
	}
}

// FuzzParseConfig checks that no input crashes the configuration reader
// and that what it accepts is complete.
func FuzzParseConfig(f *testing.F) {
	f.Add(`{"nodes":[{"name":"a","kubeconfig":"k","cpu":"4","memory":"1Gi"}],"nodeIP":"1.2.3.4","tlsCert":"c","tlsKey":"k","stateDir":"s"}`)
	f.Add(`{"nodes":null}`)
	f.Add(`[]`)
	f.Fuzz(func(t *testing.T, doc string) {
		c, err := ParseConfig([]byte(doc))
		if err != nil {
			return
		}
		if len(c.Nodes) == 0 || c.StateDir == "" || c.Network == "" || c.LeaseRenew >= c.LeaseDuration {
			t.Fatalf("accepted an incomplete configuration: %+v", c)
		}
		for _, n := range c.Nodes {
			resource.MustParse(n.CPU)
			resource.MustParse(n.Memory)
		}
	})
}

func TestLogOptions(t *testing.T) {
	q, _ := url.ParseQuery("follow=true&previous=1&timestamps=false&tailLines=5&limitBytes=100")
	opts, previous, limit, err := logOptions(q)
	if err != nil || !opts.Follow || !previous || opts.Timestamps || opts.Tail != "5" || limit != 100 {
		t.Errorf("logOptions: %+v %v %d %v", opts, previous, limit, err)
	}
	for _, bad := range []string{"follow=maybe", "tailLines=-1", "sinceSeconds=0", "sinceTime=yesterday", "limitBytes=x"} {
		q, _ := url.ParseQuery(bad)
		if _, _, _, err := logOptions(q); err == nil {
			t.Errorf("logOptions(%s) accepted it", bad)
		}
	}
}

func TestFieldValues(t *testing.T) {
	f := podFacts{
		pod: &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "u1",
			Labels: map[string]string{"app": "x", "b": "y"}}, Spec: corev1.PodSpec{NodeName: "n1"}},
		hostIP: "172.17.0.1", podIP: "172.17.0.5",
		allocatable: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("8Gi")},
	}
	for _, c := range []struct{ path, want string }{
		{"metadata.name", "p"}, {"metadata.namespace", "ns"}, {"metadata.uid", "u1"},
		{"metadata.labels['app']", "x"}, {"metadata.labels", "app=\"x\"\nb=\"y\""},
		{"spec.nodeName", "n1"}, {"status.hostIP", "172.17.0.1"}, {"status.podIP", "172.17.0.5"},
	} {
		if got, err := f.fieldValue(c.path); err != nil || got != c.want {
			t.Errorf("%s = %q, %v; want %q", c.path, got, err, c.want)
		}
	}
	if _, err := f.fieldValue("spec.nope"); err == nil {
		t.Error("an unknown field path was accepted")
	}
	c := &corev1.Container{Name: "c", Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1500m")}}}
	for _, x := range []struct {
		res, divisor, want string
	}{{"limits.cpu", "", "2"}, {"limits.cpu", "1m", "1500"}, {"limits.memory", "1Mi", "8192"}, {"requests.memory", "", "0"}} {
		ref := &corev1.ResourceFieldSelector{Resource: x.res}
		if x.divisor != "" {
			ref.Divisor = resource.MustParse(x.divisor)
		}
		if got, err := f.resourceValue(c, ref); err != nil || got != x.want {
			t.Errorf("%s/%s = %q, %v; want %q", x.res, x.divisor, got, err, x.want)
		}
	}
}

func TestContainerEnvOrder(t *testing.T) {
	f := podFacts{pod: &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}}}
	c := &corev1.Container{Name: "c", Env: []corev1.EnvVar{
		{Name: "A", Value: "1"}, {Name: "B", Value: "$(A)-$(C)"}, {Name: "A", Value: "2"},
		{Name: "N", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
	}}
	env, lookup, err := containerEnv(context.Background(), nil, f, c)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(env, ","); got != "A=2,B=1-$(C),N=p" {
		t.Errorf("env %s", got)
	}
	if v, ok := lookup("N"); !ok || v != "p" {
		t.Errorf("lookup N = %q %v", v, ok)
	}
}

func TestWriteFilesStaysInVolume(t *testing.T) {
	dir := t.TempDir()
	if err := writeFiles(dir, map[string][]byte{"a/b": []byte("x")}, map[string]os.FileMode{"a/b": 0o600}); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "a", "b")); err != nil || string(b) != "x" {
		t.Errorf("read back: %q %v", b, err)
	}
	for _, bad := range []string{"../x", "/etc/x", "a/../../x", "."} {
		if err := writeFiles(dir, map[string][]byte{bad: nil}, map[string]os.FileMode{bad: 0o644}); err == nil {
			t.Errorf("writeFiles accepted %q", bad)
		}
	}
}

func TestCheckPod(t *testing.T) {
	always := corev1.ContainerRestartPolicyAlways
	p := &corev1.Pod{Spec: corev1.PodSpec{
		Volumes:        []corev1.Volume{{Name: "pvc", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "x"}}}},
		InitContainers: []corev1.Container{{Name: "side", RestartPolicy: &always}},
		Containers:     []corev1.Container{{Name: "c", VolumeMounts: []corev1.VolumeMount{{Name: "nope", MountPath: "/x"}}}},
	}}
	err := checkPod(p)
	for _, want := range []string{`volume "pvc"`, `init container "side"`, `volumeMount "nope"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("checkPod: %v; want it to say %s", err, want)
		}
	}
	if err := checkPod(&corev1.Pod{}); err != nil {
		t.Errorf("checkPod of an empty pod: %v", err)
	}
}

func TestLimitWriter(t *testing.T) {
	var b strings.Builder
	w := &limitWriter{w: &b, left: 5}
	n, err := w.Write([]byte("abc"))
	if n != 3 || err != nil {
		t.Fatal(n, err)
	}
	if _, err := w.Write([]byte("defg")); !errors.Is(err, errLimit) || b.String() != "abcde" {
		t.Errorf("%q %v", b.String(), err)
	}
}
