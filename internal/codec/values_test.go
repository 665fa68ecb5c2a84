package codec

import (
	"bytes"
	"errors"
	"math"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // the zone database, whatever the machine has
)

// v1Tagged is a struct with tags, as format version 1 stored it: under the
// tag names, without the json:"-" field and without the empty omitempty one.
type v1Tagged struct {
	Renamed int    `json:"renamed"`
	Hidden  string `json:"-"`
	Omit    []int  `json:"omit,omitempty"`
	CBOR    int    `cbor:"c"`
	Plain   string
}

// formatV1 are the values whose encodings by format version 1 (before this
// codec wrote its own CBOR) are in testdata/format-v1: what they decode to
// now, and whether the encoder still writes the same bytes for them (so
// that equal values keep their content key).
var formatV1 = map[string]struct {
	want     any
	sameKeys bool
}{
	"config":        {sampleConfig(), true},
	"embedded":      {Embedded{Inner: Inner{Name: "in", Weights: []float64{1}}, Extra: 3}, true},
	"tagged":        {v1Tagged{Renamed: 1, CBOR: 2, Plain: "p"}, false},     // Hidden was dropped by version 1
	"zoned-time":    {time.Date(2024, 3, 5, 7, 4, 56, 789, time.UTC), true}, // version 1 kept the instant only
	"utc-time":      {when, true},
	"zero-time":     {time.Time{}, true},
	"duration":      {90 * time.Second, true},
	"bigint":        {*new(big.Int).Lsh(big.NewInt(1), 100), true},
	"neg-bigint":    {*new(big.Int).Neg(new(big.Int).Lsh(big.NewInt(1), 100)), true},
	"small-bigint":  {*big.NewInt(-7), true},
	"byte-array":    {[4]byte{1, 2, 3, 4}, true},
	"map-int":       {map[int]string{-5: "neg", 10: "ten"}, true},
	"any-list":      {[]any{"a", int64(1), 2.5, false, nil, []byte("b"), map[string]any{"c": int64(-3)}, math.NaN(), math.Inf(-1), float64(float32(1.1))}, true},
	"floats":        {[]any{0.5, 1.1, float64(float32(1.1)), 65504.0, 1e300, math.Copysign(0, -1), 5.960464477539063e-08}, true},
	"float64-slice": {[]float64{1, -2.5, math.NaN(), math.Inf(1)}, true},
	"nil-float64":   {[]float64(nil), true},
	"int-slice":     {[]int{1, -2}, true},
	"strings":       {[]string{"a", "", "héllo", "\xff"}, true},
	"uint64-max":    {uint64(math.MaxUint64), true},
	"int64-min":     {int64(math.MinInt64), true},
	"nil":           {nil, true},
}

// TestFormatV1 reads data written by format version 1 and checks that
// values whose encoding did not change still encode to the same bytes.
func TestFormatV1(t *testing.T) {
	files, err := filepath.Glob("testdata/format-v1/*.stwc")
	if err != nil || len(files) != len(formatV1) {
		t.Fatalf("testdata/format-v1 holds %d files (%v), want %d", len(files), err, len(formatV1))
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".stwc")
		t.Run(name, func(t *testing.T) {
			tt, ok := formatV1[name]
			if !ok {
				t.Fatalf("no expectation for %s", file)
			}
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var got any
			if tt.want == nil {
				err = Decode(data, &got)
			} else {
				p := reflect.New(reflect.TypeOf(tt.want))
				err = Decode(data, p.Interface())
				got = p.Elem().Interface()
			}
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !equalNaN(got, tt.want) {
				t.Fatalf("Decode:\n got %#v\nwant %#v", got, tt.want)
			}
			if _, err := DecodeAny(data); err != nil {
				t.Fatalf("DecodeAny: %v", err)
			}
			if _, err := Preview(data, 80); err != nil {
				t.Fatalf("Preview: %v", err)
			}
			if err := WriteJSON(&bytes.Buffer{}, data, "", ""); err != nil {
				t.Fatalf("WriteJSON: %v", err)
			}
			if same := bytes.Equal(encodeBytes(t, tt.want), data); same != tt.sameKeys {
				t.Fatalf("encoding the value again gives the same bytes: %v, want %v", same, tt.sameKeys)
			}
		})
	}
}

