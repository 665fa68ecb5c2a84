package params

import (
	"reflect"
	"strings"
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
	ps, err := List(reflect.TypeFor[paramFlow]())
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
	if _, err := List(reflect.TypeFor[unexported]()); err == nil {
		t.Error("unexported parameter accepted")
	}
	if _, err := List(reflect.TypeFor[badType]()); err == nil {
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
	ps, err := List(reflect.TypeFor[paramFlow]())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, p := range ps {
			v := reflect.New(p.Type).Elem()
			if err := Parse(v, s); err != nil {
				if err.Error() == "" {
					t.Fatalf("%s: empty error", p.Name)
				}
				continue
			}
			again := reflect.New(p.Type).Elem()
			if err := Parse(again, Record(v)); err != nil {
				t.Fatalf("%s: %q parsed, but its format %q does not: %v", p.Name, s, Record(v), err)
			}
			if v.Kind() == reflect.Float32 && v.Float() != v.Float() {
				continue // NaN is never equal to itself
			}
			if !reflect.DeepEqual(v.Interface(), again.Interface()) && !(v.Kind() == reflect.Slice && v.Len() == 0 && again.Len() == 0) {
				t.Fatalf("%s: %q -> %v -> %q -> %v", p.Name, s, v, Record(v), again)
			}
		}
	})
}

// TestSliceWithCommasSurvivesTheRecord: a []string parameter whose default
// or value holds a comma comes back the same from the run record.
func TestSliceWithCommasSurvivesTheRecord(t *testing.T) {
	for _, in := range [][]string{{"a,b"}, {"a,b", "c"}, {}, {""}, {"x"}} {
		v := reflect.ValueOf(&in).Elem()
		var out []string
		if err := Parse(reflect.ValueOf(&out).Elem(), Record(v)); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(out, in) && !(len(out) == 0 && len(in) == 0) {
			t.Errorf("%q -> %q -> %q", in, Record(v), out)
		}
	}
	var out []string
	if err := Parse(reflect.ValueOf(&out).Elem(), `["a,b","c"]`); err != nil || !reflect.DeepEqual(out, []string{"a,b", "c"}) {
		t.Errorf("JSON on the command line: %q, %v", out, err)
	}
	if err := Parse(reflect.ValueOf(&out).Elem(), "a,b"); err != nil || !reflect.DeepEqual(out, []string{"a", "b"}) {
		t.Errorf("commas on the command line: %q, %v", out, err)
	}
	if err := Parse(reflect.ValueOf(&out).Elem(), `["a",`); err == nil || !strings.Contains(err.Error(), "JSON array") {
		t.Errorf("broken JSON: %v", err)
	}
}
