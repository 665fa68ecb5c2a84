package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/docker/docker/api/types/mount"
)

// checkPod refuses, before anything runs, what this agent cannot run: a
// pod it refuses ends Failed, with the reason in its status.
func checkPod(p *corev1.Pod) error {
	var errs []error
	for _, v := range p.Spec.Volumes {
		switch {
		case v.EmptyDir != nil, v.HostPath != nil, v.Secret != nil, v.ConfigMap != nil, v.DownwardAPI != nil:
		case v.Projected != nil:
			for _, s := range v.Projected.Sources {
				if s.ClusterTrustBundle != nil || s.PodCertificate != nil {
					errs = append(errs, fmt.Errorf("volume %q: projected clusterTrustBundle and podCertificate sources are not supported by the stepwise node agent (use secret, configMap, downwardAPI, serviceAccountToken)", v.Name))
				}
			}
		default:
			errs = append(errs, fmt.Errorf("volume %q: this kind of volume is not supported by the stepwise node agent (use emptyDir, hostPath, secret, configMap, downwardAPI or projected)", v.Name))
		}
	}
	for _, c := range p.Spec.InitContainers {
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			errs = append(errs, fmt.Errorf("init container %q: sidecar init containers (restartPolicy Always) are not supported by the stepwise node agent", c.Name))
		}
	}
	for _, list := range [][]corev1.Container{p.Spec.InitContainers, p.Spec.Containers} {
		for _, c := range list {
			for _, m := range c.VolumeMounts {
				if !hasVolume(p, m.Name) {
					errs = append(errs, fmt.Errorf("container %q: volumeMount %q names no volume of the pod", c.Name, m.Name))
				}
			}
		}
	}
	if len(p.Spec.EphemeralContainers) > 0 {
		errs = append(errs, errors.New("ephemeral containers are not supported by the stepwise node agent"))
	}
	return errors.Join(errs...)
}

func hasVolume(p *corev1.Pod, name string) bool {
	for _, v := range p.Spec.Volumes {
		if v.Name == name {
			return true
		}
	}
	return false
}

// volumeDirs makes each volume's directory on this machine under dir and
// fills those that hold files (secret, configMap, downwardAPI, projected);
// it returns the host path of every volume by name.
func volumeDirs(ctx context.Context, dir string, o *objects, f podFacts) (map[string]string, error) {
	paths := map[string]string{}
	for _, v := range f.pod.Spec.Volumes {
		p := filepath.Join(dir, "volumes", v.Name)
		files := map[string][]byte{}
		modes := map[string]os.FileMode{}
		var err error
		switch {
		case v.HostPath != nil:
			p = v.HostPath.Path
			err = hostPath(v.HostPath)
		case v.EmptyDir != nil:
			// Medium Memory is a directory on disk too.
			err = os.MkdirAll(p, 0o777)
			if err == nil {
				err = os.Chmod(p, 0o777)
			}
		case v.Secret != nil:
			err = secretFiles(ctx, o, v.Secret.SecretName, v.Secret.Items, v.Secret.Optional, v.Secret.DefaultMode, files, modes)
		case v.ConfigMap != nil:
			err = configMapFiles(ctx, o, v.ConfigMap.Name, v.ConfigMap.Items, v.ConfigMap.Optional, v.ConfigMap.DefaultMode, files, modes)
		case v.DownwardAPI != nil:
			err = downwardFiles(f, v.DownwardAPI.Items, v.DownwardAPI.DefaultMode, files, modes)
		case v.Projected != nil:
			for _, s := range v.Projected.Sources {
				switch {
				case s.Secret != nil:
					err = secretFiles(ctx, o, s.Secret.Name, s.Secret.Items, s.Secret.Optional, v.Projected.DefaultMode, files, modes)
				case s.ConfigMap != nil:
					err = configMapFiles(ctx, o, s.ConfigMap.Name, s.ConfigMap.Items, s.ConfigMap.Optional, v.Projected.DefaultMode, files, modes)
				case s.DownwardAPI != nil:
					err = downwardFiles(f, s.DownwardAPI.Items, v.Projected.DefaultMode, files, modes)
				case s.ServiceAccountToken != nil:
					err = tokenFile(ctx, o, f.pod, s.ServiceAccountToken, v.Projected.DefaultMode, files, modes)
				}
				if err != nil {
					break
				}
			}
		}
		if err != nil {
			return nil, fmt.Errorf("volume %q: %w", v.Name, err)
		}
		if v.HostPath == nil && v.EmptyDir == nil {
			if err := writeFiles(p, files, modes); err != nil {
				return nil, fmt.Errorf("volume %q: %w", v.Name, err)
			}
		}
		paths[v.Name] = p
	}
	return paths, nil
}

