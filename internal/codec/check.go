package codec

import (
	"encoding"
	"math/big"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/fxamacker/cbor/v2"
)

// maxDepth bounds how deeply a value may nest (counting pointers, slices,
// arrays, maps and structs) before Encode refuses it. It keeps a cyclic or
// absurdly deep value from hanging the encoder or exhausting the stack, and
// stays well below decMaxNestedLevels so that whatever Encode accepts,
// Decode accepts too.
const maxDepth = 1000

const plainAdvice = "store a plain value such as a slice or struct of numbers/strings instead"

var (
	timeType            = reflect.TypeFor[time.Time]()
	bigIntType          = reflect.TypeFor[big.Int]()
	cborMarshalerType   = reflect.TypeFor[cbor.Marshaler]()
	binaryMarshalerType = reflect.TypeFor[encoding.BinaryMarshaler]()
)

// problem is an unsupported part of a value, found while checking it before
// encoding. path lists the steps from the enclosing value to the part,
// innermost first (steps are appended while the walk unwinds).
type problem struct {
	typ    reflect.Type
	reason string
	path   []string
}

func (p *problem) at(step string) *problem {
	if step != "" {
		p.path = append(p.path, step)
	}
	return p
}

func (p *problem) clone() *problem {
	return &problem{typ: p.typ, reason: p.reason, path: append([]string(nil), p.path...)}
}

// toError turns p into the error returned to the user; root is the type of
// the value given to Encode.
func (p *problem) toError(root reflect.Type) *UnsupportedTypeError {
	reason := p.reason
	if len(p.path) > 0 {
		// Outermost first; a very long path (a deep value) is shortened.
		steps := make([]string, 0, len(p.path))
		for i := len(p.path) - 1; i >= 0; i-- {
			steps = append(steps, p.path[i])
		}
		if len(steps) > 12 {
			n := len(steps) - 8
			steps = append(steps[:4:4], append([]string{"…(" + strconv.Itoa(n) + " more)…"}, steps[len(steps)-4:]...)...)
		}
		var where strings.Builder
		where.WriteString(root.String())
		for _, s := range steps {
			where.WriteString(s)
		}
		reason = strings.Replace(reason, ";", " (at "+where.String()+");", 1)
	}
	return &UnsupportedTypeError{Type: p.typ.String(), Reason: reason}
}

// kindProblem returns the problem for a type whose kind cannot be stored, or
// nil.
func kindProblem(t reflect.Type) *problem {
	var reason string
	switch t.Kind() {
	case reflect.Chan:
		reason = "a channel cannot be stored; store the values it carries (e.g. as a slice) or " + plainAdvice
	case reflect.Func:
		reason = "a function cannot be stored; store the data it produces or a name that identifies it, or " + plainAdvice
	case reflect.UnsafePointer:
		reason = "an unsafe.Pointer cannot be stored; " + plainAdvice
	case reflect.Uintptr:
		reason = "a uintptr cannot be stored; convert it to uint64, or " + plainAdvice
	case reflect.Complex64, reflect.Complex128:
		reason = "complex numbers are not supported by the encoding; store the real and imaginary parts as two float64 fields, or " + plainAdvice
	default:
		return nil
	}
	return &problem{typ: t, reason: reason}
}

func cycleProblem(t reflect.Type) *problem {
	return &problem{typ: t, reason: "the value refers back to itself (a pointer cycle), which cannot be stored; store a tree without cycles, e.g. refer to other nodes by their index in a slice, or " + plainAdvice}
}

func depthProblem(t reflect.Type) *problem {
	return &problem{typ: t, reason: "the value is nested more than " + strconv.Itoa(maxDepth) + " levels deep; flatten it, e.g. into a slice of records that refer to each other by index, or " + plainAdvice}
}

// structField is a field of a struct that the CBOR encoder writes (or that
// leads to such fields, for embedded structs).
type structField struct {
	index int
	name  string
}

