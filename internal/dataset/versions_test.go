package dataset_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"stepwise.dev/stepwise/internal/dataset"
	"stepwise.dev/stepwise/internal/warehouse"
)

// TestVersions: a replaced version stays readable by number and by time,
// its files kept, until KeepVersions after it was replaced; then the next
// write deletes its copy and the files only it held. Versions that do not
// exist are refused with the versions there are.
func TestVersions(t *testing.T) {
	stores(t, func(t *testing.T, fsys warehouse.FS) {
		ctx := context.Background()
		b1, b2, b3 := eventBatch(0, 100), eventBatch(100, 50), eventBatch(150, 10)
		defer b1.Release()
		defer b2.Release()
		defer b3.Release()
		part := []string{"region"}
		before := time.Now()
		time.Sleep(5 * time.Millisecond)
		m1 := write(t, fsys, dataset.WriteOptions{PartitionBy: part}, b1)
		// As a dataset written before versions were kept: no copies. The
		// next write keeps the version it replaces all the same.
		objs, err := fsys.List(ctx, dataset.VersionsDir)
		if err != nil || len(objs) != 1 {
			t.Fatalf("after the first write: %d version copies (%v), want 1", len(objs), err)
		}
		if err := fsys.Delete(ctx, []string{objs[0].Key}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
		between := time.Now()
		time.Sleep(5 * time.Millisecond)
		m2 := write(t, fsys, dataset.WriteOptions{PartitionBy: part}, b2)
		m3 := write(t, fsys, dataset.WriteOptions{PartitionBy: part, Append: true}, b3)
		if m1.Version != 1 || m2.Version != 2 || m3.Version != 3 {
			t.Fatalf("versions %d, %d, %d; want 1, 2, 3", m1.Version, m2.Version, m3.Version)
		}
		for _, tc := range []struct {
			name    string
			at      dataset.AsOf
			rows    int
			version int64
		}{
			{"latest", dataset.AsOf{}, 60, 3},
			{"version 1, overwritten since", dataset.AsOf{Snapshot: 1}, 100, 1},
			{"version 2, appended to since", dataset.AsOf{Snapshot: 2}, 50, 2},
			{"version 3 by number", dataset.AsOf{Snapshot: 3}, 60, 3},
			{"as of a time between 1 and 2", dataset.AsOf{Time: between}, 100, 1},
			{"as of now", dataset.AsOf{Time: time.Now()}, 60, 3},
		} {
			rows, st := scanRows(t, fsys, dataset.ScanOptions{At: tc.at})
			if len(rows) != tc.rows || st.ManifestVer != tc.version {
				t.Errorf("%s: %d rows of version %d; want %d of version %d", tc.name, len(rows), st.ManifestVer, tc.rows, tc.version)
			}
		}
		for _, tc := range []struct {
			at   dataset.AsOf
			want string
		}{
			{dataset.AsOf{Snapshot: 9}, "has no version 9; it keeps versions 1 ("},
			{dataset.AsOf{Time: before}, "has no version committed at or before"},
		} {
			if _, err := dataset.Scan(ctx, fsys, dataset.ScanOptions{At: tc.at}); err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), fsys.String()) {
				t.Errorf("reading %+v: %v; want an error naming the table and saying %q", tc.at, err, tc.want)
			}
		}

		// A write after KeepVersions has passed drops every replaced
		// version, and the files no kept version holds.
		m4 := write(t, fsys, dataset.WriteOptions{PartitionBy: part, KeepVersions: time.Nanosecond}, b1)
		objs, err = fsys.List(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]bool{dataset.ManifestKey: true}
		for _, f := range m4.Files {
			want[f.Path] = true
		}
		var copies int
		for _, o := range objs {
			if strings.HasPrefix(o.Key, dataset.VersionsDir) {
				copies++
				continue
			}
			if !want[o.Key] {
				t.Errorf("%s is still stored after its versions expired", o.Key)
			}
		}
		if copies != 1 {
			t.Errorf("%d version copies kept, want 1 (the latest's)", copies)
		}
		if _, err := dataset.Scan(ctx, fsys, dataset.ScanOptions{At: dataset.AsOf{Snapshot: 1}}); err == nil || !strings.Contains(err.Error(), "only version 4") {
			t.Errorf("reading an expired version: %v", err)
		}
		if rows, _ := scanRows(t, fsys, dataset.ScanOptions{}); len(rows) != 100 {
			t.Errorf("latest after expiry: %d rows, want 100", len(rows))
		}
	})
}
