// Package rebuild keeps the history of runs from being lost with the
// metadata store. The datastore holds a record of every run (run.json,
// end.json, tags.json), of every task that succeeded (task.json, with its
// artifacts) and the log chunks of every attempt; the metadata store is an
// index over them that can be rebuilt.
//
// Check is the cheap test a command runs when it opens a metadata store:
// an empty metadata store over a datastore that holds runs (a zero-length
// or replaced .stepwise/metadata.db) is refused with ErrMissingRuns and
// the command that repairs it. Rebuild is that repair: it records in the
// metadata store every run of the datastore that the store lacks.
//
// What a rebuild recovers, and from where:
//   - runs: flow, id, user, system and user tags, parameters, start time,
//     code version and origin, from run.json; the user tags from tags.json
//     when they were changed after the start. A run with task records but
//     no run.json is rebuilt with its start time taken from its oldest
//     object and no parameters.
//   - status: from end.json; without it, succeeded when the end step has a
//     task record (ended when that record was written); otherwise the run
//     stays "running" with its last sign of life at its newest object, so
//     readers show it as lost.
//   - tasks and attempts: every task that has a record or logs. Attempts
//     0..N: N is the attempt of the task record, which succeeded, with its
//     artifacts; the others failed (the datastore keeps no error text).
//     A task with logs and no record failed in its last attempt (or is
//     still running, when the run has no end). Times come from the log
//     chunks and the record's modification time. A record with
//     cloned_from is rebuilt as a clone; one without (written before
//     records said so) as a task that ran, in one attempt.
//
// Runs the metadata store has already are left alone, so Rebuild can run
// again, and fills in only what is missing.
package rebuild

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"stepwise.dev/stepwise/internal/datastore"
	"stepwise.dev/stepwise/internal/metadata"
)

// CommandName is the stepwise command that rebuilds the metadata.
const CommandName = "rebuild-metadata"

// ErrMissingRuns is matched (errors.Is) by the error of Check when the
// datastore holds runs that the metadata store lacks.
var ErrMissingRuns = errors.New("the datastore holds runs that the metadata store lacks")

// MissingError is the error of Check: the metadata store is empty, but
// the datastore holds runs.
type MissingError struct {
	Metadata  string   // where the metadata store is
	Datastore string   // where the datastore is
	Flows     []string // flows with runs in the datastore
	Runs      int      // how many runs the datastore holds
	Example   string   // one of them, Flow/RunID
}

func (e *MissingError) Error() string {
	return fmt.Sprintf("the metadata store %s has no runs, but the datastore %s holds %d run(s) of %s (e.g. %s): the metadata was lost or replaced (an empty or new metadata file). Nothing is lost; rebuild the metadata from the datastore's records with 'stepwise %s', then try again",
		e.Metadata, e.Datastore, e.Runs, strings.Join(e.Flows, ", "), e.Example, CommandName)
}

// Is makes the error match ErrMissingRuns.
func (e *MissingError) Is(target error) bool { return target == ErrMissingRuns }

// Describe names a metadata store for messages: its path or URL when it
// has one.
func Describe(meta metadata.Store) string {
	switch m := meta.(type) {
	case interface{ Path() string }:
		return m.Path()
	case fmt.Stringer:
		return m.String()
	}
	return fmt.Sprintf("(%T)", meta)
}

// Check returns a *MissingError (matching ErrMissingRuns) when the
// metadata store has no run at all but the datastore holds runs. It is
// cheap enough for every command: one query for the newest run, and, only
// when there is none, one listing of the datastore's flows and of the
// runs of each flow (no record is read). A metadata store that has runs
// passes; Rebuild also fills in runs missing from a store that has some.
func Check(ctx context.Context, store *datastore.Store, meta metadata.Store) error {
	runs, err := meta.ListRuns(ctx, metadata.RunFilter{Limit: 1})
	if err != nil {
		return fmt.Errorf("rebuild: cannot check the metadata store %s: %w", Describe(meta), err)
	}
	if len(runs) > 0 {
		return nil
	}
	flows, err := store.ListFlows(ctx)
	if err != nil {
		return err
	}
	e := &MissingError{Metadata: Describe(meta), Datastore: store.Backend().String()}
	for _, f := range flows {
		ids, err := store.ListRunIDs(ctx, f)
		if err != nil {
			return err
		}
		if len(ids) == 0 {
			continue
		}
		e.Flows = append(e.Flows, f)
		e.Runs += len(ids)
		if e.Example == "" {
			e.Example = f + "/" + ids[len(ids)-1]
		}
	}
	if e.Runs == 0 {
		return nil
	}
	return e
}