// typeInfo is what Encode and Decode need to know about a type, computed once
// per type.
type typeInfo struct {
	// prob is the first part of the type that cannot be stored, if any.
	prob *problem
	// walk is set when values of the type must be walked before encoding:
	// the type holds interfaces (whose dynamic values are unknown) or refers
	// to itself (so values may be cyclic or arbitrarily deep).
	walk bool
	// iface is set when the type holds empty interfaces somewhere, whose
	// decoded values are normalized like DecodeAny's.
	iface bool
	// fields are the struct's fields that matter (struct types only).
	fields []structField
}

var typeInfos sync.Map // reflect.Type -> *typeInfo

func infoOf(t reflect.Type) *typeInfo {
	if v, ok := typeInfos.Load(t); ok {
		return v.(*typeInfo)
	}
	s := scanner{onStack: map[reflect.Type]bool{}, done: map[reflect.Type]scanResult{}}
	r := s.scan(t)
	info := &typeInfo{prob: r.prob, walk: r.iface || r.recursive, iface: r.iface}
	if t.Kind() == reflect.Struct && !isOpaque(t) {
		info.fields = fieldsOf(t)
	}
	v, _ := typeInfos.LoadOrStore(t, info)
	return v.(*typeInfo)
}

// isOpaque reports whether the CBOR encoder writes values of t as a whole,
// without looking at their fields.
func isOpaque(t reflect.Type) bool {
	if t == timeType || t == bigIntType {
		return true
	}
	if t.Kind() == reflect.Pointer || t.Kind() == reflect.Interface {
		return false
	}
	pt := reflect.PointerTo(t)
	return pt.Implements(cborMarshalerType) || pt.Implements(binaryMarshalerType)
}

// fieldsOf lists the fields of struct type t that the CBOR encoder may write:
// exported fields and embedded structs, except those tagged "-".
func fieldsOf(t reflect.Type) []structField {
	var fs []structField
	for i := range t.NumField() {
		f := t.Field(i)
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if !f.IsExported() && !(f.Anonymous && ft.Kind() == reflect.Struct) {
			continue
		}
		tag, ok := f.Tag.Lookup("cbor")
		if !ok || tag == "" {
			tag = f.Tag.Get("json")
		}
		if tag == "-" {
			continue
		}
		fs = append(fs, structField{index: i, name: f.Name})
	}
	return fs
}

type scanResult struct {
	prob      *problem
	iface     bool
	recursive bool
}

// scanner walks a type graph once, depth first.
type scanner struct {
	onStack map[reflect.Type]bool
	done    map[reflect.Type]scanResult
}

func (s *scanner) scan(t reflect.Type) scanResult {
	if isOpaque(t) {
		return scanResult{}
	}
	if s.onStack[t] {
		return scanResult{recursive: true}
	}
	if r, ok := s.done[t]; ok {
		if r.prob != nil {
			r.prob = r.prob.clone()
		}
		return r
	}
	if p := kindProblem(t); p != nil {
		return scanResult{prob: p}
	}
	s.onStack[t] = true
	var r scanResult
	add := func(sub scanResult, step string) {
		if sub.prob != nil && r.prob == nil {
			r.prob = sub.prob.at(step)
		}
		r.iface = r.iface || sub.iface
		r.recursive = r.recursive || sub.recursive
	}
	switch t.Kind() {
	case reflect.Interface:
		r.iface = true
	case reflect.Pointer:
		add(s.scan(t.Elem()), "")
	case reflect.Slice, reflect.Array:
		add(s.scan(t.Elem()), "[i]")
	case reflect.Map:
		add(s.scan(t.Key()), "{map key}")
		add(s.scan(t.Elem()), "[key]")
	case reflect.Struct:
		for _, f := range fieldsOf(t) {
			add(s.scan(t.Field(f.index).Type), "."+f.name)
		}
	}
	delete(s.onStack, t)
	s.done[t] = r
	if r.prob != nil {
		r.prob = r.prob.clone()
	}
	return r
}

