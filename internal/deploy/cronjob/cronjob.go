// Package cronjob deploys a flow to a cluster without Argo Workflows: a
// Kubernetes CronJob whose pod runs the flow's own launcher, with every
// step on Kubernetes, in the flow's production namespace. The pod fetches
// the flow's binary as task pods do, and runs it with --resume-key set to
// its Job's name: when the pod dies (node lost, evicted, killed), the Job
// starts another, which resumes the Job's run instead of starting over,
// so finished tasks are cloned, not run again.
package cronjob

import (
	"maps"
	"slices"
	"strings"
	"time"

	"stepwise.dev/stepwise/internal/compute/kubernetes"
	"stepwise.dev/stepwise/internal/config"
	"stepwise.dev/stepwise/internal/deploy"
	"stepwise.dev/stepwise/internal/graph"
)

// APIVersion is the CronJob's and the Job's API.
const APIVersion = "batch/v1"

// JobNameLabel is the label the Job controller puts on a Job's pods.
const JobNameLabel = "batch.kubernetes.io/job-name"

// CronJob is a batch/v1 CronJob, with the fields a deployment sets.
type CronJob struct {
	APIVersion string                `json:"apiVersion"`
	Kind       string                `json:"kind"`
	Metadata   kubernetes.ObjectMeta `json:"metadata"`
	Spec       Spec                  `json:"spec"`
	Status     *Status               `json:"status,omitempty"`
}

// Spec is a CronJob's spec.
type Spec struct {
	Schedule                   string      `json:"schedule"`
	TimeZone                   string      `json:"timeZone,omitempty"`
	ConcurrencyPolicy          string      `json:"concurrencyPolicy,omitempty"`
	StartingDeadlineSeconds    *int64      `json:"startingDeadlineSeconds,omitempty"`
	Suspend                    *bool       `json:"suspend,omitempty"`
	SuccessfulJobsHistoryLimit *int32      `json:"successfulJobsHistoryLimit,omitempty"`
	FailedJobsHistoryLimit     *int32      `json:"failedJobsHistoryLimit,omitempty"`
	JobTemplate                JobTemplate `json:"jobTemplate"`
}

// JobTemplate is the Job a CronJob makes.
type JobTemplate struct {
	Metadata kubernetes.ObjectMeta `json:"metadata,omitempty"`
	Spec     kubernetes.JobSpec    `json:"spec"`
}

// Status is what a CronJob reports.
type Status struct {
	LastScheduleTime   *time.Time `json:"lastScheduleTime,omitempty"`
	LastSuccessfulTime *time.Time `json:"lastSuccessfulTime,omitempty"`
}

// Deployment is a flow to deploy as a CronJob.
type Deployment struct {
	Graph     *graph.Graph
	Name      string // the CronJob's
	Namespace string // Kubernetes'
	// Token is the production token: runs are in namespace
	// production:TOKEN.
	Token    string
	Deployer string
	// Code is the SHA-256 of the flow's static binary in the datastore,
	// fetched by the pod through the metadata service.
	Code string
	Site kubernetes.Site
	// Settings are the Kubernetes settings in force ("image" -> "..."),
	// given to the launcher in its pod so that it places the tasks as the
	// deployer's would.
	Settings map[string]string
	// Launcher are the pod's settings: the start step's.
	Launcher kubernetes.Settings
	// Schedule (cron syntax) and TimeZone.
	Schedule, TimeZone string
	// Args are more arguments of run: parameters, tags, --max-workers.
	Args []string
	// Restarts is how many times the launcher's pod is started again
	// after it dies (the Job's backoffLimit).
	Restarts int32
	// TTL is how long a finished Job and its pod are kept.
	TTL time.Duration
	// CPU and MemoryMB are the launcher's requests and limits.
	CPU      float64
	MemoryMB int64
}

// forwarded are the settings that do not describe the cluster from the
// outside, so the launcher in its pod gets them.
func forwarded(name string) bool {
	return name != kubernetes.SetKubeconfig && name != kubernetes.SetContext
}

