// Package metadatatest is the conformance suite of metadata.Store: every
// implementation (the embedded SQLite store, the PostgreSQL-backed service)
// runs it from its tests:
//
//	func TestConformance(t *testing.T) {
//		metadatatest.Run(t, func(t *testing.T) metadata.Store { ... })
//	}
//
// Besides what the interface documents, the suite holds implementations to
// these choices, so that code using a Store sees no difference:
//   - Times come back in UTC, equal to what was stored to the microsecond at
//     least.
//   - Tags come back sorted and without duplicates. A user tag equal to one
//     of the run's system tags is kept only as the system tag.
//   - Removing a tag the run does not have is not an error. Removing a
//     system tag is an error that says system tags cannot be removed, and
//     removes none of the tags asked for.
//   - A task's status and end time are those of its latest attempt; its
//     artifacts are those of its successful attempt (a failed attempt's are
//     not kept). Starting an attempt twice gives ErrExists; finishing an
//     attempt that was never started records it (the launcher does so for a
//     task process that died before it could).
//   - A cloned task is succeeded and has no attempts; cloning onto an
//     existing task gives ErrExists.
//   - Recording a task, or listing the tasks, of a run that does not exist
//     gives ErrNotFound; listing runs that match nothing gives no runs and
//     no error.
package metadatatest

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"stepwise.dev/stepwise/internal/metadata"
	"stepwise.dev/stepwise/internal/names"
)

// Run runs the conformance suite against the stores newStore returns. Each
// subtest calls newStore once and needs a new, empty store; newStore closes
// it when the test ends (with t.Cleanup).
func Run(t *testing.T, newStore func(t *testing.T) metadata.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s metadata.Store)
	}{
		{"CreateGetRun", testCreateGetRun},
		{"CreateRunExists", testCreateRunExists},
		{"GetRunNotFound", testGetRunNotFound},
		{"FinishRun", testFinishRun},
		{"Heartbeat", testHeartbeat},
		{"TaskHeartbeat", testTaskHeartbeat},
		{"ListRunsOrder", testListRunsOrder},
		{"ListRunsFilters", testListRunsFilters},
		{"ListFlows", testListFlows},
		{"Tags", testTags},
		{"Names", testNames},
		{"AttemptRetry", testAttemptRetry},
		{"AttemptEdgeCases", testAttemptEdgeCases},
		{"CloneTask", testCloneTask},
		{"TaskOrder", testTaskOrder},
		{"Concurrent", testConcurrent},
		{"Retries", testRetries},
		{"Paging", testPaging},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newStore(t))
		})
	}
}

// t0 is a start time with nanoseconds, in a zone other than UTC.
var t0 = time.Date(2025, 3, 1, 12, 30, 15, 123456000, time.FixedZone("CET", 3600))

func at(d time.Duration) time.Time { return t0.Add(d) }

func newRun(flow, id, user string, started time.Time, tags ...string) *metadata.Run {
	return &metadata.Run{Flow: flow, ID: id, Status: metadata.Running, User: user,
		SystemTags: []string{"user:" + user}, Tags: tags, Started: started}
}

func mustCreate(t *testing.T, s metadata.Store, runs ...*metadata.Run) {
	t.Helper()
	for _, r := range runs {
		if err := s.CreateRun(t.Context(), r); err != nil {
			t.Fatalf("CreateRun %s/%s: %v", r.Flow, r.ID, err)
		}
	}
}

func mustGetRun(t *testing.T, s metadata.Store, flow, id string) *metadata.Run {
	t.Helper()
	r, err := s.GetRun(t.Context(), flow, id)
	if err != nil {
		t.Fatalf("GetRun %s/%s: %v", flow, id, err)
	}
	return r
}

func mustGetTask(t *testing.T, s metadata.Store, flow, run, step, id string) *metadata.Task {
	t.Helper()
	k, err := s.GetTask(t.Context(), flow, run, step, id)
	if err != nil {
		t.Fatalf("GetTask %s/%s/%s/%s: %v", flow, run, step, id, err)
	}
	return k
}

// checkTime fails unless got is in UTC and the same instant as want, to the
// microsecond.
func checkTime(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	if want.IsZero() {
		if !got.IsZero() {
			t.Errorf("%s = %v, want the zero time", what, got)
		}
		return
	}
	if got.Location() != time.UTC {
		t.Errorf("%s = %v, in %v, want UTC", what, got, got.Location())
	}
	if d := got.Sub(want); d <= -time.Microsecond || d >= time.Microsecond {
		t.Errorf("%s = %v, want %v", what, got, want.UTC())
	}
}

// sortedSet is tags as a Store returns them.
func sortedSet(tags []string) []string {
	return slices.Compact(slices.Sorted(slices.Values(tags)))
}

func checkStrings(t *testing.T, what string, got, want []string) {
	t.Helper()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !slices.Equal(got, want) {
		t.Errorf("%s = %q, want %q", what, got, want)
	}
}

func checkRun(t *testing.T, got, want *metadata.Run) {
	t.Helper()
	name := want.Flow + "/" + want.ID
	if got.Flow != want.Flow || got.ID != want.ID {
		t.Errorf("run %s: got run %s/%s", name, got.Flow, got.ID)
	}
	if got.Status != want.Status {
		t.Errorf("run %s: Status = %q, want %q", name, got.Status, want.Status)
	}
	if got.User != want.User {
		t.Errorf("run %s: User = %q, want %q", name, got.User, want.User)
	}
	checkStrings(t, "run "+name+": SystemTags", got.SystemTags, sortedSet(want.SystemTags))
	checkStrings(t, "run "+name+": Tags", got.Tags, sortedSet(want.Tags))
	if !maps.Equal(got.Params, want.Params) {
		t.Errorf("run %s: Params = %v, want %v", name, got.Params, want.Params)
	}
	checkTime(t, "run "+name+": Started", got.Started, want.Started)
	checkTime(t, "run "+name+": Ended", got.Ended, want.Ended)
	checkTime(t, "run "+name+": Heartbeat", got.Heartbeat, want.Heartbeat)
	if got.Code != want.Code {
		t.Errorf("run %s: Code = %+v, want %+v", name, got.Code, want.Code)
	}
	if got.Origin != want.Origin {
		t.Errorf("run %s: Origin = %q, want %q", name, got.Origin, want.Origin)
	}
}

func checkAttempts(t *testing.T, task string, got, want []metadata.Attempt) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("task %s: %d attempts %+v, want %d %+v", task, len(got), got, len(want), want)
		return
	}
	for i, w := range want {
		g := got[i]
		what := fmt.Sprintf("task %s: attempt %d", task, w.N)
		if g.Flow != w.Flow || g.Run != w.Run || g.Step != w.Step || g.Task != w.Task || g.N != w.N {
			t.Errorf("%s: got %s/%s/%s/%s attempt %d", what, g.Flow, g.Run, g.Step, g.Task, g.N)
		}
		if g.Status != w.Status {
			t.Errorf("%s: Status = %q, want %q", what, g.Status, w.Status)
		}
		if g.Error != w.Error {
			t.Errorf("%s: Error = %q, want %q", what, g.Error, w.Error)
		}
		checkTime(t, what+": Started", g.Started, w.Started)
		checkTime(t, what+": Ended", g.Ended, w.Ended)
		checkTime(t, what+": Heartbeat", g.Heartbeat, w.Heartbeat)
	}
}

func checkArtifacts(t *testing.T, task string, got, want []metadata.Artifact) {
	t.Helper()
	want = slices.Clone(want)
	slices.SortFunc(want, func(a, b metadata.Artifact) int { return strings.Compare(a.Name, b.Name) })
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !slices.Equal(got, want) {
		t.Errorf("task %s: Artifacts = %+v, want %+v", task, got, want)
	}
}

