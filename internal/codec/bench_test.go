package codec

import (
	"testing"
	"time"
)

const benchBytes = 128 << 20 // 128 MiB

func benchSlice() []float64 {
	s := make([]float64, benchBytes/8)
	for i := range s {
		s[i] = float64(i) * 0.5
	}
	return s
}

type smallStruct struct {
	Name    string
	Epoch   int
	LR      float64
	Layers  []int
	Tags    map[string]string
	Started time.Time
}

var small = smallStruct{
	Name: "resnet", Epoch: 12, LR: 3e-4, Layers: []int{64, 128, 256},
	Tags: map[string]string{"team": "vision", "stage": "train"}, Started: when,
}

// BenchmarkEncode measures Encode; the fast path hands out the slice's
// memory, so its cost does not depend on the size.
func BenchmarkEncode(b *testing.B) {
	b.Run("float64-128MiB", func(b *testing.B) {
		s := benchSlice()
		b.SetBytes(benchBytes)
		for b.Loop() {
			if _, err := Encode(s); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("small-struct", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Encode(small); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkEncodeWrite adds what a store does next: copying the parts into
// one buffer (as writing them to a file would), i.e. memory speed.
func BenchmarkEncodeWrite(b *testing.B) {
	s := benchSlice()
	buf := make([]byte, 0, benchBytes+rawHeaderLen)
	b.SetBytes(benchBytes)
	for b.Loop() {
		enc, err := Encode(s)
		if err != nil {
			b.Fatal(err)
		}
		buf = buf[:0]
		for _, p := range enc.Parts {
			buf = append(buf, p...)
		}
	}
}

// BenchmarkDecode measures Decode of aligned data (aliased, no copy) and of
// unaligned data (copied, memory speed).
func BenchmarkDecode(b *testing.B) {
	al, unal := aligned(encodeBytes(b, benchSlice()))
	for _, c := range []struct {
		name string
		data []byte
	}{{"float64-128MiB-aligned", al}, {"float64-128MiB-unaligned", unal}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(benchBytes)
			for b.Loop() {
				var out []float64
				if err := Decode(c.data, &out); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("small-struct", func(b *testing.B) {
		data := encodeBytes(b, small)
		b.ReportAllocs()
		for b.Loop() {
			var out smallStruct
			if err := Decode(data, &out); err != nil {
				b.Fatal(err)
			}
		}
	})
}
