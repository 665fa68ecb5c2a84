// Package gc deletes from a datastore what no kept run needs: blobs that
// no kept run refers to, the logs of runs that are not kept, and what
// crashed writers left behind (local temporary files, unfinished S3
// uploads). It works on every backend; it only reports unless told to
// apply.
//
// # Which runs are kept
//
// A run is kept when any of these holds:
//   - it started less than the retention period ago;
//   - it has a user tag (tag a run to keep it forever);
//   - it is still running (marked running in the metadata store, and not
//     lost: its runtime said it was alive recently);
//   - it is the origin of a kept run (resume clones tasks by reference:
//     the clone shares the origin's blobs), and so on up the chain;
//   - the metadata store does not know it (gc cannot see its tags or
//     status; 'stepwise rebuild-metadata' fixes that), and gc says so.
//
// # What is deleted
//
// Of a run that is not kept, gc deletes its logs and every blob that no
// kept run refers to; it keeps its run record, its task records and its
// metadata, so that runs, dump and resume still show what it was, and
// reading a deleted value says "collected by gc on DATE" (gc leaves a
// small note under gc/ for each blob it deletes and for each run whose
// logs it deletes). A blob is referred to by the task records of kept runs,
// by their tasks in the metadata store, and by the versions of their cards
// (each version of a card is a blob; the cards of a run not kept go with
// its logs, and their blobs with the other blobs no kept run refers to).
//
// Nothing younger than the grace period is deleted, whatever refers to it:
// a running task stores its blobs before the record that refers to them,
// and PutBlob gives a reused blob older than datastore.RefreshAge a new
// modification time, so a grace period of at least MinGrace keeps every
// blob a running task may be writing or reusing. A shorter grace period
// is refused while a run is running.
//
// A run resumed from a run that gc is collecting, in the middle of gc,
// may clone tasks whose blobs gc then deletes: gc checks for such runs
// before it deletes blobs and stops when it finds one; tag a run before
// resuming it long after, to be safe.
package gc

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"stepwise.dev/stepwise/internal/datastore"
	"stepwise.dev/stepwise/internal/metadata"
)

// Defaults and limits.
const (
	DefaultRetention = 30 * 24 * time.Hour
	DefaultGrace     = 24 * time.Hour
	// MinGrace is the shortest grace period gc accepts while a run is
	// running.
	MinGrace = datastore.RefreshAge + time.Hour
)

// Options tune Collect.
type Options struct {
	Retention time.Duration // runs that started less than this ago are kept; 0 keeps only tagged and running runs (and their origins)
	Grace     time.Duration // nothing modified less than this ago is deleted
	Apply     bool          // delete; when false, only report what would be deleted
	Now       time.Time     // the time gc runs at; zero for now
	Workers   int           // parallel reads and deletes; 0 for 8
}

// Usage is a number of objects and their bytes.
type Usage struct {
	Count int   `json:"count"`
	Bytes int64 `json:"bytes"`
}

func (u *Usage) add(n int64) { u.Count++; u.Bytes += n }

// Report says what gc found, and deleted or would delete.
type Report struct {
	Applied bool `json:"applied"` // false for a dry run: nothing was deleted

	Runs      int            `json:"runs"`      // runs seen, in the metadata store or the datastore
	Kept      map[string]int `json:"kept"`      // kept runs by reason: young, tagged, running, origin, unknown
	Collected []string       `json:"collected"` // runs not kept whose logs or blobs were (or would be) deleted, Flow/Run

	Reachable  Usage    `json:"reachable"`   // blobs kept runs refer to
	Blobs      Usage    `json:"blobs"`       // blobs deleted
	YoungBlobs Usage    `json:"young_blobs"` // blobs no kept run refers to, kept for being younger than the grace period
	Logs       Usage    `json:"logs"`        // log chunks, cards and graphs of runs not kept, deleted
	Leftovers  Usage    `json:"leftovers"`   // temporary files and unfinished uploads removed
	YoungLeft  Usage    `json:"young_left"`  // leftovers younger than the grace period, kept
	Freed      int64    `json:"freed"`       // bytes freed (or that would be)
	Warnings   []string `json:"warnings"`
}

