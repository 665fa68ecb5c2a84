package datastore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strings"
	"time"
)

// RunRecord is what the datastore keeps about a run as a whole, at
// runs/<Flow>/<Run>/run.json. It is written once, when the run starts,
// before any of its tasks; with the task records it is enough to rebuild
// the run's metadata (see package rebuild).
//
// Records written before this type existed have only flow, run, params,
// started and max_splits: the other fields are optional when reading.
type RunRecord struct {
	Flow       string            `json:"flow"`
	Run        string            `json:"run"`
	Params     map[string]string `json:"params"`
	Started    time.Time         `json:"started"`
	MaxSplits  int               `json:"max_splits,omitempty"` // widest foreach allowed
	User       string            `json:"user,omitempty"`
	SystemTags []string          `json:"system_tags,omitempty"` // "user:ann", "runtime:local"...
	Tags       []string          `json:"tags,omitempty"`        // user tags given when the run started
	Code       Code              `json:"code,omitzero"`
	Origin     string            `json:"origin,omitempty"` // the run this one resumed, if any
}

// Code is the version of the code a run used.
type Code struct {
	BinarySHA256 string `json:"binary_sha256,omitempty"`
	GitCommit    string `json:"git_commit,omitempty"`
	GitDirty     bool   `json:"git_dirty,omitempty"`
}

// RunEnd is how a run ended, at runs/<Flow>/<Run>/end.json, written by
// whoever finishes the run (the launcher, or a scheduler). A run without
// one is still running, or its launcher died before it could say.
type RunEnd struct {
	Flow   string    `json:"flow"`
	Run    string    `json:"run"`
	Status string    `json:"status"` // "succeeded" or "failed"
	Ended  time.Time `json:"ended"`
}

// RunTags are the user tags of a run as last changed, at
// runs/<Flow>/<Run>/tags.json; they win over RunRecord.Tags when the
// metadata is rebuilt.
type RunTags struct {
	Flow    string    `json:"flow"`
	Run     string    `json:"run"`
	Tags    []string  `json:"tags"`
	Updated time.Time `json:"updated"`
}

// Object names in a run's folder.
const (
	runObject  = "run.json"
	endObject  = "end.json"
	tagsObject = "tags.json"
)

// RunObjectKey is the key of a run's record: runs/<Flow>/<Run>/run.json.
func RunObjectKey(flow, run string) string { return runsPrefix + flow + "/" + run + "/" + runObject }

// RunEndObjectKey is the key of a run's end record: runs/<Flow>/<Run>/end.json.
func RunEndObjectKey(flow, run string) string { return runsPrefix + flow + "/" + run + "/" + endObject }

// RunTagsObjectKey is the key of a run's tags: runs/<Flow>/<Run>/tags.json.
func RunTagsObjectKey(flow, run string) string {
	return runsPrefix + flow + "/" + run + "/" + tagsObject
}

// RunPrefix is the prefix of every object of a run under runs/:
// runs/<Flow>/<Run>/.
func RunPrefix(flow, run string) string { return runsPrefix + flow + "/" + run + "/" }

// runFormat is the format version of run, end and tags records. Records
// without a format (written before it was added) are version 1.
const runFormat = 1

// checkSegments checks that each name can be one segment of a key.
func checkSegments(what string, kv ...string) error {
	for i := 0; i+1 < len(kv); i += 2 {
		v := kv[i+1]
		if v == "" || v == "." || v == ".." || strings.ContainsAny(v, "/\\\x00") || strings.HasPrefix(v, ".tmp-") {
			return fmt.Errorf("datastore: invalid %s: the %s %q cannot be a path segment", what, kv[i], v)
		}
	}
	return nil
}

// putJSON stores v, with a format field, under key.
func (s *Store) putJSON(ctx context.Context, key, what string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("datastore: cannot encode %s: %w", what, err)
	}
	// {"format":1,...fields}
	var body bytes.Buffer
	fmt.Fprintf(&body, "{\"format\":%d", runFormat)
	if len(data) > 2 {
		body.WriteByte(',')
	}
	body.Write(data[1:])
	body.WriteByte('\n')
	if err := s.b.Put(ctx, key, bytes.NewReader(body.Bytes()), int64(body.Len())); err != nil {
		return fmt.Errorf("datastore: cannot store %s: %w", what, err)
	}
	return nil
}

// getJSON loads the object under key into v; what names it in errors. A
// missing object matches fs.ErrNotExist, a damaged one wraps ErrCorrupt.
func (s *Store) getJSON(ctx context.Context, key, what string, v any) error {
	rc, _, err := s.b.Get(ctx, key)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("datastore: no %s in %s: %w", what, s.b, err)
		}
		return fmt.Errorf("datastore: cannot read %s from %s: %w", what, s.b, err)
	}
	data, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		return fmt.Errorf("datastore: cannot read %s from %s: %w", what, s.b, err)
	}
	var f struct {
		Format int `json:"format"`
	}
	if err := json.Unmarshal(data, &f); err != nil {
		return fmt.Errorf("%w: %s (%s in %s) is damaged: it is not valid JSON (%v)", ErrCorrupt, what, key, s.b, err)
	}
	if f.Format > runFormat {
		return fmt.Errorf("datastore: %s (%s in %s) has format %d, newer than this build knows (%d); upgrade stepwise", what, key, s.b, f.Format, runFormat)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%w: %s (%s in %s) is damaged: %v", ErrCorrupt, what, key, s.b, err)
	}
	return nil
}

