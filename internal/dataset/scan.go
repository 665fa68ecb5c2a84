package dataset

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/compute"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/arrow/scalar"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/metadata"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"stepwise.dev/stepwise/internal/warehouse"
)

// ScanOptions choose what a scan reads.
type ScanOptions struct {
	// Columns to return, in this order; nil for all (partition columns last).
	Columns []string
	// Filter keeps the rows that satisfy it. Predicates on partition
	// columns prune whole files before they are opened; those on other
	// columns skip row groups whose statistics prove no row can match,
	// then drop the rows that do not.
	Filter Filter
	// At picks an older version of a dataset written by Stepwise: its
	// number, or the last one committed at or before a time. Zero reads
	// the latest.
	At AsOf
	// Concurrency is how many files are read at once (default 4).
	Concurrency int
	// BatchReadahead is how many batches each file being read may decode
	// ahead of the consumer (default 16): batches come out in the
	// dataset's order, and without room ahead every file but the one
	// being consumed would wait, leaving cores idle (16 is also
	// PyArrow's dataset default). The scan holds at
	// most 2 × Concurrency × BatchReadahead decoded batches: those of the
	// files being read and of as many read but not yet reached.
	BatchReadahead int
	// BatchRows is the most rows per record batch (default 65,000). The
	// Parquet reader reserves the next power of two above it for each
	// column, so a power of two itself would reserve and clear twice the
	// memory a batch needs.
	BatchRows int64
	// PrefetchBytes bounds the bytes fetched from remote storage ahead of
	// decoding, over all the files read at once (default 256 MiB); the
	// scan's memory is about this plus the batches in flight.
	PrefetchBytes int64
	// Alloc allocates the batches' memory. By default a batch's large
	// buffers are reused for later batches once it is released (by the
	// next call to Next, unless it was retained), which saves most of a
	// scan's CPU; values taken from a batch without copying (a string,
	// Float64Values) are then valid only as long as the batch. Pass
	// memory.DefaultAllocator to leave every buffer to the garbage
	// collector instead.
	Alloc memory.Allocator
}

// Stats count what a scan did.
type Stats struct {
	Files          int   // files of the dataset (before pruning)
	FilesRead      int   // files opened
	RowGroups      int64 // row groups in the files opened
	RowGroupsRead  int64 // row groups read (not skipped by statistics)
	Rows           int64 // rows returned
	ManifestVer    int64 // the manifest version read; 0 for a dataset without one
	PartitionCount int   // distinct partitions read
}

// Reader streams the record batches of a scan, one file after another in
// the dataset's order, reading up to Concurrency files ahead. Call Next
// until it returns false, then Err; Close releases it.
type Reader struct {
	schema  *arrow.Schema
	cancel  context.CancelFunc
	queue   chan chan result // each file's batches, in order
	cur     chan result      // the file being consumed
	rec     arrow.RecordBatch
	err     error
	wg      sync.WaitGroup
	stats   Stats
	rowGrp  atomic.Int64
	rgRead  atomic.Int64
	rows    int64
	closed  bool
	written time.Time // the manifest's
}

type result struct {
	rec arrow.RecordBatch
	err error
}

