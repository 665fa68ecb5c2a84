package codec

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"

	"github.com/fxamacker/cbor/v2"
)

// decMaxNestedLevels is the deepest CBOR nesting Decode accepts. It is above
// what Encode produces (see maxDepth) and bounds the decoder's recursion on
// damaged data.
const decMaxNestedLevels = 2 * maxDepth

var (
	encMode cbor.UserBufferEncMode
	decMode cbor.DecMode
)

func init() {
	// Core deterministic encoding: shortest integers, lengths and floats
	// (only when lossless), no indefinite lengths, map keys sorted by their
	// encoded bytes, NaN always 0xf97e00.
	eo := cbor.CoreDetEncOptions()
	// time.Time as tag 0 with an RFC 3339 UTC text with nanoseconds: keeps
	// the instant exactly and makes equal instants in different zones equal
	// bytes. The zero time.Time is encoded as null.
	eo.Time = cbor.TimeRFC3339NanoUTC
	eo.TimeTag = cbor.EncTagRequired
	eo.NilContainers = cbor.NilContainerAsNull // nil and empty stay distinct
	var err error
	if encMode, err = eo.UserBufferEncMode(); err != nil {
		panic("codec: CBOR encoding options: " + err.Error())
	}

	do := cbor.DecOptions{
		MaxNestedLevels:  decMaxNestedLevels,
		MaxArrayElements: math.MaxInt32, // lengths are checked against the data before decoding
		MaxMapPairs:      math.MaxInt32,
		IndefLength:      cbor.IndefLengthForbidden,
		TimeTag:          cbor.DecTagOptional,
		TimeTagToAny:     cbor.TimeTagToTime,
		IntDec:           cbor.IntDecConvertNone, // normalize turns uint64 into int64 where it fits
		UTF8:             cbor.UTF8DecodeInvalid, // Go strings may hold any bytes
		DupMapKey:        cbor.DupMapKeyQuiet,
	}
	if decMode, err = do.DecMode(); err != nil {
		panic("codec: CBOR decoding options: " + err.Error())
	}
}

// encodeError explains an error from the CBOR encoder, which the checks in
// check.go should mostly have made impossible.
func encodeError(err error, typeName string) error {
	if e, ok := errors.AsType[*cbor.UnsupportedTypeError](err); ok {
		return &UnsupportedTypeError{Type: e.Type.String(), Reason: "the encoding does not support this type; " + plainAdvice}
	}
	if e, ok := errors.AsType[*cbor.UnsupportedValueError](err); ok {
		msg := strings.TrimPrefix(e.Error(), "cbor: ")
		advice := plainAdvice
		if strings.Contains(msg, "time.Time") {
			advice = "store times between the years 0000 and 9999 (UTC), or store them as Unix nanoseconds in an int64"
		}
		return fmt.Errorf("codec: cannot encode a value of type %s: %s; %s", typeName, msg, advice)
	}
	return fmt.Errorf("codec: cannot encode a value of type %s: %s", typeName, strings.TrimPrefix(err.Error(), "cbor: "))
}

// decodeError explains an error from the CBOR decoder: a type mismatch
// between the data and the target, or damaged data.
func decodeError(err error, target reflect.Type) error {
	if e, ok := errors.AsType[*cbor.UnmarshalTypeError](err); ok {
		return fmt.Errorf("codec: cannot decode into %s: %s; the stored value has a different type: decode into the type it was stored as, or into *any to inspect it", target, strings.TrimPrefix(e.Error(), "cbor: "))
	}
	if e, ok := errors.AsType[*cbor.InvalidMapKeyTypeError](err); ok {
		return fmt.Errorf("codec: cannot decode into %s: %s; decode into a map whose key type matches the stored keys, or into *any", target, strings.TrimPrefix(e.Error(), "cbor: "))
	}
	return corruptCBOR(err)
}

func corruptCBOR(err error) error {
	return fmt.Errorf("%w: the CBOR payload is invalid (%s); the stored object is truncated or damaged", ErrCorrupt, strings.TrimPrefix(err.Error(), "cbor: "))
}

// decodeAnyCBOR decodes a CBOR payload into plain values.
func decodeAnyCBOR(payload []byte) (any, error) {
	var x any
	if err := decMode.Unmarshal(payload, &x); err != nil {
		if _, ok := errors.AsType[*cbor.UnmarshalTypeError](err); ok {
			// Into any, only damaged data (e.g. a map keyed by arrays)
			// fails this way.
			return nil, corruptCBOR(err)
		}
		return nil, decodeError(err, reflect.TypeFor[*any]())
	}
	return normalize(x), nil
}

// normalize turns what the CBOR decoder produces for an empty interface into
// DecodeAny's plain values: maps with only string keys become
// map[string]any, and unsigned integers that fit become int64.
func normalize(x any) any {
	switch x := x.(type) {
	case uint64:
		if x <= math.MaxInt64 {
			return int64(x)
		}
	case []any:
		for i, e := range x {
			x[i] = normalize(e)
		}
	case map[any]any:
		strKeys := true
		for k := range x {
			if _, ok := k.(string); !ok {
				strKeys = false
				break
			}
		}
		if strKeys {
			m := make(map[string]any, len(x))
			for k, v := range x {
				m[k.(string)] = normalize(v)
			}
			return m
		}
		m := make(map[any]any, len(x))
		for k, v := range x {
			m[normalize(k)] = normalize(v)
		}
		return m
	}
	return x
}

// normalizeValue applies normalize to every empty interface inside v, a
// freshly decoded value, so that `any` fields hold the same plain values as
// DecodeAny returns.
func normalizeValue(v reflect.Value) {
	if !infoOf(v.Type()).iface {
		return
	}
	switch v.Kind() {
	case reflect.Interface:
		if !v.IsNil() && v.CanSet() && v.NumMethod() == 0 {
			v.Set(reflect.ValueOf(normalize(v.Elem().Interface())))
		}
	case reflect.Pointer:
		if !v.IsNil() {
			normalizeValue(v.Elem())
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			normalizeValue(v.Index(i))
		}
	case reflect.Map:
		if v.Len() == 0 || !infoOf(v.Type().Elem()).iface {
			return
		}
		it := v.MapRange()
		for it.Next() {
			e := reflect.New(v.Type().Elem()).Elem()
			e.Set(it.Value())
			normalizeValue(e)
			v.SetMapIndex(it.Key(), e)
		}
	case reflect.Struct:
		for _, f := range infoOf(v.Type()).fields {
			if fv := v.Field(f.index); fv.CanSet() {
				normalizeValue(fv)
			}
		}
	}
}