// equalNaN is reflect.DeepEqual where NaN equals NaN, for the values of
// these tests.
func equalNaN(a, b any) bool {
	switch x := a.(type) {
	case float64:
		y, ok := b.(float64)
		return ok && (x == y && math.Signbit(x) == math.Signbit(y) || math.IsNaN(x) && math.IsNaN(y))
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !equalNaN(x[i], y[i]) {
				return false
			}
		}
		return true
	case []float64:
		y, ok := b.([]float64)
		if !ok || len(x) != len(y) || (x == nil) != (y == nil) {
			return false
		}
		for i := range x {
			if !equalNaN(x[i], y[i]) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(a, b)
}

func mustLoad(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// TestTimeKeepsItsZone: a time comes back in its location, with its name
// and offset, not in UTC.
func TestTimeKeepsItsZone(t *testing.T) {
	kolkata := mustLoad(t, "Asia/Kolkata")
	newYork := mustLoad(t, "America/New_York")
	amsterdam := mustLoad(t, "Europe/Amsterdam")
	tests := []struct {
		name     string
		in       time.Time
		wantLoc  string // the decoded location's name
		wantZone string // and its zone abbreviation at that instant
	}{
		{"named location", when.In(kolkata), "Asia/Kolkata", "IST"},
		{"summer time", time.Date(2024, 7, 1, 9, 0, 0, 5, newYork), "America/New_York", "EDT"},
		{"winter time", time.Date(2024, 1, 1, 9, 0, 0, 0, newYork), "America/New_York", "EST"},
		{"offset with seconds (local mean time)", time.Date(1900, 1, 1, 0, 0, 0, 0, amsterdam), "Europe/Amsterdam", "AMT"},
		{"fixed zone with a name", when.In(time.FixedZone("UTC+5:30", 5*3600+1800)), "UTC+5:30", "UTC+5:30"},
		{"fixed zone named like a location with another offset", when.In(time.FixedZone("Asia/Kolkata", 3600)), "Asia/Kolkata", "Asia/Kolkata"},
		{"fixed zone without a name", when.In(time.FixedZone("", -3*3600)), "", ""},
		{"UTC", when, "UTC", "UTC"},
		{"year 1", time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC), "UTC", "UTC"},
		{"year 9999", time.Date(9999, 12, 31, 23, 59, 59, 999999999, kolkata), "Asia/Kolkata", "IST"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			check := func(how string, got time.Time) {
				t.Helper()
				_, wantOff := tt.in.Zone()
				zone, off := got.Zone()
				if !got.Equal(tt.in) || got.Location().String() != tt.wantLoc || zone != tt.wantZone || off != wantOff {
					t.Errorf("%s: got %v in %q (zone %s, offset %d), want %v in %q (zone %s, offset %d)",
						how, got, got.Location(), zone, off, tt.in, tt.wantLoc, tt.wantZone, wantOff)
				}
			}
			data := encodeBytes(t, tt.in)
			var got time.Time
			if err := Decode(data, &got); err != nil {
				t.Fatal(err)
			}
			check("Decode", got)
			a, err := DecodeAny(data)
			if err != nil {
				t.Fatal(err)
			}
			check("DecodeAny", a.(time.Time))
			var s struct{ T *time.Time }
			if err := Decode(encodeBytes(t, struct{ T *time.Time }{&tt.in}), &s); err != nil {
				t.Fatal(err)
			}
			check("*time.Time field", *s.T)
		})
	}

	// A time in time.Local keeps its abbreviation and offset (Local means
	// another zone on the machine that reads it).
	saved := time.Local
	time.Local = mustLoad(t, "Europe/Paris")
	t.Cleanup(func() { time.Local = saved })
	local := time.Date(2024, 7, 1, 9, 0, 0, 0, time.Local)
	var got time.Time
	if err := Decode(encodeBytes(t, local), &got); err != nil {
		t.Fatal(err)
	}
	if zone, off := got.Zone(); !got.Equal(local) || off != 2*3600 || zone != "CEST" {
		t.Errorf("local time: got %v (zone %s, offset %d), want %v", got, zone, off, local)
	}
}

