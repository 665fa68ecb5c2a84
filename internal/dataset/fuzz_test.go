package dataset

import (
	"strings"
	"testing"
)

// FuzzParseFilter: any text parses or is refused with an error, never a
// panic; what parses prints back to a filter that parses to the same.
func FuzzParseFilter(f *testing.F) {
	for _, s := range []string{"", "a = 1", "region = 'eu' and day >= 3", "x in ('a', 'b''c', 3)", "\"odd col\" != -1.5e3", "a <> 'x'", "a == 2 and b < 'z'", "and", "a in (", "'unclosed", "a ! 1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		flt, err := ParseFilter(s)
		if err != nil {
			if !strings.Contains(err.Error(), "table filter") {
				t.Fatalf("error without context: %v", err)
			}
			return
		}
		var parts []string
		for _, p := range flt {
			if p.Column == "" || len(p.Values) == 0 {
				t.Fatalf("%q parsed to an empty predicate %+v", s, p)
			}
			parts = append(parts, p.String())
		}
		again, err := ParseFilter(strings.Join(parts, " and "))
		if err != nil {
			t.Fatalf("%q printed as %q, which does not parse: %v", s, strings.Join(parts, " and "), err)
		}
		if len(again) != len(flt) {
			t.Fatalf("%q: %d predicates, printed and parsed again %d", s, len(flt), len(again))
		}
		for i := range again {
			if again[i].Column != flt[i].Column || again[i].Op != flt[i].Op || len(again[i].Values) != len(flt[i].Values) {
				t.Fatalf("%q: predicate %d is %+v, printed and parsed again %+v", s, i, flt[i], again[i])
			}
			for j, v := range again[i].Values {
				if v.IsNum != flt[i].Values[j].IsNum || v.Str != flt[i].Values[j].Str {
					t.Fatalf("%q: value %+v came back as %+v", s, flt[i].Values[j], v)
				}
			}
		}
	})
}

// FuzzPartitionPath: any key and value escaped into a directory parse
// back to themselves; any path parses or is refused without a panic.
func FuzzPartitionPath(f *testing.F) {
	f.Add("region", "eu", "a=b/c=d/part.parquet")
	f.Add("k/=%", "../x", "=x/f")
	f.Add("_hidden", ".dot", "a=%zz/f")
	f.Fuzz(func(t *testing.T, k, v, p string) {
		ParsePartitionPath(p) // must not panic
		if k == "" {
			return
		}
		path := escapePart(k) + "=" + escapePart(v) + "/part-0.parquet"
		keys, vals, err := ParsePartitionPath(path)
		if err != nil {
			t.Fatalf("%q=%q escaped to %q, which does not parse: %v", k, v, path, err)
		}
		if len(keys) != 1 || keys[0] != k || vals[k] != v {
			t.Fatalf("%q=%q escaped to %q, parsed back as %v %v", k, v, path, keys, vals)
		}
		if hidden(path) {
			t.Fatalf("%q=%q escaped to %q, which readers skip as hidden", k, v, path)
		}
	})
}