// Scan plans and starts a scan of the dataset under fsys.
func Scan(ctx context.Context, fsys warehouse.FS, o ScanOptions) (*Reader, error) {
	if o.Concurrency <= 0 {
		o.Concurrency = 4
	}
	if o.BatchReadahead <= 0 {
		o.BatchReadahead = 16
	}
	if o.BatchRows <= 0 {
		o.BatchRows = 65_000
	}
	if o.Alloc == nil {
		o.Alloc = recycler{}
	}
	if o.PrefetchBytes <= 0 {
		o.PrefetchBytes = 256 << 20
	}
	p, err := makePlan(ctx, fsys, o.Filter, o.At)
	if err != nil {
		return nil, err
	}
	full, err := p.schema(ctx, fsys)
	if err != nil {
		return nil, err
	}
	isPart := map[string]bool{}
	for _, k := range p.partitionBy {
		isPart[k] = true
	}
	// The output schema: the columns asked for, else all.
	var out []arrow.Field
	if o.Columns == nil {
		for _, f := range full.Fields() {
			if !isPart[f.Name] {
				out = append(out, f)
			}
		}
		for _, k := range p.partitionBy {
			if i := full.FieldIndices(k); len(i) > 0 {
				out = append(out, full.Field(i[0]))
			}
		}
	} else {
		seen := map[string]bool{}
		for _, c := range o.Columns {
			i := full.FieldIndices(c)
			if len(i) == 0 {
				return nil, fmt.Errorf("table %s has no column %q (columns: %s)", fsys, c, fieldNames(full))
			}
			if seen[c] {
				return nil, fmt.Errorf("table %s: column %q is asked for twice", fsys, c)
			}
			seen[c] = true
			out = append(out, full.Field(i[0]))
		}
	}
	for _, pr := range o.Filter {
		i := full.FieldIndices(pr.Column)
		if len(i) == 0 {
			return nil, fmt.Errorf("table %s: the filter %s names column %q, which the table does not have (columns: %s)", fsys, pr, pr.Column, fieldNames(full))
		}
		if !isPart[pr.Column] && !filterable(full.Field(i[0]).Type) {
			return nil, fmt.Errorf("table %s: the filter %s compares column %q of type %s; filters compare numbers, strings and partition columns", fsys, pr, pr.Column, full.Field(i[0]).Type)
		}
		for _, v := range pr.Values {
			if !isPart[pr.Column] && isNumeric(full.Field(i[0]).Type) && !v.IsNum {
				return nil, fmt.Errorf("table %s: the filter %s compares number column %q with the string %s; write a number", fsys, pr, pr.Column, v.String)
			}
		}
	}
	r := &Reader{schema: arrow.NewSchema(out, nil)}
	r.stats.Files = p.total
	r.stats.FilesRead = len(p.files)
	if p.manifest != nil {
		r.stats.ManifestVer = p.manifest.Version
		r.written = p.manifest.Written
	}
	r.stats.PartitionCount = countPartitions(p.files)
	ctx, r.cancel = context.WithCancel(ctx)
	// Each file's batches go through a channel of their own, made when
	// the file starts and queued in the dataset's order for Next.
	r.queue = make(chan chan result, o.Concurrency)
	sem := make(chan struct{}, o.Concurrency)
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer close(r.queue)
		for _, fe := range p.files {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				ch := make(chan result, 1)
				ch <- result{err: ctx.Err()}
				close(ch)
				r.queue <- ch
				return
			}
			ch := make(chan result, o.BatchReadahead)
			r.queue <- ch
			r.wg.Add(1)
			go func() {
				defer r.wg.Done()
				defer func() { <-sem }()
				defer close(ch)
				if err := r.readFile(ctx, ch, fsys, fe, p, full, o, isPart); err != nil {
					select {
					case ch <- result{err: err}:
					case <-ctx.Done():
					}
				}
			}()
		}
	}()
	return r, nil
}

func countPartitions(files []FileEntry) int {
	seen := map[string]bool{}
	for _, f := range files {
		seen[pathDir(f.Path)] = true
	}
	return len(seen)
}

func pathDir(p string) string {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] == '/' {
			return p[:i]
		}
	}
	return ""
}

func fieldNames(s *arrow.Schema) string {
	var b []byte
	for i, f := range s.Fields() {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = append(b, f.Name...)
	}
	return string(b)
}

