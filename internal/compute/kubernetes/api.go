package kubernetes

import (
	"encoding/json"
	"time"
)

// The few Kubernetes objects the backend writes and reads, as the API
// server's JSON. They are declared here rather than taken from the
// Kubernetes API packages, whose registration of every API group costs
// each task process about 100 ms of start-up and its binary about 50 MB,
// although a task never talks to the cluster.

// ObjectMeta is an object's metadata.
type ObjectMeta struct {
	Name              string            `json:"name,omitempty"`
	GenerateName      string            `json:"generateName,omitempty"`
	Namespace         string            `json:"namespace,omitempty"`
	Labels            map[string]string `json:"labels,omitempty"`
	Annotations       map[string]string `json:"annotations,omitempty"`
	ResourceVersion   string            `json:"resourceVersion,omitempty"`
	Generation        int64             `json:"generation,omitempty"`
	CreationTimestamp *time.Time        `json:"creationTimestamp,omitempty"`
	DeletionTimestamp *time.Time        `json:"deletionTimestamp,omitempty"`
}

// Job is a batch/v1 Job.
type Job struct {
	APIVersion string     `json:"apiVersion,omitempty"`
	Kind       string     `json:"kind,omitempty"`
	Metadata   ObjectMeta `json:"metadata"`
	Spec       JobSpec    `json:"spec"`
	Status     JobStatus  `json:"status,omitempty"`
}

// JobSpec is what a Job runs.
type JobSpec struct {
	BackoffLimit            *int32            `json:"backoffLimit,omitempty"`
	ActiveDeadlineSeconds   *int64            `json:"activeDeadlineSeconds,omitempty"`
	TTLSecondsAfterFinished *int32            `json:"ttlSecondsAfterFinished,omitempty"`
	PodFailurePolicy        *PodFailurePolicy `json:"podFailurePolicy,omitempty"`
	Template                PodTemplateSpec   `json:"template"`
}

// PodFailurePolicy says which failed pods end a Job at once, and which
// do not count against its backoffLimit.
type PodFailurePolicy struct {
	Rules []PodFailurePolicyRule `json:"rules"`
}

// PodFailurePolicyRule is one rule: an action for the pods that match.
type PodFailurePolicyRule struct {
	Action          string               `json:"action"` // FailJob, Ignore, Count
	OnExitCodes     *OnExitCodes         `json:"onExitCodes,omitempty"`
	OnPodConditions []OnPodConditionRule `json:"onPodConditions,omitempty"`
}

// OnExitCodes matches a container's exit code.
type OnExitCodes struct {
	ContainerName string  `json:"containerName,omitempty"`
	Operator      string  `json:"operator"` // In, NotIn
	Values        []int32 `json:"values"`
}

// OnPodConditionRule matches a pod condition.
type OnPodConditionRule struct {
	Type   string `json:"type"`
	Status string `json:"status"`
}

// JobStatus is how a Job is doing.
type JobStatus struct {
	Active     int32       `json:"active,omitempty"`
	Succeeded  int32       `json:"succeeded,omitempty"`
	Failed     int32       `json:"failed,omitempty"`
	Conditions []Condition `json:"conditions,omitempty"`
}

// Condition is a condition of a Job or a pod.
type Condition struct {
	Type    string `json:"type"`
	Status  string `json:"status"`
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
}

// PodTemplateSpec is the pod a Job makes.
type PodTemplateSpec struct {
	Metadata ObjectMeta `json:"metadata"`
	Spec     PodSpec    `json:"spec"`
}

// PodSpec is a pod's spec.
type PodSpec struct {
	RestartPolicy string `json:"restartPolicy,omitempty"`
	// TerminationGracePeriodSeconds is the time between SIGTERM and
	// SIGKILL when the pod is stopped (default 30).
	TerminationGracePeriodSeconds *int64            `json:"terminationGracePeriodSeconds,omitempty"`
	ServiceAccountName            string            `json:"serviceAccountName,omitempty"`
	NodeSelector                  map[string]string `json:"nodeSelector,omitempty"`
	NodeName                      string            `json:"nodeName,omitempty"`
	Tolerations                   []Toleration      `json:"tolerations,omitempty"`
	ImagePullSecrets              []LocalObjectRef  `json:"imagePullSecrets,omitempty"`
	Volumes                       []Volume          `json:"volumes,omitempty"`
	InitContainers                []Container       `json:"initContainers,omitempty"`
	Containers                    []Container       `json:"containers"`
}

// LocalObjectRef names an object in the same namespace.
type LocalObjectRef struct {
	Name string `json:"name"`
}

// Volume is a pod's volume; the backend uses emptyDir only.
type Volume struct {
	Name     string    `json:"name"`
	EmptyDir *EmptyDir `json:"emptyDir,omitempty"`
}

// EmptyDir is a scratch volume, in memory when Medium is "Memory".
type EmptyDir struct {
	Medium    string `json:"medium,omitempty"`
	SizeLimit string `json:"sizeLimit,omitempty"`
}

