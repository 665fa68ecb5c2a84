package datastore_test

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"reflect"
	"testing"
	"time"

	"stepwise.dev/stepwise/internal/datastore"
)

// FuzzRunRecords reads arbitrary bytes as the run, end and tags records of
// a run: each read succeeds with a record of that run, which writes and
// reads back the same, or fails with ErrCorrupt or a message to upgrade.
func FuzzRunRecords(f *testing.F) {
	for _, seed := range []string{
		`{"flow":"F","run":"1","params":{"n":"5"},"started":"2026-02-01T10:00:00.5Z","max_splits":10000}`,
		`{"format":1,"flow":"F","run":"1","started":"2026-02-01T10:00:00Z","user":"ann","system_tags":["user:ann"],"code":{"git_dirty":true}}`,
		`{"format":1,"flow":"F","run":"1","status":"failed","ended":"2026-02-01T10:00:00Z"}`,
		`{"format":1,"flow":"F","run":"1","tags":["a","b"],"updated":"2026-02-01T10:00:00Z"}`,
		`{"format":2}`, `{`, `null`, `[]`, ``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ctx := context.Background()
		m := &memBackend{objs: map[string][]byte{}, times: map[string]time.Time{}}
		s := datastore.New(m)
		for _, key := range []string{datastore.RunObjectKey("F", "1"), datastore.RunEndObjectKey("F", "1"), datastore.RunTagsObjectKey("F", "1")} {
			if err := m.Put(ctx, key, bytes.NewReader(data), int64(len(data))); err != nil {
				t.Fatal(err)
			}
		}
		ok := func(err error) bool {
			if err == nil {
				return true
			}
			if errors.Is(err, fs.ErrNotExist) || (!errors.Is(err, datastore.ErrCorrupt) && !bytes.Contains([]byte(err.Error()), []byte("upgrade stepwise"))) {
				t.Fatalf("error neither ErrCorrupt nor upgrade: %v", err)
			}
			return false
		}
		r, err := s.GetRun(ctx, "F", "1")
		if ok(err) {
			if r.Flow != "F" || r.Run != "1" {
				t.Fatalf("GetRun returned the record of %s/%s", r.Flow, r.Run)
			}
			if !r.Started.IsZero() {
				if err := s.PutRun(ctx, r); err != nil {
					t.Fatalf("PutRun of what GetRun read: %v", err)
				}
				again, err := s.GetRun(ctx, "F", "1")
				if err != nil || !reflect.DeepEqual(again, r) {
					t.Fatalf("round trip: %+v, %v; want %+v", again, err, r)
				}
			}
		}
		if e, err := s.GetRunEnd(ctx, "F", "1"); ok(err) && (e.Flow != "F" || e.Run != "1") {
			t.Fatalf("GetRunEnd returned the end of %s/%s", e.Flow, e.Run)
		}
		if tg, err := s.GetRunTags(ctx, "F", "1"); ok(err) && (tg.Flow != "F" || tg.Run != "1") {
			t.Fatalf("GetRunTags returned the tags of %s/%s", tg.Flow, tg.Run)
		}
	})
}