// schema is the dataset's full Arrow schema, partition columns included:
// the manifest's, else the first file's with partition columns as strings.
func (p *plan) schema(ctx context.Context, fsys warehouse.FS) (*arrow.Schema, error) {
	if p.manifest != nil && p.manifest.Schema != nil {
		return p.manifest.arrowSchema()
	}
	// A dataset without a manifest: the first file's schema.
	first := p.files
	if len(first) == 0 {
		return nil, fmt.Errorf("table %s: no file is left to read its schema from", fsys)
	}
	f, err := fsys.Open(ctx, first[0].Path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	pf, err := file.NewParquetReader(io.NewSectionReader(f, 0, f.Size()))
	if err != nil {
		return nil, fmt.Errorf("table %s: file %s is not valid Parquet: %w", fsys, first[0].Path, err)
	}
	defer pf.Close()
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
	if err != nil {
		return nil, fmt.Errorf("table %s: file %s: %w", fsys, first[0].Path, err)
	}
	s, err := fr.Schema()
	if err != nil {
		return nil, fmt.Errorf("table %s: file %s: %w", fsys, first[0].Path, err)
	}
	fields := slices.Clone(s.Fields())
	for _, k := range p.partitionBy {
		fields = append(fields, arrow.Field{Name: k, Type: arrow.BinaryTypes.String, Nullable: true})
	}
	return arrow.NewSchema(fields, nil), nil
}

// sizedOpener is a store that can open an object of known size (from the
// manifest or the listing) without asking for it first.
type sizedOpener interface {
	OpenSize(ctx context.Context, key string, size int64) (warehouse.File, error)
}

// requestsPerFile is how many ranged GETs one file keeps in flight.
const requestsPerFile = 8

// readFile reads one file's row groups that may match the filter, and
// sends its batches, filtered and projected, in order.
func (r *Reader) readFile(ctx context.Context, ch chan<- result, fsys warehouse.FS, fe FileEntry, p *plan, full *arrow.Schema, o ScanOptions, isPart map[string]bool) error {
	var f warehouse.File
	var err error
	if so, ok := fsys.(sizedOpener); ok && fe.Size > 0 {
		f, err = so.OpenSize(ctx, fe.Path, fe.Size)
	} else {
		f, err = fsys.Open(ctx, fe.Path)
	}
	if err != nil {
		return fmt.Errorf("table %s: %w", fsys, err)
	}
	defer f.Close()
	pre := newPrefetcher(ctx, f, o.PrefetchBytes/int64(o.Concurrency), requestsPerFile)
	bad := func(err error) error {
		if ioErr := pre.failed(); ioErr != nil && !errors.Is(ioErr, io.ErrUnexpectedEOF) {
			return fmt.Errorf("table %s: reading file %s: %w", fsys, fe.Path, ioErr)
		}
		return fmt.Errorf("table %s: file %s is not valid Parquet (%w); rewrite the table or remove the file", fsys, fe.Path, err)
	}
	props := parquet.NewReaderProperties(o.Alloc)
	// Stream each column chunk through a small buffer rather than copy
	// it whole into a new one. Pages larger than the buffer are read
	// straight into the page reader's; the buffer holds the page header
	// (the reader looks at 16 KiB for it) and what follows it, copied
	// once more, so it is kept just above that.
	props.BufferedStreamEnabled = true
	props.BufferSize = 32 << 10
	_, local := fsys.(*warehouse.Local)
	if c, ok := fsys.(*warehouse.Counting); ok {
		_, local = c.FS.(*warehouse.Local)
	}
	pf, err := file.NewParquetReader(io.NewSectionReader(pre, 0, f.Size()), file.WithReadProps(props))
	if err != nil {
		return bad(err)
	}
	defer pf.Close()
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{Parallel: true, BatchSize: o.BatchRows}, o.Alloc)
	if err != nil {
		return bad(err)
	}
	fileSchema, err := fr.Schema()
	if err != nil {
		return bad(err)
	}
	// The data columns to read: those returned and those the filter needs.
	var need []string
	for _, fld := range r.schema.Fields() {
		if !isPart[fld.Name] {
			need = append(need, fld.Name)
		}
	}
	for _, pr := range o.Filter {
		if !isPart[pr.Column] && !slices.Contains(need, pr.Column) {
			need = append(need, pr.Column)
		}
	}
	var leaves []int
	leafOf := map[string]int{}
	needLeaves := make([][]int, len(need))
	for i, name := range need {
		idx := fileSchema.FieldIndices(name)
		if len(idx) == 0 {
			return fmt.Errorf("table %s: file %s has no column %q, which the table's schema has; rewrite the file", fsys, fe.Path, name)
		}
		sf := fr.Manifest.Fields[idx[0]]
		if !compatible(sf.Field.Type, full.Field(full.FieldIndices(name)[0]).Type) {
			return fmt.Errorf("table %s: file %s has column %q of type %s, the table's schema says %s; rewrite the file", fsys, fe.Path, name, sf.Field.Type, full.Field(full.FieldIndices(name)[0]).Type)
		}
		before := len(leaves)
		collectLeaves(sf, &leaves)
		needLeaves[i] = leaves[before:]
		if len(leaves) == before+1 && sf.IsLeaf() {
			leafOf[name] = leaves[before]
		}
	}
	// Row groups: those whose statistics allow a match.
	md := pf.MetaData()
	var groups []int
	for g := 0; g < md.NumRowGroups(); g++ {
		rg := md.RowGroup(g)
		keep := true
		for _, pr := range o.Filter {
			leaf, ok := leafOf[pr.Column]
			if isPart[pr.Column] || !ok {
				continue
			}
			cc, err := rg.ColumnChunk(leaf)
			if err != nil {
				return bad(err)
			}
			if !statsMayMatch(cc, pr, fileSchema.Field(fileSchema.FieldIndices(pr.Column)[0]).Type) {
				keep = false
				break
			}
		}
		if keep {
			groups = append(groups, g)
		}
	}
	r.rowGrp.Add(int64(md.NumRowGroups()))
	r.rgRead.Add(int64(len(groups)))
	if len(groups) == 0 {
		return nil
	}
	// Partition values, parsed once per file to the columns' types.
	partVals := map[string]scalar.Scalar{}
	for _, fld := range r.schema.Fields() {
		if !isPart[fld.Name] {
			continue
		}
		s, err := partitionScalar(fld.Type, fe.Partition[fld.Name])
		if err != nil {
			return fmt.Errorf("table %s: file %s: partition %s=%q: %w", fsys, fe.Path, fld.Name, fe.Partition[fld.Name], err)
		}
		partVals[fld.Name] = s
	}
	if !local && len(leaves) > 0 {
		// Stream the column chunks the scan needs, several requests in
		// flight, ahead of the decoder.
		var ranges []byteRange
		for _, g := range groups {
			rg := md.RowGroup(g)
			for _, leaf := range leaves {
				cc, err := rg.ColumnChunk(leaf)
				if err != nil {
					return bad(err)
				}
				start := cc.DataPageOffset()
				if cc.HasDictionaryPage() && cc.DictionaryPageOffset() > 0 && cc.DictionaryPageOffset() < start {
					start = cc.DictionaryPageOffset()
				}
				ranges = append(ranges, byteRange{start, cc.TotalCompressedSize()})
			}
		}
		pre.plan(ranges)
	}
	partArrs := map[string]arrow.Array{}
	defer func() {
		for _, a := range partArrs {
			a.Release()
		}
	}()
	emit := func(rec arrow.RecordBatch) error {
		defer rec.Release()
		n := int(rec.NumRows())
		if len(o.Filter) > 0 {
			mask, all, err := rowMask(rec, o.Filter, isPart)
			if err != nil {
				return fmt.Errorf("table %s: file %s: %w", fsys, fe.Path, err)
			}
			if !all {
				filtered, err := compute.FilterRecordBatch(ctx, rec, mask, compute.DefaultFilterOptions())
				mask.Release()
				if err != nil {
					return fmt.Errorf("table %s: file %s: filtering rows: %w", fsys, fe.Path, err)
				}
				defer filtered.Release()
				rec = filtered
				n = int(rec.NumRows())
			} else if mask != nil {
				mask.Release()
			}
		}
		if n == 0 {
			return nil
		}
		cols := make([]arrow.Array, len(r.schema.Fields()))
		for i, fld := range r.schema.Fields() {
			if isPart[fld.Name] {
				// A partition column is one value: made once per file
				// and sliced for each batch.
				a := partArrs[fld.Name]
				if a == nil || a.Len() < n {
					if a != nil {
						a.Release()
					}
					var err error
					if a, err = scalar.MakeArrayFromScalar(partVals[fld.Name], max(n, int(o.BatchRows)), o.Alloc); err != nil {
						delete(partArrs, fld.Name)
						return fmt.Errorf("table %s: file %s: partition column %s: %w", fsys, fe.Path, fld.Name, err)
					}
					partArrs[fld.Name] = a
				}
				cols[i] = array.NewSlice(a, 0, int64(n))
				defer cols[i].Release()
				continue
			}
			a := retype(rec.Column(rec.Schema().FieldIndices(fld.Name)[0]), fld.Type)
			defer a.Release()
			cols[i] = a
		}
		out := array.NewRecordBatch(r.schema, cols, int64(n))
		select {
		case ch <- result{rec: out}:
			return nil
		case <-ctx.Done():
			out.Release()
			return ctx.Err()
		}
	}
	if len(leaves) == 0 {
		// Only partition columns: one batch per row group's rows.
		for _, g := range groups {
			n := md.RowGroup(g).NumRows()
			rec := array.NewRecordBatch(arrow.NewSchema(nil, nil), nil, n)
			if err := emit(rec); err != nil {
				return err
			}
		}
		return nil
	}
	// Row groups go through the page decoder for the columns it reads,
	// the general reader for the rest; runs of row groups with no column
	// for the page decoder go through the general reader alone.
	pcs := pageColumns(fr.Manifest, fileSchema, need, leafOf, md)
	fastCols := func(g int) []bool {
		rg := md.RowGroup(g)
		var fast []bool
		for i, pc := range pcs {
			if pc.width == 0 {
				continue
			}
			if cc, err := rg.ColumnChunk(pc.leaf); err == nil && fastChunk(cc) {
				if fast == nil {
					fast = make([]bool, len(pcs))
				}
				fast[i] = true
			}
		}
		return fast
	}
	for i := 0; i < len(groups); {
		if fast := fastCols(groups[i]); fast != nil {
			err := emitGroup(ctx, pre, fr, groups[i], need, needLeaves, pcs, fast, o, emit, bad)
			if errors.Is(err, errNotFast) {
				err = readGroups(ctx, fr, leaves, groups[i:i+1], emit, bad)
			}
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return err
			}
			i++
			continue
		}
		j := i + 1
		for j < len(groups) && fastCols(groups[j]) == nil {
			j++
		}
		if err := readGroups(ctx, fr, leaves, groups[i:j], emit, bad); err != nil {
			return err
		}
		i = j
	}
	return ctx.Err()
}

