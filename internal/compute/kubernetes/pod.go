package kubernetes

import (
	"fmt"
	"maps"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"

	"stepwise.dev/stepwise/internal/compute"
	"stepwise.dev/stepwise/internal/graph"
)

// Site is what every task pod of a launcher, or of a deployed flow,
// shares: the stores as pods reach them, the Secrets that carry
// credentials, and the image that fetches the code.
type Site struct {
	Datastore   string // as pods see it
	Metadata    string // the metadata service's URL, as pods reach it
	S3Endpoint  string // "" for AWS's own
	AWSRegion   string
	TokenSecret string // Secret whose key "token" is the metadata service's token
	AWSSecret   string // Secret with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY
	FetchImage  string // image with sh, wget and sha256sum
	// Catalog is the table catalog ($STEPWISE_CATALOG) as pods reach it;
	// CatalogSecret a Secret whose key "catalog" holds it instead, for a
	// catalog with a password.
	Catalog       string
	CatalogSecret string
}

// SiteFor reads the site from the settings in force, defaulting to where
// the launcher itself finds the stores.
func SiteFor(env compute.Env, inForce func(string) string) Site {
	or := func(name, def string) string {
		if v := inForce(name); v != "" {
			return v
		}
		return def
	}
	return Site{
		Datastore:   or(SetDatastoreURL, env.Datastore),
		Metadata:    or(SetMetadataURL, env.Metadata),
		S3Endpoint:  or(SetS3Endpoint, os.Getenv("AWS_ENDPOINT_URL_S3")),
		AWSRegion:   or(SetAWSRegion, os.Getenv("AWS_REGION")),
		TokenSecret: inForce(SetTokenSecret),
		AWSSecret:   inForce(SetAWSSecret),
		FetchImage:  or(SetFetchImage, DefaultFetchImage),
		// The launcher's own catalog goes to the pods only when they can
		// reach it (S3, a database server) and it holds no password.
		Catalog:       or(SetCatalog, podCatalog(os.Getenv(envCatalog))),
		CatalogSecret: inForce(SetCatalogSecret),
	}
}

// envCatalog is the variable naming the table catalog (package table's
// EnvCatalog).
const envCatalog = "STEPWISE_CATALOG"

// podCatalog is the launcher's catalog if a pod can use it as it is: a
// directory on S3 or an Iceberg catalog on PostgreSQL without a password;
// "" for a local directory or SQLite file, or one with a password.
func podCatalog(c string) string {
	if strings.HasPrefix(c, "s3://") || (strings.HasPrefix(c, "iceberg+postgres://") && !hasPassword(c)) {
		return c
	}
	return ""
}

func hasPassword(c string) bool {
	u, err := url.Parse(c)
	if err != nil {
		return strings.Contains(c, "@") // unparsable: assume the worst
	}
	_, ok := u.User.Password()
	return ok || u.Query().Has("password")
}

// Check refuses a site that would write a secret into a pod's spec.
func (site Site) Check() error {
	if site.Catalog != "" && hasPassword(site.Catalog) {
		return fmt.Errorf("setting kubernetes.%s holds a password, which would be written into every pod's spec; "+
			"put the catalog in a Secret under the key \"catalog\" and name it with kubernetes.%s instead", SetCatalog, SetCatalogSecret)
	}
	return nil
}

// CodeFetch is how a pod gets the flow's binary: from URL when given (a
// presigned URL, valid for days: enough for a launcher's run), otherwise
// from a URL the metadata service signs when the pod starts (GET
// /v1/code/SHA256/url), which is what a deployed flow needs, since its
// pods start for as long as it is deployed. The pod checks the SHA-256
// either way and refuses code that does not match.
type CodeFetch struct {
	SHA256 string
	URL    string
}

// CodeURLPath is the metadata service's path that answers a short-lived
// URL of a stored binary, as text.
func CodeURLPath(sum string) string { return "/v1/code/" + sum + "/url" }