// failurePolicy ends the Job when its launcher says the run failed (exit
// 1) or its command is wrong (exit 2): starting it again would not help.
// A pod that dies otherwise (killed, out of memory, its node lost) is
// started again and resumes the run; one evicted or preempted does not
// count against the restarts.
var failurePolicy = &kubernetes.PodFailurePolicy{Rules: []kubernetes.PodFailurePolicyRule{
	{Action: "FailJob", OnExitCodes: &kubernetes.OnExitCodes{ContainerName: "launcher", Operator: "In", Values: []int32{1, 2}}},
	{Action: "Ignore", OnPodConditions: []kubernetes.OnPodConditionRule{{Type: "DisruptionTarget", Status: "True"}}},
}}

// Compile is the deployment's CronJob.
func Compile(d Deployment) *CronJob {
	if d.TTL == 0 {
		d.TTL = 7 * 24 * time.Hour
	}
	flow := d.Graph.Flow
	labels := map[string]string{deploy.LabelFlow: flow, deploy.LabelDeployment: d.Name}
	annotations := map[string]string{
		deploy.AnnotationToken: d.Token, deploy.AnnotationBy: d.Deployer, deploy.AnnotationCode: d.Code,
		"stepwise.dev/flow": flow,
	}
	args := []string{"run", "--compute", kubernetes.Name, "--namespace", deploy.Namespace(d.Token),
		"--system-tag", "runtime:cronjob:" + d.Name, "--resume-key", "$(STEPWISE_JOB)"}
	args = append(args, d.Args...)
	env := []kubernetes.EnvVar{
		{Name: "STEPWISE_USER", Value: d.Deployer},
		{Name: "STEPWISE_JOB", ValueFrom: &kubernetes.EnvSource{FieldRef: &kubernetes.FieldRef{FieldPath: "metadata.labels['" + JobNameLabel + "']"}}},
	}
	for _, n := range slices.Sorted(maps.Keys(d.Settings)) {
		if forwarded(n) {
			env = append(env, kubernetes.EnvVar{Name: config.ComputeEnv(kubernetes.Name + "." + n), Value: d.Settings[n]})
		}
	}
	pod := d.Site.Pod(kubernetes.TaskPod{
		Labels:    labels,
		Pathspec:  flow,
		Args:      args,
		Resources: graph.Resources{CPU: d.CPU, MemoryMB: d.MemoryMB},
		Settings:  d.Launcher,
		Code:      &kubernetes.CodeFetch{SHA256: d.Code},
		Env:       env,
	})
	pod.Spec.Containers[0].Name = "launcher"
	ttl := int32(d.TTL / time.Second)
	restarts := d.Restarts
	one := int32(3)
	deadline := int64(300)
	return &CronJob{
		APIVersion: APIVersion, Kind: "CronJob",
		Metadata: kubernetes.ObjectMeta{Name: d.Name, Namespace: d.Namespace, Labels: labels, Annotations: annotations},
		Spec: Spec{
			Schedule: d.Schedule, TimeZone: d.TimeZone,
			// One run at a time: a run that outlasts its period delays
			// the next rather than racing it.
			ConcurrencyPolicy:          "Forbid",
			StartingDeadlineSeconds:    &deadline,
			SuccessfulJobsHistoryLimit: &one,
			FailedJobsHistoryLimit:     &one,
			JobTemplate: JobTemplate{
				Metadata: kubernetes.ObjectMeta{Labels: labels},
				Spec: kubernetes.JobSpec{
					BackoffLimit:            &restarts,
					TTLSecondsAfterFinished: &ttl,
					PodFailurePolicy:        failurePolicy,
					Template:                pod,
				},
			},
		},
	}
}

// Manual is a Job started now from the CronJob's template, as kubectl
// create job --from=cronjob does, with more arguments of run.
func Manual(cj *CronJob, more []string) *kubernetes.Job {
	spec := cj.Spec.JobTemplate.Spec
	spec.Template.Spec.Containers = slices.Clone(spec.Template.Spec.Containers)
	c := &spec.Template.Spec.Containers[0]
	c.Command = append(slices.Clone(c.Command), more...)
	labels := maps.Clone(cj.Spec.JobTemplate.Metadata.Labels)
	return &kubernetes.Job{
		APIVersion: APIVersion, Kind: "Job",
		Metadata: kubernetes.ObjectMeta{
			GenerateName: strings.TrimSuffix(cj.Metadata.Name, "-") + "-manual-",
			Namespace:    cj.Metadata.Namespace,
			Labels:       labels,
			Annotations:  map[string]string{"cronjob.kubernetes.io/instantiate": "manual"},
		},
		Spec: spec,
	}
}
