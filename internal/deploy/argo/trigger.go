package argo

import (
	"context"
	"fmt"
	"os"
	"strings"

	"stepwise.dev/stepwise/internal/compute/kubernetes"
	"stepwise.dev/stepwise/internal/flowcmd"
)

// Triggers on finish. A flow that declares g.TriggerOnFinish("Upstream")
// has a label on its WorkflowTemplate, OnFinishLabel("Upstream"). Every
// deployed flow's exit handler, after its run succeeded, lists the
// templates of its namespace with its label and submits a Workflow of each,
// naming the run that triggered it. Upstream flows need no redeploying
// when a downstream one is deployed, and no event bus is needed.

// HookTrigger is the finish-run hook that starts the triggered flows.
const HookTrigger = "argo-trigger"

// serviceAccountNamespace is where a pod finds its own namespace.
const serviceAccountNamespace = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

func init() {
	flowcmd.RegisterSuccessHook(HookTrigger, triggerDownstream)
}

// triggerDownstream submits a Workflow of every deployed template that a
// success of this flow triggers, in the namespace of the pod it runs in.
func triggerDownstream(ctx context.Context, e *flowcmd.Env, runID string) error {
	ns := os.Getenv("STEPWISE_WORKFLOW_NAMESPACE")
	if ns == "" {
		b, err := os.ReadFile(serviceAccountNamespace)
		if err != nil {
			return fmt.Errorf("cannot tell which namespace to find triggered flows in (%v): this hook runs in a workflow's pod", err)
		}
		ns = strings.TrimSpace(string(b))
	}
	cfg, err := e.Settings()
	if err != nil {
		return err
	}
	api, err := kubernetes.Connect(ctx, func(n string) string { return cfg.Compute("kubernetes." + n).Value })
	if err != nil {
		return err
	}
	flow := e.Def().Name()
	var templates struct{ Items []WorkflowTemplate }
	if err := api.List(ctx, resources(ns, "workflowtemplates"), OnFinishLabel(flow)+"=true", &templates); err != nil {
		return fmt.Errorf("cannot list the WorkflowTemplates triggered by flow %s in namespace %s (the workflow's service account needs list on workflowtemplates: docs/production.md): %w", flow, ns, err)
	}
	for _, t := range templates.Items {
		w := &Workflow{
			APIVersion: APIVersion, Kind: "Workflow",
			Metadata: ObjectMeta{GenerateName: t.Metadata.Name + "-", Namespace: ns, Labels: map[string]string{
				LabelFlow: t.Metadata.Labels[LabelFlow], LabelDeployment: t.Metadata.Name}},
			Spec: WorkflowSpec{WorkflowTemplateRef: &TemplateRef{Name: t.Metadata.Name},
				Arguments: &Arguments{Parameters: []Parameter{{Name: ParamTrigger, Value: ptr(flow + "/" + runID)}}}},
		}
		var made Workflow
		if err := api.Create(ctx, resources(ns, "workflows"), w, &made); err != nil {
			return fmt.Errorf("cannot start flow %s (template %s/%s), triggered by run %s/%s: %w", t.Metadata.Labels[LabelFlow], ns, t.Metadata.Name, flow, runID, err)
		}
		fmt.Fprintf(e.Stdout(), "started workflow %s/%s of flow %s, triggered by run %s/%s\n", ns, made.Metadata.Name, t.Metadata.Labels[LabelFlow], flow, runID)
	}
	return nil
}
