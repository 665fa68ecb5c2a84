package datastore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strings"
	"time"
)

// TaskPath names one task of one run.
type TaskPath struct {
	Flow string `json:"flow"`
	Run  string `json:"run"`
	Step string `json:"step"`
	Task string `json:"task"`
}

// String is "Flow/Run/Step/Task".
func (p TaskPath) String() string { return p.Flow + "/" + p.Run + "/" + p.Step + "/" + p.Task }

func (p TaskPath) check() error {
	for _, c := range []struct{ what, v string }{{"flow", p.Flow}, {"run", p.Run}, {"step", p.Step}, {"task", p.Task}} {
		if c.v == "" || c.v == "." || c.v == ".." || strings.ContainsAny(c.v, "/\\\x00") || strings.HasPrefix(c.v, ".tmp-") {
			return fmt.Errorf("datastore: invalid task path %q: the %s name %q cannot be a path segment", p, c.what, c.v)
		}
	}
	return nil
}

// TaskObjectKey is the backend key of a task's record:
// runs/<Flow>/<Run>/<Step>/<Task>/task.json.
func TaskObjectKey(p TaskPath) string { return runsPrefix + p.String() + "/task.json" }

// ArtifactRef is one artifact a task produced: the flow field's name, the
// content key of its encoded value, its Go type, and its encoded size in
// bytes.
type ArtifactRef struct {
	Name string `json:"name"`
	Key  string `json:"key"`
	Type string `json:"type"`
	Size int64  `json:"size"`
}

// ForeachFrame is one level of a (nested) foreach: the step that fanned
// out, this task's index, and the width.
type ForeachFrame struct {
	Step  string `json:"step"`
	Index int    `json:"index"`
	Count int    `json:"count"`
}

// TaskRecord says which artifacts a task produced.
type TaskRecord struct {
	Path      TaskPath       `json:"path"`
	Attempt   int            `json:"attempt"`
	Artifacts []ArtifactRef  `json:"artifacts"`        // sorted by Name
	Foreach   []ForeachFrame `json:"foreach"`          // outermost first
	Splits    int            `json:"splits,omitempty"` // for a foreach step: how many elements it fanned out to
	// ClonedFrom is the pathspec (Flow/Run/Step/Task) of the task this
	// one was cloned from by resume; empty for a task that ran.
	ClonedFrom string `json:"cloned_from,omitempty"`
	// Tables are the table versions the step read (package table), so
	// that a run can be reproduced on the same data.
	Tables []TableRead `json:"tables,omitempty"`
}

// TableRead is one table version a step read: what it asked for, where it
// was, and the version read (a Parquet dataset's manifest version, or an
// Iceberg snapshot id), with the filter and columns of the read.
type TableRead struct {
	Name     string    `json:"name"`              // as the step named it: a catalog name or a location
	Location string    `json:"location"`          // the dataset's root or the Iceberg table's location
	Format   string    `json:"format"`            // "parquet" or "iceberg"
	Version  int64     `json:"version"`           // manifest version, or Iceberg snapshot id
	Time     time.Time `json:"time,omitzero"`     // when that version was committed
	Filter   string    `json:"filter,omitempty"`  // the read's filter
	Columns  []string  `json:"columns,omitempty"` // the read's projection
	Files    int       `json:"files"`             // data files read
	Rows     int64     `json:"rows"`              // rows returned (as far as the step read)
}

// Task record object format, JSON:
//
//	{
//	  "format": 1,
//	  "sha256": "<hex SHA-256 of the compact JSON of record>",
//	  "record": {"path": {...}, "attempt": 0, "artifacts": [...], "foreach": [...]}
//	}
const taskFormat = 1

type taskEnvelope struct {
	Format int             `json:"format"`
	SHA256 string          `json:"sha256"`
	Record json.RawMessage `json:"record"`
}