// check reports the first part of v that cannot be encoded: a value of an
// unsupported kind (also inside interfaces), a pointer cycle, or nesting
// deeper than maxDepth. It looks at values only where the type demands it,
// so plain data (numbers, strings, structs and slices of them) costs nothing.
func check(v reflect.Value) *UnsupportedTypeError {
	var w walker
	if p := w.value(v, 0); p != nil {
		return p.toError(v.Type())
	}
	return nil
}

type visitKey struct {
	ptr unsafe.Pointer
	typ reflect.Type
	n   int
}

// walker checks a value; onPath holds the pointers, maps and slices on the
// way from the root to the current value, which is how cycles are found.
type walker struct {
	onPath map[visitKey]bool
}

func (w *walker) enter(k visitKey) bool {
	if w.onPath == nil {
		w.onPath = map[visitKey]bool{}
	}
	if w.onPath[k] {
		return false
	}
	w.onPath[k] = true
	return true
}

func (w *walker) value(v reflect.Value, depth int) *problem {
	t := v.Type()
	info := infoOf(t)
	if info.prob != nil {
		return info.prob.clone()
	}
	if !info.walk {
		return nil
	}
	if depth > maxDepth {
		return depthProblem(t)
	}
	switch v.Kind() {
	case reflect.Interface:
		if v.IsNil() {
			return nil
		}
		return w.value(v.Elem(), depth)
	case reflect.Pointer:
		if v.IsNil() {
			return nil
		}
		k := visitKey{ptr: v.UnsafePointer(), typ: t}
		if !w.enter(k) {
			return cycleProblem(t)
		}
		defer delete(w.onPath, k)
		return w.value(v.Elem(), depth+1)
	case reflect.Slice:
		if v.IsNil() || v.Len() == 0 {
			return nil
		}
		k := visitKey{ptr: v.UnsafePointer(), typ: t, n: v.Len()}
		if !w.enter(k) {
			return cycleProblem(t)
		}
		defer delete(w.onPath, k)
		return w.elems(v, depth)
	case reflect.Array:
		return w.elems(v, depth)
	case reflect.Map:
		if v.IsNil() || v.Len() == 0 {
			return nil
		}
		k := visitKey{ptr: v.UnsafePointer(), typ: t}
		if !w.enter(k) {
			return cycleProblem(t)
		}
		defer delete(w.onPath, k)
		it := v.MapRange()
		for it.Next() {
			key := it.Key()
			if p := w.value(key, depth+1); p != nil {
				return p.at("{map key}")
			}
			if p := w.value(it.Value(), depth+1); p != nil {
				return p.at("[" + formatKey(key) + "]")
			}
		}
	case reflect.Struct:
		for _, f := range info.fields {
			if p := w.value(v.Field(f.index), depth+1); p != nil {
				return p.at("." + f.name)
			}
		}
	}
	return nil
}

func (w *walker) elems(v reflect.Value, depth int) *problem {
	if !infoOf(v.Type().Elem()).walk {
		return nil
	}
	for i := range v.Len() {
		if p := w.value(v.Index(i), depth+1); p != nil {
			return p.at("[" + strconv.Itoa(i) + "]")
		}
	}
	return nil
}

// formatKey formats a map key for an error message. It avoids
// Value.Interface, which panics on values reached through unexported fields.
func formatKey(k reflect.Value) string {
	switch k.Kind() {
	case reflect.String:
		return strconv.Quote(k.String())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.FormatInt(k.Int(), 10)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return strconv.FormatUint(k.Uint(), 10)
	case reflect.Float32, reflect.Float64:
		return strconv.FormatFloat(k.Float(), 'g', -1, 64)
	case reflect.Bool:
		return strconv.FormatBool(k.Bool())
	case reflect.Interface:
		if !k.IsNil() {
			return formatKey(k.Elem())
		}
	}
	return "(" + k.Type().String() + " key)"
}
