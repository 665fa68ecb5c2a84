// Package icebergcat is the Apache Iceberg catalog of package table: the
// Iceberg Go library's SQL catalog on SQLite or PostgreSQL, with tables
// read as of a snapshot and written as new snapshots, their files in a
// warehouse directory or on S3.
package icebergcat

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"iter"
	"math"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
	sqlcat "github.com/apache/iceberg-go/catalog/sql"
	"github.com/apache/iceberg-go/table"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	_ "modernc.org/sqlite"             // database/sql driver "sqlite"

	"stepwise.dev/stepwise/internal/dataset"
	dss3 "stepwise.dev/stepwise/internal/datastore/s3"
)

// Catalog is an Iceberg SQL catalog.
type Catalog struct {
	cat     *sqlcat.Catalog
	db      *sql.DB
	display string
}

var _ dataset.Catalog = (*Catalog)(nil)

var (
	mu    sync.Mutex
	cache = map[string]*Catalog{}
)

// Open opens iceberg+sqlite:///path/catalog.db?warehouse=/dir or
// iceberg+postgres://user:pass@host:port/db?warehouse=/dir (other query
// parameters go to the database). Catalogs are kept open for the process.
func Open(ctx context.Context, setting string) (dataset.Catalog, error) {
	mu.Lock()
	defer mu.Unlock()
	if c := cache[setting]; c != nil {
		return c, nil
	}
	u, err := url.Parse(setting)
	if err != nil {
		return nil, fmt.Errorf("iceberg catalog: %q is not a URL: write iceberg+sqlite:///path/catalog.db?warehouse=/dir", redact(setting))
	}
	q := u.Query()
	wh := q.Get("warehouse")
	q.Del("warehouse")
	if wh == "" {
		return nil, fmt.Errorf("iceberg catalog %s: no warehouse; add ?warehouse=/dir (where table files go)", redact(setting))
	}
	if !strings.Contains(wh, "://") {
		wh = "file://" + wh
	}
	var db *sql.DB
	var dialect sqlcat.SupportedDialect
	switch u.Scheme {
	case "iceberg+sqlite":
		if u.Path == "" {
			return nil, fmt.Errorf("iceberg catalog %s: no database file; write iceberg+sqlite:///path/catalog.db", redact(setting))
		}
		db, err = sql.Open("sqlite", "file:"+u.Path+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)")
		dialect = sqlcat.SQLite
	case "iceberg+postgres":
		pu := *u
		pu.Scheme = "postgres"
		pu.RawQuery = q.Encode()
		db, err = sql.Open("pgx", pu.String())
		dialect = sqlcat.Postgres
	default:
		return nil, fmt.Errorf("iceberg catalog %s: unknown kind %q; use iceberg+sqlite or iceberg+postgres", redact(setting), u.Scheme)
	}
	if err != nil {
		return nil, fmt.Errorf("iceberg catalog %s: %w", redact(setting), err)
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("iceberg catalog %s: cannot reach its database: %w", redact(setting), err)
	}
	cat, err := sqlcat.NewCatalog("stepwise", db, dialect, warehouseProps(wh))
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("iceberg catalog %s: %w", redact(setting), err)
	}
	c := &Catalog{cat: cat, db: db, display: redact(setting)}
	cache[setting] = c
	return c, nil
}

// warehouseProps are the catalog's properties for a warehouse. An s3://
// one is reached through the tables' own S3 access (s3io.go), with the
// run's S3 settings.
func warehouseProps(wh string) iceberg.Properties {
	return iceberg.Properties{"warehouse": wh}
}

func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

// String is the catalog's setting, password hidden.
func (c *Catalog) String() string { return c.display }

func ident(name string) (table.Identifier, error) {
	parts := strings.Split(name, ".")
	if len(parts) < 2 {
		return nil, fmt.Errorf("iceberg table name %q has no namespace; write namespace.table", name)
	}
	for _, p := range parts {
		if p == "" {
			return nil, fmt.Errorf("iceberg table name %q has an empty part", name)
		}
	}
	return parts, nil
}

