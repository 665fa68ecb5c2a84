package metadata

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"stepwise.dev/stepwise/internal/names"
)

// This file holds what the stores share of checking and naming what they
// are given. Names follow the rules of package names, everywhere; a store
// stricter than the others (PostgreSQL cannot hold some text) adds its own
// rules. Errors about names wrap a *names.Error, whose method Invalid
// reports true, so that the metadata service answers 400 to them.

// CheckRunName returns an error unless flow is a flow name and run a run
// id that package names allows.
func CheckRunName(flow, run string) error {
	if err := names.Flow(flow); err != nil {
		return fmt.Errorf("metadata: %w", err)
	}
	if err := names.RunID(run); err != nil {
		return fmt.Errorf("metadata: flow %s: %w", flow, err)
	}
	return nil
}

// CheckTaskName returns an error unless flow, run, step and task are names
// that package names allows.
func CheckTaskName(flow, run, step, task string) error {
	if err := CheckRunName(flow, run); err != nil {
		return err
	}
	if err := names.Step(step); err != nil {
		return fmt.Errorf("metadata: run %s/%s: %w", flow, run, err)
	}
	if err := names.TaskID(task); err != nil {
		return fmt.Errorf("metadata: run %s/%s, step %s: %w", flow, run, step, err)
	}
	return nil
}

// CheckNewRun checks a run to record: its flow name and id, its user (when
// given), its system tags (each with a system prefix), its user tags (none
// with one) and its status (when given).
func CheckNewRun(r *Run) error {
	if err := CheckRunName(r.Flow, r.ID); err != nil {
		return err
	}
	name := r.Flow + "/" + r.ID
	if r.User != "" {
		if err := names.User(r.User); err != nil {
			return fmt.Errorf("metadata: run %s: %w", name, err)
		}
	}
	for _, t := range r.SystemTags {
		if err := names.SystemTag(t); err != nil {
			return fmt.Errorf("metadata: run %s: %w", name, err)
		}
	}
	if err := CheckUserTags(r.Flow, r.ID, r.Tags); err != nil {
		return err
	}
	if r.Status != "" {
		return CheckStatus(r.Status, "run "+name)
	}
	return nil
}

// CheckUserTags returns an error for the first of tags, to add to run
// flow/run, that is not a user tag package names allows: a tag with a
// system prefix (user:, runtime:, production:) is refused with the same
// message wherever tags are added.
func CheckUserTags(flow, run string, tags []string) error {
	for _, t := range tags {
		if err := names.UserTag(t); err != nil {
			return fmt.Errorf("metadata: run %s/%s: %w", flow, run, err)
		}
	}
	return nil
}

// CheckFilter returns an error unless the flow (when given) and the tags
// of a filter are names that package names allows.
func CheckFilter(f RunFilter) error {
	if f.Flow != "" {
		if err := names.Flow(f.Flow); err != nil {
			return fmt.Errorf("metadata: listing runs: %w", err)
		}
	}
	for _, t := range f.Tags {
		if err := names.Tag(t); err != nil {
			return fmt.Errorf("metadata: listing runs: %w", err)
		}
	}
	if f.Status != "" {
		return CheckStatus(f.Status, "listing runs")
	}
	return nil
}

// CheckTagsToRemove returns an error if a tag to remove from a run is
// empty. Tags to remove are not held to the rules of package names, so
// that a tag recorded before the rules can still be removed.
func CheckTagsToRemove(flow, run string, tags []string) error {
	for _, t := range tags {
		if t == "" {
			return fmt.Errorf("metadata: run %s/%s: an empty tag to remove; name the tags to remove", flow, run)
		}
	}
	return nil
}

// SameRun reports whether the recorded run got is the run want that
// CreateRun was asked to record, so that recording it again (a retry after
// a lost response) is not an error: the same flow, id, status, user, times,
// code, origin, parameters and system tags, and at least want's user tags
// (others may have been added since).
func SameRun(got, want *Run) bool {
	if got.Flow != want.Flow || got.ID != want.ID || got.Status != want.Status || got.User != want.User ||
		!got.Started.Equal(want.Started) || !got.Ended.Equal(want.Ended) || got.Code != want.Code ||
		got.Origin != want.Origin || !maps.Equal(got.Params, want.Params) {
		return false
	}
	if !slices.Equal(sortedSet(got.SystemTags), sortedSet(want.SystemTags)) {
		return false
	}
	for _, t := range want.Tags {
		if !slices.Contains(got.Tags, t) {
			return false
		}
	}
	return true
}

// SameClone reports whether the recorded task got is the clone want that
// CloneTask was asked to record: the same origin, times and artifacts.
func SameClone(got, want *Task) bool {
	if got.ClonedFrom != want.ClonedFrom || !got.Started.Equal(want.Started) || !got.Ended.Equal(want.Ended) ||
		len(got.Artifacts) != len(want.Artifacts) {
		return false
	}
	arts := slices.Clone(want.Artifacts)
	slices.SortFunc(arts, func(a, b Artifact) int { return strings.Compare(a.Name, b.Name) })
	return slices.Equal(got.Artifacts, arts)
}

func sortedSet(s []string) []string { return slices.Compact(slices.Sorted(slices.Values(s))) }

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

// TaskOrderKey returns a string whose byte order among task ids is that of
// CompareTaskIDs, up to ties between the same numbers written differently
// ("07" and "7"), which stores break by the id itself. Stores keep it with
// each task, to list tasks in order, and page through them, in SQL. Each
// number of a dotted id becomes its count of digits (three digits) and its
// digits: "2.10" is "001 2.002 10" without the spaces. Ids that are not
// dotted numbers (or have numbers of more than 999 digits) start with "~",
// after all those that are.
func TaskOrderKey(id string) string {
	if !isDotted(id) {
		return "~" + id
	}
	var b strings.Builder
	for i, p := range strings.Split(id, ".") {
		p = strings.TrimLeft(p, "0")
		if p == "" {
			p = "0"
		}
		if len(p) > 999 {
			return "~" + id
		}
		if i > 0 {
			b.WriteByte('.')
		}
		fmt.Fprintf(&b, "%03d%s", len(p), p)
	}
	return b.String()
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