// PutTask stores rec under its path, atomically and durably, with a
// checksum that GetTask verifies. The artifacts are stored sorted by name;
// rec itself is not modified.
func (s *Store) PutTask(ctx context.Context, rec *TaskRecord) error {
	if err := rec.Path.check(); err != nil {
		return err
	}
	r := *rec
	r.Artifacts = slices.Clone(rec.Artifacts)
	slices.SortFunc(r.Artifacts, func(a, b ArtifactRef) int { return strings.Compare(a.Name, b.Name) })
	for i, a := range r.Artifacts {
		if a.Name == "" {
			return fmt.Errorf("datastore: task %s: an artifact has no name", r.Path)
		}
		if i > 0 && r.Artifacts[i-1].Name == a.Name {
			return fmt.Errorf("datastore: task %s: artifact %s is listed twice", r.Path, a.Name)
		}
		if err := checkBlobKey(a.Key); err != nil {
			return fmt.Errorf("datastore: task %s: artifact %s: %w", r.Path, a.Name, err)
		}
	}
	compact, err := json.Marshal(&r)
	if err != nil {
		return fmt.Errorf("datastore: task %s: cannot encode its record: %w", r.Path, err)
	}
	sum := sha256.Sum256(compact)
	var body bytes.Buffer
	fmt.Fprintf(&body, "{\n  \"format\": %d,\n  \"sha256\": \"%x\",\n  \"record\": ", taskFormat, sum)
	if err := json.Indent(&body, compact, "  ", "  "); err != nil {
		return err
	}
	body.WriteString("\n}\n")
	if err := s.b.Put(ctx, TaskObjectKey(r.Path), bytes.NewReader(body.Bytes()), int64(body.Len())); err != nil {
		return fmt.Errorf("datastore: cannot store the record of task %s: %w", r.Path, err)
	}
	return nil
}

// GetTask loads and verifies the record of the task at p. A missing record
// matches fs.ErrNotExist; a damaged one wraps ErrCorrupt.
func (s *Store) GetTask(ctx context.Context, p TaskPath) (*TaskRecord, error) {
	if err := p.check(); err != nil {
		return nil, err
	}
	key := TaskObjectKey(p)
	rc, _, err := s.b.Get(ctx, key)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("datastore: no record of task %s in %s: %w", p, s.b, err)
		}
		return nil, fmt.Errorf("datastore: cannot read the record of task %s from %s: %w", p, s.b, err)
	}
	data, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		return nil, fmt.Errorf("datastore: cannot read the record of task %s from %s: %w", p, s.b, err)
	}
	damaged := func(why string) error {
		return fmt.Errorf("%w: the record of task %s (%s in %s) is damaged: %s; resume the run from step %s (or run that task again) to write it again",
			ErrCorrupt, p, key, s.b, why, p.Step)
	}
	var env taskEnvelope
	if err := json.Unmarshal(data, &env); err != nil {
		return nil, damaged("it is not valid JSON (" + err.Error() + ")")
	}
	if env.Format > taskFormat {
		return nil, fmt.Errorf("datastore: the record of task %s (%s in %s) has format %d, newer than this build knows (%d); upgrade stepwise", p, key, s.b, env.Format, taskFormat)
	}
	if env.Format != taskFormat || len(env.Record) == 0 {
		return nil, damaged("it lacks its format or record")
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, env.Record); err != nil {
		return nil, damaged("its record is not valid JSON")
	}
	if sum := sha256.Sum256(compact.Bytes()); hex.EncodeToString(sum[:]) != env.SHA256 {
		return nil, damaged("its checksum does not match its content")
	}
	rec := new(TaskRecord)
	if err := json.Unmarshal(compact.Bytes(), rec); err != nil {
		return nil, damaged("its record does not decode (" + err.Error() + ")")
	}
	if rec.Path != p {
		return nil, damaged(fmt.Sprintf("it is the record of task %s", rec.Path))
	}
	return rec, nil
}
