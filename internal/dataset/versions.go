package dataset

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"stepwise.dev/stepwise/internal/warehouse"
)

// VersionsDir holds a copy of every kept version of a dataset's manifest,
// one object per version, named by its number and the time it was
// committed (so that a listing tells which versions to keep without
// reading them). ManifestKey is the latest of them.
const VersionsDir = "_stepwise_versions/"

// DefaultKeepVersions is how long a version stays readable after a later
// one replaced it (as long as Iceberg keeps snapshots by default).
const DefaultKeepVersions = 5 * 24 * time.Hour

const versionTime = "20060102T150405.000000000Z"

func versionKey(m *Manifest) string {
	return fmt.Sprintf("%s%020d-%s.json", VersionsDir, m.Version, m.Written.UTC().Format(versionTime))
}

// keptVersion is one entry of VersionsDir.
type keptVersion struct {
	key     string
	version int64
	written time.Time
}

// listVersions returns the kept versions, oldest first.
func listVersions(ctx context.Context, fsys warehouse.FS) ([]keptVersion, error) {
	objs, err := fsys.List(ctx, VersionsDir)
	if err != nil {
		return nil, fmt.Errorf("table %s: cannot list its versions: %w", fsys, err)
	}
	var out []keptVersion
	for _, o := range objs {
		name := strings.TrimSuffix(path.Base(o.Key), ".json")
		num, at, ok := strings.Cut(name, "-")
		v, err1 := strconv.ParseInt(num, 10, 64)
		t, err2 := time.Parse(versionTime, at)
		if !ok || err1 != nil || err2 != nil {
			continue // not ours
		}
		out = append(out, keptVersion{key: o.Key, version: v, written: t})
	}
	slices.SortFunc(out, func(a, b keptVersion) int { return cmp.Compare(a.version, b.version) })
	return out, nil
}

// putVersion stores m's copy in VersionsDir.
func putVersion(ctx context.Context, fsys warehouse.FS, m *Manifest) error {
	data, err := encodeManifest(m)
	if err != nil {
		return err
	}
	if err := fsys.Put(ctx, versionKey(m), bytes.NewReader(data), int64(len(data))); err != nil {
		return fmt.Errorf("table %s: cannot store version %d of its manifest: %w", fsys, m.Version, err)
	}
	return nil
}

// manifestAt returns the manifest of the version at picks: the latest for
// a zero at, else the version numbered at.Snapshot, or the last one
// committed at or before at.Time.
func manifestAt(ctx context.Context, fsys warehouse.FS, at AsOf) (*Manifest, error) {
	cur, err := readManifest(ctx, fsys)
	if err != nil || cur == nil || at.IsZero() || cur.Version == 0 {
		return cur, err
	}
	if at.Snapshot == cur.Version || at.Snapshot == 0 && !cur.Written.After(at.Time) {
		return cur, nil
	}
	kept, err := listVersions(ctx, fsys)
	if err != nil {
		return nil, err
	}
	for i := len(kept) - 1; i >= 0; i-- {
		k := kept[i]
		if k.version >= cur.Version || at.Snapshot != 0 && k.version != at.Snapshot || at.Snapshot == 0 && k.written.After(at.Time) {
			continue
		}
		m, err := readManifestKey(ctx, fsys, k.key)
		if err != nil {
			return nil, err
		}
		if m != nil {
			return m, nil
		}
	}
	what := fmt.Sprintf("no version %d", at.Snapshot)
	if at.Snapshot == 0 {
		what = "no version committed at or before " + at.Time.UTC().Format(time.RFC3339Nano)
	}
	return nil, fmt.Errorf("table %s has %s; it keeps %s (a replaced version stays readable for %v by default, WriteOptions.KeepVersions)",
		fsys, what, keptText(kept, cur), DefaultKeepVersions)
}

func keptText(kept []keptVersion, cur *Manifest) string {
	first := cur
	for _, k := range kept {
		if k.version < first.Version {
			return fmt.Sprintf("versions %d (committed %s) to %d (committed %s)", k.version, k.written.Format(time.RFC3339), cur.Version, cur.Written.UTC().Format(time.RFC3339))
		}
	}
	return fmt.Sprintf("only version %d (committed %s)", cur.Version, cur.Written.UTC().Format(time.RFC3339))
}

// expire drops the versions replaced more than keep ago (all but the
// latest when keep is negative), and the files only they held. prev is
// the version the write replaced, kept as a version if it has no copy in
// VersionsDir yet (a dataset written before versions were kept). Errors
// leave garbage at worst: a reader never needs what is deleted.
func expire(ctx context.Context, fsys warehouse.FS, latest, prev *Manifest, keep time.Duration) error {
	kept, err := listVersions(ctx, fsys)
	if err != nil {
		return err
	}
	if prev != nil && prev.Version > 0 && !slices.ContainsFunc(kept, func(k keptVersion) bool { return k.version == prev.Version }) {
		if keep >= 0 {
			if err := putVersion(ctx, fsys, prev); err != nil {
				return err
			}
		}
		i, _ := slices.BinarySearchFunc(kept, prev.Version, func(k keptVersion, v int64) int { return cmp.Compare(k.version, v) })
		kept = slices.Insert(kept, i, keptVersion{key: versionKey(prev), version: prev.Version, written: prev.Written})
	}
	// Version i was replaced when version i+1 was committed; the latest
	// is never dropped, and what is kept is always a run of the newest.
	cut := time.Now().Add(-keep)
	first := len(kept) // the oldest version kept
	for i := len(kept) - 1; i >= 0; i-- {
		if kept[i].version >= latest.Version {
			continue
		}
		next := latest.Written
		if i+1 < len(kept) && kept[i+1].version < latest.Version {
			next = kept[i+1].written
		}
		if keep < 0 || next.Before(cut) {
			break
		}
		first = i
	}
	var dropped []keptVersion
	for _, k := range kept {
		if k.version < latest.Version && (first == len(kept) || k.version < kept[first].version) {
			dropped = append(dropped, k)
		}
	}
	if len(dropped) == 0 {
		return nil
	}
	// A file appears in a run of consecutive versions, so one that a
	// dropped version holds and any kept version holds is in the oldest
	// kept one.
	// prev is at hand; the others are read.
	load := func(k keptVersion) (*Manifest, error) {
		if prev != nil && k.version == prev.Version {
			return prev, nil
		}
		return readManifestKey(ctx, fsys, k.key)
	}
	oldest := latest
	if first < len(kept) && kept[first].version < latest.Version {
		if oldest, err = load(kept[first]); err != nil || oldest == nil {
			return fmt.Errorf("table %s: cannot read version %d to expire older ones: %w", fsys, kept[first].version, cmp.Or(err, warehouse.ErrNotFound))
		}
	}
	live := map[string]bool{}
	for _, f := range oldest.Files {
		live[f.Path] = true
	}
	var keys, files []string
	for _, k := range dropped {
		keys = append(keys, k.key)
		m, err := load(k)
		if err != nil {
			return err
		}
		if m == nil {
			continue
		}
		for _, f := range m.Files {
			if !live[f.Path] {
				live[f.Path] = true // once
				files = append(files, f.Path)
			}
		}
	}
	// The versions first, then their files: a failure between leaves
	// only unreferenced files.
	if err := fsys.Delete(ctx, keys); err != nil {
		return err
	}
	return fsys.Delete(ctx, files)
}