func hostPath(h *corev1.HostPathVolumeSource) error {
	t := corev1.HostPathUnset
	if h.Type != nil {
		t = *h.Type
	}
	switch t {
	case corev1.HostPathDirectoryOrCreate:
		return os.MkdirAll(h.Path, 0o755)
	case corev1.HostPathFileOrCreate:
		if err := os.MkdirAll(filepath.Dir(h.Path), 0o755); err != nil {
			return err
		}
		f, err := os.OpenFile(h.Path, os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		return f.Close()
	case corev1.HostPathDirectory, corev1.HostPathFile:
		st, err := os.Stat(h.Path)
		if err != nil {
			return fmt.Errorf("%w: hostPath %s: %v", errConfig, h.Path, err)
		}
		if st.IsDir() != (t == corev1.HostPathDirectory) {
			return fmt.Errorf("%w: hostPath %s is not a %s", errConfig, h.Path, strings.ToLower(string(t)))
		}
	}
	return nil
}

func mode(m *int32, def os.FileMode) os.FileMode {
	if m == nil {
		return def
	}
	return os.FileMode(*m) & 0o777
}

func keyFiles(what string, data map[string][]byte, items []corev1.KeyToPath, defMode *int32, files map[string][]byte, modes map[string]os.FileMode) error {
	if len(items) == 0 {
		for k, v := range data {
			files[k], modes[k] = v, mode(defMode, 0o644)
		}
		return nil
	}
	for _, it := range items {
		v, ok := data[it.Key]
		if !ok {
			return fmt.Errorf("%w: %s has no key %q", errConfig, what, it.Key)
		}
		files[it.Path] = v
		modes[it.Path] = mode(it.Mode, mode(defMode, 0o644))
	}
	return nil
}

func secretFiles(ctx context.Context, o *objects, name string, items []corev1.KeyToPath, optional *bool, defMode *int32, files map[string][]byte, modes map[string]os.FileMode) error {
	s, err := o.secret(ctx, name)
	if err != nil {
		return err
	}
	if s == nil {
		if optional != nil && *optional {
			return nil
		}
		return fmt.Errorf("%w: secret %q not found in namespace %s", errConfig, name, o.namespace)
	}
	return keyFiles("secret "+name, s.Data, items, defMode, files, modes)
}

func configMapFiles(ctx context.Context, o *objects, name string, items []corev1.KeyToPath, optional *bool, defMode *int32, files map[string][]byte, modes map[string]os.FileMode) error {
	c, err := o.configMap(ctx, name)
	if err != nil {
		return err
	}
	if c == nil {
		if optional != nil && *optional {
			return nil
		}
		return fmt.Errorf("%w: config map %q not found in namespace %s", errConfig, name, o.namespace)
	}
	data := map[string][]byte{}
	for k, v := range c.Data {
		data[k] = []byte(v)
	}
	for k, v := range c.BinaryData {
		data[k] = v
	}
	return keyFiles("config map "+name, data, items, defMode, files, modes)
}

func downwardFiles(f podFacts, items []corev1.DownwardAPIVolumeFile, defMode *int32, files map[string][]byte, modes map[string]os.FileMode) error {
	for _, it := range items {
		var v string
		var err error
		switch {
		case it.FieldRef != nil:
			v, err = f.fieldValue(it.FieldRef.FieldPath)
		case it.ResourceFieldRef != nil:
			v, err = f.resourceValue(nil, it.ResourceFieldRef)
		default:
			err = errors.New("an item names neither fieldRef nor resourceFieldRef")
		}
		if err != nil {
			return fmt.Errorf("downward API file %s: %w", it.Path, err)
		}
		files[it.Path], modes[it.Path] = []byte(v), mode(it.Mode, mode(defMode, 0o644))
	}
	return nil
}

func tokenFile(ctx context.Context, o *objects, p *corev1.Pod, src *corev1.ServiceAccountTokenProjection, defMode *int32, files map[string][]byte, modes map[string]os.FileMode) error {
	sa := p.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		ExpirationSeconds: src.ExpirationSeconds,
		BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: p.Name, UID: p.UID},
	}}
	if src.Audience != "" {
		req.Spec.Audiences = []string{src.Audience}
	}
	tok, err := o.client.CoreV1().ServiceAccounts(p.Namespace).CreateToken(ctx, sa, req, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("%w: a token for service account %s/%s: %v", errConfig, p.Namespace, sa, err)
	}
	files[src.Path], modes[src.Path] = []byte(tok.Status.Token), mode(defMode, 0o644)
	return nil
}

// writeFiles writes a volume's files under dir, refusing paths that leave it.
func writeFiles(dir string, files map[string][]byte, modes map[string]os.FileMode) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for name, b := range files {
		clean := path.Clean(name)
		if path.IsAbs(clean) || clean == ".." || strings.HasPrefix(clean, "../") || clean == "." {
			return fmt.Errorf("file path %q leaves the volume", name)
		}
		p := filepath.Join(dir, filepath.FromSlash(clean))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, b, modes[name]); err != nil {
			return err
		}
		if err := os.Chmod(p, modes[name]); err != nil {
			return err
		}
	}
	return nil
}

// containerMounts turns container c's volumeMounts into Docker bind mounts.
func containerMounts(c *corev1.Container, volumes map[string]string, p *corev1.Pod) ([]mount.Mount, error) {
	var ms []mount.Mount
	for _, m := range c.VolumeMounts {
		src, ok := volumes[m.Name]
		if !ok {
			return nil, fmt.Errorf("container %s: volumeMount %q names no volume of the pod", c.Name, m.Name)
		}
		readOnly := m.ReadOnly
		for _, v := range p.Spec.Volumes {
			if v.Name == m.Name && (v.Secret != nil || v.ConfigMap != nil || v.DownwardAPI != nil || v.Projected != nil) {
				readOnly = true
			}
		}
		if sub := m.SubPath; sub != "" {
			clean := path.Clean(sub)
			if path.IsAbs(clean) || clean == ".." || strings.HasPrefix(clean, "../") {
				return nil, fmt.Errorf("container %s: volumeMount %q: subPath %q leaves the volume", c.Name, m.Name, sub)
			}
			src = filepath.Join(src, filepath.FromSlash(clean))
			if _, err := os.Stat(src); errors.Is(err, os.ErrNotExist) {
				if err := os.MkdirAll(src, 0o777); err != nil {
					return nil, fmt.Errorf("container %s: volumeMount %q: subPath: %w", c.Name, m.Name, err)
				}
			}
		}
		ms = append(ms, mount.Mount{Type: mount.TypeBind, Source: src, Target: m.MountPath, ReadOnly: readOnly})
	}
	return ms, nil
}
