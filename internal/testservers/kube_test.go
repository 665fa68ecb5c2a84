package testservers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// jobRules let the tests' service account run Jobs and see their pods.
var jobRules = []rbacv1.PolicyRule{
	{APIGroups: []string{"batch"}, Resources: []string{"jobs", "cronjobs"}, Verbs: []string{"get", "list", "watch", "create", "delete"}},
	{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "watch"}},
}

// noNode keeps the tests' pods off every node (node agents of other tests
// may come and go): they stay Pending.
var noNode = map[string]string{"stepwise.dev/no-such-node": "true"}

func clientFor(t *testing.T, cfg *rest.Config) *kubernetes.Clientset {
	t.Helper()
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func ctxFor(t *testing.T, limit time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	t.Cleanup(cancel)
	return ctx
}

// eventually calls check every 100 ms until it returns nil, failing the
// test with its last error after limit.
func eventually(t *testing.T, limit time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not so after %s: %v", what, limit, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func podTemplate() corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{Spec: corev1.PodSpec{
		RestartPolicy: corev1.RestartPolicyNever,
		NodeSelector:  noNode,
		Containers:    []corev1.Container{{Name: "main", Image: "stepwise-test/none:1", Command: []string{"true"}}},
	}}
}

// checkUnschedulable checks the scheduler's word on pod, which no node
// takes: with no node at all it says so; otherwise it counts them.
func checkUnschedulable(t *testing.T, k *Kubernetes, pod *corev1.Pod) {
	t.Helper()
	nodes, err := k.AdminClient(t).CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("0/%d nodes are available: ", len(nodes.Items))
	if len(nodes.Items) == 0 {
		want = "no nodes available to schedule pods"
	}
	for _, cond := range pod.Status.Conditions {
		if cond.Type == corev1.PodScheduled {
			if cond.Status != corev1.ConditionFalse || cond.Reason != corev1.PodReasonUnschedulable || !strings.HasPrefix(cond.Message, want) {
				t.Errorf("pod %s: the scheduler says %s %s %q; want False Unschedulable %q", pod.Name, cond.Status, cond.Reason, cond.Message, want)
			}
			return
		}
	}
	t.Errorf("pod %s has no PodScheduled condition: %v", pod.Name, pod.Status.Conditions)
}

// waitUnschedulable waits for the scheduler to find no node for a pod.
func waitUnschedulable(t *testing.T, c kubernetes.Interface, namespace, selector string) corev1.Pod {
	t.Helper()
	var pod corev1.Pod
	eventually(t, time.Minute, "the scheduler finds no node for the pod", func() error {
		pods, err := c.CoreV1().Pods(namespace).List(context.Background(), metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return err
		}
		if len(pods.Items) != 1 {
			return fmt.Errorf("%d pods", len(pods.Items))
		}
		pod = pods.Items[0]
		for _, cond := range pod.Status.Conditions {
			if cond.Type == corev1.PodScheduled && cond.Status == corev1.ConditionFalse && cond.Reason == corev1.PodReasonUnschedulable {
				return nil
			}
		}
		return fmt.Errorf("pod %s is %s with conditions %v", pod.Name, pod.Status.Phase, pod.Status.Conditions)
	})
	return pod
}