// Table loads a table; one that does not exist is created by its first
// write when forWrite.
func (c *Catalog) Table(ctx context.Context, name string, forWrite bool) (dataset.Table, error) {
	id, err := ident(name)
	if err != nil {
		return nil, err
	}
	t, err := c.cat.LoadTable(ctx, id)
	switch {
	case errors.Is(err, catalog.ErrNoSuchTable) || errors.Is(err, catalog.ErrNoSuchNamespace):
		if !forWrite {
			return nil, fmt.Errorf("%w: no Iceberg table %s in the catalog; check the name, or write it first", dataset.ErrNoTable, name)
		}
		return &Table{c: c, id: id, name: name}, nil
	case err != nil:
		return nil, fmt.Errorf("iceberg table %s: %w%s", name, err, storeHint(err))
	}
	return &Table{c: c, id: id, name: name, t: t}, nil
}

// Table is one Iceberg table (t nil until its first write).
type Table struct {
	c    *Catalog
	id   table.Identifier
	name string
	t    *table.Table
}

// expr translates a filter to an Iceberg row filter.
func expr(f dataset.Filter) (iceberg.BooleanExpression, error) {
	var out []iceberg.BooleanExpression
	for _, p := range f {
		ref := iceberg.Reference(p.Column)
		one := func(v dataset.Value) iceberg.BooleanExpression {
			if v.IsNum && v.Num == math.Trunc(v.Num) && math.Abs(v.Num) < 1<<53 {
				n := int64(v.Num)
				switch p.Op {
				case dataset.Eq, dataset.In:
					return iceberg.EqualTo(ref, n)
				case dataset.Ne:
					return iceberg.NotEqualTo(ref, n)
				case dataset.Lt:
					return iceberg.LessThan(ref, n)
				case dataset.Le:
					return iceberg.LessThanEqual(ref, n)
				case dataset.Gt:
					return iceberg.GreaterThan(ref, n)
				case dataset.Ge:
					return iceberg.GreaterThanEqual(ref, n)
				}
			}
			if v.IsNum {
				switch p.Op {
				case dataset.Eq, dataset.In:
					return iceberg.EqualTo(ref, v.Num)
				case dataset.Ne:
					return iceberg.NotEqualTo(ref, v.Num)
				case dataset.Lt:
					return iceberg.LessThan(ref, v.Num)
				case dataset.Le:
					return iceberg.LessThanEqual(ref, v.Num)
				case dataset.Gt:
					return iceberg.GreaterThan(ref, v.Num)
				case dataset.Ge:
					return iceberg.GreaterThanEqual(ref, v.Num)
				}
			}
			switch p.Op {
			case dataset.Eq, dataset.In:
				return iceberg.EqualTo(ref, v.Str)
			case dataset.Ne:
				return iceberg.NotEqualTo(ref, v.Str)
			case dataset.Lt:
				return iceberg.LessThan(ref, v.Str)
			case dataset.Le:
				return iceberg.LessThanEqual(ref, v.Str)
			case dataset.Gt:
				return iceberg.GreaterThan(ref, v.Str)
			}
			return iceberg.GreaterThanEqual(ref, v.Str)
		}
		if p.Op == dataset.In {
			var ors iceberg.BooleanExpression
			for _, v := range p.Values {
				if ors == nil {
					ors = one(v)
				} else {
					ors = iceberg.NewOr(ors, one(v))
				}
			}
			out = append(out, ors)
			continue
		}
		out = append(out, one(p.Values[0]))
	}
	switch len(out) {
	case 0:
		return iceberg.AlwaysTrue{}, nil
	case 1:
		return out[0], nil
	}
	return iceberg.NewAnd(out[0], out[1], out[2:]...), nil
}

