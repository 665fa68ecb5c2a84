// Package lifecycle creates and finishes runs. A run is created once, by a
// launcher (a local `run`) or by a production scheduler through the flow
// binary's create-run command, and finished once, with the status its end
// step decides; in between its tasks record themselves. The run is kept in
// both stores: the metadata store for queries, the datastore as the record
// that outlives it (rebuild and garbage collection read it there).
package lifecycle

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"stepwise.dev/stepwise/internal/datastore"
	"stepwise.dev/stepwise/internal/graph"
	"stepwise.dev/stepwise/internal/metadata"
)

// SchedulerTag marks a run driven by a production scheduler: it has no
// launcher, so its tasks keep it alive and readers wait longer before
// calling it lost (metadata.ScheduledLostAfter).
const SchedulerTag = "runtime:scheduler"

// Stores are the two stores a run lives in.
type Stores struct {
	Data *datastore.Store
	Meta metadata.Store
}

// New is a run to create.
type New struct {
	Flow      string
	User      string
	Params    map[string]string // in the run record's form (params.Values)
	Tags      []string          // user tags, checked by the caller
	Code      metadata.Code
	Origin    string // the run this one resumes
	MaxSplits int    // widest foreach allowed
	// ID, when set, is the run's id (it must be free); otherwise the id is
	// the microseconds since the epoch at creation.
	ID string
	// Scheduled marks a run driven by a production scheduler.
	Scheduled bool
	// Namespace, when set, is the run's namespace tag instead of
	// user:USER (production:TOKEN for a deployed flow's runs).
	Namespace string
	// SystemTags are more system tags (e.g. argo-workflow:NAME).
	SystemTags []string
	// Graph is the flow's graph, kept with the run for the UI and cards.
	Graph *graph.Graph
}

// TriggerTag is the system tag of a run started by the success of run
// FLOW/RUN_ID of another flow.
func TriggerTag(pathspec string) string { return TriggerTagPrefix + pathspec }

// TriggerTagPrefix begins a trigger tag.
const TriggerTagPrefix = "runtime:triggered-by:"

// Trigger is the run (FLOW/RUN_ID) whose success started the run of
// these system tags, or "".
func Trigger(systemTags []string) string {
	for _, t := range systemTags {
		if p, ok := strings.CutPrefix(t, TriggerTagPrefix); ok {
			return p
		}
	}
	return ""
}

// Create records a new run in the metadata store and the datastore. A run
// whose datastore write fails is marked failed at once, so that no run
// that never started stays "running".
func Create(ctx context.Context, st Stores, n New) (*metadata.Run, error) {
	ns := n.Namespace
	if ns == "" {
		ns = "user:" + n.User
	}
	run := &metadata.Run{Flow: n.Flow, Status: metadata.Running, User: n.User,
		SystemTags: []string{ns}, Tags: n.Tags, Params: n.Params, Code: n.Code, Origin: n.Origin}
	if n.Scheduled {
		run.SystemTags = append(run.SystemTags, SchedulerTag)
	}
	run.SystemTags = append(run.SystemTags, n.SystemTags...)
	for {
		now := time.Now()
		run.ID = n.ID
		if run.ID == "" {
			run.ID = strconv.FormatInt(now.UnixMicro(), 10)
		}
		run.Started = now.UTC()
		err := st.Meta.CreateRun(ctx, run)
		if errors.Is(err, metadata.ErrExists) && n.ID == "" {
			time.Sleep(time.Microsecond)
			continue
		}
		if errors.Is(err, metadata.ErrExists) {
			return nil, fmt.Errorf("flow %s already has a run %s; choose another id, or leave it out to get a new one: %w", n.Flow, n.ID, err)
		}
		if err != nil {
			return nil, fmt.Errorf("flow %s: cannot record the run in the metadata store: %w", n.Flow, err)
		}
		break
	}
	rec := &datastore.RunRecord{Flow: run.Flow, Run: run.ID, Params: run.Params, Started: run.Started, MaxSplits: n.MaxSplits,
		User: run.User, SystemTags: run.SystemTags, Tags: run.Tags, Origin: run.Origin,
		Code: datastore.Code{BinarySHA256: n.Code.BinarySHA256, GitCommit: n.Code.GitCommit, GitDirty: n.Code.GitDirty}}
	if err := st.Data.PutRun(ctx, rec); err != nil {
		ctx := context.WithoutCancel(ctx)
		ferr := st.Meta.FinishRun(ctx, run.Flow, run.ID, metadata.Failed, time.Now().UTC())
		err = fmt.Errorf("flow %s: cannot write to the datastore %s, so run %s cannot start: %w; check the datastore setting (stepwise doctor)", n.Flow, st.Data.Backend(), run.ID, err)
		if ferr != nil {
			err = errors.Join(err, fmt.Errorf("and run %s could not be marked failed: %w", run.ID, ferr))
		}
		return nil, err
	}
	if n.Graph != nil {
		var b bytes.Buffer
		err := n.Graph.WriteJSON(&b)
		if err == nil {
			err = st.Data.PutGraph(ctx, run.Flow, run.ID, b.Bytes())
		}
		if err != nil {
			// The run goes on; its page in the UI draws no graph.
			slog.WarnContext(ctx, "stepwise: the graph of the run is not kept for the UI", "run", run.Flow+"/"+run.ID, "err", err)
		}
	}
	return run, nil
}

// Status is the status a run ends with, from its tasks: succeeded when its
// end step succeeded, failed otherwise.
func Status(ctx context.Context, meta metadata.Store, flow, run string) (metadata.Status, error) {
	tasks, err := meta.ListTasks(ctx, flow, run)
	if err != nil {
		return "", fmt.Errorf("cannot read the tasks of run %s/%s: %w", flow, run, err)
	}
	for _, t := range tasks {
		if t.Step == "end" && t.Status == metadata.Succeeded {
			return metadata.Succeeded, nil
		}
	}
	return metadata.Failed, nil
}

// Finish records how a run ended, in the datastore first (the record that
// outlives an outage of the metadata store: readers take the status from
// there when the metadata store still says running) and then in the
// metadata store. Each write is tried even when the other failed; the
// error says which failed.
func Finish(ctx context.Context, st Stores, flow, run string, status metadata.Status) error {
	ctx = context.WithoutCancel(ctx) // a run's end is recorded even after Ctrl-C
	ended := time.Now().UTC()
	var errs []error
	if err := st.Data.PutRunEnd(ctx, &datastore.RunEnd{Flow: flow, Run: run, Status: string(status), Ended: ended}); err != nil {
		errs = append(errs, fmt.Errorf("cannot record the end of run %s/%s in the datastore %s: %w", flow, run, st.Data.Backend(), err))
	}
	if err := st.Meta.FinishRun(ctx, flow, run, status, ended); err != nil {
		errs = append(errs, fmt.Errorf("cannot record the end of run %s/%s in the metadata store: %w", flow, run, err))
	}
	return errors.Join(errs...)
}
