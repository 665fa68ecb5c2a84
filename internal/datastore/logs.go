package datastore

import (
	"bytes"
	"context"
	"fmt"
	"io"
)

// Logs are kept as numbered chunks written while a task runs, so that a
// task that is killed keeps what it printed:
//
//	logs/<Flow>/<Run>/<Step>/<Task>/<attempt>/<stdout|stderr>/<00000000...>

// LogPrefix is the key prefix of one stream of one task attempt.
func LogPrefix(p TaskPath, attempt int, stream string) string {
	return fmt.Sprintf("logs/%s/%s/%s/%s/%d/%s/", p.Flow, p.Run, p.Step, p.Task, attempt, stream)
}

// LogChunkKey is the key of chunk seq of a stream.
func LogChunkKey(prefix string, seq int) string { return fmt.Sprintf("%s%08d", prefix, seq) }

// ReadLog returns one stream of one task attempt, all chunks in order.
// The logs of a run that gc collected give an error that says so and
// matches ErrCollected.
func (s *Store) ReadLog(ctx context.Context, p TaskPath, attempt int, stream string) ([]byte, error) {
	keys, err := s.Backend().List(ctx, LogPrefix(p, attempt, stream))
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 && checkSegments("run", "flow name", p.Flow, "run id", p.Run) == nil {
		if cerr := s.collectedErr(ctx, CollectedLogsKey(p.Flow, p.Run), "the output of run "+p.Flow+"/"+p.Run); cerr != nil {
			return nil, cerr
		}
	}
	var buf bytes.Buffer
	for _, k := range keys {
		r, _, err := s.Backend().Get(ctx, k)
		if err != nil {
			return nil, err
		}
		_, err = io.Copy(&buf, r)
		r.Close()
		if err != nil {
			return nil, fmt.Errorf("datastore: cannot read log chunk %s: %w", k, err)
		}
	}
	return buf.Bytes(), nil
}