// Reasons a run is kept, the keys of Report.Kept.
const (
	KeptYoung   = "younger than the retention"
	KeptTagged  = "tagged"
	KeptRunning = "running"
	KeptOrigin  = "origin of a kept run"
	KeptUnknown = "not in the metadata store"
)

// runInfo is what gc knows of one run.
type runInfo struct {
	flow, id string
	meta     *metadata.Run // nil when the metadata store lacks it
	inData   bool          // it has records or logs in the datastore
	origin   string        // the run it resumed, from the metadata or its record
	kept     string        // why it is kept; "" when it is not
}

func (r *runInfo) name() string { return r.flow + "/" + r.id }

// Collect finds what no kept run needs, and deletes it when o.Apply is
// set. It returns what it found even when it fails part-way.
func Collect(ctx context.Context, store *datastore.Store, meta metadata.Store, o Options) (*Report, error) {
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	if o.Workers <= 0 {
		o.Workers = 8
	}
	rep := &Report{Applied: o.Apply, Kept: map[string]int{}, Collected: []string{}, Warnings: []string{}}
	if o.Retention < 0 || o.Grace < 0 {
		return rep, fmt.Errorf("gc: the retention (%s) and the grace period (%s) cannot be negative", o.Retention, o.Grace)
	}
	b := store.Backend()

	runs, err := gatherRuns(ctx, store, meta)
	if err != nil {
		return rep, err
	}
	rep.Runs = len(runs)
	if o.Grace < MinGrace {
		for _, r := range runs {
			if r.meta != nil && r.meta.Status == metadata.Running && !r.meta.Lost(now) {
				return rep, fmt.Errorf("gc: run %s is running, and a grace period of %s (under %s) could delete blobs its tasks are writing or reusing; wait until no run is running, or use a grace period of at least %s", r.name(), o.Grace, MinGrace, MinGrace)
			}
		}
	}
	decide(ctx, store, runs, now.Add(-o.Retention), now, rep)

	// What kept runs refer to.
	reachable, err := reachableBlobs(ctx, store, meta, runs, o.Workers, rep)
	if err != nil {
		return rep, err
	}

	// Candidates.
	cut := now.Add(-o.Grace)
	objs, err := b.ListInfo(ctx, "blobs/")
	if err != nil {
		return rep, fmt.Errorf("gc: cannot list the blobs of %s: %w", b, err)
	}
	var blobs []datastore.ObjectInfo
	for _, obj := range objs {
		key := obj.Key[strings.LastIndexByte(obj.Key, '/')+1:]
		if datastore.BlobObjectKey(key) != obj.Key || len(key) != 64 {
			continue // not a blob of ours: leave it alone
		}
		switch {
		case reachable[key]:
			rep.Reachable.add(obj.Size)
		case obj.ModTime.After(cut):
			rep.YoungBlobs.add(obj.Size)
		default:
			blobs = append(blobs, obj)
		}
	}
	var logs []datastore.ObjectInfo
	logRuns := map[string]bool{}
	for _, r := range runs {
		if r.kept != "" || !r.inData {
			continue
		}
		// Its cards and graph go with its logs.
		for _, prefix := range []string{"logs/", "cards/"} {
			objs, err := b.ListInfo(ctx, prefix+r.flow+"/"+r.id+"/")
			if err != nil {
				return rep, fmt.Errorf("gc: cannot list the %s of run %s in %s: %w", strings.TrimSuffix(prefix, "/"), r.name(), b, err)
			}
			for _, obj := range objs {
				if obj.ModTime.After(cut) {
					continue
				}
				logs = append(logs, obj)
				logRuns[r.name()] = true
			}
		}
	}
	var leftovers []datastore.Leftover
	if ll, ok := b.(datastore.LeftoverLister); ok {
		all, err := ll.Leftovers(ctx)
		if err != nil {
			return rep, fmt.Errorf("gc: %w", err)
		}
		for _, l := range all {
			if l.ModTime.After(cut) {
				rep.YoungLeft.add(l.Size)
			} else {
				leftovers = append(leftovers, l)
			}
		}
	}

	// Which runs lose something: those whose logs go, and those not kept
	// that referred to a blob that goes (read from the metadata store).
	collected := map[string]bool{}
	for n := range logRuns {
		collected[n] = true
	}
	if len(blobs) > 0 {
		gone := make(map[string]bool, len(blobs))
		for _, obj := range blobs {
			gone[obj.Key[strings.LastIndexByte(obj.Key, '/')+1:]] = true
		}
		for _, r := range runs {
			if r.kept != "" || r.meta == nil || collected[r.name()] {
				continue
			}
			tasks, err := meta.ListTasks(ctx, r.flow, r.id)
			if err != nil {
				return rep, fmt.Errorf("gc: cannot read the tasks of run %s: %w", r.name(), err)
			}
		tasks:
			for _, t := range tasks {
				for _, a := range t.Artifacts {
					if gone[a.Key] {
						collected[r.name()] = true
						break tasks
					}
				}
			}
		}
	}
	rep.Collected = slices.Sorted(func(yield func(string) bool) {
		for n := range collected {
			if !yield(n) {
				return
			}
		}
	})

	if !o.Apply {
		for _, obj := range blobs {
			rep.Blobs.add(obj.Size)
		}
		for _, obj := range logs {
			rep.Logs.add(obj.Size)
		}
		for _, l := range leftovers {
			rep.Leftovers.add(l.Size)
		}
		rep.Freed = rep.Blobs.Bytes + rep.Logs.Bytes + rep.Leftovers.Bytes
		return rep, nil
	}

	// A run that started while gc looked, resuming a run it is about to
	// collect, may have cloned tasks whose blobs would go.
	if err := checkNewRuns(ctx, meta, runs, now); err != nil {
		return rep, err
	}
	note := datastore.Collected{Collected: now.UTC(), Reason: fmt.Sprintf("no run kept by a retention of %s refers to it", o.Retention)}
	logNote := datastore.Collected{Collected: now.UTC(), Reason: fmt.Sprintf("the run is not kept by a retention of %s", o.Retention)}
	for name := range logRuns {
		flow, id, _ := strings.Cut(name, "/")
		if err := store.MarkLogsCollected(ctx, flow, id, logNote); err != nil {
			return rep, fmt.Errorf("gc: %w", err)
		}
	}
	var mu sync.Mutex
	err = parallel(ctx, o.Workers, len(logs), func(i int) error {
		if err := b.Delete(ctx, logs[i].Key); err != nil {
			return fmt.Errorf("gc: %w", err)
		}
		mu.Lock()
		rep.Logs.add(logs[i].Size)
		rep.Freed += logs[i].Size
		mu.Unlock()
		return nil
	})
	if err != nil {
		return rep, err
	}
	err = parallel(ctx, o.Workers, len(blobs), func(i int) error {
		key := blobs[i].Key[strings.LastIndexByte(blobs[i].Key, '/')+1:]
		// The note first: a reader that misses the blob finds it.
		if err := store.MarkBlobCollected(ctx, key, note); err != nil {
			return fmt.Errorf("gc: %w", err)
		}
		// A task may have reused the blob since it was listed: PutBlob
		// then gave it a new time.
		if fresh, err := b.Stat(ctx, blobs[i].Key); err == nil && fresh.ModTime.After(cut) {
			return nil
		}
		if err := b.Delete(ctx, blobs[i].Key); err != nil {
			return fmt.Errorf("gc: %w", err)
		}
		mu.Lock()
		rep.Blobs.add(blobs[i].Size)
		rep.Freed += blobs[i].Size
		mu.Unlock()
		return nil
	})
	if err != nil {
		return rep, err
	}
	ll, _ := b.(datastore.LeftoverLister)
	err = parallel(ctx, o.Workers, len(leftovers), func(i int) error {
		if err := ll.RemoveLeftover(ctx, leftovers[i]); err != nil {
			return fmt.Errorf("gc: %w", err)
		}
		mu.Lock()
		rep.Leftovers.add(leftovers[i].Size)
		rep.Freed += leftovers[i].Size
		mu.Unlock()
		return nil
	})
	return rep, err
}

