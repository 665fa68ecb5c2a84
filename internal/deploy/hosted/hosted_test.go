package hosted

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"stepwise.dev/stepwise/internal/compute/kubernetes"
)

// strict decodes v's JSON into out, refusing fields out does not have: the
// API server's strict field validation, which serve deploy asks for.
func strict(t *testing.T, v, out any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(out); err != nil {
		t.Fatalf("%s does not decode as Kubernetes' own type: %v", b, err)
	}
}

func TestCompile(t *testing.T) {
	s := Service{Type: "Predictor", Flow: "Fit", Name: "predictor", Namespace: "ml", Deployer: "ann", Code: strings.Repeat("ab", 32),
		Site:     kubernetes.Site{Datastore: "s3://b/p", Metadata: "http://meta:8080", TokenSecret: "stepwise-token", AWSSecret: "s3", FetchImage: "busybox"},
		Pod:      kubernetes.Settings{Image: "debian", ServiceAccount: "sa"},
		Replicas: 3, CPU: 0.5, MemoryMB: 300, Args: serveArgs(map[string]string{"tag": "production", "namespace": "global"}), TokensSecret: "tok"}
	d, svc := Compile(s)
	var dep appsv1.Deployment
	strict(t, d, &dep)
	var ks corev1.Service
	strict(t, svc, &ks)

	if *dep.Spec.Replicas != 3 || dep.Spec.Strategy.RollingUpdate.MaxUnavailable.IntValue() != 0 || dep.Spec.Strategy.RollingUpdate.MaxSurge.IntValue() != 1 {
		t.Errorf("replicas and strategy: %+v", dep.Spec)
	}
	pod := dep.Spec.Template
	for k, v := range dep.Spec.Selector.MatchLabels {
		if pod.Labels[k] != v || ks.Spec.Selector[k] != v {
			t.Errorf("the selector's %s=%s is not on the pods or the Service's selector", k, v)
		}
	}
	if pod.Spec.RestartPolicy != corev1.RestartPolicyAlways || pod.Spec.ServiceAccountName != "sa" {
		t.Errorf("pod spec: %+v", pod.Spec)
	}
	if len(pod.Spec.InitContainers) != 1 || pod.Spec.InitContainers[0].Image != "busybox" {
		t.Errorf("the program is not fetched by an init container: %+v", pod.Spec.InitContainers)
	}
	c := pod.Spec.Containers[0]
	want := "/stepwise/flow serve --addr :8080 --log-json --namespace=global --tag=production"
	if got := strings.Join(c.Command, " "); got != want {
		t.Errorf("command %q, want %q", got, want)
	}
	if c.Resources.Limits.Cpu().String() != "500m" || c.Resources.Requests.Memory().String() != "300Mi" {
		t.Errorf("resources %+v", c.Resources)
	}
	if p := c.ReadinessProbe; p == nil || p.HTTPGet.Path != "/readyz" || p.HTTPGet.Port.String() != "http" || c.Ports[0].ContainerPort != Port {
		t.Errorf("readiness probe %+v on ports %+v", p, c.Ports)
	}
	if p := c.LivenessProbe; p == nil || p.HTTPGet.Path != "/healthz" {
		t.Errorf("liveness probe %+v", p)
	}
	var tokens *corev1.EnvVar
	for i, e := range c.Env {
		if e.Value == "tok" {
			t.Errorf("a Secret's name is passed as a value: %+v", e)
		}
		if e.Name == "STEPWISE_SERVICE_TOKENS" {
			tokens = &c.Env[i]
		}
	}
	if tokens == nil || tokens.ValueFrom.SecretKeyRef.Name != "tok" || tokens.ValueFrom.SecretKeyRef.Key != TokensKey {
		t.Errorf("tokens are not read from the Secret: %+v", tokens)
	}
	if ks.Spec.Ports[0].Port != ServicePort || ks.Spec.Ports[0].TargetPort.String() != "http" {
		t.Errorf("Service ports %+v", ks.Spec.Ports)
	}

	// Without a tokens Secret, serve is told so explicitly.
	s.TokensSecret = ""
	d, _ = Compile(s)
	if cmd := strings.Join(d.Spec.Template.Spec.Containers[0].Command, " "); !strings.HasSuffix(cmd, " --insecure-no-tokens") {
		t.Errorf("without tokens: %q", cmd)
	}
}

func TestCheckServed(t *testing.T) {
	for _, c := range []struct {
		flags map[string]string
		bad   string
	}{
		{map[string]string{"namespace": "user:ann", "tag": "production", "poll": "5s", "timeout": "1m", "max-body": "1024"}, ""},
		{map[string]string{"namespace": "global", "run": "1234"}, ""},
		{map[string]string{"namespace": " user:ann"}, "--namespace"},
		{map[string]string{"tag": ""}, "--tag"},
		{map[string]string{"run": "../x"}, "--run"},
		{map[string]string{"poll": "often"}, "--poll"},
		{map[string]string{"timeout": "-1s"}, "--timeout"},
		{map[string]string{"max-body": "1MB"}, "--max-body"},
		{map[string]string{"max-body": "0"}, "--max-body"},
	} {
		err := checkServed(c.flags)
		switch {
		case c.bad == "" && err != nil:
			t.Errorf("%v: %v", c.flags, err)
		case c.bad != "" && (err == nil || !strings.Contains(err.Error(), c.bad)):
			t.Errorf("%v: error %v, want one naming %s", c.flags, err, c.bad)
		}
	}
}
