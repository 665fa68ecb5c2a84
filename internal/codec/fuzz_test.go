package codec

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"
	"time"
	"unicode/utf8"
)

// fuzzTarget has several kinds of fields for FuzzDecode to decode into.
type fuzzTarget struct {
	I     int
	U8    uint8
	F     float64
	F32   float32
	S     string
	B     bool
	T     time.Time
	D     time.Duration
	Bytes []byte
	Fs    []float64
	Arr   [2]int16
	M     map[string]int
	MI    map[int]string
	P     *Inner
	Kids  []*fuzzTarget
	Any   any
}

func fuzzSeeds(f *testing.F) {
	for _, v := range []any{
		nil, 1, -1, uint64(math.MaxUint64), 1.5, "s", true, when, time.Second,
		[]byte("b"), []float64{1, 2}, []int8{-1}, []int{1}, []float32{}, []uint16(nil),
		[]string{"a"}, map[string]int{"a": 1}, map[int]string{1: "a"}, []any{1, "a", nil},
		sampleConfig(), map[float64]string{math.Inf(1): "inf"}, []float32{float32(math.NaN())},
		time.Date(2024, 1, 1, 0, 0, 0, 0, time.FixedZone("X", 3600)), map[point]int{{1, 2}: 3},
		fuzzTarget{I: 1, S: "x", T: when, Fs: []float64{1}, M: map[string]int{"k": 2}, P: &Inner{Name: "p"},
			Kids: []*fuzzTarget{{I: 2}}, Any: map[string]any{"a": []any{1.5}}},
	} {
		enc, err := Encode(v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(bytes.Join(enc.Parts, nil))
	}
	f.Add([]byte("STWC\x01\x02\x01\x00\xff\xff\xff\xff\xff\xff\xff\xff"))
	f.Add([]byte("STWC\x01\x01\x00\x00\x9b\xff\xff\xff\xff\xff\xff\xff\xff"))
}

func FuzzDecodeAny(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := DecodeAny(data)
		if err != nil {
			return
		}
		// What decodes can be encoded again, unless it holds values that
		// only damaged data produces.
		_, _ = Encode(v)
	})
}

func FuzzDecode(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		var v fuzzTarget
		_ = Decode(data, &v)
		var fs []float64
		_ = Decode(data, &fs)
		var a any
		_ = Decode(data, &a)
	})
}

// FuzzText checks Preview and WriteJSON on any data: no panic, a preview
// no longer than asked, valid JSON, and the same data accepted as by
// DecodeAny.
func FuzzText(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, max := range []int{0, 1, 7, 80} {
			s, err := Preview(data, max)
			if err == nil && (len(s.Text) > max || !utf8.ValidString(s.Text)) {
				t.Fatalf("Preview(max %d) = %q", max, s.Text)
			}
		}
		var out bytes.Buffer
		werr := WriteJSON(&out, data, "", " ")
		_, aerr := DecodeAny(data)
		_, perr := Preview(data, -1)
		if (werr == nil) != (aerr == nil) || (werr == nil) != (perr == nil) {
			t.Fatalf("WriteJSON: %v; DecodeAny: %v; Preview: %v", werr, aerr, perr)
		}
		if werr == nil && !json.Valid(out.Bytes()) {
			t.Fatalf("WriteJSON wrote invalid JSON: %s", out.String())
		}
	})
}
