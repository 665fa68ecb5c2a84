package kubernetes

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"stepwise.dev/stepwise/internal/compute"
	"stepwise.dev/stepwise/internal/graph"
)

func TestJobNamesAreValidAndDistinct(t *testing.T) {
	seen := map[string]bool{}
	for _, s := range []compute.Spec{
		{Flow: "BranchJoin", Run: "1764340315123456", Step: "start", Task: "0"},
		{Flow: "BranchJoin", Run: "1764340315123456", Step: "start", Task: "0", Attempt: 1},
		{Flow: "A_Very.Long-Flow_Name_That_Goes_On_And_On", Run: "1764340315123456", Step: "train_the_model_for_a_long_time", Task: "12.345.6789"},
		{Flow: "A_Very.Long-Flow_Name_That_Goes_On_And_On", Run: "1764340315123456", Step: "train_the_model_for_a_long_time", Task: "12.345.6788"},
	} {
		n := JobName(s)
		if errs := validation.IsDNS1123Subdomain(n); len(errs) > 0 || len(n) > 52 {
			t.Errorf("job name %q: %v (length %d; the job controller adds a suffix for pods)", n, errs, len(n))
		}
		if seen[n] {
			t.Errorf("job name %q given twice", n)
		}
		seen[n] = true
	}
}

func TestSettingsFromTheGraphWinOverThoseInForce(t *testing.T) {
	inForce := map[string]string{"namespace": "team", "image": "base:1", "unschedulable": "30s", "shared_memory_mb": "64"}
	s, err := settings([]byte(`{"image":"cuda:12","gpu_resource":"amd.com/gpu"}`), func(n string) string { return inForce[n] })
	if err != nil {
		t.Fatal(err)
	}
	if s.Namespace != "team" || s.Image != "cuda:12" || s.GPUResource != "amd.com/gpu" || s.Unschedulable != 30*time.Second || s.SharedMemoryMB != 64 || s.TTLAfterFinished != DefaultTTL {
		t.Errorf("settings %+v", s)
	}
	if _, err := settings(nil, func(n string) string { return map[string]string{"unschedulable": "soon"}[n] }); err == nil || !strings.Contains(err.Error(), "kubernetes.unschedulable") {
		t.Errorf("a bad duration: %v", err)
	}
}