func TestKube(t *testing.T) {
	k := Kube(t)
	for _, f := range []string{k.CAFile, k.AdminKubeconfig} {
		if _, err := os.Stat(f); err != nil {
			t.Fatal(err)
		}
	}
	// The admin kubeconfig works as written.
	cfg, err := clientcmd.BuildConfigFromFlags("", k.AdminKubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	v, err := clientFor(t, cfg).Discovery().ServerVersion()
	if err != nil {
		t.Fatalf("the admin kubeconfig %s: %v", k.AdminKubeconfig, err)
	}
	if v.GitVersion != "v1.34.0" {
		t.Errorf("server version %s, want v1.34.0", v.GitVersion)
	}

	// The first subtest needs a cluster without nodes; the others wait on
	// controllers, and wait together.
	t.Run("JobPodPending", func(t *testing.T) {
		ns := k.NewNamespace(t, jobRules)
		c := clientFor(t, ns.Config)
		ctx := ctxFor(t, 2*time.Minute)
		job, err := c.BatchV1().Jobs(ns.Name).Create(ctx, &batchv1.Job{
			ObjectMeta: metav1.ObjectMeta{Name: "one"},
			Spec:       batchv1.JobSpec{Template: podTemplate()},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("create a job as the service account: %v", err)
		}
		pod := waitUnschedulable(t, c, ns.Name, "batch.kubernetes.io/job-name=one")
		if pod.Status.Phase != corev1.PodPending {
			t.Errorf("pod %s is %s, want Pending", pod.Name, pod.Status.Phase)
		}
		if len(pod.OwnerReferences) != 1 || pod.OwnerReferences[0].UID != job.UID {
			t.Errorf("pod %s is owned by %v, want job %s", pod.Name, pod.OwnerReferences, job.UID)
		}
		checkUnschedulable(t, k, &pod)

		// The garbage collector deletes the pods of a deleted job.
		bg := metav1.DeletePropagationBackground
		if err := c.BatchV1().Jobs(ns.Name).Delete(ctx, "one", metav1.DeleteOptions{PropagationPolicy: &bg}); err != nil {
			t.Fatal(err)
		}
		eventually(t, time.Minute, "the garbage collector deletes the job's pod", func() error {
			_, err := c.CoreV1().Pods(ns.Name).Get(ctx, pod.Name, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return nil
			}
			return fmt.Errorf("pod %s: %v", pod.Name, err)
		})
	})

	t.Run("JobDeadlineAndTTL", func(t *testing.T) {
		t.Parallel()
		ns := k.NewNamespace(t, jobRules)
		c := clientFor(t, ns.Config)
		ctx := ctxFor(t, 2*time.Minute)
		deadline, ttl := int64(1), int32(0)
		if _, err := c.BatchV1().Jobs(ns.Name).Create(ctx, &batchv1.Job{
			ObjectMeta: metav1.ObjectMeta{Name: "late"},
			Spec:       batchv1.JobSpec{Template: podTemplate(), ActiveDeadlineSeconds: &deadline, TTLSecondsAfterFinished: &ttl},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		// The job controller fails it (DeadlineExceeded), then the
		// ttl-after-finished controller deletes it.
		eventually(t, time.Minute, "the failed job is deleted", func() error {
			j, err := c.BatchV1().Jobs(ns.Name).Get(ctx, "late", metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return nil
			}
			if err != nil {
				return err
			}
			return fmt.Errorf("job late has conditions %v", j.Status.Conditions)
		})
	})

	t.Run("CronJob", func(t *testing.T) {
		t.Parallel()
		ns := k.NewNamespace(t, jobRules)
		c := clientFor(t, ns.Config)
		ctx := ctxFor(t, 3*time.Minute)
		cj, err := c.BatchV1().CronJobs(ns.Name).Create(ctx, &batchv1.CronJob{
			ObjectMeta: metav1.ObjectMeta{Name: "every-minute"},
			Spec: batchv1.CronJobSpec{Schedule: "* * * * *", ConcurrencyPolicy: batchv1.ForbidConcurrent,
				JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: podTemplate()}}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		eventually(t, 90*time.Second, "the cronjob controller creates a job within a minute", func() error {
			jobs, err := c.BatchV1().Jobs(ns.Name).List(ctx, metav1.ListOptions{})
			if err != nil {
				return err
			}
			for _, j := range jobs.Items {
				if len(j.OwnerReferences) == 1 && j.OwnerReferences[0].UID == cj.UID {
					return nil
				}
			}
			return fmt.Errorf("%d jobs, none of cronjob %s", len(jobs.Items), cj.Name)
		})
	})

	t.Run("NodeLifecycle", func(t *testing.T) { testNodeLifecycle(t, k) })

	t.Run("Forbidden", func(t *testing.T) {
		t.Parallel()
		ns := k.NewNamespaceYAML(t, `
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: reader}
rules:
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list]
`)
		c := clientFor(t, ns.Config)
		ctx := ctxFor(t, time.Minute)
		if _, err := c.CoreV1().Pods(ns.Name).List(ctx, metav1.ListOptions{}); err != nil {
			t.Fatalf("list pods in its own namespace, as its Role allows: %v", err)
		}
		other := k.NewNamespace(t, jobRules)
		for _, tc := range []struct {
			name string
			call func() error
		}{
			{"create a job in its namespace", func() error {
				_, err := c.BatchV1().Jobs(ns.Name).Create(ctx, &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "x"},
					Spec: batchv1.JobSpec{Template: podTemplate()}}, metav1.CreateOptions{})
				return err
			}},
			{"delete a pod in its namespace", func() error {
				return c.CoreV1().Pods(ns.Name).Delete(ctx, "x", metav1.DeleteOptions{})
			}},
			{"list pods of another namespace", func() error {
				_, err := c.CoreV1().Pods(other.Name).List(ctx, metav1.ListOptions{})
				return err
			}},
			{"list secrets of kube-system", func() error {
				_, err := c.CoreV1().Secrets("kube-system").List(ctx, metav1.ListOptions{})
				return err
			}},
			{"list nodes", func() error {
				_, err := c.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
				return err
			}},
			{"create a namespace", func() error {
				_, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "t-not-allowed"}}, metav1.CreateOptions{})
				return err
			}},
			{"widen its own Role", func() error {
				_, err := c.RbacV1().Roles(ns.Name).Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "more"},
					Rules: []rbacv1.PolicyRule{{APIGroups: []string{"*"}, Resources: []string{"*"}, Verbs: []string{"*"}}}}, metav1.CreateOptions{})
				return err
			}},
		} {
			err := tc.call()
			var status *apierrors.StatusError
			if !errors.As(err, &status) || status.Status().Code != 403 || !apierrors.IsForbidden(err) {
				t.Errorf("%s: got %v, want 403 Forbidden", tc.name, err)
			}
		}
	})
}

