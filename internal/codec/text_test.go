package codec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/fxamacker/cbor/v2"
)

// TestWriteJSONMatchesEncodingJSON: for values JSON can hold, WriteJSON
// writes what encoding/json writes for the same value decoded.
func TestWriteJSONMatchesEncodingJSON(t *testing.T) {
	for _, v := range []any{
		nil, 0, -1, 42, math.MaxInt64, math.MinInt64, uint64(math.MaxUint64),
		0.1, 1e21, 1e20, 1e-7, 1e-6, 123456789.125, -0.0, math.MaxFloat64, math.SmallestNonzeroFloat64,
		true, false, "", "héllo \"world\"\n\t\x01\\ <&> \u2028", "\xff\xfe",
		[]byte("bytes"), []byte{}, []any{}, map[string]any{},
		[]string{"a", "b"}, map[string]int{"b": 2, "a": 1, "aa": 3},
		Embedded{Inner: Inner{Name: "in"}, Extra: 3},
		[]float64{1.5, -2, 1e300, 1e-300}, []float32{1.1, 3.4e38, 1e-7}, []int{-1, 2}, []int8{-128, 127},
		[]uint16{65535}, []uint64{math.MaxUint64}, []byte(nil), []float64(nil), []float64{},
		map[string][]float64{"w": {0.5}}, [3]int{1, 2, 3}, [4]byte{1, 2, 3, 4},
	} {
		data := encodeBytes(t, v)
		a, err := DecodeAny(data)
		if err != nil {
			t.Fatal(err)
		}
		want, err := json.Marshal(a)
		if err != nil {
			t.Fatalf("json.Marshal(%#v): %v", a, err)
		}
		var got bytes.Buffer
		if err := WriteJSON(&got, data, "", ""); err != nil {
			t.Fatalf("WriteJSON(%T): %v", v, err)
		}
		// The same text, but for the order of object keys: WriteJSON
		// keeps the stored order, encoding/json sorts them.
		if !sameJSON(t, got.Bytes(), want) {
			t.Errorf("WriteJSON(%T %v):\n got %s\nwant %s", v, v, got.String(), want)
		}
		if _, isMap := a.(map[string]any); !isMap && got.String() != string(want) {
			t.Errorf("WriteJSON(%T %v):\n got %s\nwant %s", v, v, got.String(), want)
		}
		// Indented, it is what json.Indent makes of the compact text.
		var ind, wantInd bytes.Buffer
		if err := WriteJSON(&ind, data, "  ", "\t"); err != nil {
			t.Fatal(err)
		}
		if err := json.Indent(&wantInd, got.Bytes(), "  ", "\t"); err != nil {
			t.Fatal(err)
		}
		if ind.String() != wantInd.String() {
			t.Errorf("WriteJSON(%T) indented:\n got %s\nwant %s", v, ind.String(), wantInd.String())
		}
	}
}

// sameJSON reports whether two JSON texts hold the same value.
func sameJSON(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	for _, p := range []struct {
		data []byte
		v    *any
	}{{a, &x}, {b, &y}} {
		d := json.NewDecoder(bytes.NewReader(p.data))
		d.UseNumber()
		if err := d.Decode(p.v); err != nil {
			t.Fatalf("not JSON: %v: %s", err, p.data)
		}
	}
	return reflect.DeepEqual(x, y)
}

// TestWriteJSONSpecialValues: NaN and infinities, which make encoding/json
// fail ("json: unsupported value: NaN"), are strings, wherever they are.
func TestWriteJSONSpecialValues(t *testing.T) {
	kolkata := mustLoad(t, "Asia/Kolkata")
	tests := []struct {
		name string
		v    any
		want string
	}{
		{"NaN", math.NaN(), `"NaN"`},
		{"+Inf", math.Inf(1), `"+Inf"`},
		{"-Inf", math.Inf(-1), `"-Inf"`},
		{"in a slice", []float64{1, math.NaN(), math.Inf(-1)}, `[1,"NaN","-Inf"]`},
		{"float32 slice", []float32{float32(math.Inf(1)), 0.25}, `["+Inf",0.25]`},
		{"in []any", []any{math.Inf(1), "x"}, `["+Inf","x"]`},
		{"in a map", map[string]float64{"loss": math.NaN()}, `{"loss":"NaN"}`},
		{"as a map key", map[float64]int{math.Inf(1): 1, 2.5: 2}, `{"2.5":2,"+Inf":1}`},
		{"in a struct", struct{ Score float64 }{math.Inf(-1)}, `{"Score":"-Inf"}`},
		{"int keys", map[int]string{10: "ten", -5: "neg"}, `{"10":"ten","-5":"neg"}`},
		{"struct keys", map[point]bool{{1, 2}: true}, `{"{\"X\":1,\"Y\":2}":true}`},
		{"zoned time", when.In(kolkata), `"2024-03-05T18:04:56.123456789+05:30[Asia/Kolkata]"`},
		{"big integer", new(big.Int).Lsh(big.NewInt(1), 70), `1180591620717411303424`},
		{"negative big integer", new(big.Int).Neg(new(big.Int).Lsh(big.NewInt(1), 70)), `-1180591620717411303424`},
		{"most negative CBOR integer", new(big.Int).Neg(new(big.Int).Lsh(big.NewInt(1), 64)), `-18446744073709551616`},
		{"duration", 90 * time.Second, `90000000000`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got bytes.Buffer
			if err := WriteJSON(&got, encodeBytes(t, tt.v), "", ""); err != nil {
				t.Fatal(err)
			}
			if got.String() != tt.want {
				t.Fatalf("got %s, want %s", got.String(), tt.want)
			}
			if !json.Valid(got.Bytes()) {
				t.Fatalf("not valid JSON: %s", got.String())
			}
		})
	}
}