// Scan reads the current snapshot or the one at.
func (t *Table) Scan(ctx context.Context, o dataset.ScanOptions, at dataset.AsOf) (dataset.Stream, dataset.Version, error) {
	if t.t == nil {
		return nil, dataset.Version{}, fmt.Errorf("%w: no Iceberg table %s", dataset.ErrNoTable, t.name)
	}
	var opts []table.ScanOption
	if o.Columns != nil {
		opts = append(opts, table.WithSelectedFields(o.Columns...))
	}
	f, err := expr(o.Filter)
	if err != nil {
		return nil, dataset.Version{}, err
	}
	opts = append(opts, table.WithRowFilter(f))
	snap := t.t.CurrentSnapshot()
	switch {
	case at.Snapshot != 0:
		snap = t.t.SnapshotByID(at.Snapshot)
		if snap == nil {
			return nil, dataset.Version{}, fmt.Errorf("iceberg table %s has no snapshot %d (it may have expired); list them with the Iceberg tools", t.name, at.Snapshot)
		}
		opts = append(opts, table.WithSnapshotID(at.Snapshot))
	case !at.Time.IsZero():
		snap = t.t.SnapshotAsOf(at.Time.UnixMilli(), true)
		if snap == nil {
			return nil, dataset.Version{}, fmt.Errorf("iceberg table %s has no snapshot at or before %s", t.name, at.Time.UTC().Format(time.RFC3339))
		}
		opts = append(opts, table.WithSnapshotID(snap.SnapshotID))
	}
	if snap == nil {
		return nil, dataset.Version{}, fmt.Errorf("%w: iceberg table %s has no snapshot yet (nothing written)", dataset.ErrNoTable, t.name)
	}
	scan := t.t.Scan(opts...)
	tasks, err := scan.PlanFiles(ctx)
	if err != nil {
		return nil, dataset.Version{}, fmt.Errorf("iceberg table %s: planning the scan: %w%s", t.name, err, storeHint(err))
	}
	schema, recs, err := scan.ReadTasks(ctx, tasks)
	if err != nil {
		return nil, dataset.Version{}, fmt.Errorf("iceberg table %s: %w%s", t.name, err, storeHint(err))
	}
	next, stop := iter.Pull2(recs)
	s := &stream{schema: schema, next: next, stop: stop, files: len(tasks), name: t.name}
	return s, dataset.Version{Location: t.t.Location(), Format: "iceberg", Version: snap.SnapshotID, Time: time.UnixMilli(snap.TimestampMs).UTC()}, nil
}

type stream struct {
	schema *arrow.Schema
	next   func() (arrow.RecordBatch, error, bool)
	stop   func()
	rec    arrow.RecordBatch
	err    error
	files  int
	rows   int64
	name   string
	done   bool
}

func (s *stream) Schema() *arrow.Schema { return s.schema }
func (s *stream) Next() bool {
	if s.rec != nil {
		s.rec.Release()
		s.rec = nil
	}
	if s.done {
		return false
	}
	rec, err, ok := s.next()
	if !ok || err != nil {
		s.done = true
		if err != nil {
			s.err = fmt.Errorf("iceberg table %s: %w%s", s.name, err, storeHint(err))
		}
		return false
	}
	s.rec = rec
	s.rows += rec.NumRows()
	return true
}
func (s *stream) RecordBatch() arrow.RecordBatch { return s.rec }
func (s *stream) Err() error                     { return s.err }
func (s *stream) Progress() (int, int64)         { return s.files, s.rows }
func (s *stream) Close() error {
	if s.rec != nil {
		s.rec.Release()
		s.rec = nil
	}
	s.done = true
	s.stop()
	return nil
}

// NewWriter starts an append or overwrite; batches stream to the Iceberg
// library as they are written, and Commit commits them as one snapshot. A table created by the
// write is partitioned by o.PartitionBy (identity partitions, one data
// file per partition and write); an existing table keeps its own
// partitioning, which o.PartitionBy must then name or leave empty.
func (t *Table) NewWriter(ctx context.Context, schema *arrow.Schema, o dataset.WriteOptions) (dataset.TableWriter, error) {
	if t.t != nil && len(o.PartitionBy) > 0 {
		spec := t.t.Spec()
		have := partitionNames(t.t.Schema(), &spec)
		if !slices.Equal(have, o.PartitionBy) {
			return nil, fmt.Errorf("iceberg table %s is partitioned by %s; this write asks for %s: write with PartitionBy %s or none (the table's own is used), or write a new table",
				t.name, listOrNone(have), listOrNone(o.PartitionBy), listOrNone(have))
		}
	}
	if t.t == nil {
		for _, c := range o.PartitionBy {
			if schema.FieldIndices(c) == nil {
				return nil, fmt.Errorf("iceberg table %s: the partition column %q is not in the rows written (columns: %s)", t.name, c, strings.Join(columnNames(schema), ", "))
			}
		}
	}
	return &writer{t: t, schema: schema, o: o}, nil
}

