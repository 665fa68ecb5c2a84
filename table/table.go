// Package table gives steps tables from the warehouse: partitioned
// Parquet datasets on S3 or local disk, by location or by name through a
// catalog (a directory of datasets, or Apache Iceberg), read as streams of
// Arrow record batches with column projection, partition pruning and
// row-group skipping, and written atomically.
//
//	r, err := table.Open(ctx, "warehouse.user_events", &table.ReadOptions{
//		Columns: []string{"user", "amount"},
//		Filter:  "day >= 20240101 and region = 'eu'",
//	})
//	defer r.Close()
//	for r.Next() {
//		rec := r.RecordBatch() // an arrow.RecordBatch, valid until the next Next
//		...
//	}
//	err = r.Err()
//
// A name is a location when it holds a "/" or starts with ".":
// s3://bucket/prefix/ (with the S3 access of
// stepwise.dev/stepwise/backend/s3, imported by the flow) or a directory.
// Any other name resolves through the catalog of ReadOptions.Catalog or
// $STEPWISE_CATALOG.
//
// Every read a step makes is recorded in its task's record (the table's
// location, format and version, the filter and columns, files and rows):
// 'stepwise dump FLOW/RUN/STEP/TASK' shows it, and the table can be read
// again at that version with ReadOptions.Snapshot (a Parquet dataset keeps
// a replaced version for WriteOptions.KeepVersions, 5 days by default).
//
// It is a package of its own, not part of package stepwise, because the
// Arrow library's Parquet code adds about 43 MB to a binary: flows that do
// not read tables do not carry it.
package table

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"os"
	"reflect"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"stepwise.dev/stepwise/internal/dataset"
	"stepwise.dev/stepwise/internal/datastore"
	"stepwise.dev/stepwise/internal/tableread"
	"stepwise.dev/stepwise/internal/warehouse"
)

// EnvCatalog is the environment variable naming the catalog that table
// names resolve through: a directory or s3://bucket/prefix (a directory of
// Parquet datasets, table a.b at a/b/), or an Iceberg SQL catalog
// (iceberg+sqlite:///path/catalog.db?warehouse=/path/warehouse or
// iceberg+postgres://user:pass@host/db?warehouse=...).
const EnvCatalog = "STEPWISE_CATALOG"

// ErrNotFound is returned (wrapped) for a table that does not exist.
var ErrNotFound = dataset.ErrNoTable

// MismatchError says that a column cannot be read into a struct field: it
// names the column, the field and both types.
type MismatchError = dataset.MismatchError

// ReadOptions choose what a read returns. The zero value reads every
// column of every row of the current version.
type ReadOptions struct {
	// Columns to return, in this order; nil for all.
	Columns []string
	// Filter keeps the rows that satisfy it: comparisons joined by "and",
	// `column op literal` (op = != < <= > >=) or `column in (a, b)`, with
	// numbers and 'quoted strings'. Comparisons of partition columns skip
	// whole files unopened; those of other columns skip row groups by
	// their statistics, then drop the rows that fail.
	Filter string
	// Snapshot reads an older version: an Iceberg table's snapshot id, or
	// a Parquet dataset's version number (Version.Version of its write).
	Snapshot int64
	// AsOf reads the table as it was at this time: the last snapshot or
	// version committed at or before it.
	AsOf time.Time
	// Catalog overrides $STEPWISE_CATALOG.
	Catalog string
	// Concurrency is how many files are read at once (default 4). On S3
	// each file has up to 8 GETs in flight, each of up to a row group.
	Concurrency int
}

// Version is one version of a table: the one a read sees or a write made.
type Version struct {
	Name     string // as given
	Location string // the dataset's root, or the Iceberg table's location
	Format   string // "parquet" or "iceberg"
	// Version is the Parquet dataset's manifest version (1 for its first
	// write), or the Iceberg snapshot id.
	Version int64
	Time    time.Time // when it was committed
}

// Reader streams a table's record batches. Call Next until it returns
// false, then Err; Close it when done.
type Reader struct {
	s       dataset.Stream
	v       Version
	entry   *tableread.Entry
	nameFor string
}

