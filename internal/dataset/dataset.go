// Package dataset reads and writes partitioned Parquet datasets as Arrow
// record batches: planning (a manifest or a listing, partition pruning),
// streaming scans with projection and row-group skipping, atomic
// partitioned writes, and conversion between Arrow and slices of structs.
package dataset

import (
	"bytes"

	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"net/url"
	"path"
	"strings"
	"time"

	"stepwise.dev/stepwise/internal/warehouse"
)

// ManifestKey is the object that lists a dataset's files. A dataset
// written by Stepwise has one from its first write on; readers read only
// the files it lists, so a write is visible all at once when its
// manifest is stored, and files of an unfinished write are never read.
const ManifestKey = "_stepwise_manifest.json"

const manifestFormat = 1

// Manifest is the list of a dataset's files, one version of it.
type Manifest struct {
	Format      int         `json:"format"`
	Version     int64       `json:"version"` // 1 for the first write, +1 each write
	WriteID     string      `json:"write_id"`
	Written     time.Time   `json:"written"`
	PartitionBy []string    `json:"partition_by,omitempty"`
	Schema      []byte      `json:"schema"` // the Arrow schema, partition columns included, as an Arrow IPC stream with no batches
	Files       []FileEntry `json:"files"`
}

// FileEntry is one data file of a dataset.
type FileEntry struct {
	Path      string            `json:"path"` // relative to the dataset's root
	Size      int64             `json:"size"`
	Rows      int64             `json:"rows"`
	Partition map[string]string `json:"partition,omitempty"`
}

// ErrNoTable is returned (wrapped) for a location that holds no dataset.
var ErrNoTable = errors.New("no such table")

// readManifest returns the dataset's latest manifest, or nil when it has
// none.
func readManifest(ctx context.Context, fsys warehouse.FS) (*Manifest, error) {
	return readManifestKey(ctx, fsys, ManifestKey)
}

// readManifestKey reads the manifest stored under key, or nil when there
// is none.
func readManifestKey(ctx context.Context, fsys warehouse.FS, key string) (*Manifest, error) {
	f, err := fsys.Open(ctx, key)
	if errors.Is(err, warehouse.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, f.Size())
	if _, err := f.ReadAt(buf, 0); err != nil && f.Size() > 0 {
		return nil, fmt.Errorf("table %s: cannot read its manifest %s: %w", fsys, key, err)
	}
	var m Manifest
	if err := json.NewDecoder(bytes.NewReader(buf)).Decode(&m); err != nil {
		return nil, fmt.Errorf("table %s: its manifest %s is not valid JSON (%v); restore it or write the table again", fsys, key, err)
	}
	if m.Format != manifestFormat {
		return nil, fmt.Errorf("table %s: its manifest %s has format %d; this program reads format %d: upgrade it", fsys, key, m.Format, manifestFormat)
	}
	return &m, nil
}

// hidden says whether a path has a segment that readers skip: names that
// start with '_' or '.', as Spark and Hive do (markers, staging).
func hidden(p string) bool {
	for _, seg := range strings.Split(p, "/") {
		if strings.HasPrefix(seg, "_") || strings.HasPrefix(seg, ".") {
			return true
		}
	}
	return false
}

// ParsePartitionPath returns the Hive-style partition values of a file's
// path relative to the dataset root (region=eu/day=3/part-0.parquet gives
// region: eu, day: 3), with their order. Values are unescaped (%2F is /).
// A directory that is not key=value is an error naming it.
func ParsePartitionPath(p string) (keys []string, values map[string]string, err error) {
	dir := path.Dir(p)
	if dir == "." || dir == "" {
		return nil, nil, nil
	}
	values = map[string]string{}
	for _, seg := range strings.Split(dir, "/") {
		k, v, ok := strings.Cut(seg, "=")
		if !ok || k == "" {
			return nil, nil, fmt.Errorf("directory %q in %q is not a key=value partition", seg, p)
		}
		uk, err1 := url.PathUnescape(k)
		uv, err2 := url.PathUnescape(v)
		if err1 != nil || err2 != nil {
			return nil, nil, fmt.Errorf("partition %q in %q has a bad %%-escape", seg, p)
		}
		if _, dup := values[uk]; dup {
			return nil, nil, fmt.Errorf("partition column %q appears twice in %q", uk, p)
		}
		keys = append(keys, uk)
		values[uk] = uv
	}
	return keys, values, nil
}

