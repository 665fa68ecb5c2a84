package stepwise_test

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"stepwise.dev/stepwise/client"
)

// poll checks cond every half second until it holds, failing the test
// after limit with what it was waiting for: for conditions that ask the
// API server or the metadata service.
func poll(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s", limit, what)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// TestCronJobResumesWhenItsPodDies deploys a flow as a CronJob that runs
// every minute, on the real cronjob and job controllers: a Job starts
// within a minute and its pod runs the flow's launcher, with the steps on
// Kubernetes. Its pod is killed mid-run; the Job starts another, which
// resumes the run: the finished start task is cloned, not run again, and
// the resumed run succeeds in the production namespace.
func TestCronJobResumesWhenItsPodDies(t *testing.T) {
	c := prodCluster(t)
	ctx := context.Background()

	// Bad schedules are refused before anything is applied.
	for _, bad := range []string{"every minute", "61 * * * *"} {
		f := c.start(t, nil, "kubesleep", "cronjob", "create", "--schedule", bad)
		if code := f.wait(t); code != 2 || !strings.Contains(f.errOut.String(), "schedule") {
			t.Errorf("create --schedule %q: exit %d: %s", bad, code, f.errOut.String())
		}
	}

	created := time.Now()
	out, _ := c.flow(t, 0, "kubesleep", "cronjob", "create", "--schedule", "* * * * *", "--sleep", "30")
	m := regexp.MustCompile(`namespace (production:\S+):`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("create said no production namespace: %s", out)
	}
	prod := m[1]
	cronjobs := c.admin.BatchV1().CronJobs(c.ns.Name)
	jobsAPI := c.admin.BatchV1().Jobs(c.ns.Name)
	var job string
	poll(t, 3*time.Minute, "the CronJob's first Job", func() bool {
		js, err := jobsAPI.List(ctx, metav1.ListOptions{LabelSelector: "stepwise.dev/flow=KubeSleep"})
		if err != nil {
			t.Fatal(err)
		}
		if len(js.Items) > 0 {
			job = js.Items[0].Name
		}
		return job != ""
	})
	t.Logf("the cronjob controller started Job %s %s after create", job, time.Since(created).Round(time.Second))
	// When the test fails, the launchers' pods say why.
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		if j, err := jobsAPI.Get(ctx, job, metav1.GetOptions{}); err == nil {
			st, _ := json.Marshal(j.Status)
			t.Logf("Job %s: %s", job, st)
		}
		pods, _ := c.admin.CoreV1().Pods(c.ns.Name).List(ctx, metav1.ListOptions{LabelSelector: "batch.kubernetes.io/job-name=" + job})
		for _, p := range pods.Items {
			st, _ := json.Marshal(p.Status)
			logs, _ := c.admin.CoreV1().Pods(c.ns.Name).GetLogs(p.Name, &corev1.PodLogOptions{Container: "launcher"}).DoRaw(ctx)
			t.Logf("launcher pod %s: %s\nlogs:\n%s", p.Name, st, logs)
		}
	})
	// One run is enough: the schedule is suspended; the Job goes on.
	if _, err := cronjobs.Patch(ctx, "kubesleep", types.MergePatchType, []byte(`{"spec":{"suspend":true}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	if list, _ := c.flow(t, 0, "kubesleep", "cronjob", "list"); !strings.Contains(list, job) || !strings.Contains(list, "* * * * * (suspended)") {
		t.Errorf("list shows neither Job %s nor the suspended schedule:\n%s", job, list)
	}

	// Once the run's start task has succeeded, the launcher's pod is
	// killed.
	cl := c.client(t)
	cl.SetNamespace(prod)
	var first *client.Run
	poll(t, kubeLimit, "the scheduled run's start task to succeed", func() bool {
		runs, err := cl.Flow("KubeSleep").Runs(ctx, client.Filter{})
		if err != nil || len(runs) == 0 {
			return false
		}
		first = runs[len(runs)-1]
		tk, err := first.Task(ctx, "start", "0")
		return err == nil && tk.Status == client.Succeeded
	})
	launcher := func() []corev1.Pod {
		pods, err := c.admin.CoreV1().Pods(c.ns.Name).List(ctx, metav1.ListOptions{LabelSelector: "batch.kubernetes.io/job-name=" + job})
		if err != nil {
			t.Fatal(err)
		}
		return pods.Items
	}
	killed := launcher()
	if len(killed) != 1 {
		t.Fatalf("Job %s has %d pods, want its one launcher", job, len(killed))
	}
	zero := int64(0)
	if err := c.admin.CoreV1().Pods(c.ns.Name).Delete(ctx, killed[0].Name, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed the launcher's pod %s of run %s", killed[0].Name, first.ID)

	// The Job starts another pod; its launcher resumes the run.
	var resumed *client.Run
	poll(t, 2*kubeLimit, "a resumed run of "+first.ID+" to succeed", func() bool {
		runs, err := cl.Flow("KubeSleep").Runs(ctx, client.Filter{})
		if err != nil {
			return false
		}
		for _, r := range runs {
			if r.Origin == first.ID && r.Status != client.Running {
				resumed = r
				return true
			}
		}
		return false
	})
	if resumed.Status != client.Succeeded {
		t.Fatalf("the resumed run %s: %s", resumed.ID, resumed.Status)
	}
	tasks, err := resumed.Tasks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, tk := range tasks {
		if cloned, want := tk.ClonedFrom != "", tk.Step == "start"; cloned != want {
			t.Errorf("task %s/%s of the resumed run: cloned %v, want %v", tk.Step, tk.ID, cloned, want)
		}
	}
	pods := launcher()
	if len(pods) != 1 || pods[0].Name == killed[0].Name {
		t.Errorf("Job %s's pods after the kill: %d, want one new launcher", job, len(pods))
	}
	poll(t, time.Minute, "Job "+job+" to complete", func() bool {
		j, err := jobsAPI.Get(ctx, job, metav1.GetOptions{})
		return err == nil && j.Status.Succeeded == 1
	})
	runs, _ := c.flow(t, 0, "kubesleep", "runs", "--namespace", prod)
	if !strings.Contains(runs, resumed.ID) {
		t.Errorf("runs --namespace %s does not list %s:\n%s", prod, resumed.ID, runs)
	}

	// trigger starts a Job now, with a parameter; someone else cannot
	// change the deployment without its token.
	out, _ = c.flow(t, 0, "kubesleep", "cronjob", "trigger", "--sleep", "0")
	if !regexp.MustCompile(`started Job \S+/kubesleep-manual-`).MatchString(out) {
		t.Errorf("trigger: %s", out)
	}
	f := c.start(t, []string{"STEPWISE_USER=bob"}, "kubesleep", "cronjob", "delete")
	if code := f.wait(t); code != 1 || !strings.Contains(f.errOut.String(), "made by ann, not you (bob)") {
		t.Errorf("bob's delete: exit %d: %s", code, f.errOut.String())
	}
	out, _ = c.flow(t, 0, "kubesleep", "cronjob", "delete")
	if !strings.Contains(out, "deleted CronJob") {
		t.Errorf("delete: %s", out)
	}
	// Its Jobs are orphaned first (the garbage collector's orphan
	// finalizer), then it is gone; the Jobs stay.
	poll(t, time.Minute, "the CronJob to be deleted", func() bool {
		_, err := cronjobs.Get(ctx, "kubesleep", metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
	if _, err := jobsAPI.Get(ctx, job, metav1.GetOptions{}); err != nil {
		t.Errorf("Job %s of the deleted CronJob: %v, want it left to finish", job, err)
	}
}

// TestDeployBadInput: what cannot be deployed is refused with a clear
// error before anything is applied, for both ways of deploying.
func TestDeployBadInput(t *testing.T) {
	c := newCluster(t, roleRules(t, launcherRole(t), docRole(t, "docs/production.md")))
	for _, tc := range []struct {
		flow string
		args []string
		code int
		says string
	}{
		{"kubeseed", []string{"argo-workflows", "create", "--schedule", "0 25 * * *"}, 2, "hour"},
		{"kubeseed", []string{"argo-workflows", "create", "--schedule", "0 3 * * *", "--timezone", "Mars/Olympus"}, 2, "Mars/Olympus"},
		{"kubeseed", []string{"cronjob", "create"}, 2, "give --schedule"},
		{"required", []string{"argo-workflows", "create"}, 1, "parameter --date is required"},
		{"required", []string{"cronjob", "create", "--schedule", "0 3 * * *"}, 1, "parameter --date is required"},
		{"local", []string{"argo-workflows", "create"}, 1, "step read_laptop_file is placed on the launcher's machine"},
		{"local", []string{"cronjob", "create", "--schedule", "0 3 * * *"}, 1, "step read_laptop_file is placed on the launcher's machine"},
	} {
		t.Run(fmt.Sprintf("%s %s", tc.flow, strings.Join(tc.args, " ")), func(t *testing.T) {
			f := c.start(t, nil, tc.flow, tc.args...)
			if code := f.wait(t); code != tc.code || !strings.Contains(f.errOut.String(), tc.says) {
				t.Errorf("exit %d, want %d saying %q:\n%s", code, tc.code, tc.says, f)
			}
		})
	}
	// Nothing was applied.
	cjs, err := c.admin.BatchV1().CronJobs(c.ns.Name).List(context.Background(), metav1.ListOptions{})
	if err != nil || len(cjs.Items) != 0 {
		t.Errorf("CronJobs after refused deployments: %d (%v)", len(cjs.Items), err)
	}

	// A cluster without Argo's CRDs: said before anything is applied,
	// with the way out.
	uninstallArgoCRDs(t, c.k)
	f := c.start(t, nil, "kubeseed", "argo-workflows", "create")
	if code := f.wait(t); code != 1 || !strings.Contains(f.errOut.String(), "has no Argo Workflows") || !strings.Contains(f.errOut.String(), "cronjob create") {
		t.Errorf("create on a cluster without Argo: exit %d:\n%s", code, f)
	}
}