// Container is one container of a pod.
type Container struct {
	Name                     string         `json:"name"`
	Image                    string         `json:"image"`
	Command                  []string       `json:"command,omitempty"`
	Env                      []EnvVar       `json:"env,omitempty"`
	EnvFrom                  []EnvFrom      `json:"envFrom,omitempty"`
	Resources                Resources      `json:"resources,omitempty"`
	VolumeMounts             []VolumeMount  `json:"volumeMounts,omitempty"`
	TerminationMessagePolicy string         `json:"terminationMessagePolicy,omitempty"`
	SecurityContext          map[string]any `json:"securityContext,omitempty"`
	Ports                    []Port         `json:"ports,omitempty"`
	ReadinessProbe           *Probe         `json:"readinessProbe,omitempty"`
	LivenessProbe            *Probe         `json:"livenessProbe,omitempty"`
}

// Port is a port a container listens on.
type Port struct {
	Name          string `json:"name,omitempty"`
	ContainerPort int32  `json:"containerPort"`
	Protocol      string `json:"protocol,omitempty"`
}

// Probe asks a container over HTTP whether it is ready, or alive.
type Probe struct {
	HTTPGet             *HTTPGet `json:"httpGet,omitempty"`
	InitialDelaySeconds int32    `json:"initialDelaySeconds,omitempty"`
	PeriodSeconds       int32    `json:"periodSeconds,omitempty"`
	TimeoutSeconds      int32    `json:"timeoutSeconds,omitempty"`
	FailureThreshold    int32    `json:"failureThreshold,omitempty"`
}

// HTTPGet is a probe's request: a GET of Path on the container's port
// named Port.
type HTTPGet struct {
	Path string `json:"path"`
	Port string `json:"port"`
}

// Resources are a container's requests and limits, as quantities.
type Resources struct {
	Requests map[string]string `json:"requests,omitempty"`
	Limits   map[string]string `json:"limits,omitempty"`
}

// VolumeMount mounts a volume into a container.
type VolumeMount struct {
	Name      string `json:"name"`
	MountPath string `json:"mountPath"`
}

// EnvVar is an environment variable: a value, or a reference to one.
type EnvVar struct {
	Name      string     `json:"name"`
	Value     string     `json:"value,omitempty"`
	ValueFrom *EnvSource `json:"valueFrom,omitempty"`
}

// EnvSource is where a variable's value comes from: a Secret's key, or a
// field of the pod (the downward API).
type EnvSource struct {
	SecretKeyRef *SecretKeyRef `json:"secretKeyRef,omitempty"`
	FieldRef     *FieldRef     `json:"fieldRef,omitempty"`
}

// SecretKeyRef is one key of a Secret.
type SecretKeyRef struct {
	Name string `json:"name"`
	Key  string `json:"key"`
}

// FieldRef is a field of the pod.
type FieldRef struct {
	FieldPath string `json:"fieldPath"`
}

// EnvFrom makes every key of a Secret a variable.
type EnvFrom struct {
	SecretRef *LocalObjectRef `json:"secretRef,omitempty"`
}

// Pod is a pod as the backend reads it.
type Pod struct {
	Metadata ObjectMeta `json:"metadata"`
	Spec     PodSpec    `json:"spec"`
	Status   PodStatus  `json:"status"`
}

// PodStatus is how a pod is doing.
type PodStatus struct {
	Phase                 string            `json:"phase,omitempty"`
	Reason                string            `json:"reason,omitempty"`
	Message               string            `json:"message,omitempty"`
	Conditions            []Condition       `json:"conditions,omitempty"`
	InitContainerStatuses []ContainerStatus `json:"initContainerStatuses,omitempty"`
	ContainerStatuses     []ContainerStatus `json:"containerStatuses,omitempty"`
}

// ContainerStatus is the state of one container.
type ContainerStatus struct {
	Name         string         `json:"name"`
	State        ContainerState `json:"state"`
	LastState    ContainerState `json:"lastState"`
	Ready        bool           `json:"ready"`
	RestartCount int32          `json:"restartCount"`
}

// ContainerState is waiting, running or terminated.
type ContainerState struct {
	Waiting *struct {
		Reason  string `json:"reason,omitempty"`
		Message string `json:"message,omitempty"`
	} `json:"waiting,omitempty"`
	Running *struct {
		StartedAt time.Time `json:"startedAt"`
	} `json:"running,omitempty"`
	Terminated *struct {
		ExitCode int32  `json:"exitCode"`
		Reason   string `json:"reason,omitempty"`
		Message  string `json:"message,omitempty"`
	} `json:"terminated,omitempty"`
}

// Pod phases and the conditions the backend looks at.
const (
	PodPending   = "Pending"
	PodRunning   = "Running"
	PodSucceeded = "Succeeded"
	PodFailed    = "Failed"

	condTrue              = "True"
	condFalse             = "False"
	condPodScheduled      = "PodScheduled"
	condDisruptionTarget  = "DisruptionTarget"
	condJobFailed         = "Failed"
	condJobComplete       = "Complete"
	condJobFailureTarget  = "FailureTarget"
	reasonUnschedulable   = "Unschedulable"
	reasonDeadlineExeeded = "DeadlineExceeded"
)

// list is a list of objects with the version to watch from.
type list[T any] struct {
	Metadata struct {
		ResourceVersion string `json:"resourceVersion"`
		Continue        string `json:"continue,omitempty"`
	} `json:"metadata"`
	Items []T `json:"items"`
}

// watchEvent is one line of a watch.
type watchEvent struct {
	Type   string          `json:"type"` // ADDED, MODIFIED, DELETED, BOOKMARK, ERROR
	Object json.RawMessage `json:"object"`
}

// status is the API server's answer when a request fails.
type status struct {
	Code    int    `json:"code"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
}
