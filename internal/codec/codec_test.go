package codec

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"
)

type Inner struct {
	Name    string
	Weights []float64
	When    time.Time
}

type Config struct {
	I        int
	I8       int8
	I16      int16
	I32      int32
	I64      int64
	U        uint
	U8       uint8
	U16      uint16
	U32      uint32
	U64      uint64
	F32      float32
	F64      float64
	B        bool
	S        string
	D        time.Duration
	T        time.Time
	Bytes    []byte
	Ints     []int
	Arr      [3]int
	Grid     [2][2]float64
	M        map[string]int
	MI       map[int]string
	Nested   Inner
	P        *Inner
	NilP     *Inner
	NilSlice []string
	NilMap   map[string]int
	Empty    []string
	Any      any
	AnyNil   any
	Ptrs     []*Inner

	unexported int
}

type Embedded struct {
	Inner
	Extra int
}

type Vec []float64

type Celsius float64

var when = time.Date(2024, 3, 5, 12, 34, 56, 123456789, time.UTC)

func sampleConfig() Config {
	return Config{
		I: -1, I8: math.MinInt8, I16: math.MaxInt16, I32: math.MinInt32, I64: math.MaxInt64,
		U: 7, U8: math.MaxUint8, U16: math.MaxUint16, U32: math.MaxUint32, U64: math.MaxUint64,
		F32: 1.25, F64: math.Pi, B: true, S: "héllo",
		D:      90 * time.Second,
		T:      when,
		Bytes:  []byte{0, 1, 2, 255},
		Ints:   []int{3, -2, 1},
		Arr:    [3]int{1, 2, 3},
		Grid:   [2][2]float64{{1, 2}, {3, math.Inf(-1)}},
		M:      map[string]int{"a": 1, "b": 2},
		MI:     map[int]string{-5: "neg", 10: "ten"},
		Nested: Inner{Name: "n", Weights: []float64{0.5, -0.25}, When: when},
		P:      &Inner{Name: "p"},
		Empty:  []string{},
		Any:    map[string]any{"k": []any{"a", int64(2), 1.5, true, nil}},
		Ptrs:   []*Inner{{Name: "x"}, nil},
	}
}

// encodeBytes encodes v and concatenates the parts.
func encodeBytes(t testing.TB, v any) []byte {
	t.Helper()
	enc, err := Encode(v)
	if err != nil {
		t.Fatalf("Encode(%T): %v", v, err)
	}
	b := bytes.Join(enc.Parts, nil)
	if int64(len(b)) != enc.Size {
		t.Fatalf("Encode(%T): Size %d, parts hold %d bytes", v, enc.Size, len(b))
	}
	return b
}