// isLocation says whether a name is a location rather than a catalog name.
func isLocation(name string) bool {
	return strings.Contains(name, "/") || strings.HasPrefix(name, ".")
}

func resolve(ctx context.Context, name, catalog string, forWrite bool) (dataset.Table, error) {
	if isLocation(name) {
		fsys, err := warehouse.Open(ctx, name)
		if err != nil {
			return nil, err
		}
		return dataset.Parquet{FS: fsys}, nil
	}
	if catalog == "" {
		catalog = os.Getenv(EnvCatalog)
	}
	if catalog == "" {
		return nil, fmt.Errorf("table %q: no catalog to look it up in; set %s (a directory, s3://bucket/prefix or an Iceberg catalog) or give a location (s3://bucket/path/ or a directory)", name, EnvCatalog)
	}
	cat, err := dataset.OpenCatalog(ctx, catalog)
	if err != nil {
		return nil, err
	}
	t, err := cat.Table(ctx, name, forWrite)
	if err != nil {
		return nil, fmt.Errorf("table %q (catalog %s): %w", name, cat, err)
	}
	return t, nil
}

// Open starts reading a table by name or location.
func Open(ctx context.Context, name string, o *ReadOptions) (*Reader, error) {
	if o == nil {
		o = &ReadOptions{}
	}
	f, err := dataset.ParseFilter(o.Filter)
	if err != nil {
		return nil, err
	}
	t, err := resolve(ctx, name, o.Catalog, false)
	if err != nil {
		return nil, err
	}
	s, v, err := t.Scan(ctx, dataset.ScanOptions{Columns: o.Columns, Filter: f, Concurrency: o.Concurrency},
		dataset.AsOf{Snapshot: o.Snapshot, Time: o.AsOf})
	if err != nil {
		if !strings.Contains(err.Error(), name) {
			err = fmt.Errorf("table %q: %w", name, err)
		}
		return nil, err
	}
	r := &Reader{s: s, v: Version{Name: name, Location: v.Location, Format: v.Format, Version: v.Version, Time: v.Time}}
	files, _ := s.Progress()
	r.entry = tableread.Record(ctx, datastore.TableRead{Name: name, Location: v.Location, Format: v.Format, Version: v.Version,
		Time: v.Time, Filter: o.Filter, Columns: o.Columns, Files: files})
	return r, nil
}

// Schema is the schema of the batches.
func (r *Reader) Schema() *arrow.Schema { return r.s.Schema() }

// Next moves to the next batch.
func (r *Reader) Next() bool {
	ok := r.s.Next()
	files, rows := r.s.Progress()
	r.entry.Update(files, rows)
	return ok
}

// RecordBatch is the current batch, valid until the next call to Next
// (Retain it to keep it). Its memory is then reused for later batches, so
// values taken from it without copying (a string, Int64Values) are valid
// only as long as the batch; copy them to keep them.
func (r *Reader) RecordBatch() arrow.RecordBatch { return r.s.RecordBatch() }

// Err is what stopped the read early, if anything.
func (r *Reader) Err() error { return r.s.Err() }

// Close stops the read and releases its memory.
func (r *Reader) Close() error { return r.s.Close() }

// Version is the table version being read.
func (r *Reader) Version() Version { return r.v }

// All iterates over the batches, each valid during its iteration; the
// last pair holds the error that stopped the read, if any. It closes the
// reader.
func (r *Reader) All() iter.Seq2[arrow.RecordBatch, error] {
	return func(yield func(arrow.RecordBatch, error) bool) {
		defer r.Close()
		for r.Next() {
			if !yield(r.RecordBatch(), nil) {
				return
			}
		}
		if err := r.Err(); err != nil {
			yield(nil, err)
		}
	}
}

