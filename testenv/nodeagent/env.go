package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// errConfig is a problem with what a pod refers to (a missing Secret, a
// missing key) that may go away: the pod waits with reason
// CreateContainerConfigError and is tried again.
var errConfig = errors.New("pod configuration")

// expand replaces $(NAME) in s with the value lookup gives for NAME, as
// Kubernetes does in env values, command and args: $$ is a literal $, a
// reference to an unknown name or one not closed stays as written, and a $
// before anything else is kept.
func expand(s string, lookup func(string) (string, bool)) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteString(s[i:])
				return b.String()
			}
			name := s[i+2 : i+2+end]
			if v, ok := lookup(name); ok && name != "" {
				b.WriteString(v)
			} else {
				b.WriteString(s[i : i+3+end])
			}
			i += 2 + end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}

// objects fetches the Secrets and ConfigMaps a pod refers to, each once,
// with the node's credentials (the Node authorizer lets a node read only
// what its pods refer to).
type objects struct {
	client     kubernetes.Interface
	namespace  string
	secrets    map[string]*corev1.Secret
	configMaps map[string]*corev1.ConfigMap
}

func newObjects(c kubernetes.Interface, namespace string) *objects {
	return &objects{client: c, namespace: namespace, secrets: map[string]*corev1.Secret{}, configMaps: map[string]*corev1.ConfigMap{}}
}

// secret returns the Secret name, nil when it does not exist.
func (o *objects) secret(ctx context.Context, name string) (*corev1.Secret, error) {
	if s, ok := o.secrets[name]; ok {
		return s, nil
	}
	s, err := o.client.CoreV1().Secrets(o.namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		s, err = nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get secret %s/%s: %w", o.namespace, name, err)
	}
	o.secrets[name] = s
	return s, nil
}

// configMap returns the ConfigMap name, nil when it does not exist.
func (o *objects) configMap(ctx context.Context, name string) (*corev1.ConfigMap, error) {
	if c, ok := o.configMaps[name]; ok {
		return c, nil
	}
	c, err := o.client.CoreV1().ConfigMaps(o.namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		c, err = nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get config map %s/%s: %w", o.namespace, name, err)
	}
	o.configMaps[name] = c
	return c, nil
}

func (o *objects) secretKey(ctx context.Context, ref *corev1.SecretKeySelector) (string, bool, error) {
	optional := ref.Optional != nil && *ref.Optional
	s, err := o.secret(ctx, ref.Name)
	if err != nil {
		return "", false, err
	}
	if s == nil {
		if optional {
			return "", false, nil
		}
		return "", false, fmt.Errorf("%w: secret %q not found in namespace %s", errConfig, ref.Name, o.namespace)
	}
	v, ok := s.Data[ref.Key]
	if !ok {
		if sv, ok := s.StringData[ref.Key]; ok {
			return sv, true, nil
		}
		if optional {
			return "", false, nil
		}
		return "", false, fmt.Errorf("%w: secret %s/%s has no key %q", errConfig, o.namespace, ref.Name, ref.Key)
	}
	return string(v), true, nil
}

func (o *objects) configMapKey(ctx context.Context, ref *corev1.ConfigMapKeySelector) (string, bool, error) {
	optional := ref.Optional != nil && *ref.Optional
	c, err := o.configMap(ctx, ref.Name)
	if err != nil {
		return "", false, err
	}
	if c == nil {
		if optional {
			return "", false, nil
		}
		return "", false, fmt.Errorf("%w: config map %q not found in namespace %s", errConfig, ref.Name, o.namespace)
	}
	if v, ok := c.Data[ref.Key]; ok {
		return v, true, nil
	}
	if v, ok := c.BinaryData[ref.Key]; ok {
		return string(v), true, nil
	}
	if optional {
		return "", false, nil
	}
	return "", false, fmt.Errorf("%w: config map %s/%s has no key %q", errConfig, o.namespace, ref.Name, ref.Key)
}

// podFacts are what the downward API reads beyond the pod's own object.
type podFacts struct {
	pod         *corev1.Pod
	hostIP      string
	podIP       string
	allocatable corev1.ResourceList // the node's, for limits a container does not set
	apiServer   string              // host:port of the API server for pods, or ""
}

// fieldValue reads a downward-API field path of the pod.
func (f podFacts) fieldValue(path string) (string, error) {
	p := f.pod
	switch path {
	case "metadata.name":
		return p.Name, nil
	case "metadata.namespace":
		return p.Namespace, nil
	case "metadata.uid":
		return string(p.UID), nil
	case "metadata.labels":
		return formatMap(p.Labels), nil
	case "metadata.annotations":
		return formatMap(p.Annotations), nil
	case "spec.nodeName":
		return p.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return p.Spec.ServiceAccountName, nil
	case "status.hostIP", "status.hostIPs":
		return f.hostIP, nil
	case "status.podIP", "status.podIPs":
		return f.podIP, nil
	}
	for _, m := range []struct {
		prefix string
		values map[string]string
	}{{"metadata.labels['", p.Labels}, {"metadata.annotations['", p.Annotations}} {
		if strings.HasPrefix(path, m.prefix) && strings.HasSuffix(path, "']") {
			return m.values[path[len(m.prefix):len(path)-2]], nil
		}
	}
	return "", fmt.Errorf("downward API field %q is not supported (use metadata.name, metadata.namespace, metadata.uid, metadata.labels['KEY'], metadata.annotations['KEY'], spec.nodeName, spec.serviceAccountName, status.hostIP or status.podIP)", path)
}