// checkErr fails unless err is target (nil for any non-nil error) and its
// message names each of names.
func checkErr(t *testing.T, what string, err, target error, names ...string) {
	t.Helper()
	switch {
	case err == nil:
		t.Errorf("%s: no error, want one", what)
		return
	case target != nil && !errors.Is(err, target):
		t.Errorf("%s: error %q is not %q", what, err, target)
	}
	for _, n := range names {
		if !strings.Contains(err.Error(), n) {
			t.Errorf("%s: error %q does not name %q", what, err, n)
		}
	}
}

func testCreateGetRun(t *testing.T, s metadata.Store) {
	full := &metadata.Run{
		Flow: "Train", ID: "1740828615123456", Status: metadata.Running, User: "ann",
		SystemTags: []string{"user:ann", "runtime:local"},
		Tags:       []string{"exp-7", "baseline", "exp-7"},
		Params:     map[string]string{"alpha": "0.5", "name": "x y", "empty": ""},
		Started:    t0,
		Code:       metadata.Code{BinarySHA256: strings.Repeat("ab", 32), GitCommit: "0123456789abcdef", GitDirty: true},
		Origin:     "1740828000000000",
	}
	ended := &metadata.Run{Flow: "Train", ID: "2", Status: metadata.Failed, User: "bob",
		SystemTags: []string{"user:bob"}, Started: at(time.Hour), Ended: at(2 * time.Hour)}
	bare := &metadata.Run{Flow: "Other", ID: "3", Status: metadata.Running, Started: at(3 * time.Hour)}
	for _, r := range []*metadata.Run{full, ended, bare} {
		t.Run(r.Flow+"_"+r.ID, func(t *testing.T) {
			want := *r
			want.SystemTags, want.Tags, want.Params = slices.Clone(r.SystemTags), slices.Clone(r.Tags), maps.Clone(r.Params)
			mustCreate(t, s, r)
			checkRun(t, mustGetRun(t, s, r.Flow, r.ID), &want)
		})
	}
	// The same id in another flow is another run.
	other := newRun("Other", full.ID, "cy", at(4*time.Hour))
	mustCreate(t, s, other)
	checkRun(t, mustGetRun(t, s, "Other", full.ID), other)
	checkRun(t, mustGetRun(t, s, "Train", full.ID), full)
}

func testCreateRunExists(t *testing.T, s metadata.Store) {
	first := newRun("Train", "17", "ann", t0)
	mustCreate(t, s, first)
	err := s.CreateRun(t.Context(), newRun("Train", "17", "bob", at(time.Minute)))
	checkErr(t, "CreateRun of a taken id", err, metadata.ErrExists, "Train", "17")
	checkRun(t, mustGetRun(t, s, "Train", "17"), first)
	// The same run again, as a retry after a lost answer sends it, is not
	// an error; one that differs in anything is.
	if err := s.CreateRun(t.Context(), newRun("Train", "17", "ann", t0)); err != nil {
		t.Errorf("CreateRun of the same run again: %v", err)
	}
	for _, other := range []*metadata.Run{
		newRun("Train", "17", "ann", t0.Add(time.Nanosecond)),
		newRun("Train", "17", "ann", t0, "extra"),
		{Flow: "Train", ID: "17", Status: metadata.Succeeded, User: "ann", SystemTags: []string{"user:ann"}, Started: t0},
	} {
		err := s.CreateRun(t.Context(), other)
		checkErr(t, "CreateRun of another run with a taken id", err, metadata.ErrExists, "Train", "17")
	}
	checkRun(t, mustGetRun(t, s, "Train", "17"), first)
}

func testGetRunNotFound(t *testing.T, s metadata.Store) {
	mustCreate(t, s, newRun("Train", "1", "ann", t0))
	for _, c := range []struct{ flow, run string }{{"Train", "2"}, {"Nope", "1"}} {
		_, err := s.GetRun(t.Context(), c.flow, c.run)
		checkErr(t, "GetRun "+c.flow+"/"+c.run, err, metadata.ErrNotFound, c.flow, c.run)
	}
}

func testFinishRun(t *testing.T, s metadata.Store) {
	r := newRun("Train", "1", "ann", t0)
	mustCreate(t, s, r)
	if err := s.FinishRun(t.Context(), "Train", "1", metadata.Succeeded, at(time.Hour)); err != nil {
		t.Fatalf("FinishRun: %v", err)
	}
	r.Status, r.Ended = metadata.Succeeded, at(time.Hour)
	checkRun(t, mustGetRun(t, s, "Train", "1"), r)

	mustCreate(t, s, newRun("Train", "2", "ann", at(time.Minute)))
	if err := s.FinishRun(t.Context(), "Train", "2", metadata.Failed, at(2*time.Minute)); err != nil {
		t.Fatalf("FinishRun: %v", err)
	}
	if got := mustGetRun(t, s, "Train", "2"); got.Status != metadata.Failed {
		t.Errorf("run Train/2: Status = %q after FinishRun(failed)", got.Status)
	}
	err := s.FinishRun(t.Context(), "Train", "3", metadata.Succeeded, at(time.Hour))
	checkErr(t, "FinishRun of a missing run", err, metadata.ErrNotFound, "Train", "3")
}

func testHeartbeat(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	r := newRun("Train", "1", "ann", t0)
	mustCreate(t, s, r)
	checkRun(t, mustGetRun(t, s, "Train", "1"), r) // no heartbeat yet
	for _, beat := range []time.Duration{time.Minute, 3 * time.Minute, 2 * time.Minute} {
		if err := s.Heartbeat(ctx, "Train", "1", at(beat)); err != nil {
			t.Fatalf("Heartbeat: %v", err)
		}
	}
	r.Heartbeat = at(3 * time.Minute) // it only moves forward
	checkRun(t, mustGetRun(t, s, "Train", "1"), r)
	runs, err := s.ListRuns(ctx, metadata.RunFilter{Flow: "Train"})
	if err != nil || len(runs) != 1 {
		t.Fatalf("ListRuns: %d runs, %v", len(runs), err)
	}
	checkRun(t, runs[0], r)

	before := time.Now()
	if err := s.Heartbeat(ctx, "Train", "1", time.Time{}); err != nil {
		t.Fatalf("Heartbeat now: %v", err)
	}
	if got := mustGetRun(t, s, "Train", "1").Heartbeat; got.Before(before.Add(-time.Second)) {
		t.Errorf("Heartbeat(zero time) recorded %v, want about now (%v)", got, before)
	}
	err = s.Heartbeat(ctx, "Train", "2", at(time.Minute))
	checkErr(t, "Heartbeat of a missing run", err, metadata.ErrNotFound, "Train", "2")
}

