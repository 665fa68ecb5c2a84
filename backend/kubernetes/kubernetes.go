// Package kubernetes adds the Kubernetes compute backend to a flow
// program: with it imported, steps placed with
// g.Step(f.Train).Compute(stepwise.Kubernetes{...}), or every step with
// run --compute kubernetes, run as Kubernetes Jobs, one per attempt; and FLOW argo-workflows
// deploys the flow to Argo Workflows.
//
//	import _ "stepwise.dev/stepwise/backend/kubernetes"
//
// It is a separate import so that flows that run on one machine do not
// carry a Kubernetes client in every task. docs/kubernetes.md describes the
// set-up.
package kubernetes

import (
	_ "stepwise.dev/stepwise/internal/compute/kubernetes" // registers "kubernetes"
	_ "stepwise.dev/stepwise/internal/deploy/argo"        // adds the argo-workflows command
	_ "stepwise.dev/stepwise/internal/deploy/cronjob"     // adds the cronjob command
	_ "stepwise.dev/stepwise/internal/deploy/hosted"      // adds a service's serve deploy
)
