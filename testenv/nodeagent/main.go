// Command nodeagent is a node agent for tests: it registers one or more
// Nodes with a Kubernetes control plane (capacity of cpu, memory, pods and
// nvidia.com/gpu, a Lease renewed every few seconds), receives the pods the
// scheduler binds to them and runs each as Docker containers on this
// machine: a sandbox that holds the pod's network namespace on a Docker
// network, its init containers one after the other, then its containers,
// with their image, command, environment (values from Secrets, ConfigMaps
// and the downward API), volumes and cpu and memory limits. It posts each
// pod's status (exit codes and reasons: Completed, Error, OOMKilled), serves
// container logs to the API server, and stops containers on deletion
// (SIGTERM, then SIGKILL after the grace period).
//
// Pods are synced and nodes kept by virtual-kubelet's node library; the
// containers are run through the Docker Engine API.
//
// Usage:
//
//	nodeagent -config agent.json [-ready-file PATH]
//
// The configuration is described by Config. Once every node is registered
// the agent writes Ready as JSON to the ready file (if given) and to
// standard output. Its control endpoint (see Agent.controlHandler) stops,
// partitions and heals nodes and kills containers. On SIGTERM or SIGINT it
// halts its nodes and removes every container it made; containers left by
// an agent that was killed are removed by the next one to start.
//
// "nodeagent pause" is what each pod's sandbox runs: it waits for a signal.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"

	vklog "github.com/virtual-kubelet/virtual-kubelet/log"
)

var signalNotify = signal.Notify

func main() {
	if len(os.Args) == 2 && os.Args[1] == "pause" {
		pause()
		return
	}
	configPath := flag.String("config", "", "the agent's configuration (JSON; see the package documentation)")
	readyFile := flag.String("ready-file", "", "where to write, once every node runs, the control endpoint and the nodes' ports (JSON)")
	verbose := flag.Bool("v", false, "log virtual-kubelet's informational messages too")
	flag.Parse()
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	vklog.L = &vkLogger{l: log}
	if *configPath == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: nodeagent -config agent.json [-ready-file PATH] [-v]")
		os.Exit(2)
	}
	if err := run(*configPath, *readyFile, log); err != nil {
		log.Error("nodeagent", "err", err)
		os.Exit(1)
	}
}

func run(configPath, readyFile string, log *slog.Logger) error {
	cfg, err := LoadConfig(configPath)
	if err != nil {
		return err
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, sigterm)
	defer cancel()
	a, err := NewAgent(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer a.Shutdown()
	ready, err := a.Start()
	if err != nil {
		return err
	}
	b, _ := json.Marshal(ready)
	if readyFile != "" {
		tmp := readyFile + ".tmp"
		if err := os.WriteFile(tmp, b, 0o644); err != nil {
			return fmt.Errorf("write the ready file: %w", err)
		}
		if err := os.Rename(tmp, readyFile); err != nil {
			return fmt.Errorf("write the ready file: %w", err)
		}
	}
	fmt.Println(string(b))
	log.Info("nodes running", "nodes", a.names(), "control", ready.Control, "state", filepath.Clean(cfg.StateDir))
	<-ctx.Done()
	log.Info("shutting down: halting nodes, removing containers")
	return nil
}

// vkLogger sends virtual-kubelet's log to slog: its info messages at
// debug level (they are many), warnings and errors as they are.
type vkLogger struct {
	l *slog.Logger
}

func (v *vkLogger) Debug(a ...any)                         { v.l.Debug(fmt.Sprint(a...)) }
func (v *vkLogger) Debugf(f string, a ...any)              { v.l.Debug(fmt.Sprintf(f, a...)) }
func (v *vkLogger) Info(a ...any)                          { v.l.Debug(fmt.Sprint(a...)) }
func (v *vkLogger) Infof(f string, a ...any)               { v.l.Debug(fmt.Sprintf(f, a...)) }
func (v *vkLogger) Warn(a ...any)                          { v.l.Warn(fmt.Sprint(a...)) }
func (v *vkLogger) Warnf(f string, a ...any)               { v.l.Warn(fmt.Sprintf(f, a...)) }
func (v *vkLogger) Error(a ...any)                         { v.l.Error(fmt.Sprint(a...)) }
func (v *vkLogger) Errorf(f string, a ...any)              { v.l.Error(fmt.Sprintf(f, a...)) }
func (v *vkLogger) Fatal(a ...any)                         { v.l.Error(fmt.Sprint(a...)); os.Exit(1) }
func (v *vkLogger) Fatalf(f string, a ...any)              { v.l.Error(fmt.Sprintf(f, a...)); os.Exit(1) }
func (v *vkLogger) WithField(k string, x any) vklog.Logger { return &vkLogger{l: v.l.With(k, x)} }
func (v *vkLogger) WithError(err error) vklog.Logger       { return &vkLogger{l: v.l.With("err", err)} }
func (v *vkLogger) WithFields(f vklog.Fields) vklog.Logger {
	l := v.l
	for k, x := range f {
		l = l.With(k, x)
	}
	return &vkLogger{l: l}
}