// Options tune Rebuild.
type Options struct {
	// DefaultUser is the user of runs whose record names none (records
	// written by an older stepwise); such runs also get its user:NAME
	// system tag. Empty leaves them without a user: they are then in no
	// user's namespace, and the report says so.
	DefaultUser string
	// Progress, when set, is called after each run rebuilt or skipped.
	Progress func(flow, run string, rebuilt bool)
}

// Report says what Rebuild did.
type Report struct {
	Runs      int      `json:"runs"`      // runs rebuilt
	Skipped   int      `json:"skipped"`   // runs the metadata store had already
	Tasks     int      `json:"tasks"`     // tasks rebuilt
	Attempts  int      `json:"attempts"`  // attempts rebuilt
	Artifacts int      `json:"artifacts"` // artifacts recorded
	Warnings  []string `json:"warnings"`  // what could not be recovered, run by run
}

// Rebuild records in meta every run of the datastore that meta lacks,
// from the datastore's records (see the package documentation for what is
// recovered). It stops at the first error of the metadata store or of the
// datastore's backend; a damaged record is a warning, and what it held is
// lost.
func Rebuild(ctx context.Context, store *datastore.Store, meta metadata.Store, o Options) (*Report, error) {
	rep := &Report{Warnings: []string{}}
	flows, err := store.ListFlows(ctx)
	if err != nil {
		return rep, err
	}
	for _, flow := range flows {
		ids, err := store.ListRunIDs(ctx, flow)
		if err != nil {
			return rep, err
		}
		for _, id := range ids {
			if err := ctx.Err(); err != nil {
				return rep, err
			}
			_, err := meta.GetRun(ctx, flow, id)
			switch {
			case err == nil:
				rep.Skipped++
				if o.Progress != nil {
					o.Progress(flow, id, false)
				}
				continue
			case !errors.Is(err, metadata.ErrNotFound):
				return rep, fmt.Errorf("rebuild: cannot read run %s/%s from the metadata store %s: %w", flow, id, Describe(meta), err)
			}
			if err := rebuildRun(ctx, store, meta, o, flow, id, rep); err != nil {
				return rep, err
			}
			rep.Runs++
			if o.Progress != nil {
				o.Progress(flow, id, true)
			}
		}
	}
	return rep, nil
}

// taskKey is one task of a run.
type taskKey struct{ step, id string }

// span is the first and last modification time of objects.
type span struct{ first, last time.Time }

func (s *span) add(t time.Time) {
	if s.first.IsZero() || t.Before(s.first) {
		s.first = t
	}
	if t.After(s.last) {
		s.last = t
	}
}