func TestManifestCarriesWhatTheStepAsks(t *testing.T) {
	b := &Backend{env: compute.Env{User: "ann", Datastore: "s3://b/p", Metadata: "http://meta:8080"}, code: &Code{SHA256: "ab12", URL: "http://x/code"},
		inForce: func(n string) string {
			return map[string]string{"token_secret": "stepwise-token", "aws_secret": "s3-creds"}[n]
		}}
	b.site = SiteFor(b.env, b.inForce)
	set := Settings{Namespace: "ml", Image: "cuda:12", ServiceAccount: "trainer", NodeSelector: map[string]string{"pool": "gpu"},
		Tolerations: []Toleration{{Key: "gpu", Operator: "Exists", Effect: "NoSchedule"}}, ImagePullSecrets: []string{"regcred"},
		SecretEnv: map[string]SecretKey{"HF_TOKEN": {Secret: "hf", Key: "token"}}, Labels: map[string]string{"team": "vision"},
		Annotations: map[string]string{"owner": "ann"}, SharedMemoryMB: 512, Queue: "gpu-queue", GPUResource: "nvidia.com/gpu", TTLAfterFinished: time.Minute}
	s := compute.Spec{Flow: "Train", Run: "17", Step: "fit", Task: "3", Attempt: 1, Args: []string{"task", "--run-id", "17"},
		Resources: graph.Resources{CPU: 1.5, MemoryMB: 2048, GPU: 1, DiskMB: 100}, Timeout: 90 * time.Second}
	j := asJob(t, b.manifest(s, set, JobName(s)))
	p := j.Spec.Template.Spec
	c := p.Containers[0]
	for k, v := range map[string]string{LabelFlow: "Train", LabelRun: "17", LabelStep: "fit", LabelTask: "3", LabelAttempt: "1", LabelUser: "ann", "team": "vision", QueueLabel: "gpu-queue"} {
		if j.Labels[k] != v || j.Spec.Template.Labels[k] != v {
			t.Errorf("label %s = %q on the Job, %q on the pod; want %q", k, j.Labels[k], j.Spec.Template.Labels[k], v)
		}
	}
	lim := c.Resources.Limits
	if lim.Cpu().MilliValue() != 1500 || lim.Memory().Value() != 2048<<20 || lim.StorageEphemeral().Value() != 100<<20 || lim.Name("nvidia.com/gpu", "").Value() != 1 {
		t.Errorf("limits %v", lim)
	}
	if *j.Spec.BackoffLimit != 0 || *j.Spec.ActiveDeadlineSeconds != int64((90*time.Second+StartAllowance(set)).Seconds()) || *j.Spec.TTLSecondsAfterFinished != 60 {
		t.Errorf("backoff %d deadline %d ttl %d", *j.Spec.BackoffLimit, *j.Spec.ActiveDeadlineSeconds, *j.Spec.TTLSecondsAfterFinished)
	}
	if p.RestartPolicy != corev1.RestartPolicyNever || p.ServiceAccountName != "trainer" || p.NodeSelector["pool"] != "gpu" || len(p.Tolerations) != 1 || p.ImagePullSecrets[0].Name != "regcred" {
		t.Errorf("pod spec %+v", p)
	}
	if c.Image != "cuda:12" || c.Command[0] != "/stepwise/flow" || c.Command[1] != "task" {
		t.Errorf("container %s %v", c.Image, c.Command)
	}
	env := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		env[e.Name] = e
	}
	if env["STEPWISE_TOKEN"].ValueFrom == nil || env["STEPWISE_TOKEN"].ValueFrom.SecretKeyRef.Name != "stepwise-token" || env["STEPWISE_TOKEN"].Value != "" {
		t.Errorf("the token must come from its Secret: %+v", env["STEPWISE_TOKEN"])
	}
	if env["HF_TOKEN"].ValueFrom == nil || env["HF_TOKEN"].ValueFrom.SecretKeyRef.Name != "hf" {
		t.Errorf("secret env %+v", env["HF_TOKEN"])
	}
	if env["STEPWISE_DATASTORE"].Value != "s3://b/p" || env["STEPWISE_METADATA"].Value != "http://meta:8080" || c.EnvFrom[0].SecretRef.Name != "s3-creds" {
		t.Errorf("stores %+v %+v, creds %+v", env["STEPWISE_DATASTORE"], env["STEPWISE_METADATA"], c.EnvFrom)
	}
	init := p.InitContainers[0]
	if !strings.Contains(init.Command[2], "sha256sum") || init.Env[0].Value != "ab12" {
		t.Errorf("the code is not checked: %v %v", init.Command, init.Env)
	}
	shm := false
	for _, v := range p.Volumes {
		shm = shm || v.EmptyDir != nil && v.EmptyDir.Medium == corev1.StorageMediumMemory && v.EmptyDir.SizeLimit.Value() == 512<<20
	}
	if !shm {
		t.Errorf("no 512 MiB /dev/shm: %+v", p.Volumes)
	}
}

// An image that holds the flow's binary runs it from there: no init
// container, no volume over it, no code annotation.
func TestManifestBinaryInImage(t *testing.T) {
	b := &Backend{env: compute.Env{User: "ann", Datastore: "s3://b/p", Metadata: "http://meta:8080"},
		inForce: func(string) string { return "" }}
	b.site = SiteFor(b.env, b.inForce)
	set, err := settings([]byte(`{"image":"team/train:3","binary":"/usr/local/bin/train"}`), b.inForce)
	if err != nil {
		t.Fatal(err)
	}
	s := compute.Spec{Flow: "Train", Run: "17", Step: "fit", Task: "0", Args: []string{"task", "--run-id", "17"}}
	j := asJob(t, b.manifest(s, set, JobName(s)))
	p := j.Spec.Template.Spec
	if len(p.InitContainers) != 0 || len(p.Volumes) != 0 || len(p.Containers[0].VolumeMounts) != 0 {
		t.Errorf("init %v volumes %v mounts %v", p.InitContainers, p.Volumes, p.Containers[0].VolumeMounts)
	}
	if c := p.Containers[0].Command; c[0] != "/usr/local/bin/train" || c[1] != "task" {
		t.Errorf("command %v", c)
	}
	if _, ok := j.Annotations["stepwise.dev/code-sha256"]; ok {
		t.Errorf("annotations %v", j.Annotations)
	}
	if _, err := settings([]byte(`{"binary":"train"}`), b.inForce); err == nil || !strings.Contains(err.Error(), "absolute path") {
		t.Errorf("a relative binary path: %v", err)
	}
}

