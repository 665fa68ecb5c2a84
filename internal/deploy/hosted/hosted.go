// Package hosted runs a service (stepwise.Serve) on Kubernetes: a
// Deployment of replicas that each run the service's own program with
// serve, fetching the program from the datastore as task pods do, and a
// Service in front of them. A replica is ready (and receives requests)
// when its /readyz says the run it serves is loaded; a rolling update
// starts new replicas before it stops old ones, so a new deployment
// drops no request.
package hosted

import (
	"maps"
	"slices"
	"strconv"

	"stepwise.dev/stepwise/internal/compute/kubernetes"
	"stepwise.dev/stepwise/internal/deploy"
	"stepwise.dev/stepwise/internal/graph"
)

// Labels of a deployed service's objects.
const (
	// LabelService names the deployment on its Deployment, its Service
	// and its pods; the Service and the Deployment select pods by it.
	LabelService = "stepwise.dev/service"
	// AnnotationService is the Go type of the service.
	AnnotationService = "stepwise.dev/service-type"
	// TokensKey is the key of the tokens Secret that holds the bearer
	// tokens clients send, comma-separated.
	TokensKey = "tokens"
)

// Port is the port the service listens on in its pod, and the Service's.
const (
	Port        = 8080
	ServicePort = 80
)

// Service is a service to deploy.
type Service struct {
	Type      string // the service's Go type, e.g. Predictor
	Flow      string // the flow it serves
	Name      string // the Deployment's and the Service's
	Namespace string // Kubernetes'
	Deployer  string
	// Code is the SHA-256 of the program's static binary in the
	// datastore.
	Code string
	Site kubernetes.Site
	// Pod are the pods' settings: image, service account, node selector,
	// labels... (the start step's).
	Pod      kubernetes.Settings
	Replicas int32
	CPU      float64
	MemoryMB int64
	// Args are serve's arguments beyond --addr: which runs it serves, how
	// often it looks for a newer one, its limits.
	Args []string
	// TokensSecret names the Secret whose key "tokens" holds the bearer
	// tokens; "" serves without tokens (serve --insecure-no-tokens).
	TokensSecret string
}

// Deployment is an apps/v1 Deployment, with the fields a service sets
// and reads.
type Deployment struct {
	APIVersion string                `json:"apiVersion"`
	Kind       string                `json:"kind"`
	Metadata   kubernetes.ObjectMeta `json:"metadata"`
	Spec       DeploymentSpec        `json:"spec"`
	Status     *DeploymentStatus     `json:"status,omitempty"`
}

// DeploymentSpec is a Deployment's spec.
type DeploymentSpec struct {
	Replicas *int32                     `json:"replicas"`
	Selector Selector                   `json:"selector"`
	Strategy Strategy                   `json:"strategy"`
	Template kubernetes.PodTemplateSpec `json:"template"`
}

// Selector selects pods by their labels.
type Selector struct {
	MatchLabels map[string]string `json:"matchLabels"`
}

// Strategy is how a Deployment replaces its pods.
type Strategy struct {
	Type          string         `json:"type"`
	RollingUpdate *RollingUpdate `json:"rollingUpdate,omitempty"`
}

// RollingUpdate bounds a rolling update: how many pods may be missing,
// and how many may be added, at a time.
type RollingUpdate struct {
	MaxUnavailable int `json:"maxUnavailable"`
	MaxSurge       int `json:"maxSurge"`
}

// DeploymentStatus is how a Deployment's rollout is doing.
type DeploymentStatus struct {
	ObservedGeneration int64                  `json:"observedGeneration,omitempty"`
	Replicas           int32                  `json:"replicas,omitempty"`
	UpdatedReplicas    int32                  `json:"updatedReplicas,omitempty"`
	ReadyReplicas      int32                  `json:"readyReplicas,omitempty"`
	AvailableReplicas  int32                  `json:"availableReplicas,omitempty"`
	Conditions         []kubernetes.Condition `json:"conditions,omitempty"`
}

// KubeService is a v1 Service.
type KubeService struct {
	APIVersion string                `json:"apiVersion"`
	Kind       string                `json:"kind"`
	Metadata   kubernetes.ObjectMeta `json:"metadata"`
	Spec       ServiceSpec           `json:"spec"`
}

// ServiceSpec is a Service's spec.
type ServiceSpec struct {
	Type     string            `json:"type,omitempty"`
	Selector map[string]string `json:"selector"`
	Ports    []ServicePortSpec `json:"ports"`
}

