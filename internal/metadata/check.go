package metadata

import (
	"cmp"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// This file holds what the stores share of checking and naming what they
// are given. A store stricter than the others (PostgreSQL cannot hold some
// text) passes its own rules as strict; nil adds none.

// CheckNames returns an error for the first name that is empty or, when
// strict is not nil, that strict refuses (its error as it is); pairs are
// (what, name), such as ("flow", flow, "run id", run).
func CheckNames(strict func(what, name string) error, pairs ...string) error {
	for i := 0; i+1 < len(pairs); i += 2 {
		what, name := pairs[i], pairs[i+1]
		if name == "" {
			return fmt.Errorf("metadata: no %s given", what)
		}
		if strict != nil {
			if err := strict(what, name); err != nil {
				return err
			}
		}
	}
	return nil
}

// CheckTag returns an error if a tag of run is empty, is refused by strict
// (called as strict("tag", tag) when not nil), is not valid UTF-8 or holds
// a control character.
func CheckTag(strict func(what, name string) error, run, tag string) error {
	if tag == "" {
		return fmt.Errorf("metadata: run %s: empty tag", run)
	}
	if strict != nil {
		if err := strict("tag", tag); err != nil {
			return about("run "+run, err)
		}
	}
	if !utf8.ValidString(tag) {
		return fmt.Errorf("metadata: run %s: tag %q is not valid UTF-8", run, tag)
	}
	for _, r := range tag {
		if unicode.IsControl(r) {
			return fmt.Errorf("metadata: run %s: tag %q holds a control character", run, tag)
		}
	}
	return nil
}

// CheckArtifacts returns an error if an artifact of task has no name, has
// the name of another, or is refused by strict (when not nil).
func CheckArtifacts(strict func(Artifact) error, task string, arts []Artifact) error {
	seen := make(map[string]bool, len(arts))
	for _, a := range arts {
		if a.Name == "" {
			return fmt.Errorf("metadata: task %s: an artifact has no name", task)
		}
		if seen[a.Name] {
			return fmt.Errorf("metadata: task %s: two artifacts are named %q", task, a.Name)
		}
		seen[a.Name] = true
		if strict != nil {
			if err := strict(a); err != nil {
				return about("task "+task, err)
			}
		}
	}
	return nil
}

// about puts what an error of a strict rule is about at the head of its
// message.
func about(what string, err error) error {
	return fmt.Errorf("metadata: %s: %s", what, strings.TrimPrefix(err.Error(), "metadata: "))
}

// CheckStatus returns an error unless st is Running, Succeeded or Failed;
// what names what has the status, for the message.
func CheckStatus(st Status, what string) error {
	switch st {
	case Running, Succeeded, Failed:
		return nil
	}
	return fmt.Errorf("metadata: %s: unknown status %q (want %s, %s or %s)", what, st, Running, Succeeded, Failed)
}

// TaskPathspec returns the pathspec flow/run/step/task of a task.
func TaskPathspec(flow, run, step, task string) string {
	return flow + "/" + run + "/" + step + "/" + task
}

// CompareTasks orders tasks as stores list them: by start time (an unknown
// start first), then by step name, then by task id (CompareTaskIDs).
func CompareTasks(a, b *Task) int {
	return cmp.Or(a.Started.Compare(b.Started), strings.Compare(a.Step, b.Step), CompareTaskIDs(a.ID, b.ID))
}

// CompareTaskIDs orders task ids as dotted numbers: "2" before "10", "2"
// before "2.0", "2.5" before "2.10" and before "3". An id that is not a
// dotted number (none should be) comes after those that are, by its bytes;
// equal numbers written differently ("07", "7") are ordered by their bytes.
func CompareTaskIDs(a, b string) int {
	an, bn := isDotted(a), isDotted(b)
	switch {
	case an && bn:
	case an:
		return -1
	case bn:
		return 1
	default:
		return strings.Compare(a, b)
	}
	ra, rb := a, b
	for ra != "" && rb != "" {
		var pa, pb string
		pa, ra, _ = strings.Cut(ra, ".")
		pb, rb, _ = strings.Cut(rb, ".")
		ta, tb := strings.TrimLeft(pa, "0"), strings.TrimLeft(pb, "0")
		if c := cmp.Or(cmp.Compare(len(ta), len(tb)), strings.Compare(ta, tb)); c != 0 {
			return c
		}
	}
	return cmp.Or(cmp.Compare(len(ra), len(rb)), strings.Compare(a, b))
}

// isDotted reports whether s is decimal numbers joined by dots.
func isDotted(s string) bool {
	if s == "" {
		return false
	}
	for p := range strings.SplitSeq(s, ".") {
		if p == "" || strings.Trim(p, "0123456789") != "" {
			return false
		}
	}
	return true
}

// TimeOrNow returns t, or the current time in UTC when t is zero.
func TimeOrNow(t time.Time) time.Time {
	if t.IsZero() {
		return time.Now().UTC()
	}
	return t
}
