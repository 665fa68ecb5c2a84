package stepwise

import (
	"flag"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// param is one field of the flow bound to a command-line flag. A field is a
// parameter when it has a `param` tag:
//
//	N     int     `param:"n" help:"how many items"`
//	Model string  `param:",required" help:"model to train"` // flag --model
//
// The flag's default is the field's value in the flow passed to Main.
type param struct {
	Name     string // flag name
	Field    string // Go field name
	Help     string
	Required bool
	field    reflect.StructField
}

// params lists the parameters of a flow type, with their defaults read
// from the given value.
func params(t reflect.Type) ([]param, error) {
	var ps []param
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag, ok := f.Tag.Lookup("param")
		if !ok {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if name == "" {
			name = strings.ReplaceAll(SnakeCase(f.Name), "_", "-")
		}
		if !f.IsExported() {
			return nil, fmt.Errorf("parameter %s: field %s is not exported; parameters are artifacts, so export it", name, f.Name)
		}
		if !paramKind(f.Type) {
			return nil, fmt.Errorf("parameter %s: field %s has type %s; a parameter is a string, bool, integer, float, time.Duration or []string", name, f.Name, f.Type)
		}
		ps = append(ps, param{Name: name, Field: f.Name, Help: f.Tag.Get("help"), Required: opts == "required", field: f})
	}
	return ps, nil
}

var durationType = reflect.TypeFor[time.Duration]()

func paramKind(t reflect.Type) bool {
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

// fieldValue is a flag.Value that parses straight into a flow field.
type fieldValue struct {
	v   reflect.Value
	set bool
}

func (fv *fieldValue) String() string {
	if fv == nil || !fv.v.IsValid() {
		return ""
	}
	return formatParam(fv.v)
}

func (fv *fieldValue) IsBoolFlag() bool { return fv.v.Kind() == reflect.Bool }

func (fv *fieldValue) Set(s string) error {
	if err := parseParam(fv.v, s); err != nil {
		return err
	}
	fv.set = true
	return nil
}

func formatParam(v reflect.Value) string {
	if v.Type() == durationType {
		return time.Duration(v.Int()).String()
	}
	if v.Kind() == reflect.Slice {
		return strings.Join(v.Interface().([]string), ",")
	}
	return fmt.Sprint(v.Interface())
}

func parseParam(v reflect.Value, s string) error {
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
		var parts []string
		if s != "" {
			parts = strings.Split(s, ",")
		}
		v.Set(reflect.ValueOf(parts))
	}
	return nil
}

// bindParams registers the flow's parameters on fs, parsing into flow
// (a pointer to the flow struct, holding the defaults).
func bindParams(fs *flag.FlagSet, ps []param, flow reflect.Value) map[string]*fieldValue {
	vals := map[string]*fieldValue{}
	for _, p := range ps {
		fv := &fieldValue{v: flow.Elem().FieldByIndex(p.field.Index)}
		help := p.Help
		if p.Required {
			help += " (required)"
		}
		fs.Var(fv, p.Name, help)
		vals[p.Name] = fv
	}
	return vals
}

// paramValues returns the parameters' values as strings, for the run record.
func paramValues(ps []param, flow reflect.Value) map[string]string {
	m := make(map[string]string, len(ps))
	for _, p := range ps {
		m[p.Name] = formatParam(flow.Elem().FieldByIndex(p.field.Index))
	}
	return m
}

// setParams sets the parameter fields of flow from recorded string values.
func setParams(ps []param, flow reflect.Value, vals map[string]string) error {
	for _, p := range ps {
		s, ok := vals[p.Name]
		if !ok {
			continue
		}
		if err := parseParam(flow.Elem().FieldByIndex(p.field.Index), s); err != nil {
			return fmt.Errorf("parameter --%s: %w", p.Name, err)
		}
	}
	return nil
}