func TestTimeText(t *testing.T) {
	kolkata := mustLoad(t, "Asia/Kolkata")
	for _, tt := range []struct {
		in   time.Time
		want string
	}{
		{when, "2024-03-05T12:34:56.123456789Z"},
		{when.In(kolkata), "2024-03-05T18:04:56.123456789+05:30[Asia/Kolkata]"},
		{time.Date(2024, 1, 1, 0, 0, 0, 0, time.FixedZone("", -3600)), "2024-01-01T00:00:00-01:00"},
		{time.Date(1900, 1, 1, 0, 0, 0, 0, mustLoad(t, "Europe/Amsterdam")), "1900-01-01T00:00:00+00:19:32[Europe/Amsterdam]"},
	} {
		got, err := timeText(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("timeText(%v) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"2024-01-01T00:00:00Z[", "2024-01-01T00:00:00Z[]", "2024-01-01T00:00:00Z[x", "yesterday", "2024-01-01T00:00:00+00:19:3"} {
		if _, err := parseTimeText(bad); !errors.Is(err, ErrCorrupt) {
			t.Errorf("parseTimeText(%q): %v, want ErrCorrupt", bad, err)
		}
	}
}

// TestTagsDoNotDropOrRename: artifacts are not JSON; a field is stored under
// its Go name, whatever its tags say.
func TestTagsDoNotDropOrRename(t *testing.T) {
	type tagged struct {
		Secret  string            `json:"-"`
		Renamed int               `json:"renamed"`
		Empty   []int             `json:"empty,omitempty"`
		Zero    int               `json:",omitempty"`
		Both    float64           `cbor:"-" json:"both"`
		Meta    map[string]string `cbor:"m,omitempty"`
	}
	in := tagged{Secret: "kept", Renamed: 7, Empty: []int{}, Both: 1.5}
	data := encodeBytes(t, in)
	var got tagged
	if err := Decode(data, &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, in) {
		t.Fatalf("round trip:\n got %#v\nwant %#v", got, in)
	}
	a, err := DecodeAny(data)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"Secret": "kept", "Renamed": int64(7), "Empty": []any{}, "Zero": int64(0), "Both": 1.5, "Meta": nil}
	if !reflect.DeepEqual(a, want) {
		t.Fatalf("DecodeAny:\n got %#v\nwant %#v", a, want)
	}
}

type hasUnexported struct {
	Name  string
	cache map[string]int
}

type embedsUnexported struct {
	inner
	Extra int
}

type inner struct {
	A int
	b string
}

type onlyMarshals struct{ X int }

func (onlyMarshals) MarshalBinary() ([]byte, error) { return []byte{1}, nil }

type failsToMarshal struct{ X int }

func (failsToMarshal) MarshalBinary() ([]byte, error) { return nil, errors.New("no luck") }
func (*failsToMarshal) UnmarshalBinary([]byte) error  { return nil }

type shadow struct {
	Inner
	Name string
}

// TestRefusesWhatWouldBeLost: what the codec cannot store is refused with an
// error that names the part, instead of vanishing.
func TestRefusesWhatWouldBeLost(t *testing.T) {
	type withErr struct{ Err error }
	type withStringer struct{ S interface{ String() string } }
	type ptrKey struct{ M map[*int]string }
	x := 1
	tests := []struct {
		name     string
		v        any
		typ      string
		contains []string
	}{
		{"unexported field holding a value", hasUnexported{Name: "n", cache: map[string]int{"a": 1}}, "codec.hasUnexported", []string{"unexported field cache", "export"}},
		{"nested unexported field", map[string]hasUnexported{"k": {cache: map[string]int{}}}, "codec.hasUnexported", []string{`["k"]`, "cache"}},
		{"unexported field of an embedded struct", embedsUnexported{inner: inner{b: "x"}}, "codec.embedsUnexported", []string{"inner.b"}},
		{"error value", withErr{Err: errors.New("boom")}, "error", []string{"*errors.errorString", "codec.withErr.Err", "as a string"}},
		{"interface with methods", withStringer{S: time.Second}, "interface { String() string }", []string{"time.Duration", ".S"}},
		{"NaN map key", map[float64]int{math.NaN(): 1, 2: 2}, "float64", []string{"NaN", "{map key}"}},
		{"keys stored alike", map[any]int{1: 1, int64(1): 2}, "map[interface {}]int", []string{"stored alike", "1"}},
		{"pointer map keys", ptrKey{M: map[*int]string{&x: "a"}}, "map[*int]string", []string{"pointers", ".M"}},
		{"pointer key behind an interface", map[any]int{&x: 1}, "*int", []string{"pointer", "{map key}"}},
		{"hidden field of the same name", shadow{Inner: Inner{Name: "a"}, Name: "b"}, "codec.shadow", []string{"Inner.Name", "Name", "would both be stored"}},
		{"MarshalBinary without UnmarshalBinary", onlyMarshals{}, "codec.onlyMarshals", []string{"UnmarshalBinary"}},
		{"failing MarshalBinary", []failsToMarshal{{}}, "codec.failsToMarshal", []string{"no luck", "[0]"}},
		{"time past year 9999", time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), "time.Time", []string{"10000", "Unix nanoseconds"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Encode(tt.v)
			var ue *UnsupportedTypeError
			if !errors.As(err, &ue) {
				t.Fatalf("Encode error = %v, want *UnsupportedTypeError", err)
			}
			if ue.Type != tt.typ {
				t.Errorf("Type = %q, want %q", ue.Type, tt.typ)
			}
			t.Log(err)
			for _, want := range append([]string{"codec: "}, tt.contains...) {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("message %q does not contain %q", err, want)
				}
			}
		})
	}
}

type point struct{ X, Y int }

type wrappedTime struct {
	time.Time
	Label string
}

type withUnexportedEmbedded struct {
	*inner
	Z int
}

// TestKeepsWhatVersion1Lost: values that format version 1 stored in part, or
// not at all, now come back whole.
func TestKeepsWhatVersion1Lost(t *testing.T) {
	f := new(big.Float).SetPrec(200).SetMode(big.ToZero)
	f.SetString("3.14159265358979323846264338327950288419716939937510582097494459")
	kolkata := mustLoad(t, "Asia/Kolkata")
	tests := []struct {
		name string
		v    any
	}{
		{"big.Float keeps its precision", *f},
		{"big.Rat", *big.NewRat(-22, 7)},
		{"*big.Int beyond 64 bits", new(big.Int).Lsh(big.NewInt(3), 200)},
		{"regexp (stored as its text)", *regexp.MustCompile(`a+b*`)},
		{"embedded time.Time and another field", wrappedTime{Time: when.In(kolkata), Label: "l"}},
		{"fields of an unexported embedded pointer", withUnexportedEmbedded{inner: &inner{A: 3}, Z: 1}},
		{"nil unexported embedded pointer", withUnexportedEmbedded{Z: 1}},
		{"unexported embedded struct with zero unexported fields", embedsUnexported{inner: inner{A: 2}, Extra: 1}},
		{"map with struct keys", map[point]int{{1, 2}: 1, {-1, 0}: 2}},
		{"map with array keys", map[[2]int]string{{1, 2}: "x", {3, 4}: "y"}},
		{"map with float keys", map[float64]bool{-0.5: true, math.Inf(1): false}},
		{"duration", []time.Duration{time.Nanosecond, -time.Hour}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := encodeBytes(t, tt.v)
			p := reflect.New(reflect.TypeOf(tt.v))
			if err := Decode(data, p.Interface()); err != nil {
				t.Fatal(err)
			}
			got := p.Elem().Interface()
			switch want := tt.v.(type) {
			case big.Float:
				g := got.(big.Float)
				if g.Cmp(&want) != 0 || g.Prec() != want.Prec() || g.Mode() != want.Mode() {
					t.Fatalf("got %s (prec %d, mode %v), want %s (prec %d, mode %v)", g.Text('g', 70), g.Prec(), g.Mode(), want.Text('g', 70), want.Prec(), want.Mode())
				}
			case regexp.Regexp:
				if g := got.(regexp.Regexp); g.String() != want.String() || !g.MatchString("aab") {
					t.Fatalf("got %v, want %v", &g, &want)
				}
			case wrappedTime:
				g := got.(wrappedTime)
				if !g.Equal(want.Time) || g.Location().String() != "Asia/Kolkata" || g.Label != want.Label {
					t.Fatalf("got %+v, want %+v", g, want)
				}
			default:
				if !reflect.DeepEqual(got, tt.v) {
					t.Fatalf("round trip:\n got %#v\nwant %#v", got, tt.v)
				}
			}
			if _, err := DecodeAny(data); err != nil {
				t.Fatalf("DecodeAny: %v", err)
			}
		})
	}
}