// Read reads a whole table into a slice of structs: for small data. A
// field's column is its `table:"name"` tag, else its name in snake_case;
// a column of a type the field cannot hold is a *MismatchError naming
// both. Pointer fields hold nulls; a null read into another field is its
// zero value.
func Read[T any](ctx context.Context, name string, o *ReadOptions) ([]T, error) {
	r, err := Open(ctx, name, o)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	sr, err := dataset.NewStructReader(name, r.Schema(), reflect.TypeFor[T]())
	if err != nil {
		return nil, err
	}
	var out []T
	dst := reflect.ValueOf(&out)
	for r.Next() {
		sr.Append(r.RecordBatch(), dst)
	}
	return out, r.Err()
}

// WriteOptions shape a write.
type WriteOptions struct {
	// PartitionBy names the partition columns, outermost first (strings,
	// integers or booleans): each combination of values is a
	// key=value/ directory, and partition filters skip the others.
	PartitionBy []string
	// Append adds rows to the table; otherwise the write replaces them.
	Append bool
	// KeepVersions is how long a Parquet dataset's version stays readable
	// (ReadOptions.Snapshot, AsOf) after a later write replaced it: 5 days
	// by default. Its files are deleted by the first write after that.
	// Negative keeps only the latest version, deleting replaced files at
	// once. Iceberg tables keep their snapshots by the table's own
	// settings.
	KeepVersions time.Duration
	// RowGroupRows is the most rows per row group (default 1,048,576;
	// a group also ends at 128 MiB of encoded data).
	RowGroupRows int64
	// FileRows is the most rows per file (default 4,194,304).
	FileRows int64
	// Catalog overrides $STEPWISE_CATALOG.
	Catalog string
}

// Writer writes one new version of a table. Nothing is visible to
// readers before Commit; Abort (or a failed Commit) removes what was
// written.
type Writer struct {
	w    dataset.TableWriter
	name string
}

// NewWriter starts a write of batches of schema to a table by name or
// location; a table that does not exist is created by the write.
func NewWriter(ctx context.Context, name string, schema *arrow.Schema, o *WriteOptions) (*Writer, error) {
	if o == nil {
		o = &WriteOptions{}
	}
	t, err := resolve(ctx, name, o.Catalog, true)
	if err != nil {
		return nil, err
	}
	w, err := t.NewWriter(ctx, schema, dataset.WriteOptions{PartitionBy: o.PartitionBy, Append: o.Append, KeepVersions: o.KeepVersions, RowGroupRows: o.RowGroupRows, FileRows: o.FileRows})
	if err != nil {
		return nil, err
	}
	return &Writer{w: w, name: name}, nil
}

// Write adds a batch.
func (w *Writer) Write(ctx context.Context, rec arrow.RecordBatch) error { return w.w.Write(ctx, rec) }

// Commit publishes the write: readers see all of it from now on.
func (w *Writer) Commit(ctx context.Context) (Version, error) {
	v, err := w.w.Commit(ctx)
	if err != nil {
		return Version{}, err
	}
	return Version{Name: w.name, Location: v.Location, Format: v.Format, Version: v.Version, Time: v.Time}, nil
}

// Abort removes what the write stored.
func (w *Writer) Abort(ctx context.Context) error { return w.w.Abort(ctx) }

// Write writes batches (all of one schema) as a new version of a table,
// atomically: on error nothing is visible and what was stored is removed.
func Write(ctx context.Context, name string, o *WriteOptions, batches ...arrow.RecordBatch) (Version, error) {
	if len(batches) == 0 {
		return Version{}, errors.New("table.Write: no batches; give at least one (it carries the schema)")
	}
	w, err := NewWriter(ctx, name, batches[0].Schema(), o)
	if err != nil {
		return Version{}, err
	}
	for _, b := range batches {
		if err := w.Write(ctx, b); err != nil {
			return Version{}, errors.Join(err, w.Abort(ctx))
		}
	}
	return w.Commit(ctx)
}

// WriteRows writes a slice of structs as a new version of a table (see
// Read for how fields map to columns).
func WriteRows[T any](ctx context.Context, name string, rows []T, o *WriteOptions) (Version, error) {
	rec, err := dataset.FromStructs(reflect.ValueOf(rows), memory.DefaultAllocator)
	if err != nil {
		return Version{}, fmt.Errorf("table %q: %w", name, err)
	}
	defer rec.Release()
	return Write(ctx, name, o, rec)
}
