package dataset

import (
	"fmt"
	"reflect"
	"strings"
	"time"
	"unicode"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// column is one struct field mapped to a column.
type column struct {
	name  string
	index []int
	typ   reflect.Type // the field's type
	base  reflect.Type // without the pointer, for nullable fields
	ptr   bool
}

var timeType = reflect.TypeFor[time.Time]()

// ColumnName is the column of a struct field: its `table:"name"` tag, else
// its name in snake_case (UserID is user_id). A tag of "-" skips it.
func ColumnName(f reflect.StructField) (string, bool) {
	if tag, ok := f.Tag.Lookup("table"); ok {
		name, _, _ := strings.Cut(tag, ",")
		if name == "-" {
			return "", false
		}
		if name != "" {
			return name, true
		}
	}
	return snake(f.Name), true
}

func snake(s string) string {
	rs := []rune(s)
	var b strings.Builder
	for i, r := range rs {
		if unicode.IsUpper(r) {
			if i > 0 && (unicode.IsLower(rs[i-1]) || unicode.IsDigit(rs[i-1]) || (i+1 < len(rs) && unicode.IsLower(rs[i+1]))) {
				b.WriteByte('_')
			}
			b.WriteRune(unicode.ToLower(r))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func structColumns(t reflect.Type) ([]column, error) {
	if t.Kind() != reflect.Struct {
		return nil, fmt.Errorf("table rows must be structs, not %s", t)
	}
	var cols []column
	seen := map[string]string{}
	for _, f := range reflect.VisibleFields(t) {
		if !f.IsExported() || f.Anonymous {
			continue
		}
		name, ok := ColumnName(f)
		if !ok {
			continue
		}
		if other, dup := seen[name]; dup {
			return nil, fmt.Errorf("%s: fields %s and %s both map to column %q; rename one with a table:\"name\" tag", t, other, f.Name, name)
		}
		seen[name] = f.Name
		c := column{name: name, index: f.Index, typ: f.Type, base: f.Type}
		if f.Type.Kind() == reflect.Pointer {
			c.ptr, c.base = true, f.Type.Elem()
		}
		if _, err := arrowType(c.base); err != nil {
			return nil, fmt.Errorf("%s.%s: %w", t, f.Name, err)
		}
		cols = append(cols, c)
	}
	if len(cols) == 0 {
		return nil, fmt.Errorf("%s has no exported fields to store as columns", t)
	}
	return cols, nil
}

func arrowType(t reflect.Type) (arrow.DataType, error) {
	if t == timeType {
		return &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}, nil
	}
	switch t.Kind() {
	case reflect.Bool:
		return arrow.FixedWidthTypes.Boolean, nil
	case reflect.Int8:
		return arrow.PrimitiveTypes.Int8, nil
	case reflect.Int16:
		return arrow.PrimitiveTypes.Int16, nil
	case reflect.Int32:
		return arrow.PrimitiveTypes.Int32, nil
	case reflect.Int, reflect.Int64:
		return arrow.PrimitiveTypes.Int64, nil
	case reflect.Uint8:
		return arrow.PrimitiveTypes.Uint8, nil
	case reflect.Uint16:
		return arrow.PrimitiveTypes.Uint16, nil
	case reflect.Uint32:
		return arrow.PrimitiveTypes.Uint32, nil
	case reflect.Uint, reflect.Uint64:
		return arrow.PrimitiveTypes.Uint64, nil
	case reflect.Float32:
		return arrow.PrimitiveTypes.Float32, nil
	case reflect.Float64:
		return arrow.PrimitiveTypes.Float64, nil
	case reflect.String:
		return arrow.BinaryTypes.String, nil
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return arrow.BinaryTypes.Binary, nil
		}
	}
	return nil, fmt.Errorf("type %s has no column type (use bool, integers, floats, string, []byte, time.Time, or pointers to them for nulls)", t)
}

// StructSchema is the Arrow schema of a slice of T.
func StructSchema(t reflect.Type) (*arrow.Schema, error) {
	cols, err := structColumns(t)
	if err != nil {
		return nil, err
	}
	fields := make([]arrow.Field, len(cols))
	for i, c := range cols {
		at, _ := arrowType(c.base)
		fields[i] = arrow.Field{Name: c.name, Type: at, Nullable: c.ptr}
	}
	return arrow.NewSchema(fields, nil), nil
}

// FromStructs makes one record batch of rows (a slice of structs).
func FromStructs(rows reflect.Value, mem memory.Allocator) (arrow.RecordBatch, error) {
	t := rows.Type().Elem()
	cols, err := structColumns(t)
	if err != nil {
		return nil, err
	}
	schema, _ := StructSchema(t)
	b := array.NewRecordBuilder(mem, schema)
	defer b.Release()
	n := rows.Len()
	for ci, c := range cols {
		fb := b.Field(ci)
		fb.Reserve(n)
		for i := 0; i < n; i++ {
			v := rows.Index(i).FieldByIndex(c.index)
			if c.ptr {
				if v.IsNil() {
					fb.AppendNull()
					continue
				}
				v = v.Elem()
			}
			switch fb := fb.(type) {
			case *array.BooleanBuilder:
				fb.Append(v.Bool())
			case *array.Int8Builder:
				fb.Append(int8(v.Int()))
			case *array.Int16Builder:
				fb.Append(int16(v.Int()))
			case *array.Int32Builder:
				fb.Append(int32(v.Int()))
			case *array.Int64Builder:
				fb.Append(v.Int())
			case *array.Uint8Builder:
				fb.Append(uint8(v.Uint()))
			case *array.Uint16Builder:
				fb.Append(uint16(v.Uint()))
			case *array.Uint32Builder:
				fb.Append(uint32(v.Uint()))
			case *array.Uint64Builder:
				fb.Append(v.Uint())
			case *array.Float32Builder:
				fb.Append(float32(v.Float()))
			case *array.Float64Builder:
				fb.Append(v.Float())
			case *array.StringBuilder:
				fb.Append(v.String())
			case *array.BinaryBuilder:
				fb.Append(v.Bytes())
			case *array.TimestampBuilder:
				fb.Append(arrow.Timestamp(v.Interface().(time.Time).UnixMicro()))
			}
		}
	}
	return b.NewRecordBatch(), nil
}

// MismatchError says that a column cannot be read into a struct field.
type MismatchError struct {
	Table, Column string
	ColumnType    string // the table's
	Field         string // Struct.Field
	FieldType     string // the struct's
	Missing       bool   // the table has no such column
}

func (e *MismatchError) Error() string {
	if e.Missing {
		return fmt.Sprintf("table %s has no column %q for field %s (%s); add a table:\"name\" tag naming one of its columns, or table:\"-\" to skip the field", e.Table, e.Column, e.Field, e.FieldType)
	}
	return fmt.Sprintf("table %s: column %q is %s in the table but field %s is %s; change the field's type", e.Table, e.Column, e.ColumnType, e.Field, e.FieldType)
}

// reader of one column into a field.
type setter func(a arrow.Array, i int, v reflect.Value)

func setterFor(c column, dt arrow.DataType) setter {
	k := c.base.Kind()
	isTime := c.base == timeType
	switch a := dt.ID(); {
	case isTime && a == arrow.TIMESTAMP:
		unit := dt.(*arrow.TimestampType).Unit
		return func(arr arrow.Array, i int, v reflect.Value) {
			v.Set(reflect.ValueOf(arr.(*array.Timestamp).Value(i).ToTime(unit).UTC()))
		}
	case isTime && a == arrow.DATE32:
		return func(arr arrow.Array, i int, v reflect.Value) {
			v.Set(reflect.ValueOf(arr.(*array.Date32).Value(i).ToTime().UTC()))
		}
	case isTime:
		return nil
	case k == reflect.Bool && a == arrow.BOOL:
		return func(arr arrow.Array, i int, v reflect.Value) { v.SetBool(arr.(*array.Boolean).Value(i)) }
	case k == reflect.String && a == arrow.STRING:
		return func(arr arrow.Array, i int, v reflect.Value) {
			v.SetString(strings.Clone(arr.(*array.String).Value(i)))
		}
	case k == reflect.String && a == arrow.LARGE_STRING:
		return func(arr arrow.Array, i int, v reflect.Value) {
			v.SetString(strings.Clone(arr.(*array.LargeString).Value(i)))
		}
	case k == reflect.Slice && a == arrow.BINARY:
		return func(arr arrow.Array, i int, v reflect.Value) {
			v.SetBytes(append([]byte(nil), arr.(*array.Binary).Value(i)...))
		}
	case k == reflect.Slice && a == arrow.LARGE_BINARY:
		return func(arr arrow.Array, i int, v reflect.Value) {
			v.SetBytes(append([]byte(nil), arr.(*array.LargeBinary).Value(i)...))
		}
	case k == reflect.Float32 && a == arrow.FLOAT32, k == reflect.Float64 && a == arrow.FLOAT32:
		return func(arr arrow.Array, i int, v reflect.Value) { v.SetFloat(float64(arr.(*array.Float32).Value(i))) }
	case k == reflect.Float64 && a == arrow.FLOAT64:
		return func(arr arrow.Array, i int, v reflect.Value) { v.SetFloat(arr.(*array.Float64).Value(i)) }
	}
	// Integers: a field at least as wide as the column, of the same sign.
	bits := map[arrow.Type]int{arrow.INT8: 8, arrow.INT16: 16, arrow.INT32: 32, arrow.INT64: 64, arrow.UINT8: 8, arrow.UINT16: 16, arrow.UINT32: 32, arrow.UINT64: 64}
	colBits, ok := bits[dt.ID()]
	if !ok {
		return nil
	}
	signed := dt.ID() <= arrow.INT64 && (dt.ID() == arrow.INT8 || dt.ID() == arrow.INT16 || dt.ID() == arrow.INT32 || dt.ID() == arrow.INT64)
	switch k {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if !signed || c.base.Bits() < colBits {
			return nil
		}
		return func(arr arrow.Array, i int, v reflect.Value) { v.SetInt(intAt(arr, i)) }
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if signed || c.base.Bits() < colBits {
			return nil
		}
		return func(arr arrow.Array, i int, v reflect.Value) { v.SetUint(uintAt(arr, i)) }
	}
	return nil
}

func intAt(a arrow.Array, i int) int64 {
	switch a := a.(type) {
	case *array.Int8:
		return int64(a.Value(i))
	case *array.Int16:
		return int64(a.Value(i))
	case *array.Int32:
		return int64(a.Value(i))
	case *array.Int64:
		return a.Value(i)
	}
	return 0
}

func uintAt(a arrow.Array, i int) uint64 {
	switch a := a.(type) {
	case *array.Uint8:
		return uint64(a.Value(i))
	case *array.Uint16:
		return uint64(a.Value(i))
	case *array.Uint32:
		return uint64(a.Value(i))
	case *array.Uint64:
		return a.Value(i)
	}
	return 0
}

// StructReader appends the rows of batches of one schema to a slice of
// structs.
type StructReader struct {
	cols    []column
	idx     []int
	setters []setter
}

// NewStructReader checks that every field of T has a column of a type it
// can hold, and reports the first that has not as a *MismatchError.
func NewStructReader(table string, schema *arrow.Schema, t reflect.Type) (*StructReader, error) {
	cols, err := structColumns(t)
	if err != nil {
		return nil, err
	}
	r := &StructReader{cols: cols}
	for _, c := range cols {
		f := t.FieldByIndex(c.index)
		idx := schema.FieldIndices(c.name)
		if len(idx) == 0 {
			return nil, &MismatchError{Table: table, Column: c.name, Field: t.Name() + "." + f.Name, FieldType: c.typ.String(), Missing: true}
		}
		dt := schema.Field(idx[0]).Type
		s := setterFor(c, dt)
		if s == nil {
			return nil, &MismatchError{Table: table, Column: c.name, ColumnType: dt.String(), Field: t.Name() + "." + f.Name, FieldType: c.typ.String()}
		}
		r.idx = append(r.idx, idx[0])
		r.setters = append(r.setters, s)
	}
	return r, nil
}

// Append adds the rows of rec to dst, a pointer to a slice of structs.
func (r *StructReader) Append(rec arrow.RecordBatch, dst reflect.Value) {
	s := dst.Elem()
	start := s.Len()
	n := int(rec.NumRows())
	s.Grow(n)
	s.SetLen(start + n)
	for ci, c := range r.cols {
		a := rec.Column(r.idx[ci])
		set := r.setters[ci]
		for i := 0; i < n; i++ {
			f := s.Index(start + i).FieldByIndex(c.index)
			if a.IsNull(i) {
				f.SetZero()
				continue
			}
			if c.ptr {
				p := reflect.New(c.base)
				set(a, i, p.Elem())
				f.Set(p)
				continue
			}
			set(a, i, f)
		}
	}
}
