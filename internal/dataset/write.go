package dataset

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/compute"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"stepwise.dev/stepwise/internal/warehouse"
)

// WriteOptions shape a write.
type WriteOptions struct {
	// PartitionBy names the partition columns, outermost first: each
	// distinct combination of their values is a key=value/... directory,
	// and the columns are not stored in the files. They must be strings,
	// integers or booleans.
	PartitionBy []string
	// Append adds the write's files to the dataset's; otherwise the write
	// replaces them. Either way the version before stays readable
	// (ScanOptions.At) for KeepVersions.
	Append bool
	// KeepVersions is how long a version stays readable after a later
	// write replaced it (default DefaultKeepVersions, 5 days); its files
	// are deleted by the first write after that. Negative keeps only the
	// latest version and deletes replaced files at once, which fails
	// readers still reading them.
	KeepVersions time.Duration
	// RowGroupRows is the most rows per row group (default 1,048,576):
	// smaller groups let filters skip more, larger ones read faster.
	RowGroupRows int64
	// RowGroupBytes ends a row group once its encoded columns reach this
	// size (default 128 MiB), whatever its rows; the writer holds one row
	// group per partition being written in memory.
	RowGroupBytes int64
	// FileRows is the most rows per file (default 4,194,304).
	FileRows int64
	// TempDir holds files while they are written (default os.TempDir()).
	TempDir string
}

// Writer writes one partitioned dataset version. Nothing it writes is
// visible to readers until Commit stores the new manifest; Abort (or a
// failed Commit) deletes what it wrote.
type Writer struct {
	fsys      warehouse.FS
	schema    *arrow.Schema // of the batches written, partition columns included
	data      *arrow.Schema // stored in the files
	o         WriteOptions
	id        string
	partIdx   []int
	dataIdx   []int
	parts     map[string]*partFile
	order     []string // partition keys in the order first seen
	files     []FileEntry
	put       []string // keys stored so far, for Abort
	created   bool     // this write stored the dataset's first (empty) manifest
	base      *Manifest
	done      bool
	props     *parquet.WriterProperties
	arrowProp pqarrow.ArrowWriterProperties
}

type partFile struct {
	dir    string
	values map[string]string
	n      int // file sequence in this partition
	tmp    *os.File
	w      *pqarrow.FileWriter
	rows   int64
	rgRows int64
}