func TestRoundTrip(t *testing.T) {
	cfg := sampleConfig()
	shared := &Inner{Name: "shared"}
	tests := []struct {
		name string
		v    any
	}{
		{"int", 42},
		{"int8", int8(-8)},
		{"int16", int16(-1600)},
		{"int32", int32(1 << 30)},
		{"int64", int64(math.MinInt64)},
		{"uint", uint(42)},
		{"uint8", uint8(200)},
		{"uint16", uint16(65000)},
		{"uint32", uint32(4e9)},
		{"uint64", uint64(math.MaxUint64)},
		{"float32", float32(1.1)},
		{"float64", 0.1},
		{"float64 inf", math.Inf(1)},
		{"float64 negative zero", math.Copysign(0, -1)},
		{"bool", true},
		{"string", "hello, world"},
		{"empty string", ""},
		{"string invalid utf8", "\xff\xfe\x00"},
		{"duration", 3*time.Hour + 5*time.Nanosecond},
		{"time", when},
		{"zero time", time.Time{}},
		{"[]string", []string{"a", "", "c"}},
		{"nil []string", []string(nil)},
		{"empty []string", []string{}},
		{"[]bool", []bool{true, false}},
		{"[][]float64", [][]float64{{1, 2}, nil, {}}},
		{"[3]int", [3]int{1, 2, 3}},
		{"[4]byte", [4]byte{1, 2, 3, 4}},
		{"map[string]int", map[string]int{"x": 1, "y": -2}},
		{"map[int]string", map[int]string{1: "one", -1: "minus one"}},
		{"map[string][]float64", map[string][]float64{"w": {1.5, 2.5}}},
		{"nil map", map[string]int(nil)},
		{"empty map", map[string]int{}},
		{"struct", cfg},
		{"pointer to struct", &cfg},
		{"nil pointer to struct", (*Config)(nil)},
		{"embedded struct", Embedded{Inner: Inner{Name: "in"}, Extra: 3}},
		{"shared pointers", []*Inner{shared, shared}},
		{"[]any", []any{"a", int64(1), 2.5, false, nil, []byte("b"), map[string]any{"c": int64(-3)}}},
		{"map[string]any", map[string]any{"a": []any{int64(1)}, "b": map[any]any{int64(1): "x"}}},
		// Fast path.
		{"[]float64", []float64{1, -2.5, math.MaxFloat64, math.SmallestNonzeroFloat64}},
		{"[]float32", []float32{1, -2.5, math.MaxFloat32}},
		{"[]int64", []int64{math.MinInt64, 0, math.MaxInt64}},
		{"[]int32", []int32{math.MinInt32, 0, math.MaxInt32}},
		{"[]int16", []int16{math.MinInt16, 0, math.MaxInt16}},
		{"[]int8", []int8{math.MinInt8, 0, math.MaxInt8}},
		{"[]uint64", []uint64{0, math.MaxUint64}},
		{"[]uint32", []uint32{0, math.MaxUint32}},
		{"[]uint16", []uint16{0, math.MaxUint16}},
		{"[]byte", []byte("bytes")},
		{"[]int", []int{math.MinInt, -1, 0, math.MaxInt}},
		{"[]uint", []uint{0, math.MaxUint}},
		{"nil []float64", []float64(nil)},
		{"empty []float64", []float64{}},
		{"nil []byte", []byte(nil)},
		{"named slice", Vec{1, 2, 3}},
		{"named element", []Celsius{-40, 100}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := encodeBytes(t, tt.v)
			ptr := reflect.New(reflect.TypeOf(tt.v))
			if err := Decode(data, ptr.Interface()); err != nil {
				t.Fatalf("Decode: %v", err)
			}
			got := ptr.Elem().Interface()
			if !reflect.DeepEqual(got, tt.v) {
				t.Fatalf("round trip:\n got %#v\nwant %#v", got, tt.v)
			}
			// Every value can also be decoded for display.
			if _, err := DecodeAny(data); err != nil {
				t.Fatalf("DecodeAny: %v", err)
			}
			// Decoding into a variable that already holds a value replaces it.
			prefilled := reflect.New(reflect.TypeOf(tt.v))
			if err := Decode(encodeBytes(t, other(tt.v)), prefilled.Interface()); err != nil {
				t.Fatalf("Decode of another value: %v", err)
			}
			if err := Decode(data, prefilled.Interface()); err != nil {
				t.Fatalf("second Decode: %v", err)
			}
			if got := prefilled.Elem().Interface(); !reflect.DeepEqual(got, tt.v) {
				t.Fatalf("decode into a filled variable:\n got %#v\nwant %#v", got, tt.v)
			}
		})
	}
}

// other returns a value of v's type that differs from v where it can.
func other(v any) any {
	switch v.(type) {
	case Config:
		return Config{T: when.Add(time.Hour), M: map[string]int{"other": 1}, P: &Inner{Name: "o"}, S: "o", Any: 3.0}
	case time.Time:
		return when.Add(time.Hour)
	case map[string]int:
		return map[string]int{"other": 1}
	case []string:
		return []string{"o", "t", "h"}
	case string:
		return "other"
	}
	return v
}