// errWriter fails after n bytes.
type errWriter struct{ n int }

func (w *errWriter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		n := w.n
		w.n = 0
		return n, errors.New("disk full")
	}
	w.n -= len(p)
	return len(p), nil
}

func TestWriteJSONErrors(t *testing.T) {
	big := make(map[string]int, 20000)
	for i := range 20000 {
		big[fmt.Sprint("key-", i)] = i
	}
	err := WriteJSON(&errWriter{n: 1000}, encodeBytes(t, big), "", "")
	if err == nil || !strings.Contains(err.Error(), "disk full") || !strings.Contains(err.Error(), "writing JSON") {
		t.Errorf("a failing writer: %v", err)
	}
	// Damaged data is refused before anything is written.
	data := encodeBytes(t, []any{"a", "b", 1.5})
	var out bytes.Buffer
	if err := WriteJSON(&out, data[:len(data)-1], "", ""); !errors.Is(err, ErrCorrupt) || out.Len() != 0 {
		t.Errorf("truncated data: %v, wrote %q", err, out.String())
	}
}

func TestPreview(t *testing.T) {
	m := map[string]int{}
	for i := range 1000 {
		m[fmt.Sprintf("k%04d", i)] = i
	}
	tests := []struct {
		name string
		v    any
		max  int
		want Summary
	}{
		{"int", 42, 80, Summary{Text: "42", Kind: "int", Len: -1}},
		{"float", 1.5, 80, Summary{Text: "1.5", Kind: "float", Len: -1}},
		{"NaN for people", []float64{math.NaN(), math.Inf(1)}, 80, Summary{Text: "[NaN,+Inf]", Kind: "array", Len: 2}},
		{"string", "héllo", 80, Summary{Text: `"héllo"`, Kind: "string", Len: 6}},
		{"nil", nil, 80, Summary{Text: "null", Kind: "null", Len: -1}},
		{"nil raw slice", []float64(nil), 80, Summary{Text: "null", Kind: "null", Len: -1}},
		{"bool", true, 80, Summary{Text: "true", Kind: "bool", Len: -1}},
		{"time", when, 80, Summary{Text: `"2024-03-05T12:34:56.123456789Z"`, Kind: "time", Len: -1}},
		{"bytes", []byte("abc"), 80, Summary{Text: `"YWJj"`, Kind: "bytes", Len: 3}},
		{"nested bytes", [][]byte{[]byte("abc")}, 80, Summary{Text: `["YWJj"]`, Kind: "array", Len: 1}},
		{"map cut", m, 30, Summary{Text: `{"k0000":0,"k0001":1,"k0002":2`, Cut: true, Kind: "map", Len: 1000}},
		{"raw slice cut", []int64{1000, 2000, 3000, 4000}, 12, Summary{Text: "[1000,2000,3", Cut: true, Kind: "array", Len: 4}},
		{"exactly full", []int{1, 2}, 5, Summary{Text: "[1,2]", Kind: "array", Len: 2}},
		{"one short", []int{1, 2}, 4, Summary{Text: "[1,2", Cut: true, Kind: "array", Len: 2}},
		{"cut inside a character", "ééé", 4, Summary{Text: `"é`, Cut: true, Kind: "string", Len: 6}},
		{"struct", Inner{Name: "n"}, 80, Summary{Text: `{"Name":"n","When":null,"Weights":null}`, Kind: "map", Len: 3}},
		{"no limit", []string{"a", "b"}, -1, Summary{Text: `["a","b"]`, Kind: "array", Len: 2}},
		{"zero", "abc", 0, Summary{Cut: true, Kind: "string", Len: 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Preview(encodeBytes(t, tt.v), tt.max)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("got %+v\nwant %+v", got, tt.want)
			}
			if !utf8.ValidString(got.Text) {
				t.Fatalf("text %q is not valid UTF-8", got.Text)
			}
		})
	}
}