// NewWriter starts a write of batches of schema into the dataset under
// fsys. A location with Parquet files but no manifest (written by
// another tool) is refused: a manifest would hide its files.
func NewWriter(ctx context.Context, fsys warehouse.FS, schema *arrow.Schema, o WriteOptions) (*Writer, error) {
	if o.RowGroupRows <= 0 {
		o.RowGroupRows = 1 << 20
	}
	if o.RowGroupBytes <= 0 {
		o.RowGroupBytes = 128 << 20
	}
	if o.FileRows <= 0 {
		o.FileRows = 4 << 20
	}
	w := &Writer{fsys: fsys, schema: schema, o: o, parts: map[string]*partFile{}}
	var b [6]byte
	rand.Read(b[:])
	w.id = time.Now().UTC().Format("20060102T150405") + "-" + hex.EncodeToString(b[:])
	for _, k := range o.PartitionBy {
		idx := schema.FieldIndices(k)
		if len(idx) == 0 {
			return nil, fmt.Errorf("table %s: cannot partition by %q: the batches have no such column (columns: %s)", fsys, k, fieldNames(schema))
		}
		if slices.Contains(w.partIdx, idx[0]) {
			return nil, fmt.Errorf("table %s: partition column %q is named twice", fsys, k)
		}
		switch schema.Field(idx[0]).Type.ID() {
		case arrow.STRING, arrow.LARGE_STRING, arrow.BOOL, arrow.INT8, arrow.INT16, arrow.INT32, arrow.INT64, arrow.UINT8, arrow.UINT16, arrow.UINT32, arrow.UINT64:
		default:
			return nil, fmt.Errorf("table %s: cannot partition by %q of type %s; partition columns are strings, integers or booleans", fsys, k, schema.Field(idx[0]).Type)
		}
		w.partIdx = append(w.partIdx, idx[0])
	}
	var dataFields []arrow.Field
	for i, f := range schema.Fields() {
		if !slices.Contains(w.partIdx, i) {
			w.dataIdx = append(w.dataIdx, i)
			dataFields = append(dataFields, f)
		}
	}
	md := schema.Metadata()
	w.data = arrow.NewSchema(dataFields, &md)
	for _, f := range dataFields {
		if _, err := pqarrow.ToParquet(arrow.NewSchema([]arrow.Field{f}, nil), nil, pqarrow.DefaultWriterProps()); err != nil {
			return nil, fmt.Errorf("table %s: column %q of type %s cannot be stored in Parquet by the Arrow library (%v); convert it (a duration to int64, ...)", fsys, f.Name, f.Type, err)
		}
	}
	// Snappy pages of 1 MiB with statistics. Dictionary encoding only for
	// strings and binary: a row group of numbers rarely holds more than
	// the 1 MiB dictionary allows, so a column of distinct numbers would
	// be stored as a dictionary plus indices, larger and slower to read
	// than plain values.
	props := []parquet.WriterProperty{parquet.WithCompression(compress.Codecs.Snappy), parquet.WithStats(true),
		parquet.WithMaxRowGroupLength(o.RowGroupRows), parquet.WithAllocator(memory.DefaultAllocator),
		parquet.WithDictionaryDefault(false)}
	for _, f := range dataFields {
		switch f.Type.ID() {
		case arrow.STRING, arrow.LARGE_STRING, arrow.STRING_VIEW, arrow.BINARY, arrow.LARGE_BINARY, arrow.BINARY_VIEW, arrow.DICTIONARY:
			props = append(props, parquet.WithDictionaryFor(f.Name, true))
		}
	}
	w.props = parquet.NewWriterProperties(props...)
	w.arrowProp = pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema())

	m, err := readManifest(ctx, fsys)
	if err != nil {
		return nil, err
	}
	if m == nil {
		objs, err := fsys.List(ctx, "")
		if err != nil {
			return nil, err
		}
		for _, obj := range objs {
			if strings.HasSuffix(obj.Key, ".parquet") && !hidden(obj.Key) {
				return nil, fmt.Errorf("table %s holds Parquet files (%s, ...) but no %s: it was written by another tool; write to another location", fsys, obj.Key, ManifestKey)
			}
		}
		// An empty manifest first, so that readers never list this
		// write's files before it commits.
		m = &Manifest{Format: manifestFormat, Version: 0, WriteID: w.id, Written: time.Now().UTC(), PartitionBy: o.PartitionBy}
		if m.Schema, err = encodeSchema(schema); err != nil {
			return nil, err
		}
		if err := putManifest(ctx, fsys, m); err != nil {
			return nil, err
		}
		w.created = true
	} else if o.Append && m.Version > 0 {
		old, err := m.arrowSchema()
		if err != nil {
			return nil, err
		}
		if err := sameSchema(old, schema); err != nil {
			return nil, fmt.Errorf("table %s: cannot append: %w; write without Append to replace the table", fsys, err)
		}
		if !equalStrings(m.PartitionBy, o.PartitionBy) {
			return nil, fmt.Errorf("table %s: cannot append: it is partitioned by %v, this write by %v", fsys, m.PartitionBy, o.PartitionBy)
		}
	}
	w.base = m
	return w, nil
}

func sameSchema(old, now *arrow.Schema) error {
	for _, f := range old.Fields() {
		idx := now.FieldIndices(f.Name)
		if len(idx) == 0 {
			return fmt.Errorf("the table has column %q (%s), the batches do not", f.Name, f.Type)
		}
		if g := now.Field(idx[0]).Type; !arrow.TypeEqual(g, f.Type) {
			return fmt.Errorf("column %q is %s in the table, %s in the batches", f.Name, f.Type, g)
		}
	}
	for _, f := range now.Fields() {
		if len(old.FieldIndices(f.Name)) == 0 {
			return fmt.Errorf("the batches have column %q (%s), the table does not", f.Name, f.Type)
		}
	}
	return nil
}