func TestDeepButAllowed(t *testing.T) {
	var v any = "leaf"
	for range maxDepth - 1 {
		v = []any{v}
	}
	data := encodeBytes(t, v)
	got, err := DecodeAny(data)
	if err != nil {
		t.Fatalf("DecodeAny of a %d-deep value: %v", maxDepth-1, err)
	}
	if !reflect.DeepEqual(got, v) {
		t.Fatal("deep value changed in the round trip")
	}
}

func TestRoundTripTimeZones(t *testing.T) {
	zone := time.FixedZone("UTC+5:30", 5*3600+1800)
	for _, tm := range []time.Time{
		time.Now(), // local zone and monotonic reading
		when.In(zone),
		time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999999999, zone),
	} {
		var got time.Time
		if err := Decode(encodeBytes(t, tm), &got); err != nil {
			t.Fatalf("Decode(%v): %v", tm, err)
		}
		if !got.Equal(tm) {
			t.Errorf("time round trip: got %v, want %v", got, tm)
		}
		var s struct{ T *time.Time }
		if err := Decode(encodeBytes(t, struct{ T *time.Time }{&tm}), &s); err != nil || !s.T.Equal(tm) {
			t.Errorf("*time.Time in a struct: got %v, %v; want %v", s.T, err, tm)
		}
	}
}

func TestEncodeType(t *testing.T) {
	tests := []struct {
		v    any
		want string
	}{
		{1, "int"},
		{[]float64{1}, "[]float64"},
		{map[string]int{}, "map[string]int"},
		{Config{}, "codec.Config"},
		{&Config{}, "*codec.Config"},
		{Vec{}, "codec.Vec"},
		{nil, "nil"},
		{time.Second, "time.Duration"},
	}
	for _, tt := range tests {
		enc, err := Encode(tt.v)
		if err != nil {
			t.Fatalf("Encode(%T): %v", tt.v, err)
		}
		if enc.Type != tt.want {
			t.Errorf("Encode(%T).Type = %q, want %q", tt.v, enc.Type, tt.want)
		}
	}
}