// ServicePortSpec is a port of a Service and the pods' port it sends to.
type ServicePortSpec struct {
	Name       string `json:"name"`
	Port       int32  `json:"port"`
	TargetPort string `json:"targetPort"`
	Protocol   string `json:"protocol,omitempty"`
}

// Compile is the service's Deployment and Service.
func Compile(s Service) (*Deployment, *KubeService) {
	labels := map[string]string{deploy.LabelFlow: s.Flow, LabelService: s.Name}
	annotations := map[string]string{deploy.AnnotationBy: s.Deployer, deploy.AnnotationCode: s.Code, AnnotationService: s.Type}
	args := append([]string{"serve", "--addr", ":" + strconv.Itoa(Port), "--log-json"}, s.Args...)
	var env []kubernetes.EnvVar
	if s.TokensSecret != "" {
		env = append(env, kubernetes.EnvVar{Name: "STEPWISE_SERVICE_TOKENS", ValueFrom: &kubernetes.EnvSource{SecretKeyRef: &kubernetes.SecretKeyRef{Name: s.TokensSecret, Key: TokensKey}}})
	} else {
		args = append(args, "--insecure-no-tokens")
	}
	env = append(env, kubernetes.EnvVar{Name: "STEPWISE_USER", Value: s.Deployer})
	pod := s.Site.Pod(kubernetes.TaskPod{
		Labels:    labels,
		Pathspec:  s.Flow,
		Args:      args,
		Resources: graph.Resources{CPU: s.CPU, MemoryMB: s.MemoryMB},
		Settings:  s.Pod,
		Code:      &kubernetes.CodeFetch{SHA256: s.Code},
		Env:       env,
	})
	pod.Metadata.Annotations[AnnotationService] = s.Type
	pod.Spec.RestartPolicy = "Always"
	grace := int64(30)
	pod.Spec.TerminationGracePeriodSeconds = &grace
	c := &pod.Spec.Containers[0]
	c.Name = "serve"
	c.TerminationMessagePolicy = "FallbackToLogsOnError"
	c.Ports = []kubernetes.Port{{Name: "http", ContainerPort: Port, Protocol: "TCP"}}
	// Ready when the run it serves is loaded: only then does the Service
	// send it requests, and does a rolling update go on.
	c.ReadinessProbe = &kubernetes.Probe{HTTPGet: &kubernetes.HTTPGet{Path: "/readyz", Port: "http"}, PeriodSeconds: 2, TimeoutSeconds: 2, FailureThreshold: 3}
	// Restarted when it stops answering at all.
	c.LivenessProbe = &kubernetes.Probe{HTTPGet: &kubernetes.HTTPGet{Path: "/healthz", Port: "http"}, PeriodSeconds: 10, TimeoutSeconds: 5, FailureThreshold: 3}

	selector := map[string]string{LabelService: s.Name}
	replicas := s.Replicas
	d := &Deployment{
		APIVersion: "apps/v1", Kind: "Deployment",
		Metadata: kubernetes.ObjectMeta{Name: s.Name, Namespace: s.Namespace, Labels: maps.Clone(labels), Annotations: annotations},
		Spec: DeploymentSpec{
			Replicas: &replicas,
			Selector: Selector{MatchLabels: selector},
			// A new replica is started and ready before an old one stops.
			Strategy: Strategy{Type: "RollingUpdate", RollingUpdate: &RollingUpdate{MaxUnavailable: 0, MaxSurge: 1}},
			Template: pod,
		},
	}
	svc := &KubeService{
		APIVersion: "v1", Kind: "Service",
		Metadata: kubernetes.ObjectMeta{Name: s.Name, Namespace: s.Namespace, Labels: maps.Clone(labels), Annotations: maps.Clone(annotations)},
		Spec: ServiceSpec{
			Type:     "ClusterIP",
			Selector: selector,
			Ports:    []ServicePortSpec{{Name: "http", Port: ServicePort, TargetPort: "http", Protocol: "TCP"}},
		},
	}
	return d, svc
}

// serveArgs are serve's flags for the runs served and its limits, from
// the flags given to deploy (name -> value), in a stable order.
func serveArgs(given map[string]string) []string {
	var args []string
	for _, n := range slices.Sorted(maps.Keys(given)) {
		args = append(args, "--"+n+"="+given[n])
	}
	return args
}
