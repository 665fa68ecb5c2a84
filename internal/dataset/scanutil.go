package dataset

import (
	"fmt"
	"strconv"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/arrow/scalar"
	"github.com/apache/arrow-go/v18/parquet/metadata"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// Schema is the schema of the batches.
func (r *Reader) Schema() *arrow.Schema { return r.schema }

// Next moves to the next batch; false at the end or on an error (see Err).
// The previous batch is released.
func (r *Reader) Next() bool {
	if r.rec != nil {
		r.rec.Release()
		r.rec = nil
	}
	if r.err != nil || r.closed {
		return false
	}
	for {
		if r.cur == nil {
			ch, ok := <-r.queue
			if !ok {
				return false
			}
			r.cur = ch
		}
		res, ok := <-r.cur
		if !ok {
			r.cur = nil
			continue
		}
		if res.err != nil {
			r.err = res.err
			r.cancel()
			return false
		}
		r.rec = res.rec
		r.rows += res.rec.NumRows()
		return true
	}
}

// RecordBatch is the current batch, valid until the next call to Next;
// Retain it to keep it longer.
func (r *Reader) RecordBatch() arrow.RecordBatch { return r.rec }

// Err is the error that stopped the scan, if any.
func (r *Reader) Err() error { return r.err }

// Stats says what the scan read so far (all of it after the last Next).
func (r *Reader) Stats() Stats {
	s := r.stats
	s.RowGroups = r.rowGrp.Load()
	s.RowGroupsRead = r.rgRead.Load()
	s.Rows = r.rows
	return s
}

// Close stops the scan and releases what it holds. It is safe to call
// more than once.
func (r *Reader) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	r.cancel()
	if r.rec != nil {
		r.rec.Release()
		r.rec = nil
	}
	// Drain so that the file readers can finish, releasing what they sent.
	drain := func(ch chan result) {
		for res := range ch {
			if res.rec != nil {
				res.rec.Release()
			}
		}
	}
	if r.cur != nil {
		drain(r.cur)
	}
	for ch := range r.queue {
		drain(ch)
	}
	r.wg.Wait()
	return nil
}

func collectLeaves(sf pqarrow.SchemaField, out *[]int) {
	if sf.IsLeaf() {
		*out = append(*out, sf.ColIndex)
		return
	}
	for _, c := range sf.Children {
		collectLeaves(c, out)
	}
}

func isNumeric(t arrow.DataType) bool {
	switch t.ID() {
	case arrow.INT8, arrow.INT16, arrow.INT32, arrow.INT64, arrow.UINT8, arrow.UINT16, arrow.UINT32, arrow.UINT64, arrow.FLOAT32, arrow.FLOAT64:
		return true
	}
	return false
}

func filterable(t arrow.DataType) bool {
	return isNumeric(t) || t.ID() == arrow.STRING || t.ID() == arrow.LARGE_STRING
}

// statsMayMatch says whether a row group's column chunk, by its
// statistics, may hold a row that satisfies p; true when it cannot tell.
func statsMayMatch(cc *metadata.ColumnChunkMetaData, p Pred, t arrow.DataType) bool {
	set, err := cc.StatsSet()
	if err != nil || !set {
		return true
	}
	st, err := cc.Statistics()
	if err != nil || st == nil || !st.HasMinMax() {
		return true
	}
	num := func(lo, hi float64) bool {
		return p.mayMatchRange(func(v Value) (int, bool) { return cmpNum(lo, v) }, func(v Value) (int, bool) { return cmpNum(hi, v) })
	}
	unsigned := t.ID() == arrow.UINT8 || t.ID() == arrow.UINT16 || t.ID() == arrow.UINT32 || t.ID() == arrow.UINT64
	switch s := st.(type) {
	case *metadata.Int32Statistics:
		if unsigned {
			return num(float64(uint32(s.Min())), float64(uint32(s.Max())))
		}
		return num(float64(s.Min()), float64(s.Max()))
	case *metadata.Int64Statistics:
		if unsigned {
			return num(float64(uint64(s.Min())), float64(uint64(s.Max())))
		}
		return num(float64(s.Min()), float64(s.Max()))
	case *metadata.Float32Statistics:
		return num(float64(s.Min()), float64(s.Max()))
	case *metadata.Float64Statistics:
		return num(s.Min(), s.Max())
	case *metadata.ByteArrayStatistics:
		if t.ID() != arrow.STRING && t.ID() != arrow.LARGE_STRING {
			return true
		}
		lo, hi := string(s.Min()), string(s.Max())
		return p.mayMatchRange(func(v Value) (int, bool) { return cmpStr(lo, v), true }, func(v Value) (int, bool) { return cmpStr(hi, v), true })
	}
	return true
}

