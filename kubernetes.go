package stepwise

import "time"

// Kubernetes places a step's tasks on a Kubernetes cluster: one Job per
// attempt, with the step's Resources as requests and limits. The flow's
// binary ships itself (it is stored in the datastore and fetched by the
// pod), so Image is any base image: a CUDA image, a distroless one. Empty
// fields take the settings in force (stepwise configure, the environment);
// a run's --compute kubernetes places every step with those settings. It
// needs the team set-up: an S3 datastore and a metadata service that the
// pods reach. The flow program imports the backend:
//
//	import _ "stepwise.dev/stepwise/backend/kubernetes"
type Kubernetes struct {
	Namespace        string            `json:"namespace,omitempty"`
	Image            string            `json:"image,omitempty"`
	ServiceAccount   string            `json:"service_account,omitempty"`
	NodeSelector     map[string]string `json:"node_selector,omitempty"`
	Tolerations      []Toleration      `json:"tolerations,omitempty"`
	ImagePullSecrets []string          `json:"image_pull_secrets,omitempty"`
	// SecretEnv exposes keys of Kubernetes Secrets as environment
	// variables of the task: name -> secret and key. Values never pass
	// through Stepwise.
	SecretEnv   map[string]SecretKey `json:"secret_env,omitempty"`
	Labels      map[string]string    `json:"labels,omitempty"`
	Annotations map[string]string    `json:"annotations,omitempty"`
	// SharedMemoryMB sizes /dev/shm (a memory-backed volume), for data
	// loaders that use it.
	SharedMemoryMB int64 `json:"shared_memory_mb,omitempty"`
	// Queue is the queue label for Kueue-style admission
	// (kueue.x-k8s.io/queue-name).
	Queue string `json:"queue,omitempty"`
	// GPUResource is the extended resource a GPU is asked as (default
	// nvidia.com/gpu).
	GPUResource string `json:"gpu_resource,omitempty"`
	// TTLAfterFinished is how long a finished Job is kept (default one
	// hour).
	TTLAfterFinished time.Duration `json:"ttl_after_finished,omitempty"`
	// Unschedulable is how long a pod may wait unschedulable before its
	// attempt fails with the scheduler's message (default 5 minutes).
	Unschedulable time.Duration `json:"unschedulable,omitempty"`
	// Binary is where Image already holds this flow's static binary (an
	// image built with it): the code is then run from there, not shipped.
	Binary string `json:"binary,omitempty"`
}

// Toleration lets a task's pod run on nodes with a matching taint.
type Toleration struct {
	Key      string `json:"key,omitempty"`
	Operator string `json:"operator,omitempty"` // Exists or Equal
	Value    string `json:"value,omitempty"`
	Effect   string `json:"effect,omitempty"`
}

// SecretKey names one key of a Kubernetes Secret.
type SecretKey struct {
	Secret string `json:"secret"`
	Key    string `json:"key"`
}

func (k Kubernetes) computeBackend() (string, any) { return "kubernetes", k }
