package hosting

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"unicode/utf8"
)

// queryJSON turns the query parameters of a GET request into the JSON
// object that a POST to the same endpoint would carry, so that both are
// decoded the same way into t, the endpoint's request type (a struct, or a
// pointer to one). A parameter names a field as JSON does (its json tag,
// else its Go name, case-insensitively). Its value is a JSON string when
// the field is a string; otherwise it is taken as JSON when it is valid
// JSON (x=1.5, ok=true, ids=[1,2]) and as a string else, so that the
// decoder names the field and the type it wants. A slice field may be
// given once per element (id=1&id=2).
func queryJSON(q url.Values, t reflect.Type) ([]byte, error) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return nil, fmt.Errorf("this endpoint takes a %s, which query parameters cannot give; POST it as a JSON body", t)
	}
	fields := jsonFields(t)
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range q {
			if !yield(k) {
				return
			}
		}
	})
	var b bytes.Buffer
	b.WriteByte('{')
	used := map[string]string{} // parameter by field name
	for i, k := range keys {
		f, ok := lookup(fields, k)
		if other, dup := used[f.name]; ok && dup {
			return nil, fmt.Errorf("parameters %q and %q name the same field; give it once", other, k)
		}
		used[f.name] = k
		if !ok {
			names := make([]string, len(fields))
			for i, f := range fields {
				names[i] = f.name
			}
			if len(names) == 0 {
				return nil, fmt.Errorf("unknown parameter %q: this endpoint takes no parameters", k)
			}
			return nil, fmt.Errorf("unknown parameter %q: this endpoint takes %s", k, strings.Join(names, ", "))
		}
		for _, v := range q[k] {
			if !utf8.ValidString(v) {
				return nil, fmt.Errorf("parameter %q is not valid UTF-8 text, and JSON would change it; send UTF-8, percent-encoded (é is %%C3%%A9), or POST the value as JSON", k)
			}
		}
		if i > 0 {
			b.WriteByte(',')
		}
		name, _ := json.Marshal(f.name)
		b.Write(name)
		b.WriteByte(':')
		vs := q[k]
		ft := f.typ
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		isList := (ft.Kind() == reflect.Slice || ft.Kind() == reflect.Array) && ft.Elem().Kind() != reflect.Uint8
		switch {
		case isList && (len(vs) > 1 || !isJSONArray(vs[0])):
			b.WriteByte('[')
			for j, v := range vs {
				if j > 0 {
					b.WriteByte(',')
				}
				writeValue(&b, v, ft.Elem())
			}
			b.WriteByte(']')
		case len(vs) > 1:
			return nil, fmt.Errorf("parameter %q is given %d times; it takes one value", k, len(vs))
		default:
			writeValue(&b, vs[0], ft)
		}
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// field is a field as JSON names it.
type field struct {
	name string
	typ  reflect.Type
}

// jsonFields lists the fields of struct t that encoding/json decodes, by
// the names it gives them.
func jsonFields(t reflect.Type) []field {
	var out []field
	for _, f := range reflect.VisibleFields(t) {
		if !f.IsExported() || f.Anonymous && f.Type.Kind() == reflect.Struct {
			continue
		}
		name := f.Name
		if tag, ok := f.Tag.Lookup("json"); ok {
			n, _, _ := strings.Cut(tag, ",")
			if n == "-" && !strings.HasPrefix(tag, "-,") {
				continue
			}
			if n != "" && n != "-" {
				name = n
			}
		}
		out = append(out, field{name: name, typ: f.Type})
	}
	return out
}

// lookup finds the field a parameter names: exactly, else ignoring case,
// as encoding/json matches object keys.
func lookup(fields []field, k string) (field, bool) {
	for _, f := range fields {
		if f.name == k {
			return f, true
		}
	}
	for _, f := range fields {
		if strings.EqualFold(f.name, k) {
			return f, true
		}
	}
	return field{}, false
}

func isJSONArray(v string) bool {
	v = strings.TrimSpace(v)
	return strings.HasPrefix(v, "[") && json.Valid([]byte(v))
}

// writeValue writes one parameter's value for a field of type t.
func writeValue(b *bytes.Buffer, v string, t reflect.Type) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.String && json.Valid([]byte(v)) {
		b.WriteString(v)
		return
	}
	s, _ := json.Marshal(v) // a string always encodes
	b.Write(s)
}