// gatherRuns lists every run of the metadata store and of the datastore
// (its records and its logs).
func gatherRuns(ctx context.Context, store *datastore.Store, meta metadata.Store) (map[string]*runInfo, error) {
	runs := map[string]*runInfo{}
	get := func(flow, id string) *runInfo {
		n := flow + "/" + id
		if runs[n] == nil {
			runs[n] = &runInfo{flow: flow, id: id}
		}
		return runs[n]
	}
	all, err := meta.ListRuns(ctx, metadata.RunFilter{})
	if err != nil {
		return nil, fmt.Errorf("gc: cannot list the runs of the metadata store: %w", err)
	}
	for _, m := range all {
		r := get(m.Flow, m.ID)
		r.meta, r.origin = m, m.Origin
	}
	b := store.Backend()
	flows, err := store.ListFlows(ctx)
	if err != nil {
		return nil, fmt.Errorf("gc: %w", err)
	}
	for _, f := range flows {
		ids, err := store.ListRunIDs(ctx, f)
		if err != nil {
			return nil, fmt.Errorf("gc: %w", err)
		}
		for _, id := range ids {
			get(f, id).inData = true
		}
	}
	logFlows, err := b.ListDirs(ctx, "logs/")
	if err != nil {
		return nil, fmt.Errorf("gc: cannot list the logs of %s: %w", b, err)
	}
	for _, f := range logFlows {
		ids, err := b.ListDirs(ctx, "logs/"+f+"/")
		if err != nil {
			return nil, fmt.Errorf("gc: cannot list the logs of %s: %w", b, err)
		}
		for _, id := range ids {
			get(f, id).inData = true
		}
	}
	return runs, nil
}