// putManifest publishes m as the latest version, after its copy in
// VersionsDir (version 0, the placeholder of a first write, has none).
func putManifest(ctx context.Context, fsys warehouse.FS, m *Manifest) error {
	if m.Version > 0 {
		if err := putVersion(ctx, fsys, m); err != nil {
			return err
		}
	}
	data, err := encodeManifest(m)
	if err != nil {
		return err
	}
	if err := fsys.Put(ctx, ManifestKey, bytes.NewReader(data), int64(len(data))); err != nil {
		if m.Version > 0 {
			// Not published: its copy must not stand for the version.
			_ = fsys.Delete(context.WithoutCancel(ctx), []string{versionKey(m)})
		}
		return fmt.Errorf("table %s: cannot store its manifest: %w", fsys, err)
	}
	return nil
}

func encodeManifest(m *Manifest) ([]byte, error) {
	return json.MarshalIndent(m, "", " ")
}

// partValue is a partition column's value at row i as directory text.
func partValue(a arrow.Array, i int) string {
	if a.IsNull(i) {
		return nullPartition
	}
	switch c := a.(type) {
	case *array.String:
		return c.Value(i)
	case *array.LargeString:
		return c.Value(i)
	case *array.Boolean:
		return strconv.FormatBool(c.Value(i))
	case *array.Int8:
		return strconv.FormatInt(int64(c.Value(i)), 10)
	case *array.Int16:
		return strconv.FormatInt(int64(c.Value(i)), 10)
	case *array.Int32:
		return strconv.FormatInt(int64(c.Value(i)), 10)
	case *array.Int64:
		return strconv.FormatInt(c.Value(i), 10)
	case *array.Uint8:
		return strconv.FormatUint(uint64(c.Value(i)), 10)
	case *array.Uint16:
		return strconv.FormatUint(uint64(c.Value(i)), 10)
	case *array.Uint32:
		return strconv.FormatUint(uint64(c.Value(i)), 10)
	case *array.Uint64:
		return strconv.FormatUint(c.Value(i), 10)
	}
	return a.ValueStr(i)
}

// Write adds a batch, split by partition.
func (w *Writer) Write(ctx context.Context, rec arrow.RecordBatch) (err error) {
	if w.done {
		return errors.New("table: write after Commit or Abort")
	}
	if !rec.Schema().Equal(w.schema) {
		if err := sameSchema(w.schema, rec.Schema()); err != nil {
			return fmt.Errorf("table %s: a batch does not match the write's schema: %w", w.fsys, err)
		}
		return fmt.Errorf("table %s: a batch's schema differs from the first batch's (column order or metadata)", w.fsys)
	}
	n := int(rec.NumRows())
	if n == 0 {
		return nil
	}
	if len(w.partIdx) == 0 {
		return w.writePart(ctx, "", nil, rec, nil)
	}
	// Group the rows by partition, keeping first-seen order.
	groups := map[string][]int32{}
	var keys []string
	vals := map[string][]string{}
	var sb strings.Builder
	row := make([]string, len(w.partIdx))
	for i := 0; i < n; i++ {
		sb.Reset()
		for j, c := range w.partIdx {
			row[j] = partValue(rec.Column(c), i)
			sb.WriteString(row[j])
			sb.WriteByte(0)
		}
		k := sb.String()
		if _, ok := groups[k]; !ok {
			keys = append(keys, k)
			vals[k] = slices.Clone(row)
		}
		groups[k] = append(groups[k], int32(i))
	}
	for _, k := range keys {
		if err := w.writePart(ctx, k, vals[k], rec, groups[k]); err != nil {
			return err
		}
	}
	return nil
}