// asJob reads a manifest as Kubernetes' own Job type reads it, refusing
// fields it does not know: the JSON is what the API server expects.
func asJob(t *testing.T, j *Job) *batchv1.Job {
	t.Helper()
	data, err := json.Marshal(j)
	if err != nil {
		t.Fatal(err)
	}
	var out batchv1.Job
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&out); err != nil {
		t.Fatalf("the manifest is not a Job as Kubernetes reads it: %v\n%s", err, data)
	}
	if out.APIVersion != "batch/v1" || out.Kind != "Job" {
		t.Errorf("apiVersion %q kind %q", out.APIVersion, out.Kind)
	}
	return &out
}

// The table catalog reaches the pods when they can use it, by reference
// when it holds a password, and a password is never written literally.
func TestCatalogReachesThePods(t *testing.T) {
	for _, tc := range []struct {
		name      string
		launcher  string            // the launcher's $STEPWISE_CATALOG
		inForce   map[string]string // kubernetes settings
		literal   string            // the pod's STEPWISE_CATALOG value
		secret    string            // or the Secret it comes from
		refused   bool
		wantUnset bool
	}{
		{name: "S3 directory", launcher: "s3://lake/tables", literal: "s3://lake/tables"},
		{name: "PostgreSQL without a password", launcher: "iceberg+postgres://ann@db:5432/cat?warehouse=s3://lake/wh", literal: "iceberg+postgres://ann@db:5432/cat?warehouse=s3://lake/wh"},
		{name: "PostgreSQL with a password is not passed", launcher: "iceberg+postgres://ann:pw@db/cat", wantUnset: true},
		{name: "password as a parameter is not passed", launcher: "iceberg+postgres://db/cat?password=pw", wantUnset: true},
		{name: "a local directory is not passed", launcher: "/home/ann/tables", wantUnset: true},
		{name: "SQLite is not passed", launcher: "iceberg+sqlite:///tmp/cat.db", wantUnset: true},
		{name: "none", wantUnset: true},
		{name: "the setting wins", launcher: "/home/ann/tables", inForce: map[string]string{"catalog": "/shared/tables"}, literal: "/shared/tables"},
		{name: "a Secret wins", launcher: "iceberg+postgres://ann:pw@db/cat", inForce: map[string]string{"catalog_secret": "lake-catalog"}, secret: "lake-catalog"},
		{name: "a password in the setting is refused", inForce: map[string]string{"catalog": "iceberg+postgres://ann:pw@db/cat"}, refused: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("STEPWISE_CATALOG", tc.launcher)
			site := SiteFor(compute.Env{Datastore: "s3://b/p", Metadata: "http://meta:8080"}, func(n string) string { return tc.inForce[n] })
			err := site.Check()
			if tc.refused {
				if err == nil || !strings.Contains(err.Error(), "kubernetes.catalog_secret") {
					t.Fatalf("Check: %v, want a refusal naming kubernetes.catalog_secret", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var found *EnvVar
			for _, e := range site.env(Settings{}, nil) {
				if e.Name == "STEPWISE_CATALOG" {
					found = &e
				}
			}
			switch {
			case tc.wantUnset:
				if found != nil {
					t.Fatalf("STEPWISE_CATALOG set to %+v, want it unset", *found)
				}
			case tc.secret != "":
				if found == nil || found.Value != "" || found.ValueFrom == nil || found.ValueFrom.SecretKeyRef.Name != tc.secret || found.ValueFrom.SecretKeyRef.Key != "catalog" {
					t.Fatalf("STEPWISE_CATALOG %+v, want it from Secret %s key catalog", found, tc.secret)
				}
			default:
				if found == nil || found.Value != tc.literal {
					t.Fatalf("STEPWISE_CATALOG %+v, want %q", found, tc.literal)
				}
			}
		})
	}
}