// TestPreviewReadsOnlyWhatItShows: a preview of a huge map reads its first
// entries only; the proof is that the rest of the data may be missing.
func TestPreviewReadsOnlyWhatItShows(t *testing.T) {
	m := make(map[string]int, 100_000)
	for i := range 100_000 {
		m[fmt.Sprintf("k%07d", i)] = i
	}
	data := encodeBytes(t, m)
	head := data[:4096] // the first entries of 100,000
	got, err := Preview(head, 80)
	if err != nil {
		t.Fatalf("Preview of the first 4 KiB: %v", err)
	}
	if !got.Cut || got.Kind != "map" || got.Len != 100_000 || len(got.Text) != 80 || !strings.HasPrefix(got.Text, `{"k0000000":0,`) {
		t.Fatalf("got %+v", got)
	}
	// What reads the whole value notices that it is cut short.
	if _, err := DecodeAny(head); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("DecodeAny of a truncated map: %v, want ErrCorrupt", err)
	}
	if _, err := Preview(head, -1); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Preview without a limit of a truncated map: %v, want ErrCorrupt", err)
	}
	// A complete preview checks that nothing follows the value.
	small := encodeBytes(t, 1)
	if _, err := Preview(append(small, 0), 80); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Preview with a trailing byte: %v, want ErrCorrupt", err)
	}
}

// TestEncodingIsStandardCBOR checks what Encode writes against another
// CBOR implementation.
func TestEncodingIsStandardCBOR(t *testing.T) {
	dm, err := cbor.DecOptions{DupMapKey: cbor.DupMapKeyEnforcedAPF, IndefLength: cbor.IndefLengthForbidden, UTF8: cbor.UTF8DecodeInvalid}.DecMode()
	if err != nil {
		t.Fatal(err)
	}
	kolkata := mustLoad(t, "Asia/Kolkata")
	for _, v := range []any{sampleConfig(), map[point]int{{1, 2}: 3}, when.In(kolkata), new(big.Int).Lsh(big.NewInt(1), 80),
		[]any{1.1, float32(2.5), math.NaN(), "x", []byte("y")}, map[any]any{1: "a", "1": 2, 2.5: nil}} {
		payload := encodeBytes(t, v)[cborHeaderLen:]
		if err := dm.Wellformed(payload); err != nil {
			t.Errorf("%T: not well-formed CBOR: %v", v, err)
		}
	}
	// Where the other implementation has Go types for the value, it reads
	// the same value back.
	var c Config
	err = dm.Unmarshal(encodeBytes(t, sampleConfig())[cborHeaderLen:], &c)
	want := sampleConfig()
	want.Any, c.Any = nil, nil // it reads any as its own plain values
	if err != nil || !reflect.DeepEqual(c, want) {
		t.Errorf("sampleConfig: got %+v, %v", c, err)
	}
	var m map[any]any
	if err := dm.Unmarshal(encodeBytes(t, map[any]any{1: "a", "1": 2, 2.5: nil})[cborHeaderLen:], &m); err != nil || len(m) != 3 {
		t.Errorf("map[any]any: got %v, %v", m, err)
	}
}

func millionMap() map[string]int {
	m := make(map[string]int, 1_000_000)
	for i := range 1_000_000 {
		m[fmt.Sprintf("k%07d", i)] = i
	}
	return m
}

// BenchmarkPreview shows a preview of a map of a million entries (as dump
// prints in its table) against what reading the blob alone costs (copying
// its bytes) and against what showing it cost before (decode the whole
// value, then encode it as JSON).
func BenchmarkPreview(b *testing.B) {
	data := encodeBytes(b, millionMap())
	b.Logf("blob: %d bytes", len(data))
	b.Run("preview-80", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Preview(data, 80); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("floor-copy-blob", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			_ = bytes.Clone(data)
		}
	})
	b.Run("write-json", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			if err := WriteJSON(io.Discard, data, "", "  "); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode-any-json-marshal", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			v, err := DecodeAny(data)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := json.Marshal(v); err != nil {
				b.Fatal(err)
			}
		}
	})
}
