package main

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/docker/docker/errdefs"
)

// Labels on every Docker container the agent creates.
const (
	labelAgent     = "dev.stepwise.nodeagent.pid" // the agent's process id
	labelNode      = "dev.stepwise.nodeagent.node"
	labelNamespace = "dev.stepwise.nodeagent.namespace"
	labelPod       = "dev.stepwise.nodeagent.pod"
	labelUID       = "dev.stepwise.nodeagent.uid"
	labelContainer = "dev.stepwise.nodeagent.container" // "" for a pod's sandbox
)

// sandboxImage holds nothing: a pod's sandbox runs the agent's own binary,
// mounted read-only at /pause, which waits for a signal.
const sandboxImage = "stepwise-nodeagent/sandbox:1"

// docker is the agent's Docker Engine.
type docker struct {
	cli     *client.Client
	network string // that pods' sandboxes join
	self    string // the agent's binary, run as each sandbox's process
	pid     string // the agent's process id, on each container's labelAgent
}

// newDocker connects to the Docker Engine named by the environment
// (DOCKER_HOST, or the local socket), negotiating the API version, checks
// that the network exists and makes the sandbox image if it is missing.
func newDocker(ctx context.Context, networkName string) (*docker, error) {
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if _, err := cli.Ping(pctx); err != nil {
		return nil, fmt.Errorf("the Docker Engine does not answer at %s: %w (is dockerd running?)", cli.DaemonHost(), err)
	}
	if _, err := cli.NetworkInspect(pctx, networkName, network.InspectOptions{}); err != nil {
		return nil, fmt.Errorf("docker network %q: %w (create it, or name an existing one in the configuration's network)", networkName, err)
	}
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find the agent's own binary (run in each pod's sandbox): %w", err)
	}
	d := &docker{cli: cli, network: networkName, self: self, pid: strconv.Itoa(os.Getpid())}
	if err := d.ensureSandboxImage(pctx); err != nil {
		return nil, err
	}
	return d, nil
}

func (d *docker) ensureSandboxImage(ctx context.Context) error {
	if _, err := d.cli.ImageInspect(ctx, sandboxImage); err == nil {
		return nil
	} else if !errdefs.IsNotFound(err) {
		return fmt.Errorf("inspect image %s: %w", sandboxImage, err)
	}
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	if err := tw.WriteHeader(&tar.Header{Name: "tmp/", Typeflag: tar.TypeDir, Mode: 0o1777}); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	rc, err := d.cli.ImageImport(ctx, image.ImportSource{Source: &b, SourceName: "-"}, sandboxImage,
		image.ImportOptions{Message: "stepwise node agent: pod sandbox (runs the agent binary, mounted)"})
	if err != nil {
		return fmt.Errorf("make the sandbox image %s: %w", sandboxImage, err)
	}
	defer rc.Close()
	if _, err := io.Copy(io.Discard, rc); err != nil {
		return fmt.Errorf("make the sandbox image %s: %w", sandboxImage, err)
	}
	return nil
}

// imageID returns the id of image ref when it is on this machine.
func (d *docker) imageID(ctx context.Context, ref string) (string, bool, error) {
	img, err := d.cli.ImageInspect(ctx, ref)
	if errdefs.IsNotFound(err) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("inspect image %s: %w", ref, err)
	}
	return img.ID, true, nil
}

// pull tries to pull ref; no registry may be reachable.
func (d *docker) pull(ctx context.Context, ref string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	rc, err := d.cli.ImagePull(ctx, ref, image.PullOptions{})
	if err != nil {
		return err
	}
	defer rc.Close()
	_, err = io.Copy(io.Discard, rc)
	return err
}

// containers lists the agent's containers (of any agent process) that
// match label=value pairs.
func (d *docker) containers(ctx context.Context, labels ...string) ([]container.Summary, error) {
	f := filters.NewArgs(filters.Arg("label", labelAgent))
	for i := 0; i+1 < len(labels); i += 2 {
		f.Add("label", labels[i]+"="+labels[i+1])
	}
	return d.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
}

// removeStale removes the containers left by agent processes that are
// gone (killed before they could clean up).
func (d *docker) removeStale(ctx context.Context, log *slog.Logger) {
	cs, err := d.containers(ctx)
	if err != nil {
		log.Warn("list containers of earlier agents", "err", err)
		return
	}
	for _, c := range cs {
		pid, err := strconv.Atoi(c.Labels[labelAgent])
		if err != nil || pid <= 0 || processAlive(pid) {
			continue
		}
		if err := d.cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true}); err != nil && !errdefs.IsNotFound(err) {
			log.Warn("remove a container left by an agent that is gone", "container", c.Names, "err", err)
		}
	}
}

func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// remove removes a container, running or not.
func (d *docker) remove(ctx context.Context, id string) error {
	err := d.cli.ContainerRemove(ctx, id, container.RemoveOptions{Force: true})
	if err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("remove container %.12s: %w", id, err)
	}
	return nil
}

// stop sends the container its stop signal (SIGTERM unless its image
// says otherwise) and SIGKILL after grace.
func (d *docker) stop(ctx context.Context, id string, grace time.Duration) error {
	secs := int((grace + time.Second - 1) / time.Second)
	ctx, cancel := context.WithTimeout(ctx, grace+time.Minute)
	defer cancel()
	err := d.cli.ContainerStop(ctx, id, container.StopOptions{Timeout: &secs})
	if err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("stop container %.12s: %w", id, err)
	}
	return nil
}