// readGroups sends the row groups' batches through the general reader.
func readGroups(ctx context.Context, fr *pqarrow.FileReader, leaves, groups []int, emit func(arrow.RecordBatch) error, bad func(error) error) error {
	rr, err := fr.GetRecordReader(ctx, leaves, groups)
	if err != nil {
		return bad(err)
	}
	defer rr.Release()
	for rr.Next() {
		rec := rr.RecordBatch()
		rec.Retain()
		if err := emit(rec); err != nil {
			return err
		}
	}
	if err := rr.Err(); err != nil && !errors.Is(err, context.Canceled) {
		return bad(err)
	}
	return ctx.Err()
}

// pageColumns describes each column of need for the page decoder; a
// column it does not read has width 0.
func pageColumns(m *pqarrow.SchemaManifest, fileSchema *arrow.Schema, need []string, leafOf map[string]int, md *metadata.FileMetaData) []pageColumn {
	pcs := make([]pageColumn, len(need))
	for i, name := range need {
		leaf, ok := leafOf[name]
		if !ok {
			continue
		}
		f := *m.Fields[fileSchema.FieldIndices(name)[0]].Field
		col := md.Schema.Column(leaf)
		pcs[i] = pageColumn{field: f, leaf: leaf, width: fastWidth(col, f.Type), optional: col.MaxDefinitionLevel() == 1}
	}
	return pcs
}