// resourceValue reads a downward-API resource field of container c.
func (f podFacts) resourceValue(c *corev1.Container, ref *corev1.ResourceFieldSelector) (string, error) {
	if ref.ContainerName != "" {
		c = findContainer(f.pod, ref.ContainerName)
		if c == nil {
			return "", fmt.Errorf("resourceFieldRef names container %q, which the pod does not have", ref.ContainerName)
		}
	}
	if c == nil {
		return "", fmt.Errorf("resourceFieldRef %q needs containerName in a volume", ref.Resource)
	}
	kind, name, ok := strings.Cut(ref.Resource, ".")
	if !ok || (kind != "limits" && kind != "requests") {
		return "", fmt.Errorf("resourceFieldRef %q is not limits.NAME or requests.NAME", ref.Resource)
	}
	list := c.Resources.Limits
	if kind == "requests" {
		list = c.Resources.Requests
	}
	q, ok := list[corev1.ResourceName(name)]
	if !ok && kind == "limits" {
		q, ok = f.allocatable[corev1.ResourceName(name)]
	}
	if !ok {
		return "0", nil
	}
	divisor := ref.Divisor
	if divisor.IsZero() {
		divisor = resource.MustParse("1")
	}
	if name == "cpu" {
		return strconv.FormatInt(int64(math.Ceil(float64(q.MilliValue())/float64(divisor.MilliValue()))), 10), nil
	}
	return strconv.FormatInt(int64(math.Ceil(float64(q.Value())/float64(divisor.Value()))), 10), nil
}

func findContainer(p *corev1.Pod, name string) *corev1.Container {
	for _, list := range [][]corev1.Container{p.Spec.InitContainers, p.Spec.Containers} {
		for i := range list {
			if list[i].Name == name {
				return &list[i]
			}
		}
	}
	return nil
}

func formatMap(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%q\n", k, m[k])
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// containerEnv returns container c's environment, as NAME=value lines in
// the order Kubernetes gives them (envFrom, then env; a later one of a name
// wins), and the lookup that command and args are expanded with.
func containerEnv(ctx context.Context, o *objects, f podFacts, c *corev1.Container) ([]string, func(string) (string, bool), error) {
	values := map[string]string{}
	var order []string
	set := func(k, v string) {
		if _, ok := values[k]; !ok {
			order = append(order, k)
		}
		values[k] = v
	}
	if f.apiServer != "" {
		// As a kubelet does for the kubernetes Service, before the
		// container's own variables, which may override them.
		host, port, _ := net.SplitHostPort(f.apiServer)
		set("KUBERNETES_SERVICE_HOST", host)
		set("KUBERNETES_SERVICE_PORT", port)
		set("KUBERNETES_SERVICE_PORT_HTTPS", port)
	}
	for _, from := range c.EnvFrom {
		var data map[string]string
		switch {
		case from.SecretRef != nil:
			optional := from.SecretRef.Optional != nil && *from.SecretRef.Optional
			s, err := o.secret(ctx, from.SecretRef.Name)
			if err != nil {
				return nil, nil, err
			}
			if s == nil {
				if optional {
					continue
				}
				return nil, nil, fmt.Errorf("%w: container %s: envFrom secret %q not found in namespace %s", errConfig, c.Name, from.SecretRef.Name, o.namespace)
			}
			data = map[string]string{}
			for k, v := range s.Data {
				data[k] = string(v)
			}
		case from.ConfigMapRef != nil:
			optional := from.ConfigMapRef.Optional != nil && *from.ConfigMapRef.Optional
			cm, err := o.configMap(ctx, from.ConfigMapRef.Name)
			if err != nil {
				return nil, nil, err
			}
			if cm == nil {
				if optional {
					continue
				}
				return nil, nil, fmt.Errorf("%w: container %s: envFrom config map %q not found in namespace %s", errConfig, c.Name, from.ConfigMapRef.Name, o.namespace)
			}
			data = cm.Data
		default:
			return nil, nil, fmt.Errorf("container %s: an envFrom entry names neither a secret nor a config map", c.Name)
		}
		keys := make([]string, 0, len(data))
		for k := range data {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if name := from.Prefix + k; name != "" && !strings.Contains(name, "=") {
				set(name, data[k])
			}
		}
	}
	lookup := func(k string) (string, bool) { v, ok := values[k]; return v, ok }
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			set(e.Name, expand(e.Value, lookup))
			continue
		}
		var v string
		var ok bool
		var err error
		switch vf := e.ValueFrom; {
		case vf.SecretKeyRef != nil:
			v, ok, err = o.secretKey(ctx, vf.SecretKeyRef)
		case vf.ConfigMapKeyRef != nil:
			v, ok, err = o.configMapKey(ctx, vf.ConfigMapKeyRef)
		case vf.FieldRef != nil:
			v, err = f.fieldValue(vf.FieldRef.FieldPath)
			ok = true
		case vf.ResourceFieldRef != nil:
			v, err = f.resourceValue(c, vf.ResourceFieldRef)
			ok = true
		default:
			err = errors.New("valueFrom names no source this agent supports (secretKeyRef, configMapKeyRef, fieldRef, resourceFieldRef)")
		}
		if err != nil {
			return nil, nil, fmt.Errorf("container %s: env %s: %w", c.Name, e.Name, err)
		}
		if ok {
			set(e.Name, v)
		}
	}
	env := make([]string, len(order))
	for i, k := range order {
		env[i] = k + "=" + values[k]
	}
	return env, lookup, nil
}