// PutRun stores the record of a run, durably (see NeedsSync). It is
// written once, when the run starts and before its tasks (and before any
// task is cloned into it, so that gc sees the origin it depends on).
func (s *Store) PutRun(ctx context.Context, r *RunRecord) error {
	if err := checkSegments("run record", "flow name", r.Flow, "run id", r.Run); err != nil {
		return err
	}
	if r.Started.IsZero() {
		return fmt.Errorf("datastore: the record of run %s/%s has no start time", r.Flow, r.Run)
	}
	return s.putJSON(ctx, RunObjectKey(r.Flow, r.Run), "the record of run "+r.Flow+"/"+r.Run, r)
}

// GetRun loads the record of a run. A missing record matches
// fs.ErrNotExist; a damaged one, or one of another run, wraps ErrCorrupt.
func (s *Store) GetRun(ctx context.Context, flow, run string) (*RunRecord, error) {
	if err := checkSegments("run", "flow name", flow, "run id", run); err != nil {
		return nil, err
	}
	key := RunObjectKey(flow, run)
	what := "record of run " + flow + "/" + run
	r := new(RunRecord)
	if err := s.getJSON(ctx, key, what, r); err != nil {
		return nil, err
	}
	if r.Flow != flow || r.Run != run {
		return nil, fmt.Errorf("%w: the %s (%s in %s) is damaged: it is the record of run %s/%s", ErrCorrupt, what, key, s.b, r.Flow, r.Run)
	}
	if r.Params == nil {
		r.Params = map[string]string{}
	}
	return r, nil
}

// PutRunEnd records how a run ended, durably. Whoever finishes the run
// writes it (again, when a resumed or repaired run ends anew).
func (s *Store) PutRunEnd(ctx context.Context, e *RunEnd) error {
	if err := checkSegments("run end", "flow name", e.Flow, "run id", e.Run); err != nil {
		return err
	}
	if e.Status != "succeeded" && e.Status != "failed" {
		return fmt.Errorf("datastore: run %s/%s: the end status %q is neither succeeded nor failed", e.Flow, e.Run, e.Status)
	}
	if e.Ended.IsZero() {
		return fmt.Errorf("datastore: run %s/%s: the end record has no end time", e.Flow, e.Run)
	}
	return s.putJSON(ctx, RunEndObjectKey(e.Flow, e.Run), "the end of run "+e.Flow+"/"+e.Run, e)
}

// GetRunEnd loads how a run ended. A run that has not ended (or whose end
// was never recorded) matches fs.ErrNotExist.
func (s *Store) GetRunEnd(ctx context.Context, flow, run string) (*RunEnd, error) {
	if err := checkSegments("run", "flow name", flow, "run id", run); err != nil {
		return nil, err
	}
	key := RunEndObjectKey(flow, run)
	what := "end record of run " + flow + "/" + run
	e := new(RunEnd)
	if err := s.getJSON(ctx, key, what, e); err != nil {
		return nil, err
	}
	if e.Flow != flow || e.Run != run {
		return nil, fmt.Errorf("%w: the %s (%s in %s) is damaged: it is the end of run %s/%s", ErrCorrupt, what, key, s.b, e.Flow, e.Run)
	}
	return e, nil
}

// PutRunTags records the user tags of a run after a change (tag add or
// remove), so that rebuilding the metadata keeps them. The tags are
// stored sorted and without duplicates.
func (s *Store) PutRunTags(ctx context.Context, t *RunTags) error {
	if err := checkSegments("run tags", "flow name", t.Flow, "run id", t.Run); err != nil {
		return err
	}
	c := *t
	c.Tags = slices.Compact(slices.Sorted(slices.Values(t.Tags)))
	if c.Tags == nil {
		c.Tags = []string{}
	}
	if c.Updated.IsZero() {
		c.Updated = time.Now().UTC()
	}
	return s.putJSON(ctx, RunTagsObjectKey(t.Flow, t.Run), "the tags of run "+t.Flow+"/"+t.Run, &c)
}

// GetRunTags loads the user tags of a run as last recorded with
// PutRunTags; matches fs.ErrNotExist when they never changed.
func (s *Store) GetRunTags(ctx context.Context, flow, run string) (*RunTags, error) {
	if err := checkSegments("run", "flow name", flow, "run id", run); err != nil {
		return nil, err
	}
	key := RunTagsObjectKey(flow, run)
	what := "tags of run " + flow + "/" + run
	t := new(RunTags)
	if err := s.getJSON(ctx, key, what, t); err != nil {
		return nil, err
	}
	if t.Flow != flow || t.Run != run {
		return nil, fmt.Errorf("%w: the %s (%s in %s) are damaged: they are those of run %s/%s", ErrCorrupt, what, key, s.b, t.Flow, t.Run)
	}
	return t, nil
}

// ListFlows returns the names of the flows that have runs in the
// datastore, sorted. It reads one level of keys, not every record.
func (s *Store) ListFlows(ctx context.Context) ([]string, error) {
	names, err := s.b.ListDirs(ctx, runsPrefix)
	if err != nil {
		return nil, fmt.Errorf("datastore: cannot list the flows in %s: %w", s.b, err)
	}
	return validNames(names), nil
}

// ListRunIDs returns the ids of the runs of a flow that have records in
// the datastore (a run record, task records, or both), sorted. It reads
// one level of keys, not every record.
func (s *Store) ListRunIDs(ctx context.Context, flow string) ([]string, error) {
	if err := checkSegments("flow", "flow name", flow); err != nil {
		return nil, err
	}
	names, err := s.b.ListDirs(ctx, runsPrefix+flow+"/")
	if err != nil {
		return nil, fmt.Errorf("datastore: cannot list the runs of flow %s in %s: %w", flow, s.b, err)
	}
	return validNames(names), nil
}

// validNames drops names that cannot be flows or runs (a stray folder).
func validNames(names []string) []string {
	out := names[:0]
	for _, n := range names {
		if checkSegments("", "", n) == nil {
			out = append(out, n)
		}
	}
	return out
}