// partitionNames lists a spec's source columns when every field is an
// identity partition, as Stepwise writes them; other transforms are shown
// as transform(column).
func partitionNames(sc *iceberg.Schema, spec *iceberg.PartitionSpec) []string {
	var out []string
	for _, f := range spec.Fields() {
		name := fmt.Sprint(f.SourceIDs)
		if len(f.SourceIDs) == 1 {
			if n, ok := sc.FindColumnName(f.SourceIDs[0]); ok {
				name = n
			}
		}
		if _, ok := f.Transform.(iceberg.IdentityTransform); !ok {
			name = f.Transform.String() + "(" + name + ")"
		}
		out = append(out, name)
	}
	return out
}

func listOrNone(cols []string) string {
	if len(cols) == 0 {
		return "nothing"
	}
	return "[" + strings.Join(cols, ", ") + "]"
}

func columnNames(s *arrow.Schema) []string {
	out := make([]string, s.NumFields())
	for i, f := range s.Fields() {
		out[i] = f.Name
	}
	return out
}

// identitySpec partitions by the named columns of sc, as they are.
func identitySpec(sc *iceberg.Schema, by []string) (*iceberg.PartitionSpec, error) {
	fields := make([]iceberg.PartitionField, len(by))
	for i, c := range by {
		f, ok := sc.FindFieldByName(c)
		if !ok {
			return nil, fmt.Errorf("the partition column %q is not in the table's schema", c)
		}
		fields[i] = iceberg.PartitionField{SourceIDs: []int{f.ID}, FieldID: 1000 + i, Name: c, Transform: iceberg.IdentityTransform{}}
	}
	spec := iceberg.NewPartitionSpec(fields...)
	return &spec, nil
}

// writer streams the batches to the Iceberg library's writer, which runs
// in its own goroutine from the first batch on and commits one snapshot
// when the batches end; nothing is held in memory but the batches in
// flight.
type writer struct {
	t      *Table
	schema *arrow.Schema
	o      dataset.WriteOptions

	started bool
	over    bool // Commit or Abort was called
	ch      chan arrow.RecordBatch
	abort   chan struct{} // closed by Abort: the stream ends in an error
	cancel  context.CancelFunc
	done    chan struct{} // closed when the library's write is over
	v       dataset.Version
	err     error
}

func (w *writer) start(ctx context.Context) {
	w.started = true
	w.ch = make(chan arrow.RecordBatch)
	w.abort = make(chan struct{})
	w.done = make(chan struct{})
	ctx, w.cancel = context.WithCancel(context.WithoutCancel(ctx))
	go func() {
		defer close(w.done)
		w.v, w.err = w.run(ctx)
		for rec := range w.ch { // batches sent after a failure
			rec.Release()
		}
	}()
}

func (w *writer) Write(ctx context.Context, rec arrow.RecordBatch) error {
	if w.over {
		return fmt.Errorf("iceberg table %s: Write after Commit or Abort", w.t.name)
	}
	if !rec.Schema().Equal(w.schema) {
		return fmt.Errorf("iceberg table %s: a batch's schema differs from the write's", w.t.name)
	}
	if !w.started {
		w.start(ctx)
	}
	rec.Retain()
	select {
	case w.ch <- rec:
		return nil
	case <-w.done:
		rec.Release()
		return w.err
	case <-ctx.Done():
		rec.Release()
		return ctx.Err()
	}
}