// TaskPod is one task attempt's pod, before the site fills it in.
type TaskPod struct {
	// Labels name the attempt; a scheduler's template may give
	// placeholders that it fills in.
	Labels    map[string]string
	Pathspec  string // FLOW/RUN/STEP/TASK, for the annotation
	Args      []string
	Resources graph.Resources
	Settings  Settings
	Code      *CodeFetch // nil when the image holds the binary (Settings.Binary)
	Env       []EnvVar   // more variables, e.g. STEPWISE_USER
	// Volumes and mounts for the task container beyond the code's and
	// /dev/shm (a scheduler's scratch files).
	Volumes []Volume
	Mounts  []VolumeMount
}

// fetchScript fetches the code into /stepwise/flow, checks its SHA-256
// and makes it executable; it runs in the fetch image's sh.
const fetchScript = `set -e
if [ -z "$STEPWISE_CODE_URL" ]; then
  STEPWISE_CODE_URL=$(wget -q -O- --header "Authorization: Bearer $STEPWISE_TOKEN" "$STEPWISE_METADATA/v1/code/$STEPWISE_CODE_SHA256/url") || { echo "cannot get a URL for the flow's code $STEPWISE_CODE_SHA256 from the metadata service $STEPWISE_METADATA: is it started with --datastore, and is the token right?"; exit 1; }
fi
wget -q -O /stepwise/flow "$STEPWISE_CODE_URL" || { echo "cannot fetch the flow's code"; exit 1; }
echo "$STEPWISE_CODE_SHA256  /stepwise/flow" | sha256sum -c -s || { echo "the flow's code does not match its SHA-256 $STEPWISE_CODE_SHA256: it is damaged; refusing to run it"; exit 1; }
chmod 0755 /stepwise/flow`