// emitGroup sends row group g in batches of at most o.BatchRows rows: the
// columns marked fast decoded by the page decoder, the others read by the
// general reader alongside. It returns errNotFast, having sent nothing,
// when a chunk turns out to hold what the page decoder leaves to the
// general reader. Errors in reading or decoding go through bad; emit's
// come back as they are.
func emitGroup(ctx context.Context, ra io.ReaderAt, fr *pqarrow.FileReader, g int, need []string, needLeaves [][]int, pcs []pageColumn, fast []bool, o ScanOptions, emit func(arrow.RecordBatch) error, bad func(error) error) error {
	rg := fr.ParquetReader().MetaData().RowGroup(g)
	rows := rg.NumRows()
	decoded := make([]arrow.Array, len(pcs))
	defer func() {
		for _, c := range decoded {
			if c != nil {
				c.Release()
			}
		}
	}()
	var slow []int // the general reader's leaves
	for i, name := range need {
		if !fast[i] {
			slow = append(slow, needLeaves[i]...)
			continue
		}
		cc, err := rg.ColumnChunk(pcs[i].leaf)
		if err != nil {
			return bad(err)
		}
		if decoded[i], err = decodeChunk(ra, cc, pcs[i], rows, o.Alloc); err != nil {
			if errors.Is(err, errNotFast) {
				return err
			}
			return bad(fmt.Errorf("column %s, row group %d: %w", name, g, err))
		}
	}
	fields := make([]arrow.Field, len(need))
	cols := make([]arrow.Array, len(need))
	batch := func(start int64, n int64, other arrow.RecordBatch) error {
		for i, name := range need {
			if fast[i] {
				fields[i] = pcs[i].field
				cols[i] = array.NewSlice(decoded[i], start, start+n)
				defer cols[i].Release()
				continue
			}
			j := other.Schema().FieldIndices(name)[0]
			fields[i], cols[i] = other.Schema().Field(j), other.Column(j)
		}
		return emit(array.NewRecordBatch(arrow.NewSchema(fields, nil), cols, n))
	}
	if len(slow) == 0 {
		for start := int64(0); start < rows; start += o.BatchRows {
			if err := batch(start, min(o.BatchRows, rows-start), nil); err != nil {
				return err
			}
		}
		return nil
	}
	rr, err := fr.GetRecordReader(ctx, slow, []int{g})
	if err != nil {
		return bad(err)
	}
	defer rr.Release()
	start := int64(0)
	for rr.Next() {
		rec := rr.RecordBatch()
		n := rec.NumRows()
		if start+n > rows {
			return bad(fmt.Errorf("row group %d: the reader returned more than its %d rows", g, rows))
		}
		if err := batch(start, n, rec); err != nil {
			return err
		}
		start += n
	}
	if err := rr.Err(); err != nil {
		return bad(err)
	}
	if start != rows {
		return bad(fmt.Errorf("row group %d: the reader returned %d of its %d rows", g, start, rows))
	}
	return nil
}
