package stepwise

import (
	"reflect"
	"testing"
	"time"
)

type paramFlow struct {
	S  string        `param:"s"`
	I  int8          `param:"i"`
	U  uint16        `param:"u"`
	F  float32       `param:"f"`
	B  bool          `param:"b"`
	D  time.Duration `param:"d"`
	L  []string      `param:"l"`
	MR int           `param:",required"`
}

func TestParamNamesAndDefaults(t *testing.T) {
	ps, err := params(reflect.TypeFor[paramFlow]())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range ps {
		names = append(names, p.Name)
	}
	if want := []string{"s", "i", "u", "f", "b", "d", "l", "mr"}; !reflect.DeepEqual(names, want) {
		t.Errorf("names %v, want %v", names, want)
	}
	if !ps[7].Required {
		t.Error("mr is not required")
	}
}

func TestBadParamFields(t *testing.T) {
	type unexported struct {
		x int `param:"x"`
	}
	type badType struct {
		M map[string]int `param:"m"`
	}
	if _, err := params(reflect.TypeFor[unexported]()); err == nil {
		t.Error("unexported parameter accepted")
	}
	if _, err := params(reflect.TypeFor[badType]()); err == nil {
		t.Error("map parameter accepted")
	}
}

// FuzzParseParam: any text either parses into a parameter of each kind and
// formats back to a value that parses to the same, or is an error; never a
// panic.
func FuzzParseParam(f *testing.F) {
	for _, s := range []string{"", "0", "-1", "127", "128", "0x10", "1e3", "NaN", "true", "maybe", "1h30m", "a,b,,c", "65536"} {
		f.Add(s)
	}
	ps, err := params(reflect.TypeFor[paramFlow]())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, p := range ps {
			v := reflect.New(p.field.Type).Elem()
			if err := parseParam(v, s); err != nil {
				if err.Error() == "" {
					t.Fatalf("%s: empty error", p.Name)
				}
				continue
			}
			again := reflect.New(p.field.Type).Elem()
			if err := parseParam(again, formatParam(v)); err != nil {
				t.Fatalf("%s: %q parsed, but its format %q does not: %v", p.Name, s, formatParam(v), err)
			}
			if v.Kind() == reflect.Float32 && v.Float() != v.Float() {
				continue // NaN is never equal to itself
			}
			if !reflect.DeepEqual(v.Interface(), again.Interface()) && !(v.Kind() == reflect.Slice && v.Len() == 0 && again.Len() == 0) {
				t.Fatalf("%s: %q -> %v -> %q -> %v", p.Name, s, v, formatParam(v), again)
			}
		}
	})
}