func TestDecodeAny(t *testing.T) {
	tests := []struct {
		name string
		v    any
		want any
	}{
		{"nil", nil, nil},
		{"int", 5, int64(5)},
		{"negative int", -3, int64(-3)},
		{"big uint64", uint64(math.MaxUint64), uint64(math.MaxUint64)},
		{"float64", 1.5, 1.5},
		{"float32", float32(0.25), 0.25},
		{"string", "s", "s"},
		{"bool", true, true},
		{"duration", time.Second, int64(time.Second)},
		{"time", when, when},
		{"[]string", []string{"a", "b"}, []any{"a", "b"}},
		{"nil []string", []string(nil), nil},
		{"map[string]int", map[string]int{"a": 1}, map[string]any{"a": int64(1)}},
		{"map[int]string", map[int]string{1: "a", -1: "b"}, map[any]any{int64(1): "a", int64(-1): "b"}},
		{"nil pointer", (*Config)(nil), nil},
		{"struct", Inner{Name: "n", Weights: []float64{1, 2}}, map[string]any{"Name": "n", "Weights": []any{1.0, 2.0}, "When": nil}},
		{"embedded", Embedded{Inner: Inner{Name: "n"}, Extra: 1}, map[string]any{"Name": "n", "Weights": nil, "When": nil, "Extra": int64(1)}},
		{"[]float64", []float64{1, 2}, []float64{1, 2}},
		{"named []float64", Vec{1, 2}, []float64{1, 2}},
		{"[]int", []int{1, 2}, []int{1, 2}},
		{"[]uint", []uint{1, 2}, []uint{1, 2}},
		{"[]int8", []int8{-1}, []int8{-1}},
		{"[]byte", []byte("ab"), []byte("ab")},
		{"nil []float64", []float64(nil), []float64(nil)},
		{"empty []float64", []float64{}, []float64{}},
		{"bytes in struct", struct{ B []byte }{[]byte("x")}, map[string]any{"B": []byte("x")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeAny(encodeBytes(t, tt.v))
			if err != nil {
				t.Fatalf("DecodeAny: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("DecodeAny:\n got %#v\nwant %#v", got, tt.want)
			}
			// Decoding into *any gives the same.
			var a any
			if err := Decode(encodeBytes(t, tt.v), &a); err != nil {
				t.Fatalf("Decode into *any: %v", err)
			}
			if !reflect.DeepEqual(a, tt.want) {
				t.Fatalf("Decode into *any:\n got %#v\nwant %#v", a, tt.want)
			}
		})
	}
}

func TestAnyFieldsDecodeAsPlainValues(t *testing.T) {
	type withAny struct {
		A any
		L []any
		M map[string]any
	}
	in := withAny{
		A: map[string]int{"n": 1},
		L: []any{uint8(3), map[int]bool{2: true}},
		M: map[string]any{"t": when, "s": []string{"x"}},
	}
	var got withAny
	if err := Decode(encodeBytes(t, in), &got); err != nil {
		t.Fatal(err)
	}
	want := withAny{
		A: map[string]any{"n": int64(1)},
		L: []any{int64(3), map[any]any{int64(2): true}},
		M: map[string]any{"t": when, "s": []any{"x"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %#v\nwant %#v", got, want)
	}
}

func TestDeterminism(t *testing.T) {
	m := make(map[string]int, 1000)
	for i := range 1000 {
		m[fmt.Sprintf("key-%d", i)] = i * 7
	}
	mi := make(map[int]float64, 1000)
	for i := range 1000 {
		mi[i*37%1001-500] = float64(i) / 3
	}
	for _, v := range []any{m, mi} {
		first := encodeBytes(t, v)
		for range 20 {
			if got := encodeBytes(t, v); !bytes.Equal(got, first) {
				t.Fatalf("%T: encodings differ between runs", v)
			}
		}
	}

	a, b := sampleConfig(), sampleConfig()
	if ea, eb := encodeBytes(t, a), encodeBytes(t, b); !bytes.Equal(ea, eb) {
		t.Fatal("two equal structs encode differently")
	}
	// A time keeps its zone, so the same instant in two zones is two
	// artifacts; in the same zone it is one.
	ta, tb := when, when.In(time.FixedZone("X", -7*3600))
	if bytes.Equal(encodeBytes(t, ta), encodeBytes(t, tb)) {
		t.Fatal("equal instants in different zones encode alike: the zone would be lost")
	}
	if !bytes.Equal(encodeBytes(t, tb), encodeBytes(t, when.In(time.FixedZone("X", -7*3600)))) {
		t.Fatal("equal times in equal zones encode differently")
	}
	// NaN payloads do not leak into the encoding.
	n1, n2 := math.NaN(), math.Float64frombits(0x7ff8000000000001)
	if !bytes.Equal(encodeBytes(t, []any{n1}), encodeBytes(t, []any{n2})) {
		t.Fatal("NaNs encode differently")
	}
}

func TestFastPathEncodeDoesNotCopy(t *testing.T) {
	for _, v := range []any{
		[]float64{1, 2, 3}, []float32{1}, []int64{1}, []int32{1}, []int16{1}, []int8{1},
		[]uint64{1}, []uint32{1}, []uint16{1}, []byte{1}, []int{1}, []uint{1}, Vec{1},
	} {
		enc, err := Encode(v)
		if err != nil {
			t.Fatal(err)
		}
		rv := reflect.ValueOf(v)
		if len(enc.Parts) != 2 {
			t.Fatalf("%T: %d parts, want header and body", v, len(enc.Parts))
		}
		if len(enc.Parts[0])%8 != 0 {
			t.Fatalf("%T: header of %d bytes is not a multiple of 8", v, len(enc.Parts[0]))
		}
		if unsafe.Pointer(&enc.Parts[1][0]) != rv.UnsafePointer() {
			t.Fatalf("%T: body part does not share the slice's memory", v)
		}
		if want := rv.Len() * int(rv.Type().Elem().Size()); len(enc.Parts[1]) != want && rv.Type().Elem().Kind() != reflect.Int && rv.Type().Elem().Kind() != reflect.Uint {
			t.Fatalf("%T: body of %d bytes, want %d", v, len(enc.Parts[1]), want)
		}
	}
}

// aligned returns a copy of b that starts 8-byte aligned, and one that
// starts 1 byte past such an address.
func aligned(b []byte) (al, unal []byte) {
	mem := func() []byte {
		words := make([]uint64, len(b)/8+2)
		return unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), len(words)*8)
	}
	al = mem()[:len(b)]
	copy(al, b)
	unal = mem()[1 : 1+len(b)]
	copy(unal, b)
	return al, unal
}

func TestFastPathDecodeAliasesAlignedData(t *testing.T) {
	s := []float64{1.5, -2, 3e300, math.Inf(1)}
	al, unal := aligned(encodeBytes(t, s))

	var got []float64
	if err := Decode(al, &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, s) {
		t.Fatalf("aligned: got %v, want %v", got, s)
	}
	if unsafe.Pointer(&got[0]) != unsafe.Pointer(&al[rawHeaderLen]) {
		t.Fatal("aligned data was copied, want aliased")
	}
	if cap(got) != len(got) {
		t.Fatalf("aliased slice has cap %d > len %d: appending would overwrite the data's neighbours", cap(got), len(got))
	}
	anyGot, err := DecodeAny(al)
	if err != nil {
		t.Fatal(err)
	}
	if unsafe.Pointer(&anyGot.([]float64)[0]) != unsafe.Pointer(&al[rawHeaderLen]) {
		t.Fatal("DecodeAny copied aligned data, want aliased")
	}

	var got2 []float64
	if err := Decode(unal, &got2); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got2, s) {
		t.Fatalf("unaligned: got %v, want %v", got2, s)
	}
	if uintptr(unsafe.Pointer(&got2[0]))%8 != 0 {
		t.Fatal("unaligned data was aliased")
	}
	anyGot, err = DecodeAny(unal)
	if err != nil || !reflect.DeepEqual(anyGot, s) {
		t.Fatalf("DecodeAny unaligned: got %v, %v", anyGot, err)
	}
}

