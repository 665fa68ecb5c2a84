package cronjob

import (
	"slices"
	"strings"
	"testing"

	"stepwise.dev/stepwise/internal/compute/kubernetes"
	"stepwise.dev/stepwise/internal/graph"
)

func deployment() Deployment {
	g := &graph.Graph{Flow: "Train", Steps: []*graph.Step{{Name: "start"}, {Name: "end"}}}
	return Deployment{
		Graph: g, Name: "train", Namespace: "ml", Token: "train-abc", Deployer: "ann", Code: strings.Repeat("a", 64),
		Site:     kubernetes.Site{Datastore: "s3://b/p", Metadata: "https://meta:8443", TokenSecret: "tok", FetchImage: "busybox"},
		Settings: map[string]string{"image": "debian", "kubeconfig": "/home/ann/.kube/config", "context": "prod", "node_selector": "pool=cpu"},
		Launcher: kubernetes.Settings{Image: "debian", ServiceAccount: "stepwise"},
		Schedule: "0 3 * * *", TimeZone: "Europe/Amsterdam", Args: []string{"--n=5"}, Restarts: 4, CPU: 0.5, MemoryMB: 512,
	}
}

// The CronJob's pod runs the flow's launcher in the production namespace,
// resuming its Job's run when the pod is started again, with the
// deployer's settings but not their kubeconfig.
func TestCompile(t *testing.T) {
	cj := Compile(deployment())
	spec := cj.Spec
	if spec.Schedule != "0 3 * * *" || spec.TimeZone != "Europe/Amsterdam" || spec.ConcurrencyPolicy != "Forbid" {
		t.Errorf("schedule %q %q, concurrency %q", spec.Schedule, spec.TimeZone, spec.ConcurrencyPolicy)
	}
	job := spec.JobTemplate.Spec
	if job.BackoffLimit == nil || *job.BackoffLimit != 4 {
		t.Errorf("backoffLimit %v, want 4: the launcher's pod is started again after it dies", job.BackoffLimit)
	}
	pod := job.Template.Spec
	if pod.RestartPolicy != "Never" || pod.ServiceAccountName != "stepwise" || len(pod.InitContainers) != 1 {
		t.Errorf("pod: restart %q, account %q, %d init containers", pod.RestartPolicy, pod.ServiceAccountName, len(pod.InitContainers))
	}
	c := pod.Containers[0]
	cmd := strings.Join(c.Command, " ")
	for _, want := range []string{"/stepwise/flow run --compute kubernetes", "--namespace production:train-abc", "--system-tag runtime:cronjob:train", "--resume-key $(STEPWISE_JOB)", "--n=5"} {
		if !strings.Contains(cmd, want) {
			t.Errorf("launcher command %q lacks %q", cmd, want)
		}
	}
	env := map[string]kubernetes.EnvVar{}
	for _, e := range c.Env {
		env[e.Name] = e
	}
	if e := env["STEPWISE_JOB"]; e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != "metadata.labels['batch.kubernetes.io/job-name']" {
		t.Errorf("STEPWISE_JOB is %+v, want the Job's name from the pod's label", e)
	}
	for name, want := range map[string]string{"STEPWISE_KUBERNETES_IMAGE": "debian", "STEPWISE_KUBERNETES_NODE_SELECTOR": "pool=cpu", "STEPWISE_USER": "ann", "STEPWISE_DATASTORE": "s3://b/p"} {
		if env[name].Value != want {
			t.Errorf("%s = %q, want %q", name, env[name].Value, want)
		}
	}
	for _, name := range []string{"STEPWISE_KUBERNETES_KUBECONFIG", "STEPWISE_KUBERNETES_CONTEXT"} {
		if _, ok := env[name]; ok {
			t.Errorf("%s is given to the launcher's pod, which connects in-cluster", name)
		}
	}
	if cj.Metadata.Annotations["stepwise.dev/production-token"] != "train-abc" || cj.Metadata.Annotations["stepwise.dev/deployed-by"] != "ann" {
		t.Errorf("annotations %v", cj.Metadata.Annotations)
	}
}

// A manual Job runs the CronJob's launcher with more arguments, and leaves
// the CronJob's template as it was.
func TestManual(t *testing.T) {
	cj := Compile(deployment())
	before := slices.Clone(cj.Spec.JobTemplate.Spec.Template.Spec.Containers[0].Command)
	j := Manual(cj, []string{"--n=7"})
	if got := j.Spec.Template.Spec.Containers[0].Command; got[len(got)-1] != "--n=7" {
		t.Errorf("manual Job's command %v does not end with the given parameter", got)
	}
	if !slices.Equal(cj.Spec.JobTemplate.Spec.Template.Spec.Containers[0].Command, before) {
		t.Errorf("Manual changed the CronJob's template")
	}
	if j.Metadata.GenerateName != "train-manual-" || j.Metadata.Annotations["cronjob.kubernetes.io/instantiate"] != "manual" {
		t.Errorf("manual Job %+v", j.Metadata)
	}
}
