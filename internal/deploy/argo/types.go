package argo

import "stepwise.dev/stepwise/internal/compute/kubernetes"

// The part of Argo Workflows' API (argoproj.io/v1alpha1) that Stepwise
// writes, as the API server reads it. Tests create every generated
// manifest with fieldValidation=Strict against Argo's own published
// schemas, so a field spelled wrong here fails there.

// APIVersion is the API version of Argo's resources.
const APIVersion = "argoproj.io/v1alpha1"

// ObjectMeta is an object's metadata.
type ObjectMeta = kubernetes.ObjectMeta

// WorkflowTemplate is a deployed flow: the DAG of its steps.
type WorkflowTemplate struct {
	APIVersion string       `json:"apiVersion"`
	Kind       string       `json:"kind"`
	Metadata   ObjectMeta   `json:"metadata"`
	Spec       WorkflowSpec `json:"spec"`
}

// Workflow is one run of a deployed flow: a reference to its template
// with arguments.
type Workflow struct {
	APIVersion string       `json:"apiVersion"`
	Kind       string       `json:"kind"`
	Metadata   ObjectMeta   `json:"metadata"`
	Spec       WorkflowSpec `json:"spec"`
	Status     *struct {
		Phase      string `json:"phase,omitempty"`
		StartedAt  string `json:"startedAt,omitempty"`
		FinishedAt string `json:"finishedAt,omitempty"`
		Message    string `json:"message,omitempty"`
	} `json:"status,omitempty"`
}

// CronWorkflow starts a deployed flow on a schedule.
type CronWorkflow struct {
	APIVersion string           `json:"apiVersion"`
	Kind       string           `json:"kind"`
	Metadata   ObjectMeta       `json:"metadata"`
	Spec       CronWorkflowSpec `json:"spec"`
}

// CronWorkflowSpec is a schedule and the workflow it starts.
type CronWorkflowSpec struct {
	Schedules                  []string     `json:"schedules"`
	Timezone                   string       `json:"timezone,omitempty"`
	ConcurrencyPolicy          string       `json:"concurrencyPolicy,omitempty"`
	StartingDeadlineSeconds    *int64       `json:"startingDeadlineSeconds,omitempty"`
	SuccessfulJobsHistoryLimit *int32       `json:"successfulJobsHistoryLimit,omitempty"`
	FailedJobsHistoryLimit     *int32       `json:"failedJobsHistoryLimit,omitempty"`
	WorkflowMetadata           *ObjectMeta  `json:"workflowMetadata,omitempty"`
	WorkflowSpec               WorkflowSpec `json:"workflowSpec"`
}

// WorkflowSpec is a workflow's or a template's spec.
type WorkflowSpec struct {
	Entrypoint          string                      `json:"entrypoint,omitempty"`
	Arguments           *Arguments                  `json:"arguments,omitempty"`
	Templates           []Template                  `json:"templates,omitempty"`
	OnExit              string                      `json:"onExit,omitempty"`
	ServiceAccountName  string                      `json:"serviceAccountName,omitempty"`
	ImagePullSecrets    []kubernetes.LocalObjectRef `json:"imagePullSecrets,omitempty"`
	TTLStrategy         *TTLStrategy                `json:"ttlStrategy,omitempty"`
	PodGC               *PodGC                      `json:"podGC,omitempty"`
	WorkflowMetadata    *WorkflowMetadata           `json:"workflowMetadata,omitempty"`
	WorkflowTemplateRef *TemplateRef                `json:"workflowTemplateRef,omitempty"`
	Parallelism         *int64                      `json:"parallelism,omitempty"`
}

// WorkflowMetadata are labels and annotations every workflow of a
// template gets.
type WorkflowMetadata struct {
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// TemplateRef names a WorkflowTemplate.
type TemplateRef struct {
	Name string `json:"name"`
}

// TTLStrategy is how long finished workflows are kept.
type TTLStrategy struct {
	SecondsAfterCompletion *int32 `json:"secondsAfterCompletion,omitempty"`
}

// PodGC says when a workflow's pods are deleted.
type PodGC struct {
	Strategy string `json:"strategy,omitempty"`
}

// Arguments are the parameters given to a workflow or a task.
type Arguments struct {
	Parameters []Parameter `json:"parameters,omitempty"`
}

// Parameter is a named string value, or where it comes from.
type Parameter struct {
	Name        string     `json:"name"`
	Value       *string    `json:"value,omitempty"`
	Description string     `json:"description,omitempty"`
	ValueFrom   *ValueFrom `json:"valueFrom,omitempty"`
	GlobalName  string     `json:"globalName,omitempty"`
}

// ValueFrom reads an output parameter from a file of the container.
type ValueFrom struct {
	Path string `json:"path,omitempty"`
}

// Inputs are a template's input parameters.
type Inputs struct {
	Parameters []Parameter `json:"parameters,omitempty"`
}

// Outputs are a template's output parameters.
type Outputs struct {
	Parameters []Parameter `json:"parameters,omitempty"`
}

// Template is a DAG or a container.
type Template struct {
	Name                  string                  `json:"name"`
	Inputs                *Inputs                 `json:"inputs,omitempty"`
	Outputs               *Outputs                `json:"outputs,omitempty"`
	Metadata              *WorkflowMetadata       `json:"metadata,omitempty"`
	DAG                   *DAG                    `json:"dag,omitempty"`
	Container             *kubernetes.Container   `json:"container,omitempty"`
	InitContainers        []kubernetes.Container  `json:"initContainers,omitempty"`
	Volumes               []kubernetes.Volume     `json:"volumes,omitempty"`
	NodeSelector          map[string]string       `json:"nodeSelector,omitempty"`
	Tolerations           []kubernetes.Toleration `json:"tolerations,omitempty"`
	ServiceAccountName    string                  `json:"serviceAccountName,omitempty"`
	RetryStrategy         *RetryStrategy          `json:"retryStrategy,omitempty"`
	ActiveDeadlineSeconds *int64                  `json:"activeDeadlineSeconds,omitempty"`
	PodSpecPatch          string                  `json:"podSpecPatch,omitempty"`
}

// RetryStrategy retries a failed pod.
type RetryStrategy struct {
	Limit       *int64   `json:"limit,omitempty"`
	RetryPolicy string   `json:"retryPolicy,omitempty"`
	Backoff     *Backoff `json:"backoff,omitempty"`
}

// Backoff is the wait between retries, growing by Factor.
type Backoff struct {
	Duration string `json:"duration,omitempty"`
	Factor   *int64 `json:"factor,omitempty"`
}

// DAG is a template of tasks run in dependency order.
type DAG struct {
	// FailFast false lets the other branches run on after a task failed
	// (a failure a catch task handles); Argo's default is true.
	FailFast *bool     `json:"failFast,omitempty"`
	Tasks    []DAGTask `json:"tasks"`
}

// DAGTask is one node of a DAG: a template with arguments, possibly fanned
// out over a JSON list (WithParam, each element as {{item}}).
type DAGTask struct {
	Name      string     `json:"name"`
	Template  string     `json:"template"`
	Arguments *Arguments `json:"arguments,omitempty"`
	Depends   string     `json:"depends,omitempty"`
	WithParam string     `json:"withParam,omitempty"`
}