func TestFastPathCompatibleTargets(t *testing.T) {
	data := encodeBytes(t, []int{1, -2})
	var i64 []int64
	if err := Decode(data, &i64); err != nil || !reflect.DeepEqual(i64, []int64{1, -2}) {
		t.Fatalf("[]int into []int64: %v, %v", i64, err)
	}
	var v Vec
	if err := Decode(encodeBytes(t, []float64{1}), &v); err != nil || !reflect.DeepEqual(v, Vec{1}) {
		t.Fatalf("[]float64 into Vec: %v, %v", v, err)
	}
	var p *[]float64
	if err := Decode(encodeBytes(t, []float64{1}), &p); err != nil || p == nil || !reflect.DeepEqual(*p, []float64{1}) {
		t.Fatalf("[]float64 into **[]float64: %v, %v", p, err)
	}
}

func TestUnsupported(t *testing.T) {
	type withChan struct {
		Name   string
		Events chan int
	}
	type withFunc struct{ Hooks map[string]func() }
	type withAny struct{ X any }
	type node struct {
		Val  int
		Next *node
	}
	cyc := &node{Val: 1}
	cyc.Next = &node{Val: 2, Next: cyc}
	selfSlice := make([]any, 1)
	selfSlice[0] = selfSlice
	selfMap := map[string]any{}
	selfMap["me"] = selfMap
	var selfIface any
	selfIface = &selfIface
	deep := &node{}
	for range 2 * maxDepth {
		deep = &node{Next: deep}
	}
	var x int

	tests := []struct {
		name     string
		v        any
		typ      string
		contains string
	}{
		{"chan", make(chan int), "chan int", "channel"},
		{"func", func() {}, "func()", "function"},
		{"unsafe.Pointer", unsafe.Pointer(&x), "unsafe.Pointer", "unsafe.Pointer"},
		{"uintptr", uintptr(1), "uintptr", "uint64"},
		{"complex128", complex(1, 2), "complex128", "real and imaginary"},
		{"complex64 slice", []complex64{1}, "complex64", "[i]"},
		{"chan field", withChan{Name: "x"}, "chan int", "codec.withChan.Events"},
		{"func in map", withFunc{Hooks: map[string]func(){}}, "func()", "Hooks[key]"},
		{"func in any", withAny{X: func() {}}, "func()", "codec.withAny.X"},
		{"chan in []any", []any{1, []any{make(chan bool)}}, "chan bool", "[]interface {}[1][0]"},
		{"cycle", cyc, "*codec.node", "cycle"},
		{"cycle through slice", selfSlice, "[]interface {}", "cycle"},
		{"cycle through map", selfMap, "map[string]interface {}", "cycle"},
		{"cycle through interface", &selfIface, "*interface {}", "cycle"},
		{"too deep", deep, "codec.node", "levels deep"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			_, err := Encode(tt.v)
			if time.Since(start) > 30*time.Second {
				t.Errorf("Encode took %v", time.Since(start))
			}
			var ue *UnsupportedTypeError
			if !errors.As(err, &ue) {
				t.Fatalf("Encode error = %v, want *UnsupportedTypeError", err)
			}
			if ue.Type != tt.typ {
				t.Errorf("Type = %q, want %q", ue.Type, tt.typ)
			}
			msg := err.Error()
			t.Log(msg)
			for _, want := range []string{"codec: ", tt.typ, tt.contains, "instead"} {
				if !strings.Contains(msg, want) {
					t.Errorf("message %q does not contain %q", msg, want)
				}
			}
		})
	}
}