// testNodeLifecycle plays a kubelet by hand: a node that renews its
// Lease stays Ready; one that stops is marked Unknown within
// KubeNodeGracePeriod (and a few seconds), as is one that never reported
// (tainted unreachable, while another node is Ready).
func testNodeLifecycle(t *testing.T, k *Kubernetes) {
	t.Parallel()
	admin := k.AdminClient(t)
	ctx := ctxFor(t, 3*time.Minute)
	name := "t-node-" + randomHex(4)
	silent := "t-silent-" + randomHex(4)
	node := clientFor(t, k.NodeConfig(t, name))
	t.Cleanup(func() {
		for _, n := range []string{name, silent} {
			if err := admin.CoreV1().Nodes().Delete(context.Background(), n, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				t.Errorf("delete node %s: %v", n, err)
			}
		}
	})
	unschedulable := []corev1.Taint{{Key: "stepwise.dev/test-only", Effect: corev1.TaintEffectNoSchedule}}

	// A node registers itself (its credentials allow that node only) and
	// reports Ready.
	if _, err := node.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.NodeSpec{Taints: unschedulable}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("the node registers itself: %v", err)
	}
	if _, err := node.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "t-someone-else"}}, metav1.CreateOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("a node registering another: got %v, want 403 Forbidden", err)
	}
	// The status is patched, as a kubelet does: an update would carry the
	// taints read a moment before, and if the node lifecycle controller has
	// added one since (not-ready, at registration), NodeRestriction refuses
	// it as the node changing its own taints.
	report := func() error {
		now := metav1.Now()
		patch, err := json.Marshal(map[string]any{"status": map[string]any{"conditions": []corev1.NodeCondition{{
			Type: corev1.NodeReady, Status: corev1.ConditionTrue,
			Reason: "KubeletReady", Message: "the test says so", LastHeartbeatTime: now, LastTransitionTime: now}}}})
		if err != nil {
			return err
		}
		_, err = node.CoreV1().Nodes().Patch(ctx, name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status")
		return err
	}
	if err := report(); err != nil {
		t.Fatalf("the node posts its status: %v", err)
	}
	secs := int32(KubeNodeGracePeriod / time.Second)
	renew := func() error {
		now := metav1.NewMicroTime(time.Now())
		l, err := node.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			_, err = node.CoordinationV1().Leases(corev1.NamespaceNodeLease).Create(ctx, &coordinationv1.Lease{
				ObjectMeta: metav1.ObjectMeta{Name: name},
				Spec:       coordinationv1.LeaseSpec{HolderIdentity: &name, LeaseDurationSeconds: &secs, RenewTime: &now}}, metav1.CreateOptions{})
			return err
		}
		if err != nil {
			return err
		}
		l.Spec.RenewTime = &now
		_, err = node.CoordinationV1().Leases(corev1.NamespaceNodeLease).Update(ctx, l, metav1.UpdateOptions{})
		return err
	}
	// Another node is created by hand and never says anything.
	if _, err := admin.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: silent},
		Spec: corev1.NodeSpec{Taints: unschedulable}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	created := time.Now()

	ready := func(n string) (corev1.NodeCondition, []corev1.Taint, error) {
		obj, err := admin.CoreV1().Nodes().Get(ctx, n, metav1.GetOptions{})
		if err != nil {
			return corev1.NodeCondition{}, nil, err
		}
		for _, c := range obj.Status.Conditions {
			if c.Type == corev1.NodeReady {
				return c, obj.Spec.Taints, nil
			}
		}
		return corev1.NodeCondition{}, obj.Spec.Taints, nil
	}
	unknown := func(n string, tainted bool) func() error {
		return func() error {
			c, taints, err := ready(n)
			if err != nil {
				return err
			}
			if c.Status != corev1.ConditionUnknown {
				return fmt.Errorf("node %s: Ready is %q (%s)", n, c.Status, c.Message)
			}
			if !tainted {
				return nil
			}
			for _, tn := range taints {
				if tn.Key == corev1.TaintNodeUnreachable {
					return nil
				}
			}
			return fmt.Errorf("node %s: Ready is Unknown but it has no %s taint: %v", n, corev1.TaintNodeUnreachable, taints)
		}
	}

	// With nodes, the scheduler counts those that do not fit.
	podNS := k.NewNamespace(t, jobRules)
	if _, err := admin.CoreV1().Pods(podNS.Name).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Labels: map[string]string{"app": "p"}},
		Spec: podTemplate().Spec}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := waitUnschedulable(t, admin, podNS.Name, "app=p")
	checkUnschedulable(t, k, &pod)

	// The node renews its Lease every second for twice the grace period:
	// it stays Ready.
	for end := time.Now().Add(2 * KubeNodeGracePeriod); time.Now().Before(end); time.Sleep(time.Second) {
		if err := renew(); err != nil {
			t.Fatalf("the node renews its lease: %v", err)
		}
		c, _, err := ready(name)
		if err != nil {
			t.Fatal(err)
		}
		if c.Status != corev1.ConditionTrue {
			t.Fatalf("node %s, renewing its lease, has Ready %q (%s: %s)", name, c.Status, c.Reason, c.Message)
		}
	}
	// Meanwhile the silent node was marked Unknown.
	eventually(t, KubeNodeGracePeriod+20*time.Second-time.Since(created), "the silent node is marked Unknown", unknown(silent, true))

	// The node stops: it is marked Unknown. (With every node down the
	// controller takes it for its own partition and taints none.)
	stopped := time.Now()
	eventually(t, KubeNodeGracePeriod+20*time.Second, "the stopped node is marked Unknown", unknown(name, false))
	t.Logf("node %s marked Unknown %s after its last renewal", name, time.Since(stopped).Round(100*time.Millisecond))
}

