package codec

import (
	"bytes"
	"encoding"
	"fmt"
	"math/big"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// maxDepth bounds how deeply a value may nest (counting pointers, slices,
// arrays, maps and structs) before Encode refuses it. It keeps a cyclic or
// absurdly deep value from hanging the encoder or exhausting the stack, and
// stays well below decMaxNestedLevels so that whatever Encode accepts,
// Decode accepts too.
const maxDepth = 1000

const plainAdvice = "store a plain value such as a slice or struct of numbers/strings instead"

// gobEncoder and gobDecoder are encoding/gob's GobEncoder and GobDecoder,
// declared here so that every flow binary does not pay for gob's package
// initialisation.
type (
	gobEncoder interface{ GobEncode() ([]byte, error) }
	gobDecoder interface{ GobDecode([]byte) error }
)

var (
	timeType              = reflect.TypeFor[time.Time]()
	bigIntType            = reflect.TypeFor[big.Int]()
	binaryMarshalerType   = reflect.TypeFor[encoding.BinaryMarshaler]()
	binaryUnmarshalerType = reflect.TypeFor[encoding.BinaryUnmarshaler]()
	gobEncoderType        = reflect.TypeFor[gobEncoder]()
	gobDecoderType        = reflect.TypeFor[gobDecoder]()
	textMarshalerType     = reflect.TypeFor[encoding.TextMarshaler]()
	textUnmarshalerType   = reflect.TypeFor[encoding.TextUnmarshaler]()
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

// how says how the values of a type are stored.
type how uint8

const (
	byKind   how = iota // by the type's kind: numbers, strings, slices, maps, structs...
	asTime              // tag 0 text, see time.go
	asBigInt            // an integer, or a bignum beyond 64 bits
	asBinary            // MarshalBinary and UnmarshalBinary, as a byte string
	asGob               // GobEncode and GobDecode, as a byte string
	asText              // MarshalText and UnmarshalText, as a text string
)

// howOf says how values of t are stored. Types that marshal themselves to
// bytes do so (as format version 1 did); a struct type with unexported
// fields, which the codec cannot see, is stored through GobEncode or
// MarshalText when it has them (math/big.Float, regexp.Regexp...). Methods
// promoted from an embedded field are not used: they would store the
// embedded value only and drop the other fields.
func howOf(t reflect.Type) (how, *problem) {
	switch t {
	case timeType:
		return asTime, nil
	case bigIntType:
		return asBigInt, nil
	}
	if t.Kind() == reflect.Pointer || t.Kind() == reflect.Interface {
		return byKind, nil
	}
	pt := reflect.PointerTo(t)
	if pt.Implements(binaryMarshalerType) && !promoted(t, binaryMarshalerType) {
		if !pt.Implements(binaryUnmarshalerType) {
			return asBinary, &problem{typ: t, reason: "the type has a MarshalBinary method but no UnmarshalBinary, so a stored value could not be read back; add UnmarshalBinary, or " + plainAdvice}
		}
		return asBinary, nil
	}
	if t.Kind() == reflect.Struct && hasHidden(t, map[reflect.Type]bool{}) {
		if pt.Implements(gobEncoderType) && pt.Implements(gobDecoderType) && !promoted(t, gobEncoderType) {
			return asGob, nil
		}
		if pt.Implements(textMarshalerType) && pt.Implements(textUnmarshalerType) && !promoted(t, textMarshalerType) {
			return asText, nil
		}
	}
	return byKind, nil
}

// hasHidden reports whether struct type t has unexported fields, also in
// the structs it embeds.
func hasHidden(t reflect.Type, seen map[reflect.Type]bool) bool {
	seen[t] = true
	for i := range t.NumField() {
		f := t.Field(i)
		base := f.Type
		if base.Kind() == reflect.Pointer {
			base = base.Elem()
		}
		if f.Anonymous && base.Kind() == reflect.Struct {
			if !seen[base] && hasHidden(base, seen) {
				return true
			}
			continue
		}
		if !f.IsExported() {
			return true
		}
	}
	return false
}

// promoted reports whether struct type t may have its method of interface
// iface from an embedded field rather than its own.
func promoted(t reflect.Type, iface reflect.Type) bool {
	if t.Kind() != reflect.Struct {
		return false
	}
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Anonymous && (f.Type.Implements(iface) || reflect.PointerTo(f.Type).Implements(iface)) {
			return true
		}
	}
	return false
}

// isOpaque reports whether values of t are stored as a whole rather than by
// their kind.
func isOpaque(t reflect.Type) bool {
	h, _ := howOf(t)
	return h != byKind
}

// field is a struct field that is stored: exported, possibly promoted from
// an embedded struct.
type field struct {
	name  string       // the Go name, which is the key it is stored under
	path  string       // where it is, for messages: "Name" or "Inner.Name"
	key   []byte       // name encoded as a CBOR text string
	index []int        // field indexes from the struct, through embedded structs
	typ   reflect.Type // the field's type
}

// hiddenField is an unexported field: not stored, so Encode refuses a value
// in which it is not zero.
type hiddenField struct {
	path  string
	index []int
}

// structInfo is how a struct type is stored: as a CBOR map from field names
// to values, the fields of embedded structs promoted as in Go.
type structInfo struct {
	fields []field // sorted by key, the order they are written in
	byName map[string]*field
	byTag  map[string]*field // cbor and json tag names, which format version 1 wrote as keys
	byFold map[string]*field // lower-case names, for keys written under another case
	hidden []hiddenField
	prob   *problem
	// ptrEmbed is set when fields are promoted through embedded pointers,
	// which may be nil (their fields are then not written).
	ptrEmbed bool
}

var structInfos sync.Map // reflect.Type -> *structInfo

func structInfoOf(t reflect.Type) *structInfo {
	if v, ok := structInfos.Load(t); ok {
		return v.(*structInfo)
	}
	si := &structInfo{byName: map[string]*field{}, byTag: map[string]*field{}, byFold: map[string]*field{}}
	si.collect(t, nil, "", map[reflect.Type]bool{t: true})
	slices.SortFunc(si.fields, func(a, b field) int { return bytes.Compare(a.key, b.key) })
	seen := map[string]*field{}
	for i := range si.fields {
		f := &si.fields[i]
		if g, dup := seen[f.name]; dup && si.prob == nil {
			si.prob = &problem{typ: t, reason: fmt.Sprintf("fields %s and %s would both be stored under the name %q, and one would be lost (fields are stored by their Go name; tags do not rename them); rename one of them, or give the embedded struct a field name", g.path, f.path, f.name)}
		}
		seen[f.name] = f
		si.byName[f.name] = f
		si.byFold[strings.ToLower(f.name)] = f
		st := t.FieldByIndex(f.index)
		tag, ok := st.Tag.Lookup("cbor")
		if !ok || tag == "" {
			tag = st.Tag.Get("json")
		}
		if name, _, _ := strings.Cut(tag, ","); name != "" && name != "-" && name != f.name {
			si.byTag[name] = f
		}
	}
	v, _ := structInfos.LoadOrStore(t, si)
	return v.(*structInfo)
}

func (si *structInfo) collect(t reflect.Type, prefix []int, path string, embedding map[reflect.Type]bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		index := append(slices.Clip(prefix), i)
		base := f.Type
		if base.Kind() == reflect.Pointer {
			base = base.Elem()
		}
		if f.Anonymous && base.Kind() == reflect.Struct && !embedding[base] && !isOpaque(base) {
			embedding[base] = true
			si.ptrEmbed = si.ptrEmbed || f.Type.Kind() == reflect.Pointer
			si.collect(base, index, path+f.Name+".", embedding)
			delete(embedding, base)
			continue
		}
		if !f.IsExported() {
			si.hidden = append(si.hidden, hiddenField{path: path + f.Name, index: index})
			continue
		}
		si.fields = append(si.fields, field{name: f.Name, path: path + f.Name, key: appendText(nil, f.Name), index: index, typ: f.Type})
	}
}