func rebuildRun(ctx context.Context, store *datastore.Store, meta metadata.Store, o Options, flow, id string, rep *Report) error {
	name := flow + "/" + id
	warn := func(format string, args ...any) {
		rep.Warnings = append(rep.Warnings, name+": "+fmt.Sprintf(format, args...))
	}
	b := store.Backend()
	objs, err := b.ListInfo(ctx, datastore.RunPrefix(flow, id))
	if err != nil {
		return fmt.Errorf("rebuild: cannot list the records of run %s in %s: %w", name, b, err)
	}
	logs, err := b.ListInfo(ctx, "logs/"+flow+"/"+id+"/")
	if err != nil {
		return fmt.Errorf("rebuild: cannot list the logs of run %s in %s: %w", name, b, err)
	}
	var all span
	records := map[taskKey]time.Time{} // task -> when its record was written
	for _, obj := range objs {
		all.add(obj.ModTime)
		rest := strings.TrimPrefix(obj.Key, datastore.RunPrefix(flow, id))
		if parts := strings.Split(rest, "/"); len(parts) == 3 && parts[2] == "task.json" {
			records[taskKey{parts[0], parts[1]}] = obj.ModTime
		}
	}
	attempts := map[taskKey]map[int]*span{} // task -> attempt -> log times
	for _, obj := range logs {
		all.add(obj.ModTime)
		parts := strings.Split(strings.TrimPrefix(obj.Key, "logs/"+flow+"/"+id+"/"), "/")
		if len(parts) != 5 {
			continue
		}
		n, err := strconv.Atoi(parts[2])
		if err != nil || n < 0 {
			continue
		}
		k := taskKey{parts[0], parts[1]}
		if attempts[k] == nil {
			attempts[k] = map[int]*span{}
		}
		if attempts[k][n] == nil {
			attempts[k][n] = &span{}
		}
		attempts[k][n].add(obj.ModTime)
	}

	// The run.
	run := &metadata.Run{Flow: flow, ID: id, Status: metadata.Running, Params: map[string]string{}}
	rr, err := store.GetRun(ctx, flow, id)
	switch {
	case err == nil:
		run.User, run.SystemTags, run.Tags, run.Params, run.Started, run.Origin = rr.User, rr.SystemTags, rr.Tags, rr.Params, rr.Started, rr.Origin
		run.Code = metadata.Code{BinarySHA256: rr.Code.BinarySHA256, GitCommit: rr.Code.GitCommit, GitDirty: rr.Code.GitDirty}
	case errors.Is(err, fs.ErrNotExist) || errors.Is(err, datastore.ErrCorrupt):
		if errors.Is(err, fs.ErrNotExist) {
			warn("no run record: rebuilt from its tasks, without parameters or code version, started at its oldest object")
		} else {
			warn("its run record is damaged (%v): rebuilt from its tasks, without parameters or code version", err)
		}
		run.Started = all.first
	default:
		return fmt.Errorf("rebuild: %w", err)
	}
	if run.Started.IsZero() {
		run.Started = time.Now().UTC()
	}
	if run.User == "" {
		if o.DefaultUser != "" {
			run.User = o.DefaultUser
			warn("its record names no user: rebuilt as a run of %s", o.DefaultUser)
		} else {
			warn("its record names no user: it is in no user's namespace (list it with --namespace global)")
		}
	}
	production := slices.ContainsFunc(run.SystemTags, func(t string) bool { return strings.HasPrefix(t, "production:") })
	if run.User != "" && !production && !slices.Contains(run.SystemTags, "user:"+run.User) {
		run.SystemTags = append(slices.Clone(run.SystemTags), "user:"+run.User)
	}
	if tags, err := store.GetRunTags(ctx, flow, id); err == nil {
		run.Tags = tags.Tags
	} else if !errors.Is(err, fs.ErrNotExist) {
		warn("its tags record cannot be read (%v): rebuilt with the tags given when it started", err)
	}
	run.Tags = slices.DeleteFunc(slices.Clone(run.Tags), func(t string) bool { return slices.Contains(run.SystemTags, t) })
	if err := meta.CreateRun(ctx, run); err != nil {
		return fmt.Errorf("rebuild: run %s: %w", name, err)
	}

	// Its tasks.
	keys := make([]taskKey, 0, len(records)+len(attempts))
	for k := range records {
		keys = append(keys, k)
	}
	for k := range attempts {
		if _, ok := records[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].step != keys[j].step {
			return keys[i].step < keys[j].step
		}
		a, ea := strconv.Atoi(keys[i].id)
		c, ec := strconv.Atoi(keys[j].id)
		if ea == nil && ec == nil {
			return a < c
		}
		return keys[i].id < keys[j].id
	})
	end, endErr := store.GetRunEnd(ctx, flow, id)
	if endErr != nil && !errors.Is(endErr, fs.ErrNotExist) {
		warn("its end record cannot be read (%v)", endErr)
	}
	ended := endErr == nil
	var endTask time.Time // when the end step's record was written
	for _, k := range keys {
		t := datastore.TaskPath{Flow: flow, Run: id, Step: k.step, Task: k.id}
		var rec *datastore.TaskRecord
		if _, ok := records[k]; ok {
			rec, err = store.GetTask(ctx, t)
			if err != nil {
				if !errors.Is(err, datastore.ErrCorrupt) {
					return fmt.Errorf("rebuild: %w", err)
				}
				warn("the record of task %s is damaged: its artifacts are lost, and it is rebuilt as failed", t)
				rec = nil
			}
		}
		done := records[k]
		var arts []metadata.Artifact
		if rec != nil {
			for _, a := range rec.Artifacts {
				arts = append(arts, metadata.Artifact{Name: a.Name, Type: a.Type, Key: a.Key, Size: a.Size})
			}
			if k.step == "end" {
				endTask = done
			}
		}
		if rec != nil && rec.ClonedFrom != "" {
			err := meta.CloneTask(ctx, &metadata.Task{Flow: flow, Run: id, Step: k.step, ID: k.id, Status: metadata.Succeeded,
				Started: done, Ended: done, ClonedFrom: rec.ClonedFrom, Artifacts: arts})
			if err != nil {
				return fmt.Errorf("rebuild: task %s: %w", t, err)
			}
			rep.Tasks++
			rep.Artifacts += len(arts)
			continue
		}
		last := -1
		for n := range attempts[k] {
			last = max(last, n)
		}
		if rec != nil {
			last = max(last, rec.Attempt)
		}
		for n := 0; n <= last; n++ {
			a := metadata.Attempt{Flow: flow, Run: id, Step: k.step, Task: k.id, N: n, Status: metadata.Failed,
				Error: "rebuilt from the datastore: this attempt failed or was stopped (the datastore keeps no error message; see its logs)"}
			sp := attempts[k][n]
			if sp != nil {
				a.Started, a.Ended = sp.first, sp.last
			}
			var out []metadata.Artifact
			if rec != nil && n == rec.Attempt {
				a.Status, a.Error, out = metadata.Succeeded, "", arts
				if a.Started.IsZero() || done.Before(a.Started) {
					a.Started = done
				}
				if done.After(a.Ended) {
					a.Ended = done
				}
			}
			if a.Started.IsZero() {
				a.Started = run.Started
			}
			if a.Ended.Before(a.Started) {
				a.Ended = a.Started
			}
			start := a
			start.Status, start.Ended, start.Error = metadata.Running, time.Time{}, ""
			if err := meta.StartAttempt(ctx, start); err != nil {
				return fmt.Errorf("rebuild: task %s attempt %d: %w", t, n, err)
			}
			rep.Attempts++
			if n == last && a.Status == metadata.Failed && !ended && rec == nil {
				continue // the run has not ended: its last attempt may still run
			}
			if err := meta.FinishAttempt(ctx, a, out); err != nil {
				return fmt.Errorf("rebuild: task %s attempt %d: %w", t, n, err)
			}
			rep.Artifacts += len(out)
		}
		rep.Tasks++
	}

	// How it ended.
	switch {
	case ended:
		status := metadata.Status(end.Status)
		if err := meta.FinishRun(ctx, flow, id, status, end.Ended); err != nil {
			return fmt.Errorf("rebuild: run %s: %w", name, err)
		}
	case !endTask.IsZero():
		if err := meta.FinishRun(ctx, flow, id, metadata.Succeeded, endTask); err != nil {
			return fmt.Errorf("rebuild: run %s: %w", name, err)
		}
	default:
		warn("no record says how it ended: rebuilt as running, last alive at its newest object (readers show it as lost once that is old)")
		if !all.last.IsZero() {
			if err := meta.Heartbeat(ctx, flow, id, all.last); err != nil {
				return fmt.Errorf("rebuild: run %s: %w", name, err)
			}
		}
	}
	return nil
}