func TestNotCyclic(t *testing.T) {
	// Shared and self-addressed (but acyclic) pointers are fine.
	type pair struct {
		X int
		P *int
	}
	p := &pair{X: 1}
	p.P = &p.X
	in := &Inner{Name: "n"}
	for _, v := range []any{p, []*Inner{in, in}, []any{in, in, []any{in}}} {
		if _, err := Encode(v); err != nil {
			t.Errorf("Encode(%T): %v", v, err)
		}
	}
	// Deep but within the limit.
	type node struct{ Next *node }
	n := &node{}
	for range maxDepth / 4 {
		n = &node{Next: n}
	}
	var got *node
	if err := Decode(encodeBytes(t, n), &got); err != nil {
		t.Fatalf("deep list: %v", err)
	}
}

func TestDecodeWrongType(t *testing.T) {
	tests := []struct {
		name   string
		v      any
		target any
		names  []string
	}{
		{"string into int", "text", new(int), []string{"string", "int"}},
		{"int into string", 3, new(string), []string{"integer", "string"}},
		{"overflow", 300, new(int8), []string{"int8"}},
		{"struct into slice", Inner{}, new([]float64), []string{"map", "[]float64"}},
		{"field type", struct{ Name int }{1}, new(Inner), []string{"Name", "string"}},
		{"[]float64 into []int32", []float64{1}, new([]int32), []string{"[]float64", "*[]int32"}},
		{"[]float64 into string", []float64{1}, new(string), []string{"[]float64", "*string"}},
		{"[]int8 into []uint8", []int8{1}, new([]byte), []string{"[]int8", "*[]uint8"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Decode(encodeBytes(t, tt.v), tt.target)
			if err == nil {
				t.Fatal("Decode succeeded, want an error")
			}
			t.Log(err)
			if errors.Is(err, ErrCorrupt) {
				t.Errorf("a type mismatch is not corrupt data: %v", err)
			}
			for _, want := range append([]string{"codec: "}, tt.names...) {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("message %q does not contain %q", err, want)
				}
			}
		})
	}
}

