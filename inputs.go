package stepwise

import (
	"fmt"
	"iter"
	"reflect"
	"strings"
)

// Inputs are what a join step receives: one flow value per parent task,
// each holding the artifacts that task produced. A join after a branch has
// one input per branch, reachable by the parent step's name; a join after a
// foreach has one input per element, in the order of the elements. Inputs
// are for reading: an artifact with the same value in several inputs may
// share memory between them.
type Inputs[T any] struct {
	items []T
	steps []string            // parent step of each input
	keys  []map[string]string // artifact name -> content key, per input
}

// inputsType lets the runtime recognise and build Inputs of any flow type.
type inputsType interface {
	elemType() reflect.Type
	build(items []reflect.Value, steps []string, keys []map[string]string) reflect.Value
}

var inputsMarker = reflect.TypeFor[inputsType]()

func (in Inputs[T]) elemType() reflect.Type { return reflect.TypeFor[T]() }

func (in Inputs[T]) build(items []reflect.Value, steps []string, keys []map[string]string) reflect.Value {
	out := Inputs[T]{steps: steps, keys: keys}
	for _, v := range items {
		out.items = append(out.items, v.Interface().(T))
	}
	return reflect.ValueOf(out)
}

// Len is the number of inputs.
func (in Inputs[T]) Len() int { return len(in.items) }

// At returns input i: the i-th element's task after a foreach, the i-th
// declared branch after a branch.
func (in Inputs[T]) At(i int) T { return in.items[i] }

// All iterates over the inputs in order.
func (in Inputs[T]) All() iter.Seq2[int, T] {
	return func(yield func(int, T) bool) {
		for i, v := range in.items {
			if !yield(i, v) {
				return
			}
		}
	}
}

// Step returns the input that came from the branch ending in step name. It
// panics, failing the task with a message, when no input came from there.
func (in Inputs[T]) Step(name string) T {
	for i, s := range in.steps {
		if s == name {
			return in.items[i]
		}
	}
	panic(fmt.Sprintf("stepwise: this join has no input from step %q; its inputs come from %s", name, strings.Join(uniq(in.steps), ", ")))
}

// Merge copies into dst every artifact that has the same value in all
// inputs. Artifacts the join already set (non-zero in dst) and those named in
// exclude are left alone. An artifact whose value differs between inputs is
// an error naming it: set it in the join before calling Merge, or exclude it.
func (in Inputs[T]) Merge(dst T, exclude ...string) error {
	dv := reflect.ValueOf(dst)
	if dv.Kind() != reflect.Pointer || dv.IsNil() || dv.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("stepwise: Merge needs a pointer to the join's flow (the method's receiver), got %T", dst)
	}
	if len(in.items) == 0 {
		return nil
	}
	skip := map[string]bool{}
	for _, e := range exclude {
		skip[e] = true
	}
	dv = dv.Elem()
	t := dv.Type()
	var conflicts []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() || skip[f.Name] || !dv.Field(i).IsZero() {
			continue
		}
		first := reflect.ValueOf(in.items[0]).Elem().Field(i)
		same := true
		for j := 1; j < len(in.items) && same; j++ {
			if in.keys != nil && in.keys[0] != nil && in.keys[j] != nil {
				k0, ok0 := in.keys[0][f.Name]
				kj, okj := in.keys[j][f.Name]
				if ok0 && okj {
					same = k0 == kj
					continue
				}
			}
			same = reflect.DeepEqual(first.Interface(), reflect.ValueOf(in.items[j]).Elem().Field(i).Interface())
		}
		if !same {
			conflicts = append(conflicts, f.Name)
			continue
		}
		dv.Field(i).Set(first)
	}
	if len(conflicts) > 0 {
		return &MergeError{Artifacts: conflicts, Inputs: uniq(in.steps)}
	}
	return nil
}

// MergeError reports the artifacts whose values differ between a join's
// inputs, so that Merge cannot take them over.
type MergeError struct {
	Artifacts []string // field names, in declaration order
	Inputs    []string // the parent steps of the join
}

func (e *MergeError) Error() string {
	return fmt.Sprintf("stepwise: cannot merge artifact(s) %s: the join's inputs (from %s) hold different values; set them in the join before calling Merge, or pass their names to Merge to exclude them",
		strings.Join(e.Artifacts, ", "), strings.Join(e.Inputs, ", "))
}

func uniq(ss []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, s := range ss {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
