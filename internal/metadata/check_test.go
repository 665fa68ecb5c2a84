package metadata

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestCompareTaskIDs(t *testing.T) {
	// In order; each compares below every later one.
	ordered := []string{"0", "1", "2", "2.0", "2.5", "2.5.1", "2.10", "3", "9", "10", "10.0", "11", "99999999999999999999", "007x", "a", "b.1"}
	for i, a := range ordered {
		for j, b := range ordered {
			want := 0
			switch {
			case i < j:
				want = -1
			case i > j:
				want = 1
			}
			if got := CompareTaskIDs(a, b); got != want {
				t.Errorf("CompareTaskIDs(%q, %q) = %d, want %d", a, b, got, want)
			}
		}
	}
	// The same number written differently is ordered, not equal.
	if c := CompareTaskIDs("07", "7"); c == 0 || c != -CompareTaskIDs("7", "07") {
		t.Errorf("CompareTaskIDs(07, 7) = %d", c)
	}
}

func TestCompareTasks(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	task := func(started time.Duration, step, id string) *Task {
		return &Task{Step: step, ID: id, Started: t0.Add(started)}
	}
	want := []*Task{
		{Step: "z", ID: "0"}, // unknown start first
		task(0, "start", "0"),
		task(time.Second, "a", "10"),
		task(time.Second, "b", "2"),
		task(time.Second, "b", "10"),
		task(2*time.Second, "a", "0"),
	}
	got := slices.Clone(want)
	slices.Reverse(got)
	slices.SortStableFunc(got, CompareTasks)
	if !slices.Equal(got, want) {
		for i := range got {
			t.Errorf("%d: %s/%s at %v, want %s/%s at %v", i, got[i].Step, got[i].ID, got[i].Started, want[i].Step, want[i].ID, want[i].Started)
		}
	}
}

// FuzzTaskOrderKey checks that the order of TaskOrderKey, ties broken by
// the ids, is that of CompareTaskIDs.
func FuzzTaskOrderKey(f *testing.F) {
	for _, s := range [][2]string{{"2", "10"}, {"2.10", "2.9"}, {"0", "00"}, {"2", "2.0"}, {"a", "1"}, {"07", "7"}, {"07.1", "7.0"}} {
		f.Add(s[0], s[1])
	}
	sign := func(c int) int { return max(-1, min(1, c)) }
	f.Fuzz(func(t *testing.T, a, b string) {
		want := sign(CompareTaskIDs(a, b))
		got := sign(strings.Compare(TaskOrderKey(a), TaskOrderKey(b)))
		if got == 0 {
			got = sign(strings.Compare(a, b))
		}
		if got != want && len(a) < 200 && len(b) < 200 {
			t.Fatalf("%q, %q: keys %q, %q order %d, CompareTaskIDs %d", a, b, TaskOrderKey(a), TaskOrderKey(b), got, want)
		}
	})
}

// FuzzCompareTaskIDs checks that CompareTaskIDs is a total order: equal
// only for equal ids, antisymmetric, and transitive.
func FuzzCompareTaskIDs(f *testing.F) {
	for _, s := range [][3]string{{"2", "10", "2.5"}, {"2.10", "2.9", "02.9"}, {"0", "00", "0.0"}, {"a", "1", "1."}} {
		f.Add(s[0], s[1], s[2])
	}
	sign := func(c int) int { return max(-1, min(1, c)) }
	f.Fuzz(func(t *testing.T, a, b, c string) {
		ab, ba := sign(CompareTaskIDs(a, b)), sign(CompareTaskIDs(b, a))
		if ab != -ba || (ab == 0) != (a == b) {
			t.Fatalf("CompareTaskIDs(%q, %q) = %d, reversed %d", a, b, ab, ba)
		}
		bc, ac := sign(CompareTaskIDs(b, c)), sign(CompareTaskIDs(a, c))
		if ab <= 0 && bc <= 0 && ac > 0 {
			t.Fatalf("%q <= %q <= %q but CompareTaskIDs(%q, %q) = %d", a, b, c, a, c, ac)
		}
	})
}