func TestDecodeBadTarget(t *testing.T) {
	data := encodeBytes(t, 1)
	var nilPtr *int
	for _, target := range []any{nil, 1, nilPtr} {
		err := Decode(data, target)
		if err == nil || !strings.Contains(err.Error(), "non-nil pointer") {
			t.Errorf("Decode into %#v: %v, want an error asking for a non-nil pointer", target, err)
		}
	}
}

func TestCorrupt(t *testing.T) {
	raw := encodeBytes(t, []float64{1, 2, 3})
	cb := encodeBytes(t, sampleConfig())
	mod := func(b []byte, f func([]byte)) []byte {
		b = bytes.Clone(b)
		f(b)
		return b
	}
	tests := []struct {
		name string
		data []byte
	}{
		{"nil", nil},
		{"short", []byte("STW")},
		{"bad magic", mod(cb, func(b []byte) { b[0] = 'X' })},
		{"bad version", mod(cb, func(b []byte) { b[4] = 99 })},
		{"unknown kind", mod(cb, func(b []byte) { b[5] = 7 })},
		{"cbor with elem byte", mod(cb, func(b []byte) { b[6] = 1 })},
		{"unknown elem", mod(raw, func(b []byte) { b[6] = 0 })},
		{"elem past end", mod(raw, func(b []byte) { b[6] = byte(elemEnd) })},
		{"unknown flag", mod(raw, func(b []byte) { b[7] = 2 })},
		{"nil with elements", mod(raw, func(b []byte) { b[7] = flagNil })},
		{"huge count", mod(raw, func(b []byte) { b[15] = 0x40 })},
		{"count too small", mod(raw, func(b []byte) { b[8] = 2 })},
		{"raw header only", raw[:12]},
		{"trailing byte", append(bytes.Clone(cb), 0)},
		{"cbor garbage", append(bytes.Clone(cb[:8]), 0xff, 0xff)},
		{"cbor empty", cb[:8]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeAny(tt.data)
			if !errors.Is(err, ErrCorrupt) {
				t.Errorf("DecodeAny: %v, want ErrCorrupt", err)
			}
			t.Log(err)
			var f []float64
			var c Config
			for _, target := range []any{&f, &c} {
				if err := Decode(tt.data, target); !errors.Is(err, ErrCorrupt) {
					t.Errorf("Decode into %T: %v, want ErrCorrupt", target, err)
				} else if !strings.HasPrefix(err.Error(), "codec: ") {
					t.Errorf("message %q lacks the prefix", err)
				}
			}
		})
	}
}

func TestTruncated(t *testing.T) {
	for _, v := range []any{[]float64{1, 2, 3}, sampleConfig(), map[string]int{"a": 1}, "s", []int8{1}} {
		data := encodeBytes(t, v)
		for n := range len(data) {
			if _, err := DecodeAny(data[:n]); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("%T cut to %d of %d bytes: DecodeAny gave %v, want ErrCorrupt", v, n, len(data), err)
			}
			ptr := reflect.New(reflect.TypeOf(v))
			if err := Decode(data[:n], ptr.Interface()); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("%T cut to %d of %d bytes: Decode gave %v, want ErrCorrupt", v, n, len(data), err)
			}
		}
	}
}

func TestConcurrent(t *testing.T) {
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50 {
				cfg := sampleConfig()
				data := encodeBytes(t, cfg)
				var got Config
				if err := Decode(data, &got); err != nil {
					t.Error(err)
					return
				}
				if _, err := DecodeAny(data); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}