// Pod is the pod of a task attempt: an init container that fetches the
// code (unless the image holds it) and the task container, with the
// step's resources as requests and limits, the settings' placement and
// the site's stores and credentials (Secrets by reference only).
func (site Site) Pod(p TaskPod) PodTemplateSpec {
	set := p.Settings
	labels := maps.Clone(set.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	maps.Copy(labels, p.Labels)
	if set.Queue != "" {
		labels[QueueLabel] = set.Queue
	}
	annotations := map[string]string{"stepwise.dev/pathspec": p.Pathspec}
	if p.Code != nil {
		annotations["stepwise.dev/code-sha256"] = p.Code.SHA256
	}
	maps.Copy(annotations, set.Annotations)
	res := resources(p.Resources, set.GPUResource)
	volumes := []Volume{{Name: "stepwise", EmptyDir: &EmptyDir{}}}
	mounts := []VolumeMount{{Name: "stepwise", MountPath: "/stepwise"}}
	if set.SharedMemoryMB > 0 {
		volumes = append(volumes, Volume{Name: "shm", EmptyDir: &EmptyDir{Medium: "Memory", SizeLimit: fmt.Sprintf("%dMi", set.SharedMemoryMB)}})
		mounts = append(mounts, VolumeMount{Name: "shm", MountPath: "/dev/shm"})
	}
	volumes, mounts = append(volumes, p.Volumes...), append(mounts, p.Mounts...)
	var pullSecrets []LocalObjectRef
	for _, n := range set.ImagePullSecrets {
		pullSecrets = append(pullSecrets, LocalObjectRef{Name: n})
	}
	task := Container{
		Name: "task", Image: set.Image, Command: append([]string{"/stepwise/flow"}, p.Args...),
		Env: site.env(set, p.Env), EnvFrom: site.envFrom(),
		Resources:    Resources{Requests: res, Limits: res},
		VolumeMounts: mounts,
	}
	var inits []Container
	if p.Code != nil {
		env := []EnvVar{{Name: "STEPWISE_CODE_SHA256", Value: p.Code.SHA256}}
		if p.Code.URL != "" {
			env = append(env, EnvVar{Name: "STEPWISE_CODE_URL", Value: p.Code.URL})
		} else {
			env = append(env, EnvVar{Name: "STEPWISE_METADATA", Value: site.Metadata})
			if site.TokenSecret != "" {
				env = append(env, site.tokenEnv())
			}
		}
		inits = []Container{{
			Name: "fetch-code", Image: site.FetchImage, Command: []string{"/bin/sh", "-c", fetchScript},
			TerminationMessagePolicy: "FallbackToLogsOnError",
			Env:                      env,
			VolumeMounts:             mounts[:1],
		}}
	} else {
		// The image holds the binary: nothing to fetch, nothing mounted
		// over it.
		volumes, task.VolumeMounts = volumes[1:], mounts[1:]
		task.Command[0] = set.Binary
	}
	return PodTemplateSpec{
		Metadata: ObjectMeta{Labels: labels, Annotations: annotations},
		Spec: PodSpec{
			RestartPolicy:      "Never",
			ServiceAccountName: set.ServiceAccount,
			NodeSelector:       set.NodeSelector,
			Tolerations:        set.Tolerations,
			ImagePullSecrets:   pullSecrets,
			Volumes:            volumes,
			InitContainers:     inits,
			Containers:         []Container{task},
		},
	}
}

// resources are a step's Resources as Kubernetes quantities.
func resources(r graph.Resources, gpuResource string) map[string]string {
	res := map[string]string{}
	if r.CPU > 0 {
		res["cpu"] = fmt.Sprintf("%dm", max(int64(r.CPU*1000), 1))
	}
	if r.MemoryMB > 0 {
		res["memory"] = fmt.Sprintf("%dMi", r.MemoryMB)
	}
	if r.DiskMB > 0 {
		res["ephemeral-storage"] = fmt.Sprintf("%dMi", r.DiskMB)
	}
	if r.GPU > 0 {
		res[gpuResource] = strconv.Itoa(r.GPU)
	}
	return res
}

func (site Site) tokenEnv() EnvVar {
	return EnvVar{Name: "STEPWISE_TOKEN", ValueFrom: &EnvSource{SecretKeyRef: &SecretKeyRef{Name: site.TokenSecret, Key: "token"}}}
}

// env is the task's environment in the pod: the stores as pods reach
// them, and Secrets by reference only.
func (site Site) env(set Settings, more []EnvVar) []EnvVar {
	env := []EnvVar{
		{Name: "STEPWISE_DATASTORE", Value: site.Datastore},
		{Name: "STEPWISE_METADATA", Value: site.Metadata},
	}
	env = append(env, more...)
	env = append(env,
		EnvVar{Name: "STEPWISE_CONFIG", Value: "/nonexistent/stepwise-config.json"},
		EnvVar{Name: "HOME", Value: "/tmp"},
	)
	if site.S3Endpoint != "" {
		env = append(env, EnvVar{Name: "AWS_ENDPOINT_URL_S3", Value: site.S3Endpoint})
	}
	if site.AWSRegion != "" {
		env = append(env, EnvVar{Name: "AWS_REGION", Value: site.AWSRegion})
	}
	if site.TokenSecret != "" {
		env = append(env, site.tokenEnv())
	}
	switch {
	case site.CatalogSecret != "":
		env = append(env, EnvVar{Name: envCatalog, ValueFrom: &EnvSource{SecretKeyRef: &SecretKeyRef{Name: site.CatalogSecret, Key: "catalog"}}})
	case site.Catalog != "":
		env = append(env, EnvVar{Name: envCatalog, Value: site.Catalog})
	}
	for _, name := range slices.Sorted(maps.Keys(set.SecretEnv)) {
		k := set.SecretEnv[name]
		env = append(env, EnvVar{Name: name, ValueFrom: &EnvSource{SecretKeyRef: &SecretKeyRef{Name: k.Secret, Key: k.Key}}})
	}
	env = append(env, EnvVar{Name: "STEPWISE_POD", ValueFrom: &EnvSource{FieldRef: &FieldRef{FieldPath: "metadata.name"}}})
	return env
}

func (site Site) envFrom() []EnvFrom {
	if site.AWSSecret != "" {
		return []EnvFrom{{SecretRef: &LocalObjectRef{Name: site.AWSSecret}}}
	}
	return nil
}