// writePart writes the rows of rec at idx (all when nil) to the
// partition's current file.
func (w *Writer) writePart(ctx context.Context, key string, values []string, rec arrow.RecordBatch, idx []int32) error {
	pf := w.parts[key]
	if pf == nil {
		pf = &partFile{values: map[string]string{}}
		for i, k := range w.o.PartitionBy {
			pf.values[k] = values[i]
		}
		dirVals := make([]string, len(values))
		for i, v := range values {
			if v == nullPartition {
				dirVals[i] = v
			} else {
				dirVals[i] = escapePart(v)
			}
		}
		pf.dir = partitionDirRaw(w.o.PartitionBy, dirVals)
		w.parts[key] = pf
		w.order = append(w.order, key)
	}
	cols := make([]arrow.Array, len(w.dataIdx))
	rows := rec.NumRows()
	if idx != nil {
		contiguous := idx[len(idx)-1]-idx[0] == int32(len(idx)-1)
		for i, c := range w.dataIdx {
			var a arrow.Array
			if contiguous {
				a = array.NewSlice(rec.Column(c), int64(idx[0]), int64(idx[0])+int64(len(idx)))
			} else {
				ib := array.NewInt32Builder(memory.DefaultAllocator)
				ib.AppendValues(idx, nil)
				ia := ib.NewInt32Array()
				ib.Release()
				var err error
				a, err = compute.TakeArray(ctx, rec.Column(c), ia)
				ia.Release()
				if err != nil {
					for _, p := range cols[:i] {
						p.Release()
					}
					return fmt.Errorf("table %s: splitting a batch by partition: %w", w.fsys, err)
				}
			}
			cols[i] = a
		}
		rows = int64(len(idx))
	} else {
		for i, c := range w.dataIdx {
			a := rec.Column(c)
			a.Retain()
			cols[i] = a
		}
	}
	part := array.NewRecordBatch(w.data, cols, rows)
	for _, a := range cols {
		a.Release()
	}
	defer part.Release()
	// Into files of at most FileRows rows and groups of RowGroupRows.
	for off := int64(0); off < rows; {
		if pf.w == nil {
			if err := w.openFile(pf); err != nil {
				return err
			}
		}
		if pf.rgRows >= w.o.RowGroupRows {
			pf.w.NewBufferedRowGroup()
			pf.rgRows = 0
		}
		take := min(rows-off, w.o.FileRows-pf.rows, w.o.RowGroupRows-pf.rgRows)
		s := part.NewSlice(off, off+take)
		err := pf.w.WriteBuffered(s)
		s.Release()
		if err != nil {
			return fmt.Errorf("table %s: writing %s: %w", w.fsys, pf.dir, err)
		}
		off += take
		pf.rows += take
		pf.rgRows += take
		if pf.w.RowGroupTotalBytesWritten() >= w.o.RowGroupBytes {
			pf.rgRows = w.o.RowGroupRows // full: the next rows start a new group
		}
		if pf.rows >= w.o.FileRows {
			if err := w.finishFile(ctx, pf); err != nil {
				return err
			}
		}
	}
	return nil
}

func partitionDirRaw(keys, dirVals []string) string {
	var b strings.Builder
	for i, k := range keys {
		b.WriteString(escapePart(k))
		b.WriteByte('=')
		b.WriteString(dirVals[i])
		b.WriteByte('/')
	}
	return b.String()
}

func (w *Writer) openFile(pf *partFile) error {
	tmp, err := os.CreateTemp(w.o.TempDir, "stepwise-table-*.parquet")
	if err != nil {
		return fmt.Errorf("table %s: cannot create a temporary file: %w", w.fsys, err)
	}
	fw, err := pqarrow.NewFileWriter(w.data, tmp, w.props, w.arrowProp)
	if err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("table %s: %w", w.fsys, err)
	}
	pf.tmp, pf.w, pf.rows, pf.rgRows = tmp, fw, 0, 0
	return nil
}