func testTaskHeartbeat(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	r := newRun("Train", "1", "ann", t0)
	mustCreate(t, s, r)
	a := metadata.Attempt{Flow: "Train", Run: "1", Step: "fit", Task: "0", N: 0, Status: metadata.Running, Started: at(time.Second)}
	if err := s.StartAttempt(ctx, a); err != nil {
		t.Fatal(err)
	}
	checkAttempts(t, "Train/1/fit/0", mustGetTask(t, s, "Train", "1", "fit", "0").Attempts, []metadata.Attempt{a}) // no heartbeat yet
	for _, beat := range []time.Duration{time.Minute, 3 * time.Minute, 2 * time.Minute} {
		if err := s.TaskHeartbeat(ctx, "Train", "1", "fit", "0", 0, at(beat)); err != nil {
			t.Fatalf("TaskHeartbeat: %v", err)
		}
	}
	// Both only move forward; the run's moves with its tasks'.
	a.Heartbeat = at(3 * time.Minute)
	checkAttempts(t, "Train/1/fit/0", mustGetTask(t, s, "Train", "1", "fit", "0").Attempts, []metadata.Attempt{a})
	r.Heartbeat = at(3 * time.Minute)
	checkRun(t, mustGetRun(t, s, "Train", "1"), r)

	// A run ahead of its task stays where it is.
	if err := s.Heartbeat(ctx, "Train", "1", at(10*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := s.TaskHeartbeat(ctx, "Train", "1", "fit", "0", 0, at(4*time.Minute)); err != nil {
		t.Fatal(err)
	}
	a.Heartbeat, r.Heartbeat = at(4*time.Minute), at(10*time.Minute)
	checkRun(t, mustGetRun(t, s, "Train", "1"), r)

	// The heartbeat is kept when the attempt finishes, and listed.
	a.Status, a.Ended = metadata.Succeeded, at(5*time.Minute)
	if err := s.FinishAttempt(ctx, a, nil); err != nil {
		t.Fatal(err)
	}
	tasks, err := s.ListTasks(ctx, "Train", "1")
	if err != nil || len(tasks) != 1 {
		t.Fatalf("ListTasks: %d tasks, %v", len(tasks), err)
	}
	checkAttempts(t, "Train/1/fit/0 (listed)", tasks[0].Attempts, []metadata.Attempt{a})

	// Only this attempt's heartbeat moves.
	b := metadata.Attempt{Flow: "Train", Run: "1", Step: "fit", Task: "1", N: 0, Status: metadata.Running, Started: at(time.Second)}
	if err := s.StartAttempt(ctx, b); err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	if err := s.TaskHeartbeat(ctx, "Train", "1", "fit", "1", 0, time.Time{}); err != nil {
		t.Fatalf("TaskHeartbeat now: %v", err)
	}
	got := mustGetTask(t, s, "Train", "1", "fit", "1").Attempts[0].Heartbeat
	if got.Before(before.Add(-time.Second)) || got.After(time.Now().Add(time.Second)) {
		t.Errorf("TaskHeartbeat(zero time) recorded %v, want about now (%v)", got, before)
	}
	if run := mustGetRun(t, s, "Train", "1"); run.Heartbeat.Before(before.Add(-time.Second)) {
		t.Errorf("TaskHeartbeat(zero time) left the run's heartbeat at %v, want about now (%v)", run.Heartbeat, before)
	}
	checkAttempts(t, "Train/1/fit/0 (other task beat)", mustGetTask(t, s, "Train", "1", "fit", "0").Attempts, []metadata.Attempt{a})

	for _, c := range []struct {
		run, step, task string
		n               int
	}{{"1", "fit", "0", 1}, {"1", "fit", "2", 0}, {"1", "other", "0", 0}, {"2", "fit", "0", 0}} {
		err := s.TaskHeartbeat(ctx, "Train", c.run, c.step, c.task, c.n, at(time.Hour))
		checkErr(t, fmt.Sprintf("TaskHeartbeat of missing attempt %s/%s/%s %d", c.run, c.step, c.task, c.n), err, metadata.ErrNotFound, "Train/"+c.run)
	}
}

func runIDs(runs []*metadata.Run) []string {
	ids := make([]string, len(runs))
	for i, r := range runs {
		ids[i] = r.Flow + "/" + r.ID
	}
	return ids
}

func testListRunsOrder(t *testing.T, s metadata.Store) {
	// Created out of order; 15 and 16 started at the same time.
	for _, c := range []struct {
		id string
		d  time.Duration
	}{{"13", 3}, {"11", 1}, {"16", 5}, {"14", 4}, {"15", 5}, {"12", 2}} {
		mustCreate(t, s, newRun("Train", c.id, "ann", at(c.d*time.Minute)))
	}
	mustCreate(t, s, newRun("Other", "10", "ann", at(150*time.Second)))
	runs, err := s.ListRuns(t.Context(), metadata.RunFilter{Flow: "Train"})
	if err != nil {
		t.Fatal(err)
	}
	checkStrings(t, "ListRuns(Train)", runIDs(runs), []string{"Train/16", "Train/15", "Train/14", "Train/13", "Train/12", "Train/11"})
	runs, err = s.ListRuns(t.Context(), metadata.RunFilter{})
	if err != nil {
		t.Fatal(err)
	}
	checkStrings(t, "ListRuns()", runIDs(runs), []string{"Train/16", "Train/15", "Train/14", "Train/13", "Other/10", "Train/12", "Train/11"})
	// Listed runs are complete.
	checkRun(t, runs[0], newRun("Train", "16", "ann", at(5*time.Minute)))
}

func testListRunsFilters(t *testing.T, s metadata.Store) {
	h := time.Hour
	runs := []*metadata.Run{
		newRun("A", "1", "ann", at(0), "exp"),
		newRun("A", "2", "bob", at(1*h), "exp", "prod"),
		newRun("A", "3", "ann", at(2*h), "prod"),
		newRun("A", "4", "ann", at(3*h), "exp", "prod"),
		newRun("B", "5", "ann", at(h/2), "exp"),
	}
	mustCreate(t, s, runs...)
	finish := map[string]metadata.Status{"1": metadata.Succeeded, "2": metadata.Failed, "4": metadata.Succeeded, "5": metadata.Succeeded}
	for _, r := range runs {
		if st, ok := finish[r.ID]; ok {
			if err := s.FinishRun(t.Context(), r.Flow, r.ID, st, r.Started.Add(time.Minute)); err != nil {
				t.Fatal(err)
			}
		}
	}
	tests := []struct {
		name string
		f    metadata.RunFilter
		want []string
	}{
		{"flow", metadata.RunFilter{Flow: "A"}, []string{"A/4", "A/3", "A/2", "A/1"}},
		{"other flow", metadata.RunFilter{Flow: "B"}, []string{"B/5"}},
		{"unknown flow", metadata.RunFilter{Flow: "C"}, nil},
		{"everything", metadata.RunFilter{}, []string{"A/4", "A/3", "A/2", "B/5", "A/1"}},
		{"tag", metadata.RunFilter{Flow: "A", Tags: []string{"exp"}}, []string{"A/4", "A/2", "A/1"}},
		{"two tags", metadata.RunFilter{Flow: "A", Tags: []string{"exp", "prod"}}, []string{"A/4", "A/2"}},
		{"same tag twice", metadata.RunFilter{Flow: "A", Tags: []string{"prod", "prod"}}, []string{"A/4", "A/3", "A/2"}},
		{"system tag", metadata.RunFilter{Flow: "A", Tags: []string{"user:ann"}}, []string{"A/4", "A/3", "A/1"}},
		{"system and user tags, all flows", metadata.RunFilter{Tags: []string{"user:ann", "exp"}}, []string{"A/4", "B/5", "A/1"}},
		{"unknown tag", metadata.RunFilter{Flow: "A", Tags: []string{"exp", "nope"}}, nil},
		{"status", metadata.RunFilter{Flow: "A", Status: metadata.Succeeded}, []string{"A/4", "A/1"}},
		{"running", metadata.RunFilter{Status: metadata.Running}, []string{"A/3"}},
		{"since, inclusive", metadata.RunFilter{Flow: "A", Since: at(h)}, []string{"A/4", "A/3", "A/2"}},
		{"until, exclusive", metadata.RunFilter{Flow: "A", Until: at(2 * h)}, []string{"A/2", "A/1"}},
		{"since and until", metadata.RunFilter{Since: at(h / 4), Until: at(2 * h)}, []string{"A/2", "B/5"}},
		{"since in UTC", metadata.RunFilter{Flow: "A", Since: at(3 * h).UTC()}, []string{"A/4"}},
		{"limit", metadata.RunFilter{Flow: "A", Limit: 2}, []string{"A/4", "A/3"}},
		{"limit above count", metadata.RunFilter{Flow: "B", Limit: 10}, []string{"B/5"}},
		{"limit and tag", metadata.RunFilter{Tags: []string{"exp"}, Limit: 1}, []string{"A/4"}},
		{"everything at once", metadata.RunFilter{Flow: "A", Tags: []string{"user:ann", "exp"}, Status: metadata.Succeeded,
			Since: at(0), Until: at(4 * h), Limit: 5}, []string{"A/4", "A/1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.ListRuns(t.Context(), tc.f)
			if err != nil {
				t.Fatalf("ListRuns(%+v): %v", tc.f, err)
			}
			checkStrings(t, fmt.Sprintf("ListRuns(%+v)", tc.f), runIDs(got), tc.want)
		})
	}
}

func testListFlows(t *testing.T, s metadata.Store) {
	flows, err := s.ListFlows(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	checkStrings(t, "ListFlows of an empty store", flows, nil)
	mustCreate(t, s, newRun("Zeta", "1", "ann", t0), newRun("Alpha", "2", "ann", t0),
		newRun("Mid", "3", "bob", t0), newRun("Alpha", "4", "bob", t0))
	flows, err = s.ListFlows(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	checkStrings(t, "ListFlows", flows, []string{"Alpha", "Mid", "Zeta"})
}

func testTags(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	r := newRun("Train", "1", "ann", t0, "start")
	mustCreate(t, s, r, newRun("Train", "2", "ann", at(time.Minute)))
	tagsOf := func() ([]string, []string) {
		t.Helper()
		got := mustGetRun(t, s, "Train", "1")
		return got.SystemTags, got.Tags
	}
	listed := func(tag string) []string {
		t.Helper()
		runs, err := s.ListRuns(ctx, metadata.RunFilter{Flow: "Train", Tags: []string{tag}})
		if err != nil {
			t.Fatal(err)
		}
		return runIDs(runs)
	}

	if err := s.AddTags(ctx, "Train", "1", []string{"x", "y", "x"}); err != nil {
		t.Fatalf("AddTags: %v", err)
	}
	if err := s.AddTags(ctx, "Train", "1", []string{"x", "start"}); err != nil {
		t.Fatalf("AddTags of tags the run has: %v", err)
	}
	err := s.AddTags(ctx, "Train", "1", []string{"z", "user:ann"})
	checkErr(t, "AddTags of a tag with a system prefix", err, nil, names.UserTag("user:ann").Error())
	sys, user := tagsOf()
	checkStrings(t, "SystemTags after AddTags", sys, []string{"user:ann"})
	checkStrings(t, "Tags after AddTags", user, []string{"start", "x", "y"})
	checkStrings(t, "runs tagged x", listed("x"), []string{"Train/1"})

	if err := s.RemoveTags(ctx, "Train", "1", []string{"x", "never-added"}); err != nil {
		t.Fatalf("RemoveTags of a tag and of a tag the run does not have: %v", err)
	}
	_, user = tagsOf()
	checkStrings(t, "Tags after RemoveTags", user, []string{"start", "y"})
	checkStrings(t, "runs tagged x after RemoveTags", listed("x"), nil)

	err = s.RemoveTags(ctx, "Train", "1", []string{"y", "user:ann"})
	checkErr(t, "RemoveTags of a system tag", err, nil, "user:ann", "system tags cannot be removed")
	if errors.Is(err, metadata.ErrNotFound) {
		t.Errorf("RemoveTags of a system tag: error %q is ErrNotFound", err)
	}
	sys, user = tagsOf()
	checkStrings(t, "SystemTags after the refused RemoveTags", sys, []string{"user:ann"})
	checkStrings(t, "Tags after the refused RemoveTags", user, []string{"start", "y"})
	checkStrings(t, "runs tagged user:ann", listed("user:ann"), []string{"Train/2", "Train/1"})

	// The other run is untouched.
	other := mustGetRun(t, s, "Train", "2")
	checkStrings(t, "Tags of the other run", other.Tags, nil)

	err = s.AddTags(ctx, "Train", "9", []string{"x"})
	checkErr(t, "AddTags on a missing run", err, metadata.ErrNotFound, "Train", "9")
	err = s.RemoveTags(ctx, "Train", "9", []string{"x"})
	checkErr(t, "RemoveTags on a missing run", err, metadata.ErrNotFound, "Train", "9")
}

// invalid fails unless err is a refusal of bad input (a method Invalid
// that reports true) that holds want.
func invalid(t *testing.T, what string, err error, want string) {
	t.Helper()
	var inv interface{ Invalid() bool }
	switch {
	case err == nil:
		t.Errorf("%s: no error, want one saying %q", what, want)
	case !errors.As(err, &inv) || !inv.Invalid():
		t.Errorf("%s: error %q is not marked as bad input (Invalid)", what, err)
	case !strings.Contains(err.Error(), want):
		t.Errorf("%s: error %q does not say %q", what, err, want)
	case errors.Is(err, metadata.ErrNotFound) || errors.Is(err, metadata.ErrExists):
		t.Errorf("%s: error %q is ErrNotFound or ErrExists", what, err)
	}
}

// testNames checks that every store holds names to the rules of package
// names, with its messages: a name one store accepts, all do, and the
// command line can address.
func testNames(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	mustCreate(t, s, newRun("Train", "1", "ann", t0))
	a := func(step, task string) metadata.Attempt {
		return metadata.Attempt{Flow: "Train", Run: "1", Step: step, Task: task, Status: metadata.Running, Started: t0}
	}
	long := strings.Repeat("x", 5000)
	for _, c := range []struct {
		what string
		err  error
		want error // the rule's own error, whose message the store's holds
	}{
		{"flow name of a space", s.CreateRun(ctx, newRun(" ", "2", "ann", t0)), names.Flow(" ")},
		{"flow name with SQL", s.CreateRun(ctx, newRun("; DROP TABLE runs;--", "2", "ann", t0)), names.Flow("; DROP TABLE runs;--")},
		{"flow name with a bidi override", s.CreateRun(ctx, newRun("Train\u202e", "2", "ann", t0)), names.Flow("Train\u202e")},
		{"run id of 20 digits", s.CreateRun(ctx, newRun("Train", "1"+strings.Repeat("0", 19), "ann", t0)), names.RunID("1" + strings.Repeat("0", 19))},
		{"run id of 256 digits", s.CreateRun(ctx, newRun("Train", strings.Repeat("9", 256), "ann", t0)), names.RunID(strings.Repeat("9", 256))},
		{"run id with a leading zero", s.CreateRun(ctx, newRun("Train", "02", "ann", t0)), names.RunID("02")},
		{"user name with a space", s.CreateRun(ctx, &metadata.Run{Flow: "Train", ID: "2", User: "ann lee"}), names.User("ann lee")},
		{"user tag with a system prefix", s.CreateRun(ctx, newRun("Train", "2", "ann", t0, "ok", "user:bob")), names.UserTag("user:bob")},
		{"system tag without a system prefix", s.CreateRun(ctx, &metadata.Run{Flow: "Train", ID: "2", SystemTags: []string{"golden"}}), names.SystemTag("golden")},
		{"tag user:bob", s.AddTags(ctx, "Train", "1", []string{"user:bob"}), names.UserTag("user:bob")},
		{"tag runtime:local", s.AddTags(ctx, "Train", "1", []string{"runtime:local"}), names.UserTag("runtime:local")},
		{"tag production:x", s.AddTags(ctx, "Train", "1", []string{"ok", "production:x"}), names.UserTag("production:x")},
		{"tag of 5,000 characters", s.AddTags(ctx, "Train", "1", []string{long}), names.UserTag(long)},
		{"tag with a bidi override", s.AddTags(ctx, "Train", "1", []string{"ok\u202egnp"}), names.UserTag("ok\u202egnp")},
		{"tag with a tab", s.AddTags(ctx, "Train", "1", []string{"a\tb"}), names.UserTag("a\tb")},
		{"tag with a trailing space", s.AddTags(ctx, "Train", "1", []string{"x "}), names.UserTag("x ")},
		{"empty tag", s.AddTags(ctx, "Train", "1", []string{""}), names.UserTag("")},
		{"step name in CamelCase", s.StartAttempt(ctx, a("TrainModel", "0")), names.Step("TrainModel")},
		{"task id with a leading zero", s.StartAttempt(ctx, a("fit", "01")), names.TaskID("01")},
		{"task id with an empty part", s.FinishAttempt(ctx, metadata.Attempt{Flow: "Train", Run: "1", Step: "fit", Task: "2..5", Status: metadata.Failed}, nil), names.TaskID("2..5")},
		{"clone with a bad task id", s.CloneTask(ctx, &metadata.Task{Flow: "Train", Run: "1", Step: "fit", ID: "x", ClonedFrom: "Train/0/fit/0"}), names.TaskID("x")},
		{"filter on a bad flow name", listErr(s.ListRuns(ctx, metadata.RunFilter{Flow: " "})), names.Flow(" ")},
		{"filter on a bad tag", listErr(s.ListRuns(ctx, metadata.RunFilter{Tags: []string{"a\x00"}})), names.Tag("a\x00")},
		{"get with a bad run id", getErr(s.GetRun(ctx, "Train", "abc")), names.RunID("abc")},
	} {
		if c.want == nil {
			t.Fatalf("%s: the rule accepts it", c.what)
		}
		invalid(t, c.what, c.err, c.want.Error())
	}
	// None of that was recorded.
	runs, err := s.ListRuns(ctx, metadata.RunFilter{})
	if err != nil || len(runs) != 1 {
		t.Errorf("ListRuns after refused writes: %d runs, %v; want 1", len(runs), err)
	}
	r := mustGetRun(t, s, "Train", "1")
	checkStrings(t, "Tags after refused AddTags", r.Tags, nil)
	tasks, err := s.ListTasks(ctx, "Train", "1")
	if err != nil || len(tasks) != 0 {
		t.Errorf("ListTasks after refused writes: %d tasks, %v; want none", len(tasks), err)
	}
	// The longest names the rules allow are recorded and read back.
	flow, id, step, task := "F"+strings.Repeat("l", names.MaxFlow-1), strings.Repeat("9", names.MaxRunID), "s"+strings.Repeat("_", names.MaxStep-1), "1"+strings.Repeat(".1", (names.MaxTaskID-1)/2)
	tag := strings.Repeat("t", names.MaxTag)
	user := strings.Repeat("u", names.MaxUser)
	mustCreate(t, s, &metadata.Run{Flow: flow, ID: id, User: user, SystemTags: []string{"user:" + user, "runtime:scheduler"}, Tags: []string{tag}, Started: t0})
	checkRun(t, mustGetRun(t, s, flow, id), &metadata.Run{Flow: flow, ID: id, Status: metadata.Running, User: user,
		SystemTags: []string{"runtime:scheduler", "user:" + user}, Tags: []string{tag}, Started: t0})
	at := metadata.Attempt{Flow: flow, Run: id, Step: step, Task: task, Status: metadata.Running, Started: t0}
	if err := s.StartAttempt(ctx, at); err != nil {
		t.Fatalf("StartAttempt with the longest names: %v", err)
	}
	mustGetTask(t, s, flow, id, step, task)
}

func listErr(_ []*metadata.Run, err error) error { return err }
func getErr(_ *metadata.Run, err error) error    { return err }

func testAttemptRetry(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	mustCreate(t, s, newRun("Train", "1", "ann", t0))
	a0 := metadata.Attempt{Flow: "Train", Run: "1", Step: "fit", Task: "3", N: 0, Status: metadata.Running, Started: at(time.Second)}
	if err := s.StartAttempt(ctx, a0); err != nil {
		t.Fatalf("StartAttempt 0: %v", err)
	}
	k := mustGetTask(t, s, "Train", "1", "fit", "3")
	if k.Status != metadata.Running {
		t.Errorf("task after StartAttempt: Status = %q, want running", k.Status)
	}
	checkTime(t, "task Started", k.Started, a0.Started)
	checkAttempts(t, "Train/1/fit/3", k.Attempts, []metadata.Attempt{a0})

	a0.Status, a0.Ended, a0.Error = metadata.Failed, at(2*time.Second), "fit: out of memory"
	partial := []metadata.Artifact{{Name: "partial", Type: "int", Key: "k0", Size: 1}}
	if err := s.FinishAttempt(ctx, a0, partial); err != nil {
		t.Fatalf("FinishAttempt 0: %v", err)
	}
	k = mustGetTask(t, s, "Train", "1", "fit", "3")
	if k.Status != metadata.Failed {
		t.Errorf("task after a failed attempt: Status = %q, want failed", k.Status)
	}
	checkTime(t, "task Ended after a failed attempt", k.Ended, a0.Ended)
	checkArtifacts(t, "Train/1/fit/3 after a failed attempt", k.Artifacts, nil)

	a1 := metadata.Attempt{Flow: "Train", Run: "1", Step: "fit", Task: "3", N: 1, Status: metadata.Running, Started: at(3 * time.Second)}
	if err := s.StartAttempt(ctx, a1); err != nil {
		t.Fatalf("StartAttempt 1: %v", err)
	}
	k = mustGetTask(t, s, "Train", "1", "fit", "3")
	if k.Status != metadata.Running || !k.Ended.IsZero() {
		t.Errorf("task after StartAttempt 1: Status = %q, Ended = %v; want running, no end", k.Status, k.Ended)
	}
	if err := s.StartAttempt(ctx, a1); err != nil {
		t.Errorf("StartAttempt of the same attempt again (a retry): %v", err)
	}
	other := a1
	other.Started = a1.Started.Add(time.Millisecond)
	err := s.StartAttempt(ctx, other)
	checkErr(t, "StartAttempt of an attempt already started", err, metadata.ErrExists, "Train/1/fit/3")

	a1.Status, a1.Ended = metadata.Succeeded, at(4*time.Second)
	arts := []metadata.Artifact{
		{Name: "model", Type: "*main.Model", Key: "sha256:" + strings.Repeat("1", 64), Size: 123456789012},
		{Name: "accuracy", Type: "float64", Key: "sha256:" + strings.Repeat("2", 64), Size: 8},
		{Name: "Z", Type: "string", Key: "sha256:" + strings.Repeat("3", 64), Size: 0},
	}
	if err := s.FinishAttempt(ctx, a1, arts); err != nil {
		t.Fatalf("FinishAttempt 1: %v", err)
	}
	want := &metadata.Task{Flow: "Train", Run: "1", Step: "fit", ID: "3", Status: metadata.Succeeded,
		Started: a0.Started, Ended: a1.Ended, Attempts: []metadata.Attempt{a0, a1}, Artifacts: arts}
	checkTask(t, mustGetTask(t, s, "Train", "1", "fit", "3"), want)
	tasks, err := s.ListTasks(ctx, "Train", "1")
	if err != nil {
		t.Fatalf("ListTasks: %v", err)
	}
	if len(tasks) != 1 {
		t.Fatalf("ListTasks: %d tasks, want 1", len(tasks))
	}
	checkTask(t, tasks[0], want)
}

func checkTask(t *testing.T, got, want *metadata.Task) {
	t.Helper()
	name := want.Flow + "/" + want.Run + "/" + want.Step + "/" + want.ID
	if got.Flow != want.Flow || got.Run != want.Run || got.Step != want.Step || got.ID != want.ID {
		t.Errorf("task %s: got %s/%s/%s/%s", name, got.Flow, got.Run, got.Step, got.ID)
	}
	if got.Status != want.Status {
		t.Errorf("task %s: Status = %q, want %q", name, got.Status, want.Status)
	}
	if got.ClonedFrom != want.ClonedFrom {
		t.Errorf("task %s: ClonedFrom = %q, want %q", name, got.ClonedFrom, want.ClonedFrom)
	}
	checkTime(t, "task "+name+": Started", got.Started, want.Started)
	checkTime(t, "task "+name+": Ended", got.Ended, want.Ended)
	checkAttempts(t, name, got.Attempts, want.Attempts)
	checkArtifacts(t, name, got.Artifacts, want.Artifacts)
}

func testAttemptEdgeCases(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	mustCreate(t, s, newRun("Train", "1", "ann", t0))

	// The launcher records an attempt whose process died before recording
	// anything: FinishAttempt without StartAttempt.
	a := metadata.Attempt{Flow: "Train", Run: "1", Step: "start", Task: "1", N: 0, Status: metadata.Running, Started: at(time.Second)}
	if err := s.StartAttempt(ctx, a); err != nil {
		t.Fatal(err)
	}
	a.Status, a.Ended, a.Error = metadata.Failed, at(2*time.Second), "exit status 1"
	if err := s.FinishAttempt(ctx, a, nil); err != nil {
		t.Fatal(err)
	}
	b := metadata.Attempt{Flow: "Train", Run: "1", Step: "start", Task: "1", N: 1, Status: metadata.Failed,
		Started: at(3 * time.Second), Ended: at(4 * time.Second), Error: "killed: timeout"}
	if err := s.FinishAttempt(ctx, b, nil); err != nil {
		t.Fatalf("FinishAttempt of an attempt never started: %v", err)
	}
	checkTask(t, mustGetTask(t, s, "Train", "1", "start", "1"), &metadata.Task{Flow: "Train", Run: "1", Step: "start", ID: "1",
		Status: metadata.Failed, Started: a.Started, Ended: b.Ended, Attempts: []metadata.Attempt{a, b}})

	// Nor did the task exist.
	c := metadata.Attempt{Flow: "Train", Run: "1", Step: "end", Task: "2", N: 0, Status: metadata.Failed,
		Started: at(5 * time.Second), Ended: at(6 * time.Second), Error: "did not start"}
	if err := s.FinishAttempt(ctx, c, nil); err != nil {
		t.Fatalf("FinishAttempt of a task never started: %v", err)
	}
	checkTask(t, mustGetTask(t, s, "Train", "1", "end", "2"), &metadata.Task{Flow: "Train", Run: "1", Step: "end", ID: "2",
		Status: metadata.Failed, Started: c.Started, Ended: c.Ended, Attempts: []metadata.Attempt{c}})

	// Tasks of a run that does not exist.
	missing := metadata.Attempt{Flow: "Train", Run: "9", Step: "start", Task: "1", Status: metadata.Running, Started: t0}
	checkErr(t, "StartAttempt in a missing run", s.StartAttempt(ctx, missing), metadata.ErrNotFound, "Train", "9")
	missing.Status, missing.Ended = metadata.Succeeded, at(time.Second)
	checkErr(t, "FinishAttempt in a missing run", s.FinishAttempt(ctx, missing, nil), metadata.ErrNotFound, "Train", "9")
}

func testCloneTask(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	mustCreate(t, s, newRun("Train", "1", "ann", t0))
	arts := []metadata.Artifact{{Name: "x", Type: "int", Key: "kx", Size: 3}, {Name: "data", Type: "[]float64", Key: "kd", Size: 800}}
	a := metadata.Attempt{Flow: "Train", Run: "1", Step: "start", Task: "1", Status: metadata.Running, Started: at(time.Second)}
	if err := s.StartAttempt(ctx, a); err != nil {
		t.Fatal(err)
	}
	a.Status, a.Ended = metadata.Succeeded, at(2*time.Second)
	if err := s.FinishAttempt(ctx, a, arts); err != nil {
		t.Fatal(err)
	}
	origin := mustGetTask(t, s, "Train", "1", "start", "1")

	resumed := newRun("Train", "2", "ann", at(time.Hour))
	resumed.Origin = "1"
	mustCreate(t, s, resumed)
	clone := &metadata.Task{Flow: "Train", Run: "2", Step: "start", ID: "1", Started: origin.Started, Ended: origin.Ended,
		ClonedFrom: "Train/1/start/1", Artifacts: origin.Artifacts}
	if err := s.CloneTask(ctx, clone); err != nil {
		t.Fatalf("CloneTask: %v", err)
	}
	want := &metadata.Task{Flow: "Train", Run: "2", Step: "start", ID: "1", Status: metadata.Succeeded,
		Started: origin.Started, Ended: origin.Ended, ClonedFrom: "Train/1/start/1", Artifacts: arts}
	checkTask(t, mustGetTask(t, s, "Train", "2", "start", "1"), want)
	tasks, err := s.ListTasks(ctx, "Train", "2")
	if err != nil {
		t.Fatalf("ListTasks: %v", err)
	}
	if len(tasks) != 1 {
		t.Fatalf("ListTasks of the resumed run: %d tasks, want 1", len(tasks))
	}
	checkTask(t, tasks[0], want)
	// The origin is unchanged.
	checkTask(t, mustGetTask(t, s, "Train", "1", "start", "1"), origin)

	if err := s.CloneTask(ctx, clone); err != nil {
		t.Errorf("CloneTask of the same clone again (a retry): %v", err)
	}
	checkTask(t, mustGetTask(t, s, "Train", "2", "start", "1"), want)
	elsewhere := *clone
	elsewhere.ClonedFrom = "Train/0/start/1"
	checkErr(t, "CloneTask onto an existing task", s.CloneTask(ctx, &elsewhere), metadata.ErrExists, "Train/2/start/1")
	started := metadata.Attempt{Flow: "Train", Run: "2", Step: "end", Task: "0", Status: metadata.Running, Started: at(time.Hour)}
	if err := s.StartAttempt(ctx, started); err != nil {
		t.Fatal(err)
	}
	onto0 := *clone
	onto0.Step, onto0.ID = "end", "0"
	checkErr(t, "CloneTask onto a task with attempts", s.CloneTask(ctx, &onto0), metadata.ErrExists, "Train/2/end/0")
	onto := *clone
	onto.Run = "9"
	checkErr(t, "CloneTask into a missing run", s.CloneTask(ctx, &onto), metadata.ErrNotFound, "Train", "9")
}

func testTaskOrder(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	mustCreate(t, s, newRun("Train", "1", "ann", t0), newRun("Train", "2", "ann", t0))
	// Recorded out of order. Task ids are positions in the foreach nesting:
	// "0" outside a foreach, the element's index inside one, dotted when
	// foreaches nest. Tasks started at once are by step, then by id as
	// dotted numbers (2 before 10, 2.5 before 2.10, 2 before 2.0).
	tasks := []struct {
		step, id string
		started  time.Duration
	}{
		{"start", "0", 0},
		{"end", "0", 9 * time.Second},
		{"join", "0", 8 * time.Second},
		{"inner", "2.10", 4 * time.Second},
		{"inner", "10.0", 4 * time.Second},
		{"inner", "2.5", 4 * time.Second},
		{"inner", "2.0", 4 * time.Second},
		{"inner", "3.1", 3 * time.Second},
		{"fan", "10", 2 * time.Second},
		{"fan", "9", 2 * time.Second},
		{"fan", "2", 2 * time.Second},
		{"branch_b", "0", time.Second},
		{"branch_a", "0", time.Second},
		{"inner", "2", 4 * time.Second},
	}
	for _, k := range tasks {
		a := metadata.Attempt{Flow: "Train", Run: "1", Step: k.step, Task: k.id, Status: metadata.Running, Started: at(k.started)}
		if err := s.StartAttempt(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	// A clone keeps its origin's start time, earlier than the others'.
	clone := &metadata.Task{Flow: "Train", Run: "1", Step: "prepare", ID: "0", Started: at(-time.Hour), Ended: at(-time.Minute), ClonedFrom: "Train/0/prepare/0"}
	if err := s.CloneTask(ctx, clone); err != nil {
		t.Fatal(err)
	}
	listed, err := s.ListTasks(ctx, "Train", "1")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, k := range listed {
		got = append(got, k.Step+"/"+k.ID)
		if len(k.Attempts) != 1 && k.ClonedFrom == "" {
			t.Errorf("task %s/%s: %d attempts, want 1", k.Step, k.ID, len(k.Attempts))
		}
	}
	checkStrings(t, "ListTasks", got, []string{
		"prepare/0", "start/0", "branch_a/0", "branch_b/0", "fan/2", "fan/9", "fan/10", "inner/3.1",
		"inner/2", "inner/2.0", "inner/2.5", "inner/2.10", "inner/10.0", "join/0", "end/0"})
	if !slices.IsSortedFunc(listed, metadata.CompareTasks) {
		t.Errorf("ListTasks is not in the order of metadata.CompareTasks: %q", got)
	}
	if k := mustGetTask(t, s, "Train", "1", "inner", "2.10"); k.ID != "2.10" || k.Step != "inner" {
		t.Errorf("GetTask(inner/2.10) = %s/%s", k.Step, k.ID)
	}

	listed, err = s.ListTasks(ctx, "Train", "2")
	if err != nil || len(listed) != 0 {
		t.Errorf("ListTasks of a run without tasks = %d tasks, %v; want none, no error", len(listed), err)
	}
	_, err = s.ListTasks(ctx, "Train", "3")
	checkErr(t, "ListTasks of a missing run", err, metadata.ErrNotFound, "Train", "3")
	for _, c := range []struct{ run, step, id string }{{"1", "inner", "2.1"}, {"1", "inner", "11"}, {"1", "other", "0"}, {"3", "inner", "2.10"}} {
		_, err := s.GetTask(ctx, "Train", c.run, c.step, c.id)
		checkErr(t, "GetTask of a missing task", err, metadata.ErrNotFound, "Train/"+c.run)
	}
}

// testRetries does every write twice, as a client does when the answer to
// the first was lost: the second is not an error, and what is recorded is
// what one write would have recorded.
func testRetries(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	twice := func(what string, write func() error) {
		t.Helper()
		for i := range 2 {
			if err := write(); err != nil {
				t.Fatalf("%s (time %d): %v", what, i+1, err)
			}
		}
	}
	r := newRun("Train", "1", "ann", t0, "exp")
	r.Params, r.Code, r.Origin = map[string]string{"alpha": "0.5"}, metadata.Code{GitCommit: "abc"}, ""
	twice("CreateRun", func() error { return s.CreateRun(ctx, r) })
	twice("AddTags", func() error { return s.AddTags(ctx, "Train", "1", []string{"golden", "x"}) })
	twice("RemoveTags", func() error { return s.RemoveTags(ctx, "Train", "1", []string{"x"}) })
	twice("Heartbeat", func() error { return s.Heartbeat(ctx, "Train", "1", at(time.Minute)) })

	a := metadata.Attempt{Flow: "Train", Run: "1", Step: "start", Task: "0", Status: metadata.Running, Started: at(time.Second)}
	twice("StartAttempt", func() error { return s.StartAttempt(ctx, a) })
	twice("TaskHeartbeat", func() error { return s.TaskHeartbeat(ctx, "Train", "1", "start", "0", 0, at(2*time.Minute)) })
	done := a
	done.Status, done.Ended = metadata.Succeeded, at(3*time.Minute)
	arts := []metadata.Artifact{{Name: "x", Type: "int", Key: "kx", Size: 8}}
	twice("FinishAttempt", func() error { return s.FinishAttempt(ctx, done, arts) })
	clone := &metadata.Task{Flow: "Train", Run: "1", Step: "prepare", ID: "0", Started: at(-time.Hour), Ended: at(-time.Minute),
		ClonedFrom: "Train/0/prepare/0", Artifacts: arts}
	twice("CloneTask", func() error { return s.CloneTask(ctx, clone) })
	twice("FinishRun", func() error { return s.FinishRun(ctx, "Train", "1", metadata.Succeeded, at(4*time.Minute)) })

	want := *r
	want.Tags = []string{"exp", "golden"}
	want.Status, want.Ended, want.Heartbeat = metadata.Succeeded, at(4*time.Minute), at(2*time.Minute)
	checkRun(t, mustGetRun(t, s, "Train", "1"), &want)
	done.Heartbeat = at(2 * time.Minute)
	tasks, err := s.ListTasks(ctx, "Train", "1")
	if err != nil || len(tasks) != 2 {
		t.Fatalf("ListTasks: %d tasks, %v; want 2", len(tasks), err)
	}
	checkTask(t, tasks[0], &metadata.Task{Flow: "Train", Run: "1", Step: "prepare", ID: "0", Status: metadata.Succeeded,
		Started: clone.Started, Ended: clone.Ended, ClonedFrom: clone.ClonedFrom, Artifacts: arts})
	checkTask(t, tasks[1], &metadata.Task{Flow: "Train", Run: "1", Step: "start", ID: "0", Status: metadata.Succeeded,
		Started: a.Started, Ended: done.Ended, Attempts: []metadata.Attempt{done}, Artifacts: arts})
}

// testPaging pages through runs, tasks and flows, a few at a time, and
// checks that the pages make up the whole listing, in order, whatever the
// ties in start times.
func testPaging(t *testing.T, s metadata.Store) {
	ctx := t.Context()
	// Runs of two flows; several start at once, some with the same id.
	for i := range 23 {
		started := at(time.Duration(i/3) * time.Minute) // three at a time
		mustCreate(t, s, newRun("Alpha", fmt.Sprint(100+i), "ann", started, fmt.Sprint("even", i%2)))
		if i%4 == 0 {
			mustCreate(t, s, newRun("Beta", fmt.Sprint(100+i), "bob", started, fmt.Sprint("even", i%2))) // the same id and start as Alpha's
		}
	}
	for _, f := range []metadata.RunFilter{{}, {Flow: "Alpha"}, {Tags: []string{"even0"}}, {Flow: "Beta", Tags: []string{"user:bob"}}} {
		all, err := s.ListRuns(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		for _, size := range []int{1, 2, 5, 100} {
			var paged []*metadata.Run
			page := f
			page.Limit = size
			for n := 0; ; n++ {
				runs, err := s.ListRuns(ctx, page)
				if err != nil {
					t.Fatal(err)
				}
				if len(runs) > size {
					t.Fatalf("ListRuns(%+v): %d runs, more than the limit", page, len(runs))
				}
				paged = append(paged, runs...)
				if len(runs) < size || n > len(all) {
					break
				}
				page.After = runs[len(runs)-1].Key()
			}
			checkStrings(t, fmt.Sprintf("ListRuns(%+v) in pages of %d", f, size), runIDs(paged), runIDs(all))
		}
	}

	// Tasks: several start at once, in steps and foreaches.
	mustCreate(t, s, newRun("Tasks", "1", "ann", t0))
	var ids []string
	for i := range 12 {
		for j := range 3 {
			ids = append(ids, fmt.Sprintf("%d.%d", i, j))
		}
		ids = append(ids, fmt.Sprint(i))
	}
	for i, id := range ids {
		step := []string{"a", "b"}[i%2]
		a := metadata.Attempt{Flow: "Tasks", Run: "1", Step: step, Task: id, Status: metadata.Running, Started: at(time.Duration(i%5) * time.Second)}
		if err := s.StartAttempt(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	clone := &metadata.Task{Flow: "Tasks", Run: "1", Step: "c", ID: "0", ClonedFrom: "Tasks/0/c/0"} // no start time
	if err := s.CloneTask(ctx, clone); err != nil {
		t.Fatal(err)
	}
	all, err := s.ListTasks(ctx, "Tasks", "1")
	if err != nil || len(all) != len(ids)+1 {
		t.Fatalf("ListTasks: %d tasks, %v; want %d", len(all), err, len(ids)+1)
	}
	if !slices.IsSortedFunc(all, metadata.CompareTasks) || all[0].ClonedFrom == "" {
		t.Errorf("ListTasks: not in the order of metadata.CompareTasks, the clone without a start first")
	}
	taskIDs := func(tasks []*metadata.Task) []string {
		var out []string
		for _, k := range tasks {
			out = append(out, k.Step+"/"+k.ID)
		}
		return out
	}
	for _, size := range []int{1, 3, 7, 1000} {
		var (
			paged []*metadata.Task
			after metadata.TaskKey
		)
		for n := 0; n <= len(all); n++ {
			tasks, err := s.ListTasksAfter(ctx, "Tasks", "1", after, size)
			if err != nil {
				t.Fatal(err)
			}
			if len(tasks) > size {
				t.Fatalf("ListTasksAfter(%d): %d tasks", size, len(tasks))
			}
			paged = append(paged, tasks...)
			if len(tasks) < size {
				break
			}
			after = tasks[len(tasks)-1].Key()
		}
		checkStrings(t, fmt.Sprintf("ListTasks in pages of %d", size), taskIDs(paged), taskIDs(all))
		if len(paged) == len(all) {
			for i := range paged {
				if len(paged[i].Attempts) != len(all[i].Attempts) {
					t.Errorf("task %s: %d attempts in a page, %d in the whole listing", paged[i].ID, len(paged[i].Attempts), len(all[i].Attempts))
				}
			}
		}
	}
	_, err = s.ListTasksAfter(ctx, "Tasks", "2", metadata.TaskKey{}, 10)
	checkErr(t, "ListTasksAfter of a missing run", err, metadata.ErrNotFound, "Tasks/2")

	// Flows.
	flows, err := s.ListFlows(ctx)
	if err != nil {
		t.Fatal(err)
	}
	checkStrings(t, "ListFlows", flows, []string{"Alpha", "Beta", "Tasks"})
	var paged []string
	for after := ""; ; {
		page, err := s.ListFlowsAfter(ctx, after, 2)
		if err != nil {
			t.Fatal(err)
		}
		paged = append(paged, page...)
		if len(page) < 2 {
			break
		}
		after = page[len(page)-1]
	}
	checkStrings(t, "ListFlows in pages of 2", paged, flows)
}

// testConcurrent has 20 writers record 50 tasks each in one run, and
// create one run and tag another all at once.
func testConcurrent(t *testing.T, s metadata.Store) {
	const writers, perWriter = 20, 50
	ctx := t.Context()
	mustCreate(t, s, newRun("Train", "1", "ann", t0))
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		created int
	)
	errs := make(chan error, writers*perWriter)
	for w := range writers {
		wg.Go(func() {
			err := s.CreateRun(ctx, newRun("Train", "2", fmt.Sprint("user", w), t0))
			switch {
			case err == nil:
				mu.Lock()
				created++
				mu.Unlock()
			case !errors.Is(err, metadata.ErrExists):
				errs <- fmt.Errorf("CreateRun by writer %d: %w", w, err)
			}
			if err := s.AddTags(ctx, "Train", "1", []string{fmt.Sprint("w", w)}); err != nil {
				errs <- err
			}
			for i := range perWriter {
				id := fmt.Sprint(w*perWriter + i)
				a := metadata.Attempt{Flow: "Train", Run: "1", Step: "work", Task: id, Status: metadata.Running, Started: at(time.Duration(i) * time.Second)}
				if err := s.StartAttempt(ctx, a); err != nil {
					errs <- err
					continue
				}
				a.Status, a.Ended = metadata.Succeeded, a.Started.Add(time.Millisecond)
				arts := []metadata.Artifact{{Name: "id", Type: "string", Key: "k" + id, Size: int64(len(id))}, {Name: "w", Type: "int", Key: fmt.Sprint("w", w), Size: 8}}
				if err := s.FinishAttempt(ctx, a, arts); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	n := 0
	for err := range errs {
		if n++; n <= 5 {
			t.Error(err)
		}
	}
	if n > 5 {
		t.Errorf("and %d more errors", n-5)
	}
	if created != 1 {
		t.Errorf("%d of %d concurrent CreateRun of one id succeeded, want 1", created, writers)
	}
	if r := mustGetRun(t, s, "Train", "1"); len(r.Tags) != writers {
		t.Errorf("run Train/1 has %d tags after %d concurrent AddTags: %q", len(r.Tags), writers, r.Tags)
	}
	tasks, err := s.ListTasks(ctx, "Train", "1")
	if err != nil {
		t.Fatal(err)
	}
	if len(tasks) != writers*perWriter {
		t.Fatalf("ListTasks: %d tasks, want %d", len(tasks), writers*perWriter)
	}
	if !slices.IsSortedFunc(tasks, metadata.CompareTasks) {
		t.Errorf("ListTasks: tasks not in the order of metadata.CompareTasks")
	}
	seen := map[string]bool{}
	for _, k := range tasks {
		n, err := strconv.Atoi(k.ID)
		if err != nil || n < 0 || n >= writers*perWriter || seen[k.ID] {
			t.Fatalf("ListTasks: unexpected or repeated task id %q", k.ID)
		}
		seen[k.ID] = true
		if k.Status != metadata.Succeeded || len(k.Attempts) != 1 || len(k.Artifacts) != 2 ||
			k.Artifacts[0].Key != "k"+k.ID || k.Artifacts[1].Key != fmt.Sprint("w", n/perWriter) {
			t.Errorf("task %s: status %s, %d attempts, artifacts %+v", k.ID, k.Status, len(k.Attempts), k.Artifacts)
		}
	}
}

// BenchmarkListRuns benchmarks listing the runs of a store that holds
// 10,000 runs of flow "Big" and 100 of flow "Small", as the stores' tests
// record them: even ones by ann, odd ones by bob, every tenth tagged "exp".
func BenchmarkListRuns(b *testing.B, s metadata.Store) {
	for _, c := range []struct {
		name string
		f    metadata.RunFilter
		n    int
	}{
		{"flow", metadata.RunFilter{Flow: "Big"}, 10000},
		{"flow+tag", metadata.RunFilter{Flow: "Big", Tags: []string{"user:ann"}}, 5000},
		{"rare-tag", metadata.RunFilter{Tags: []string{"exp"}}, 1010},
		{"latest-in-namespace", metadata.RunFilter{Flow: "Big", Tags: []string{"user:bob"}, Limit: 1}, 1},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				runs, err := s.ListRuns(b.Context(), c.f)
				if err != nil || len(runs) != c.n {
					b.Fatalf("%d runs, %v; want %d", len(runs), err, c.n)
				}
			}
		})
	}
}

// ConcurrentWriters has n writers record one task each, with two
// artifacts, in one new run of flow "Wide" at once, as the tasks of a wide
// foreach do, and checks that every task was recorded whole.
func ConcurrentWriters(t *testing.T, s metadata.Store, n int) {
	ctx := t.Context()
	if err := s.CreateRun(ctx, &metadata.Run{Flow: "Wide", ID: "1"}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			id := fmt.Sprint(i) // the element's index in a foreach
			a := metadata.Attempt{Flow: "Wide", Run: "1", Step: "work", Task: id, Started: time.Now()}
			if err := s.StartAttempt(ctx, a); err != nil {
				t.Errorf("StartAttempt %s: %v", id, err)
				return
			}
			a.Status, a.Ended = metadata.Succeeded, time.Now()
			arts := []metadata.Artifact{{Name: "x", Type: "int", Key: "x" + id, Size: 8}, {Name: "y", Type: "string", Key: "y" + id, Size: int64(len(id))}}
			if err := s.FinishAttempt(ctx, a, arts); err != nil {
				t.Errorf("FinishAttempt %s: %v", id, err)
			}
		})
	}
	wg.Wait()
	t.Logf("%d concurrent writers, StartAttempt+FinishAttempt each: %v", n, time.Since(start))
	tasks, err := s.ListTasks(ctx, "Wide", "1")
	if err != nil {
		t.Fatal(err)
	}
	if len(tasks) != n {
		t.Fatalf("ListTasks: %d tasks, want %d", len(tasks), n)
	}
	if !slices.IsSortedFunc(tasks, metadata.CompareTasks) {
		t.Errorf("ListTasks: tasks not in the order of metadata.CompareTasks")
	}
	seen := map[string]bool{}
	for _, k := range tasks {
		id := k.ID
		if x, err := strconv.Atoi(id); err != nil || x < 0 || x >= n || seen[id] {
			t.Errorf("ListTasks: unexpected or repeated task id %q", id)
		}
		seen[id] = true
		if k.Status != metadata.Succeeded || len(k.Attempts) != 1 || len(k.Artifacts) != 2 ||
			k.Artifacts[0].Key != "x"+id || k.Artifacts[1].Key != "y"+id {
			t.Errorf("task %s: %+v", id, k)
		}
	}
}
