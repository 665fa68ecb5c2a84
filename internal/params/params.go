// Package params binds a flow's parameters: exported fields with a `param`
// tag, set from command-line flags (or Run's options), recorded with the
// run as strings, and set again from that record in every task.
//
//	N     int      `param:"n" help:"how many items"`
//	Model string   `param:",required" help:"model to train"` // flag --model
//	Tags  []string `param:"tags"`                             // --tags a,b or --tags '["a,b","c"]'
package params

import (
	"encoding/json"
	"flag"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"stepwise.dev/stepwise/internal/graph"
)

// Param is one field of the flow bound to a flag. The flag's default is
// the field's value in the flow given to Main.
type Param struct {
	Name     string // flag name
	Field    string // Go field name
	Help     string
	Required bool
	Index    []int // the field's index in the flow struct
	Type     reflect.Type
}

// List lists the parameters of a flow struct type.
func List(t reflect.Type) ([]Param, error) {
	var ps []Param
	for _, f := range reflect.VisibleFields(t) {
		tag, ok := f.Tag.Lookup("param")
		if !ok {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if name == "" {
			name = strings.ReplaceAll(graph.SnakeCase(f.Name), "_", "-")
		}
		if !f.IsExported() {
			return nil, fmt.Errorf("parameter %s: field %s is not exported; parameters are artifacts, so export it", name, f.Name)
		}
		if !kind(f.Type) {
			return nil, fmt.Errorf("parameter %s: field %s has type %s; a parameter is a string, bool, integer, float, time.Duration or []string", name, f.Name, f.Type)
		}
		ps = append(ps, Param{Name: name, Field: f.Name, Help: f.Tag.Get("help"), Required: opts == "required", Index: f.Index, Type: f.Type})
	}
	return ps, nil
}

// In is the parameter's field in flow, a pointer to the flow struct.
func (p Param) In(flow reflect.Value) reflect.Value { return flow.Elem().FieldByIndex(p.Index) }

var durationType = reflect.TypeFor[time.Duration]()

func kind(t reflect.Type) bool {
	if t == durationType {
		return true
	}
	switch t.Kind() {
	case reflect.String, reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		return true
	case reflect.Slice:
		return t.Elem().Kind() == reflect.String
	}
	return false
}

// Value is a flag.Value that parses straight into a flow field.
type Value struct {
	v     reflect.Value
	Given bool // whether the flag was given
}

// String formats the current value, for the flag's default in help.
func (fv *Value) String() string {
	if fv == nil || !fv.v.IsValid() {
		return ""
	}
	return Format(fv.v)
}

// IsBoolFlag lets a bool parameter be given as --flag alone.
func (fv *Value) IsBoolFlag() bool { return fv.v.Kind() == reflect.Bool }

// Set parses s into the field.
func (fv *Value) Set(s string) error { // implements flag.Value
	if err := Parse(fv.v, s); err != nil {
		return err
	}
	fv.Given = true
	return nil
}

// Format formats a parameter's value for people: a []string joins its
// elements with commas.
func Format(v reflect.Value) string {
	if v.Type() == durationType {
		return time.Duration(v.Int()).String()
	}
	if v.Kind() == reflect.Slice {
		return strings.Join(v.Interface().([]string), ",")
	}
	return fmt.Sprint(v.Interface())
}

// Record formats a parameter's value for the run record, from which Parse
// gives back the same value: a []string is a JSON array, so that elements
// holding commas survive.
func Record(v reflect.Value) string {
	if v.Kind() == reflect.Slice {
		s := v.Interface().([]string)
		if s == nil {
			s = []string{}
		}
		data, _ := json.Marshal(s)
		return string(data)
	}
	return Format(v)
}

// Parse sets v from text: a flag's value or a recorded one. A []string
// reads a JSON array ("[\"a,b\",\"c\"]") or else splits on commas ("a,b").
func Parse(v reflect.Value, s string) error {
	t := v.Type()
	if t == durationType {
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("%q is not a duration (use e.g. 90s, 5m, 1h30m)", s)
		}
		v.SetInt(int64(d))
		return nil
	}
	switch t.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("%q is not a boolean (use true or false)", s)
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(s, 0, t.Bits())
		if err != nil {
			return fmt.Errorf("%q is not an integer that fits %s", s, t)
		}
		v.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, err := strconv.ParseUint(s, 0, t.Bits())
		if err != nil {
			return fmt.Errorf("%q is not a non-negative integer that fits %s", s, t)
		}
		v.SetUint(n)
	case reflect.Float32, reflect.Float64:
		n, err := strconv.ParseFloat(s, t.Bits())
		if err != nil {
			return fmt.Errorf("%q is not a number", s)
		}
		v.SetFloat(n)
	case reflect.Slice:
		if !utf8.ValidString(s) {
			return fmt.Errorf("%q is not valid UTF-8 text; a list parameter holds text", s)
		}
		var parts []string
		if strings.HasPrefix(strings.TrimSpace(s), "[") {
			if err := json.Unmarshal([]byte(s), &parts); err != nil {
				return fmt.Errorf("%q is not a JSON array of strings (%v); write a,b,c or [\"a,b\",\"c\"]", s, err)
			}
			if parts == nil {
				parts = []string{}
			}
		} else if s != "" {
			parts = strings.Split(s, ",")
		}
		v.Set(reflect.ValueOf(parts))
	}
	return nil
}

// Bind registers the parameters on fs, parsing into flow (a pointer to the
// flow struct, holding the defaults).
func Bind(fs *flag.FlagSet, ps []Param, flow reflect.Value) map[string]*Value {
	vals := map[string]*Value{}
	for _, p := range ps {
		fv := &Value{v: p.In(flow)}
		help := p.Help
		if p.Required {
			help += " (required)"
		}
		fs.Var(fv, p.Name, help)
		vals[p.Name] = fv
	}
	return vals
}

// Values returns the parameters' values in the run record's form.
func Values(ps []Param, flow reflect.Value) map[string]string {
	m := make(map[string]string, len(ps))
	for _, p := range ps {
		m[p.Name] = Record(p.In(flow))
	}
	return m
}

// SetAll sets the parameter fields of flow from recorded values.
func SetAll(ps []Param, flow reflect.Value, vals map[string]string) error {
	for _, p := range ps {
		s, ok := vals[p.Name]
		if !ok {
			continue
		}
		if err := Parse(p.In(flow), s); err != nil {
			return fmt.Errorf("parameter --%s: %w", p.Name, err)
		}
	}
	return nil
}