// escapePart escapes a partition key or value for a directory name, so
// that any string round-trips through ParsePartitionPath.
func escapePart(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f || strings.IndexByte("/=%\\:*?\"<>|#'", c) >= 0 || (i == 0 && (c == '.' || c == '_')) {
			fmt.Fprintf(&b, "%%%02X", c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// plan lists the files a scan reads: the manifest's, or every Parquet file
// under the root when there is none, less those whose partition values
// fail the filter.
type plan struct {
	manifest    *Manifest
	partitionBy []string
	files       []FileEntry
	total       int // files before pruning
}

func makePlan(ctx context.Context, fsys warehouse.FS, f Filter, at AsOf) (*plan, error) {
	m, err := manifestAt(ctx, fsys, at)
	if err != nil {
		return nil, err
	}
	p := &plan{manifest: m}
	if m != nil && m.Version == 0 {
		return nil, fmt.Errorf("table %s: %w: its first write has not committed (or failed); wait for it or write the table", fsys, ErrNoTable)
	}
	if m != nil {
		p.partitionBy = m.PartitionBy
		p.files = m.Files
	} else if !at.IsZero() {
		return nil, fmt.Errorf("table %s has no %s (it was written by another tool), so it has no versions to pick from; read it without a version", fsys, ManifestKey)
	} else {
		objs, err := fsys.List(ctx, "")
		if err != nil {
			return nil, err
		}
		for _, o := range objs {
			if hidden(o.Key) || !strings.HasSuffix(o.Key, ".parquet") {
				continue
			}
			keys, vals, err := ParsePartitionPath(o.Key)
			if err != nil {
				return nil, fmt.Errorf("table %s: %w", fsys, err)
			}
			if len(p.files) == 0 {
				p.partitionBy = keys
			} else if !equalStrings(keys, p.partitionBy) {
				return nil, fmt.Errorf("table %s: %s is partitioned by %v, other files by %v; a dataset has one partitioning", fsys, o.Key, keys, p.partitionBy)
			}
			p.files = append(p.files, FileEntry{Path: o.Key, Size: o.Size, Rows: -1, Partition: vals})
		}
		if len(p.files) == 0 {
			return nil, fmt.Errorf("table %s: %w: no manifest (%s) and no Parquet files there; check the name or location", fsys, ErrNoTable, ManifestKey)
		}
	}
	p.total = len(p.files)
	isPart := map[string]bool{}
	for _, k := range p.partitionBy {
		isPart[k] = true
	}
	kept := p.files[:0:0]
	for _, fe := range p.files {
		ok := true
		for _, pr := range f {
			if isPart[pr.Column] && !pr.matchString(fe.Partition[pr.Column]) {
				ok = false
				break
			}
		}
		if ok {
			kept = append(kept, fe)
		}
	}
	p.files = kept
	return p, nil
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func (m *Manifest) arrowSchema() (*arrow.Schema, error) {
	r, err := ipc.NewReader(bytes.NewReader(m.Schema))
	if err != nil {
		return nil, fmt.Errorf("table: the manifest's schema cannot be read: %w", err)
	}
	defer r.Release()
	return r.Schema(), nil
}

func encodeSchema(s *arrow.Schema) ([]byte, error) {
	var b bytes.Buffer
	w := ipc.NewWriter(&b, ipc.WithSchema(s))
	if err := w.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// nullPartition is the directory value of a null, as Hive writes it.
const nullPartition = "__HIVE_DEFAULT_PARTITION__"