// run creates the table if need be and writes the batches of w.ch as one
// snapshot. A table it created is dropped again if the write fails.
func (w *writer) run(ctx context.Context) (dataset.Version, error) {
	t := w.t
	created := false
	if t.t == nil {
		sc, err := table.ArrowSchemaToIcebergWithFreshIDs(w.schema, false)
		if err != nil {
			return dataset.Version{}, fmt.Errorf("iceberg table %s: its schema: %w", t.name, err)
		}
		var opts []catalog.CreateTableOpt
		if len(w.o.PartitionBy) > 0 {
			spec, err := identitySpec(sc, w.o.PartitionBy)
			if err != nil {
				return dataset.Version{}, fmt.Errorf("iceberg table %s: %w", t.name, err)
			}
			opts = append(opts, catalog.WithPartitionSpec(spec))
		}
		ns := t.id[:len(t.id)-1]
		if err := t.c.cat.CreateNamespace(ctx, ns, nil); err != nil && !errors.Is(err, catalog.ErrNamespaceAlreadyExists) {
			return dataset.Version{}, fmt.Errorf("iceberg table %s: creating namespace %s: %w", t.name, strings.Join(ns, "."), err)
		}
		tb, err := t.c.cat.CreateTable(ctx, t.id, sc, opts...)
		if err != nil {
			return dataset.Version{}, fmt.Errorf("iceberg table %s: creating it: %w%s", t.name, err, storeHint(err))
		}
		t.t, created = tb, true
	}
	rdr := &chanReader{schema: w.schema, ch: w.ch, abort: w.abort}
	rdr.refs.Store(1)
	var nt *table.Table
	var err error
	if w.o.Append || t.t.CurrentSnapshot() == nil {
		nt, err = t.t.Append(ctx, rdr, nil)
	} else {
		nt, err = t.t.Overwrite(ctx, rdr, nil)
	}
	rdr.Release()
	if err != nil {
		if created {
			_ = t.c.cat.DropTable(context.WithoutCancel(ctx), t.id)
			t.t = nil
		}
		return dataset.Version{}, fmt.Errorf("iceberg table %s: committing the write: %w%s", t.name, err, storeHint(err))
	}
	t.t = nt
	snap := nt.CurrentSnapshot()
	return dataset.Version{Location: nt.Location(), Format: "iceberg", Version: snap.SnapshotID, Time: time.UnixMilli(snap.TimestampMs).UTC()}, nil
}

func (w *writer) Commit(ctx context.Context) (dataset.Version, error) {
	if w.over {
		return dataset.Version{}, fmt.Errorf("iceberg table %s: Commit after Commit or Abort", w.t.name)
	}
	w.over = true
	if !w.started {
		w.start(ctx)
	}
	close(w.ch)
	select {
	case <-w.done:
	case <-ctx.Done():
		w.cancel()
		<-w.done
	}
	w.cancel()
	return w.v, w.err
}

func (w *writer) Abort(ctx context.Context) error {
	if w.over || !w.started {
		w.over = true
		return nil
	}
	w.over = true
	// The stream ends in an error and the context is cancelled: the
	// library's write fails before it commits a snapshot.
	close(w.abort)
	w.cancel()
	close(w.ch)
	<-w.done
	return nil
}

var errAborted = errors.New("the write was aborted")

// chanReader is an array.RecordReader of the batches sent on ch.
type chanReader struct {
	schema *arrow.Schema
	ch     chan arrow.RecordBatch
	abort  chan struct{}
	cur    arrow.RecordBatch
	err    error
	refs   atomic.Int64
}

var _ array.RecordReader = (*chanReader)(nil)

func (r *chanReader) Retain() { r.refs.Add(1) }
func (r *chanReader) Release() {
	if r.refs.Add(-1) == 0 && r.cur != nil {
		r.cur.Release()
		r.cur = nil
	}
}
func (r *chanReader) Schema() *arrow.Schema { return r.schema }
func (r *chanReader) Next() bool {
	if r.cur != nil {
		r.cur.Release()
		r.cur = nil
	}
	select {
	case <-r.abort:
		r.err = errAborted
		return false
	case rec, ok := <-r.ch:
		select {
		case <-r.abort:
			if ok {
				rec.Release()
			}
			r.err = errAborted
			return false
		default:
		}
		if !ok {
			return false
		}
		r.cur = rec
		return true
	}
}
func (r *chanReader) RecordBatch() arrow.RecordBatch { return r.cur }
func (r *chanReader) Record() arrow.RecordBatch      { return r.cur }
func (r *chanReader) Err() error                     { return r.err }

func init() {
	for _, s := range []string{"iceberg+sqlite", "iceberg+postgres"} {
		dataset.RegisterCatalog(s, Open)
	}
}

// storeHint says what to do about a failure of the warehouse's store, as
// the S3 datastore's errors do; "" for other errors.
func storeHint(err error) string {
	switch dss3.RefusalOf(err) {
	case dss3.NoBucket:
		return "; the warehouse's bucket does not exist: create it, or fix warehouse= in the catalog setting"
	case dss3.Denied:
		return "; S3 refused the credentials: check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) and the bucket's policy"
	}
	return ""
}