// rowMask is the rows of rec that satisfy the filter's predicates on data
// columns; all is true when every row does (mask may then be nil).
func rowMask(rec arrow.RecordBatch, f Filter, isPart map[string]bool) (mask *array.Boolean, all bool, err error) {
	n := int(rec.NumRows())
	keep := make([]bool, n)
	for i := range keep {
		keep[i] = true
	}
	any := false
	for _, p := range f {
		if isPart[p.Column] {
			continue
		}
		idx := rec.Schema().FieldIndices(p.Column)
		if len(idx) == 0 {
			return nil, false, fmt.Errorf("column %s of the filter is missing from the batch", p.Column)
		}
		any = true
		col := rec.Column(idx[0])
		var test func(i int) bool
		switch a := col.(type) {
		case *array.Int8:
			test = numTest(a, p.matchNum)
		case *array.Int16:
			test = numTest(a, p.matchNum)
		case *array.Int32:
			test = numTest(a, p.matchNum)
		case *array.Int64:
			test = numTest(a, p.matchNum)
		case *array.Uint8:
			test = numTest(a, p.matchNum)
		case *array.Uint16:
			test = numTest(a, p.matchNum)
		case *array.Uint32:
			test = numTest(a, p.matchNum)
		case *array.Uint64:
			test = numTest(a, p.matchNum)
		case *array.Float32:
			test = numTest(a, p.matchNum)
		case *array.Float64:
			test = numTest(a, p.matchNum)
		case *array.String:
			test = func(i int) bool { return p.matchStr(a.Value(i)) }
		case *array.LargeString:
			test = func(i int) bool { return p.matchStr(a.Value(i)) }
		default:
			return nil, false, fmt.Errorf("the filter %s compares column %s of type %s; filters compare numbers and strings", p, p.Column, col.DataType())
		}
		for i := range keep {
			if keep[i] && (col.IsNull(i) || !test(i)) {
				keep[i] = false
			}
		}
	}
	if !any {
		return nil, true, nil
	}
	all = true
	b := array.NewBooleanBuilder(memory.DefaultAllocator)
	defer b.Release()
	b.AppendValues(keep, nil)
	for _, k := range keep {
		if !k {
			all = false
			break
		}
	}
	return b.NewBooleanArray(), all, nil
}

func (p Pred) matchNum(x float64) bool {
	for _, v := range p.Values {
		c, _ := cmpNum(x, v)
		if p.Op == In {
			if c == 0 {
				return true
			}
			continue
		}
		return holds(p.Op, c)
	}
	return false
}

func (p Pred) matchStr(s string) bool {
	for _, v := range p.Values {
		c := cmpStr(s, v)
		if p.Op == In {
			if c == 0 {
				return true
			}
			continue
		}
		return holds(p.Op, c)
	}
	return false
}

// partitionScalar is a partition's directory value as a scalar of the
// column's type; the Hive null marker is a null.
func partitionScalar(t arrow.DataType, s string) (scalar.Scalar, error) {
	if s == nullPartition {
		return scalar.MakeNullScalar(t), nil
	}
	switch t.ID() {
	case arrow.STRING:
		return scalar.NewStringScalar(s), nil
	case arrow.LARGE_STRING:
		return scalar.NewLargeStringScalar(s), nil
	case arrow.BOOL:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not a boolean", s)
		}
		return scalar.NewBooleanScalar(b), nil
	}
	sc, err := scalar.ParseScalar(t, s)
	if err != nil {
		return nil, fmt.Errorf("%q is not a value of type %s: %w", s, t, err)
	}
	return sc, nil
}

// compatible says whether a column of type got can be given as type want:
// equal, or differing only in the names of list elements ("item" and
// "element" name the same thing).
func compatible(got, want arrow.DataType) bool {
	if arrow.TypeEqual(got, want) {
		return true
	}
	if got.ID() != want.ID() {
		return false
	}
	switch w := want.(type) {
	case *arrow.ListType, *arrow.LargeListType, *arrow.FixedSizeListType, *arrow.MapType:
		if fw, ok := want.(*arrow.FixedSizeListType); ok && fw.Len() != got.(*arrow.FixedSizeListType).Len() {
			return false
		}
		return compatible(got.(arrow.ListLikeType).Elem(), w.(arrow.ListLikeType).Elem())
	case *arrow.StructType:
		g := got.(*arrow.StructType)
		if g.NumFields() != w.NumFields() {
			return false
		}
		for i := range w.Fields() {
			if g.Field(i).Name != w.Field(i).Name || !compatible(g.Field(i).Type, w.Field(i).Type) {
				return false
			}
		}
		return true
	}
	return false
}

// retype gives an array the type t, which is compatible with its own.
func retype(a arrow.Array, t arrow.DataType) arrow.Array {
	if arrow.TypeEqual(a.DataType(), t) {
		a.Retain()
		return a
	}
	d := retypeData(a.Data(), t)
	defer d.Release()
	return array.MakeFromData(d)
}

func retypeData(d arrow.ArrayData, t arrow.DataType) arrow.ArrayData {
	var childTypes []arrow.DataType
	switch tt := t.(type) {
	case arrow.ListLikeType:
		childTypes = []arrow.DataType{tt.Elem()}
	case *arrow.StructType:
		for _, f := range tt.Fields() {
			childTypes = append(childTypes, f.Type)
		}
	}
	children := make([]arrow.ArrayData, len(d.Children()))
	for i, c := range d.Children() {
		if i < len(childTypes) {
			children[i] = retypeData(c, childTypes[i])
		} else {
			c.Retain()
			children[i] = c
		}
	}
	nd := array.NewData(t, d.Len(), d.Buffers(), children, d.NullN(), d.Offset())
	for _, c := range children {
		c.Release()
	}
	return nd
}

// numTest tests the values of a numeric column with match.
func numTest[T int8 | int16 | int32 | int64 | uint8 | uint16 | uint32 | uint64 | float32 | float64](values interface{ Value(int) T }, match func(float64) bool) func(int) bool {
	return func(i int) bool { return match(float64(values.Value(i))) }
}
