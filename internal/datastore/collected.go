package datastore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"time"
)

// RefreshAge is how old a blob may be before PutBlob, finding it already
// stored, gives it a new modification time (or writes it again). gc never
// deletes a blob younger than its grace period, which is at least
// RefreshAge plus an hour: so a blob that a running task has just stored,
// or reused, is safe from gc until the task's record refers to it.
const RefreshAge = time.Hour

// ErrCollected is matched (errors.Is) by the error of reading a blob or
// logs that gc deleted; the error also matches fs.ErrNotExist.
var ErrCollected = errors.New("collected by gc")

// Collected is what gc leaves where it deleted something: when, and why.
type Collected struct {
	Collected time.Time `json:"collected"`
	Reason    string    `json:"reason"` // e.g. "no run kept by the retention of 720h0m0s refers to it"
}

// CollectedBlobKey is the key of the note gc leaves for a blob it
// deleted: gc/blobs/<2 hex>/<64 hex>.
func CollectedBlobKey(key string) string { return "gc/blobs/" + key[:2] + "/" + key }

// CollectedLogsKey is the key of the note gc leaves for the logs of a run
// it deleted: gc/logs/<Flow>/<Run>.
func CollectedLogsKey(flow, run string) string { return "gc/logs/" + flow + "/" + run }

// MarkBlobCollected leaves the note that the blob with content key key is
// being deleted by gc; GetBlob of the missing blob then says so.
func (s *Store) MarkBlobCollected(ctx context.Context, key string, c Collected) error {
	if err := checkBlobKey(key); err != nil {
		return err
	}
	return s.putJSON(ctx, CollectedBlobKey(key), "the note that gc collected blob "+key, &c)
}

// MarkLogsCollected leaves the note that gc deleted the logs of a run;
// ReadLog of the run then says so.
func (s *Store) MarkLogsCollected(ctx context.Context, flow, run string, c Collected) error {
	if err := checkSegments("run", "flow name", flow, "run id", run); err != nil {
		return err
	}
	return s.putJSON(ctx, CollectedLogsKey(flow, run), "the note that gc collected the logs of run "+flow+"/"+run, &c)
}

// collectedErr returns the error for something gc collected, or nil
// when no note under noteKey says so.
func (s *Store) collectedErr(ctx context.Context, noteKey, what string) error {
	var c Collected
	if err := s.getJSON(ctx, noteKey, "gc note", &c); err != nil {
		return nil
	}
	return &collectedError{msg: fmt.Sprintf("datastore: %s was collected by gc on %s (%s), so it cannot be read any more; run the step that made it again (resume from it) to have it anew",
		what, c.Collected.Local().Format("2006-01-02 15:04"), c.Reason)}
}

// collectedError matches ErrCollected and fs.ErrNotExist.
type collectedError struct{ msg string }

func (e *collectedError) Error() string { return e.msg }

func (e *collectedError) Is(target error) bool {
	return target == ErrCollected || target == fs.ErrNotExist
}