func TestDecodeAnyOddKeys(t *testing.T) {
	got, err := DecodeAny(encodeBytes(t, map[point]int{{1, 2}: 1}))
	if err != nil {
		t.Fatal(err)
	}
	want := map[any]any{`{"X":1,"Y":2}`: int64(1)}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %#v, want %#v", got, want)
	}
	got, err = DecodeAny(encodeBytes(t, map[[2]int]string{{1, 2}: "x"}))
	if err != nil || !reflect.DeepEqual(got, map[any]any{"[1,2]": "x"}) {
		t.Fatalf("array keys: got %#v, %v", got, err)
	}
}

func TestFloat16(t *testing.T) {
	// Every half-precision number converts back to its own bits.
	for h := range uint32(1 << 16) {
		f := float16Value(uint16(h))
		if math.IsNaN(f) || math.IsInf(f, 0) {
			continue
		}
		got, ok := float16Exact(float32(f))
		if !ok || got != uint16(h) {
			t.Fatalf("half %#04x = %g converts to %#04x, %v", h, f, got, ok)
		}
	}
	for _, f := range []float32{1.1, 65520, 1e-8, 3.0000002, math.MaxFloat32, 2.9802322e-08} {
		if h, ok := float16Exact(f); ok {
			t.Errorf("%g is not a half-precision number, got %#04x", f, h)
		}
	}
}
