package stepwise_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestServeDeploy hosts the hosting example's service on the test
// cluster with serve deploy, as the Role of docs/hosting.md allows and no
// more: two replicas fetch the program (the image holds none), become
// ready once their /readyz says the trained line is loaded, and answer
// predictions with a token; a new training run changes their answer; bad
// input is refused before anything is applied, a missing Secret is said
// with the pod's own reason; undeploy removes everything.
func TestServeDeploy(t *testing.T) {
	c := newCluster(t, roleRules(t, docRole(t, "docs/hosting.md")))
	ctx := context.Background()
	c.flow(t, 0, "hosting", "run", "--slope", "2", "--intercept", "1", "--noise", "0")
	if _, err := c.admin.CoreV1().Secrets(c.ns.Name).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "predictor-tokens"}, StringData: map[string]string{"tokens": "svc-secret"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// Refused before anything is applied.
	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{"serve", "deploy"}, "--tokens-secret"},
		{[]string{"serve", "deploy", "--insecure-no-tokens", "--replicas", "0"}, "--replicas"},
		{[]string{"serve", "deploy", "--insecure-no-tokens", "--tag", " padded"}, "--tag"},
		{[]string{"serve", "deploy", "--insecure-no-tokens", "--poll", "soon"}, "--poll"},
		{[]string{"serve", "deploy", "--insecure-no-tokens", "--tag", "x", "--run", "1"}, "not both"},
	} {
		_, errOut := c.flow(t, 2, "hosting", bad.args...)
		if !strings.Contains(errOut, bad.want) {
			t.Errorf("%v: the error does not name %s: %s", bad.args, bad.want, errOut)
		}
	}
	if ds, err := c.admin.AppsV1().Deployments(c.ns.Name).List(ctx, metav1.ListOptions{}); err != nil || len(ds.Items) > 0 {
		t.Fatalf("bad input applied a Deployment: %v %v", ds, err)
	}

	// A Secret that does not exist: the pod's reason, then undeploy.
	_, errOut := c.flow(t, 1, "hosting", "serve", "deploy", "--name", "nosecret", "--replicas", "1", "--tokens-secret", "no-such-secret", "--wait", "2m")
	if !strings.Contains(errOut, "CreateContainerConfigError") || !strings.Contains(errOut, "no-such-secret") || !strings.Contains(errOut, "serve undeploy") {
		t.Errorf("a missing Secret is not said with the pod's reason: %s", errOut)
	}
	c.flow(t, 0, "hosting", "serve", "undeploy", "--name", "nosecret")

	out, _ := c.flow(t, 0, "hosting", "serve", "deploy", "--replicas", "2", "--cpu", "0.25", "--memory", "256", "--tokens-secret", "predictor-tokens", "--poll", "1s")
	if !strings.Contains(out, "2 of 2 new replicas ready") || !strings.Contains(out, "http://predictor."+c.ns.Name+".svc:80/") {
		t.Errorf("deploy did not say the replicas are ready and where: %s", out)
	}
	d, err := c.admin.AppsV1().Deployments(c.ns.Name).Get(ctx, "predictor", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if *d.Spec.Replicas != 2 || d.Status.ReadyReplicas != 2 {
		t.Errorf("Deployment: %d replicas, %d ready; want 2 and 2", *d.Spec.Replicas, d.Status.ReadyReplicas)
	}
	ctr := d.Spec.Template.Spec.Containers[0]
	if cpu, mem := ctr.Resources.Limits.Cpu().String(), ctr.Resources.Limits.Memory().String(); cpu != "250m" || mem != "256Mi" {
		t.Errorf("limits %s %s, want 250m 256Mi", cpu, mem)
	}
	if p := ctr.ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/readyz" {
		t.Errorf("readiness probe %+v, want GET /readyz", p)
	}
	svc, err := c.admin.CoreV1().Services(c.ns.Name).Get(ctx, "predictor", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if svc.Spec.Selector["stepwise.dev/service"] != "predictor" || svc.Spec.Ports[0].Port != 80 {
		t.Errorf("Service selects %v on %v", svc.Spec.Selector, svc.Spec.Ports)
	}
	// The EndpointSlice controller puts both ready pods behind the Service.
	poll(t, time.Minute, "two ready endpoints of the Service", func() bool {
		sl, err := c.admin.DiscoveryV1().EndpointSlices(c.ns.Name).List(ctx, metav1.ListOptions{LabelSelector: "kubernetes.io/service-name=predictor"})
		if err != nil {
			t.Fatal(err)
		}
		ready := 0
		for _, s := range sl.Items {
			for _, e := range s.Endpoints {
				if e.Conditions.Ready != nil && *e.Conditions.Ready {
					ready++
				}
			}
		}
		return ready == 2
	})

	pods := func() []string {
		ps, err := c.admin.CoreV1().Pods(c.ns.Name).List(ctx, metav1.ListOptions{LabelSelector: "stepwise.dev/service=predictor"})
		if err != nil {
			t.Fatal(err)
		}
		var ips []string
		for _, p := range ps.Items {
			if p.DeletionTimestamp == nil && p.Status.PodIP != "" {
				ips = append(ips, p.Status.PodIP)
			}
		}
		return ips
	}
	predict := func(ip, token string) (int, string) {
		req, _ := http.NewRequest("GET", fmt.Sprintf("http://%s:8080/predict?x=10", ip), nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	answers := func(want float64) bool {
		ips := pods()
		for _, ip := range ips {
			code, body := predict(ip, "svc-secret")
			var r struct{ Y float64 }
			if code != 200 || json.Unmarshal([]byte(body), &r) != nil || r.Y < want-1e-6 || r.Y > want+1e-6 {
				return false
			}
		}
		return len(ips) == 2
	}
	if ips := pods(); len(ips) != 2 {
		t.Fatalf("%d pods with addresses, want 2", len(ips))
	} else if code, body := predict(ips[0], ""); code != http.StatusUnauthorized {
		t.Errorf("without a token: %d %s, want 401", code, body)
	}
	poll(t, 30*time.Second, "both replicas to answer y = 21 for x = 10", func() bool { return answers(21) })

	// A new training run: both replicas switch to it.
	c.flow(t, 0, "hosting", "run", "--slope", "5", "--intercept", "0", "--noise", "0")
	poll(t, time.Minute, "both replicas to answer y = 50 after the new run", func() bool { return answers(50) })

	// Deploying again with one replica rolls the pods.
	out, _ = c.flow(t, 0, "hosting", "serve", "deploy", "--replicas", "1", "--tokens-secret", "predictor-tokens")
	if !strings.Contains(out, "1 of 1 new replicas ready") {
		t.Errorf("the second deploy: %s", out)
	}

	out, _ = c.flow(t, 0, "hosting", "serve", "undeploy")
	if !strings.Contains(out, "deleted the Deployment and the Service") {
		t.Errorf("undeploy: %s", out)
	}
	if _, err := c.admin.AppsV1().Deployments(c.ns.Name).Get(ctx, "predictor", metav1.GetOptions{}); err == nil {
		t.Error("the Deployment is still there after undeploy")
	}
	if _, err := c.admin.CoreV1().Services(c.ns.Name).Get(ctx, "predictor", metav1.GetOptions{}); err == nil {
		t.Error("the Service is still there after undeploy")
	}
	poll(t, 2*time.Minute, "the pods to go", func() bool { return len(pods()) == 0 })
}