// finishFile closes a partition's current file and stores it.
func (w *Writer) finishFile(ctx context.Context, pf *partFile) error {
	fw, tmp := pf.w, pf.tmp
	pf.w, pf.tmp = nil, nil
	defer os.Remove(tmp.Name())
	rows := pf.rows
	if err := fw.Close(); err != nil { // closes tmp too
		return fmt.Errorf("table %s: finishing a file of %s: %w", w.fsys, pf.dir, err)
	}
	f, err := os.Open(tmp.Name())
	if err != nil {
		return fmt.Errorf("table %s: %w", w.fsys, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	key := fmt.Sprintf("%spart-%s-%05d.parquet", pf.dir, w.id, pf.n)
	pf.n++
	w.put = append(w.put, key) // before the Put: a failed one may leave a part behind
	if err := w.fsys.Put(ctx, key, f, st.Size()); err != nil {
		return err
	}
	w.files = append(w.files, FileEntry{Path: key, Size: st.Size(), Rows: rows, Partition: pf.values})
	return nil
}

// Commit stores the files still open and publishes the new manifest: the
// write becomes visible at once. On error everything written is deleted.
func (w *Writer) Commit(ctx context.Context) (*Manifest, error) {
	if w.done {
		return nil, errors.New("table: Commit after Commit or Abort")
	}
	m, err := w.commit(ctx)
	if err != nil {
		return nil, errors.Join(err, w.Abort(ctx))
	}
	w.done = true
	return m, nil
}

func (w *Writer) commit(ctx context.Context) (*Manifest, error) {
	for _, k := range w.order {
		if pf := w.parts[k]; pf.w != nil {
			if err := w.finishFile(ctx, pf); err != nil {
				return nil, err
			}
		}
	}
	cur, err := readManifest(ctx, w.fsys)
	if err != nil {
		return nil, err
	}
	if cur == nil || cur.Version != w.base.Version || cur.WriteID != w.base.WriteID {
		return nil, fmt.Errorf("table %s changed while this write ran (another write committed or removed it); write again", w.fsys)
	}
	m := &Manifest{Format: manifestFormat, Version: cur.Version + 1, WriteID: w.id, Written: time.Now().UTC(), PartitionBy: w.o.PartitionBy}
	if m.Schema, err = encodeSchema(w.schema); err != nil {
		return nil, err
	}
	if w.o.Append {
		m.Files = append(slices.Clone(cur.Files), w.files...)
	} else {
		m.Files = w.files
	}
	if m.Files == nil {
		m.Files = []FileEntry{}
	}
	if err := putManifest(ctx, w.fsys, m); err != nil {
		return nil, err
	}
	w.put = nil // published: Abort must not delete them now
	keep := w.o.KeepVersions
	if keep == 0 {
		keep = DefaultKeepVersions
	}
	if err := expire(ctx, w.fsys, m, cur, keep); err != nil {
		// The new version is published; what was not expired is only
		// kept longer, and the next write tries again.
		slog.WarnContext(ctx, "table: old versions not expired", "table", w.fsys.String(), "err", err)
	}
	return m, nil
}

// Abort deletes what the write stored and its temporary files. Readers
// never saw them.
func (w *Writer) Abort(ctx context.Context) error {
	ctx = context.WithoutCancel(ctx)
	w.done = true
	for _, k := range w.order {
		if pf := w.parts[k]; pf.w != nil {
			pf.w.Close()
			os.Remove(pf.tmp.Name())
			pf.w, pf.tmp = nil, nil
		}
	}
	var errs []error
	if len(w.put) > 0 {
		if err := w.fsys.Delete(ctx, w.put); err != nil {
			errs = append(errs, fmt.Errorf("table %s: the failed write's files could not all be deleted (readers do not see them): %w", w.fsys, err))
		}
		w.put = nil
	}
	if w.created {
		if cur, err := readManifest(ctx, w.fsys); err == nil && cur != nil && cur.Version == 0 && cur.WriteID == w.id {
			if err := w.fsys.Delete(ctx, []string{ManifestKey}); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}
