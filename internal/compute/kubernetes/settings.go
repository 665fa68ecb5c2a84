package kubernetes

import (
	"encoding/json"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"time"

	"stepwise.dev/stepwise/internal/graph"
)

// Settings are a step's settings for the cluster: the JSON of
// stepwise.Kubernetes in the graph, over the settings in force.
type Settings struct {
	Namespace        string               `json:"namespace,omitempty"`
	Image            string               `json:"image,omitempty"`
	ServiceAccount   string               `json:"service_account,omitempty"`
	NodeSelector     map[string]string    `json:"node_selector,omitempty"`
	Tolerations      []Toleration         `json:"tolerations,omitempty"`
	ImagePullSecrets []string             `json:"image_pull_secrets,omitempty"`
	SecretEnv        map[string]SecretKey `json:"secret_env,omitempty"`
	Labels           map[string]string    `json:"labels,omitempty"`
	Annotations      map[string]string    `json:"annotations,omitempty"`
	SharedMemoryMB   int64                `json:"shared_memory_mb,omitempty"`
	Queue            string               `json:"queue,omitempty"`
	GPUResource      string               `json:"gpu_resource,omitempty"`
	TTLAfterFinished time.Duration        `json:"ttl_after_finished,omitempty"`
	Unschedulable    time.Duration        `json:"unschedulable,omitempty"`
	Binary           string               `json:"binary,omitempty"`
}

// Toleration lets a pod run on nodes with a matching taint.
type Toleration struct {
	Key      string `json:"key,omitempty"`
	Operator string `json:"operator,omitempty"`
	Value    string `json:"value,omitempty"`
	Effect   string `json:"effect,omitempty"`
}

// SecretKey names one key of a Secret.
type SecretKey struct {
	Secret string `json:"secret"`
	Key    string `json:"key"`
}

// Defaults of settings nobody gave.
const (
	DefaultNamespace     = "default"
	DefaultGPUResource   = "nvidia.com/gpu"
	DefaultTTL           = time.Hour
	DefaultUnschedulable = 5 * time.Minute
	DefaultFetchImage    = "busybox:stable"
	QueueLabel           = "kueue.x-k8s.io/queue-name"
)

// Names of the settings in force (config file "compute" keys and
// STEPWISE_KUBERNETES_* variables), beside the fields of Settings.
const (
	SetKubeconfig   = "kubeconfig"   // the kubeconfig file (default $KUBECONFIG, ~/.kube/config)
	SetContext      = "context"      // its context (default the current one)
	SetFetchImage   = "fetch_image"  // image with sh, wget and sha256sum that fetches the code
	SetTokenSecret  = "token_secret" // Secret (key "token") holding the metadata service's token for pods
	SetAWSSecret    = "aws_secret"   // Secret with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY for pods
	SetS3Endpoint   = "s3_endpoint"  // the S3 endpoint as pods reach it (default: the launcher's)
	SetMetadataURL  = "metadata"     // the metadata service as pods reach it (default: the launcher's)
	SetDatastoreURL = "datastore"    // the datastore as pods see it (default: the launcher's)
	SetAWSRegion    = "aws_region"   // region for pods (default: the launcher's AWS_REGION)
	// SetCatalog is the table catalog as pods reach it (default: the
	// launcher's $STEPWISE_CATALOG if it is on S3 or PostgreSQL and holds
	// no password).
	SetCatalog = "catalog"
	// SetCatalogSecret names a Secret whose key "catalog" holds the
	// catalog, for one with a password.
	SetCatalogSecret = "catalog_secret"
)

// settings merges the graph's settings (JSON) over those in force.
func settings(graph []byte, inForce func(string) string) (Settings, error) {
	var s Settings
	if len(graph) > 0 {
		if err := json.Unmarshal(graph, &s); err != nil {
			return s, fmt.Errorf("the step's Kubernetes settings do not decode: %w", err)
		}
	}
	str := func(dst *string, name string) {
		if *dst == "" {
			*dst = inForce(name)
		}
	}
	str(&s.Namespace, "namespace")
	str(&s.Image, "image")
	str(&s.ServiceAccount, "service_account")
	str(&s.Queue, "queue")
	str(&s.GPUResource, "gpu_resource")
	str(&s.Binary, "binary")
	if s.Binary != "" && !strings.HasPrefix(s.Binary, "/") {
		return s, fmt.Errorf("setting kubernetes.binary %q must be an absolute path in the image", s.Binary)
	}
	if s.Namespace == "" {
		s.Namespace = DefaultNamespace
	}
	if s.GPUResource == "" {
		s.GPUResource = DefaultGPUResource
	}
	dur := func(dst *time.Duration, name string, def time.Duration) error {
		if *dst != 0 {
			return nil
		}
		*dst = def
		if v := inForce(name); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil {
				return fmt.Errorf("setting kubernetes.%s %q is not a duration (e.g. 90s, 5m)", name, v)
			}
			*dst = d
		}
		return nil
	}
	if err := dur(&s.TTLAfterFinished, "ttl_after_finished", DefaultTTL); err != nil {
		return s, err
	}
	if err := dur(&s.Unschedulable, "unschedulable", DefaultUnschedulable); err != nil {
		return s, err
	}
	if s.SharedMemoryMB == 0 {
		if v := inForce("shared_memory_mb"); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				return s, fmt.Errorf("setting kubernetes.shared_memory_mb %q is not a number of mebibytes", v)
			}
			s.SharedMemoryMB = n
		}
	}
	if s.NodeSelector == nil {
		if v := inForce("node_selector"); v != "" {
			s.NodeSelector = map[string]string{}
			for _, kv := range strings.Split(v, ",") {
				k, val, ok := strings.Cut(strings.TrimSpace(kv), "=")
				if !ok || k == "" {
					return s, fmt.Errorf("setting kubernetes.node_selector %q: write key=value[,key=value...]", v)
				}
				s.NodeSelector[k] = val
			}
		}
	}
	s.Labels, s.Annotations = maps.Clone(s.Labels), maps.Clone(s.Annotations)
	return s, nil
}

// StepSettings are a step's settings for the cluster: those the graph
// gives it (when it is placed on Kubernetes) over the settings in force.
func StepSettings(s *graph.Step, inForce func(string) string) (Settings, error) {
	var g []byte
	if s.Compute == Name {
		g = s.ComputeSettings
	}
	set, err := settings(g, inForce)
	if err != nil {
		return set, fmt.Errorf("step %s: %w", s.Name, err)
	}
	return set, nil
}