func TestKubeRules(t *testing.T) {
	for _, tc := range []struct {
		name, doc string
		rules     int
		err       string
	}{
		{"role", "kind: Role\napiVersion: rbac.authorization.k8s.io/v1\nmetadata: {name: x}\nrules:\n- apiGroups: [batch]\n  resources: [jobs]\n  verbs: [create]\n", 1, ""},
		{"cluster role", "kind: ClusterRole\nrules:\n- apiGroups: ['']\n  resources: [pods]\n  verbs: [get]\n- nonResourceURLs: [/healthz]\n  verbs: [get]\n", 2, ""},
		{"rules only", `{"rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}]}`, 1, ""},
		{"other kind", "kind: RoleBinding\nrules: []\n", 0, `kind is "RoleBinding"`},
		{"typo", "rules:\n- apiGroups: ['']\n  resource: [pods]\n  verbs: [get]\n", 0, "unknown field"},
		{"no verbs", "rules:\n- apiGroups: ['']\n  resources: [pods]\n", 0, "rule 1 has no verbs"},
		{"no resources", "rules:\n- verbs: [get]\n", 0, "rule 1 names no resources"},
		{"no rules", "kind: Role\n", 0, "no rules"},
		{"not yaml", "rules: [", 0, "read role"},
		{"aggregation", "kind: ClusterRole\naggregationRule: {}\nrules:\n- resources: [pods]\n  verbs: [get]\n", 0, "aggregation"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rules, err := KubeRules([]byte(tc.doc))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %v, want an error containing %q", err, tc.err)
				}
				return
			}
			if err != nil || len(rules) != tc.rules {
				t.Fatalf("got %d rules, %v; want %d", len(rules), err, tc.rules)
			}
		})
	}
}

func FuzzKubeRules(f *testing.F) {
	f.Add([]byte("kind: Role\nrules:\n- apiGroups: ['']\n  resources: [pods]\n  verbs: [get]\n"))
	f.Add([]byte(`{"rules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}]}`))
	f.Add([]byte("rules: ["))
	f.Fuzz(func(t *testing.T, doc []byte) {
		rules, err := KubeRules(doc)
		if err == nil {
			if len(rules) == 0 {
				t.Fatal("no error and no rules")
			}
			for _, r := range rules {
				if len(r.Verbs) == 0 || len(r.Resources)+len(r.NonResourceURLs) == 0 {
					t.Fatalf("accepted an empty rule %+v", r)
				}
			}
		} else if err.Error() == "" {
			t.Fatal("an empty error")
		}
	})
}