// decide marks the runs that are kept, and why.
func decide(ctx context.Context, store *datastore.Store, runs map[string]*runInfo, since, now time.Time, rep *Report) {
	var queue []*runInfo
	for _, r := range runs {
		m := r.meta
		switch {
		case m == nil:
			r.kept = KeptUnknown
			if rec, err := store.GetRun(ctx, r.flow, r.id); err == nil {
				r.origin = rec.Origin
			}
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("run %s is in the datastore but not in the metadata store, so gc keeps it; 'stepwise rebuild-metadata' records it", r.name()))
		case m.Status == metadata.Running && !m.Lost(now):
			r.kept = KeptRunning
		case len(m.Tags) > 0:
			r.kept = KeptTagged
		case !m.Started.Before(since):
			r.kept = KeptYoung
		}
		if r.kept != "" {
			queue = append(queue, r)
		}
	}
	for len(queue) > 0 {
		r := queue[0]
		queue = queue[1:]
		if r.origin == "" {
			continue
		}
		o := runs[r.flow+"/"+r.origin]
		if o != nil && o.kept == "" {
			o.kept = KeptOrigin
			queue = append(queue, o)
		}
	}
	for _, r := range runs {
		if r.kept != "" {
			rep.Kept[r.kept]++
		}
	}
}