// appendText appends s as a CBOR text string.
func appendText(b []byte, s string) []byte {
	return append(appendHead(b, majorText, uint64(len(s))), s...)
}

// keyPointer reports whether values of map key type t hold pointers, whose
// identity cannot be stored.
func keyPointer(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Pointer:
		return true
	case reflect.Array:
		return keyPointer(t.Elem())
	case reflect.Struct:
		for i := range t.NumField() {
			if keyPointer(t.Field(i).Type) {
				return true
			}
		}
	}
	return false
}

// typeInfo is what Encode and Decode need to know about a type, computed once
// per type.
type typeInfo struct {
	// prob is the first part of the type that cannot be stored, if any.
	prob *problem
	// walk is set when values of the type may be cyclic: the type holds
	// interfaces (whose dynamic values are unknown) or refers to itself.
	// Encode then tracks the pointers, maps and slices on its way.
	walk bool
	// how is how values of the type are stored.
	how how
	// si is set for struct types stored by kind.
	si *structInfo
}

var typeInfos sync.Map // reflect.Type -> *typeInfo

func infoOf(t reflect.Type) *typeInfo {
	if v, ok := typeInfos.Load(t); ok {
		return v.(*typeInfo)
	}
	s := scanner{onStack: map[reflect.Type]bool{}, done: map[reflect.Type]scanResult{}}
	r := s.scan(t)
	info := &typeInfo{prob: r.prob, walk: r.iface || r.recursive}
	info.how, _ = howOf(t)
	if t.Kind() == reflect.Struct && info.how == byKind {
		info.si = structInfoOf(t)
	}
	v, _ := typeInfos.LoadOrStore(t, info)
	return v.(*typeInfo)
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
	if h, p := howOf(t); h != byKind || p != nil {
		return scanResult{prob: p}
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
		if keyPointer(t.Key()) {
			add(scanResult{prob: &problem{typ: t, reason: "its keys hold pointers, whose identity cannot be stored (keys with equal pointees would collide, and reading back makes new pointers); key the map by a value, such as an id or the pointee itself, or " + plainAdvice}}, "")
		}
		add(s.scan(t.Key()), "{map key}")
		add(s.scan(t.Elem()), "[key]")
	case reflect.Struct:
		si := structInfoOf(t)
		if si.prob != nil {
			add(scanResult{prob: si.prob.clone()}, "")
		}
		for _, f := range si.fields {
			add(s.scan(f.typ), "."+f.path)
		}
	}
	delete(s.onStack, t)
	s.done[t] = r
	if r.prob != nil {
		r.prob = r.prob.clone()
	}
	return r
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