// reachableBlobs returns the content keys that kept runs refer to, from
// their task records, their tasks in the metadata store and the versions
// of their cards.
func reachableBlobs(ctx context.Context, store *datastore.Store, meta metadata.Store, runs map[string]*runInfo, workers int, rep *Report) (map[string]bool, error) {
	reach := map[string]bool{}
	var kept []*runInfo
	for _, r := range runs {
		if r.kept != "" {
			kept = append(kept, r)
		}
	}
	sort.Slice(kept, func(i, j int) bool { return kept[i].name() < kept[j].name() })
	var mu sync.Mutex
	b := store.Backend()
	for _, r := range kept {
		if r.meta != nil {
			tasks, err := meta.ListTasks(ctx, r.flow, r.id)
			if err != nil {
				return nil, fmt.Errorf("gc: cannot read the tasks of run %s: %w", r.name(), err)
			}
			for _, t := range tasks {
				for _, a := range t.Artifacts {
					reach[a.Key] = true
				}
			}
		}
		// The versions of its cards are blobs too.
		keys, err := store.CardBlobKeys(ctx, r.flow, r.id)
		if err != nil && !errors.Is(err, datastore.ErrCorrupt) {
			return nil, fmt.Errorf("gc: %w", err)
		}
		if err != nil {
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("some card versions of run %s cannot be read (%v); gc may delete the blobs they list", r.name(), err))
		}
		for _, k := range keys {
			reach[k] = true
		}
		if !r.inData {
			continue
		}
		objs, err := b.List(ctx, datastore.RunPrefix(r.flow, r.id))
		if err != nil {
			return nil, fmt.Errorf("gc: cannot list the records of run %s in %s: %w", r.name(), b, err)
		}
		var paths []datastore.TaskPath
		for _, k := range objs {
			parts := strings.Split(strings.TrimPrefix(k, datastore.RunPrefix(r.flow, r.id)), "/")
			if len(parts) == 3 && parts[2] == "task.json" {
				paths = append(paths, datastore.TaskPath{Flow: r.flow, Run: r.id, Step: parts[0], Task: parts[1]})
			}
		}
		err = parallel(ctx, workers, len(paths), func(i int) error {
			rec, err := store.GetTask(ctx, paths[i])
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				for _, a := range rec.Artifacts {
					reach[a.Key] = true
				}
			case errors.Is(err, datastore.ErrCorrupt) || errors.Is(err, fs.ErrNotExist):
				rep.Warnings = append(rep.Warnings, fmt.Sprintf("the record of task %s cannot be read (%v); gc keeps what the metadata store says it refers to", paths[i], err))
			default:
				return fmt.Errorf("gc: %w", err)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return reach, nil
}

// checkNewRuns fails when a run that started since gc began resumes a run
// gc is about to collect.
func checkNewRuns(ctx context.Context, meta metadata.Store, runs map[string]*runInfo, since time.Time) error {
	fresh, err := meta.ListRuns(ctx, metadata.RunFilter{Since: since})
	if err != nil {
		return fmt.Errorf("gc: cannot list the runs that started meanwhile: %w", err)
	}
	for _, r := range fresh {
		if o := runs[r.Flow+"/"+r.Origin]; r.Origin != "" && o != nil && o.kept == "" {
			return fmt.Errorf("gc: run %s/%s started meanwhile, resuming run %s, which gc was about to collect; nothing was deleted: run gc again", r.Flow, r.ID, o.name())
		}
	}
	return nil
}

// parallel calls fn(0..n-1) on up to workers goroutines and returns the
// first error; after an error no new call starts.
func parallel(ctx context.Context, workers, n int, fn func(i int) error) error {
	var (
		mu    sync.Mutex
		next  int
		first error
		wg    sync.WaitGroup
	)
	for range min(workers, n) {
		wg.Go(func() {
			for {
				mu.Lock()
				if first != nil || next >= n {
					mu.Unlock()
					return
				}
				i := next
				next++
				mu.Unlock()
				err := ctx.Err()
				if err == nil {
					err = fn(i)
				}
				if err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	return first
}
