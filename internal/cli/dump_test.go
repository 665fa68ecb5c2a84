package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"stepwise.dev/stepwise/client"
	"stepwise.dev/stepwise/internal/codec"
	"stepwise.dev/stepwise/internal/datastore"
	"stepwise.dev/stepwise/internal/datastore/local"
	"stepwise.dev/stepwise/internal/metadata"
	"stepwise.dev/stepwise/internal/metadata/sqlite"
)

// artifact is a value to record, or (with raw set) bytes stored as they
// are, to stand for a blob that is damaged inside (its content key matches
// what is stored, so only the codec can tell).
type artifact struct {
	name string
	v    any
	raw  []byte
}

// recordTask stores a succeeded task of flow Values with the given
// artifacts in a fresh local datastore and its SQLite metadata store, as a
// task process would, and points the commands at them. It returns the
// task's pathspec.
func recordTask(tb testing.TB, arts ...artifact) string {
	tb.Helper()
	ctx := context.Background()
	dir := tb.TempDir()
	tb.Setenv("STEPWISE_DATASTORE", dir)
	tb.Setenv("STEPWISE_CONFIG", filepath.Join(dir, "config.json"))
	tb.Setenv("STEPWISE_METADATA", "")
	tb.Setenv("STEPWISE_USER", "ann")
	backend, err := local.New(dir)
	if err != nil {
		tb.Fatal(err)
	}
	store := datastore.New(backend)
	meta, err := sqlite.Open(ctx, filepath.Join(dir, "metadata.db"))
	if err != nil {
		tb.Fatal(err)
	}
	defer meta.Close()
	now := time.Now()
	run := &metadata.Run{Flow: "Values", ID: strconv.FormatInt(now.UnixMicro(), 10), User: "ann", SystemTags: []string{"user:ann"}, Started: now}
	if err := meta.CreateRun(ctx, run); err != nil {
		tb.Fatal(err)
	}
	a := metadata.Attempt{Flow: "Values", Run: run.ID, Step: "start", Task: "1", Status: metadata.Running, Started: now}
	if err := meta.StartAttempt(ctx, a); err != nil {
		tb.Fatal(err)
	}
	var refs []metadata.Artifact
	for _, art := range arts {
		parts, typ, size := [][]byte{art.raw}, "[]byte", int64(len(art.raw))
		if art.raw == nil {
			enc, err := codec.Encode(art.v)
			if err != nil {
				tb.Fatalf("Encode %s: %v", art.name, err)
			}
			parts, typ, size = enc.Parts, enc.Type, enc.Size
		}
		key, _, err := store.PutBlob(ctx, parts)
		if err != nil {
			tb.Fatal(err)
		}
		refs = append(refs, metadata.Artifact{Name: art.name, Type: typ, Key: key, Size: size})
	}
	a.Status, a.Ended = metadata.Succeeded, time.Now()
	if err := meta.FinishAttempt(ctx, a, refs); err != nil {
		tb.Fatal(err)
	}
	if err := meta.FinishRun(ctx, "Values", run.ID, metadata.Succeeded, time.Now()); err != nil {
		tb.Fatal(err)
	}
	return "Values/" + run.ID + "/start/1"
}

func bigMap(n int) map[string]int {
	m := make(map[string]int, n)
	for i := range n {
		m[fmt.Sprintf("key-%07d", i)] = i
	}
	return m
}

// tagged has fields that encoding/json would drop or rename.
type tagged struct {
	Secret string `json:"-"`
	Count  int    `json:"n,omitempty"`
}

func everydayValues(tb testing.TB) []artifact {
	kolkata, err := time.LoadLocation("Asia/Kolkata")
	if err != nil {
		tb.Fatal(err)
	}
	return []artifact{
		{name: "Loss", v: math.NaN()},
		{name: "Best", v: math.Inf(-1)},
		{name: "Curve", v: []float64{0.5, math.Inf(1), math.NaN()}},
		{name: "Scores", v: map[string]any{"auc": math.Inf(1), "n": 3}},
		{name: "Started", v: time.Date(2024, 3, 5, 18, 4, 56, 0, kolkata)},
		{name: "Opts", v: tagged{Secret: "kept"}},
		{name: "Name", v: "résumé"},
	}
}

// TestDumpJSONEverydayValues: NaN, infinities, zoned times and tagged
// fields print; one artifact does not fail the others.
func TestDumpJSONEverydayValues(t *testing.T) {
	task := recordTask(t, everydayValues(t)...)
	out, errOut, code := stepwise(t, "dump", task, "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, errOut, out)
	}
	var got struct {
		Task      string `json:"task"`
		Status    string `json:"status"`
		Artifacts []struct {
			Name  string          `json:"name"`
			Type  string          `json:"type"`
			Key   string          `json:"key"`
			Size  int64           `json:"size"`
			Value json.RawMessage `json:"value"`
		} `json:"artifacts"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if got.Task != task || got.Status != "succeeded" || len(got.Artifacts) != 7 {
		t.Fatalf("got %+v", got)
	}
	want := map[string]string{
		"Loss":    `"NaN"`,
		"Best":    `"-Inf"`,
		"Curve":   `[0.5,"+Inf","NaN"]`,
		"Scores":  `{"n":3,"auc":"+Inf"}`,
		"Started": `"2024-03-05T18:04:56+05:30[Asia/Kolkata]"`,
		"Opts":    `{"Count":0,"Secret":"kept"}`,
		"Name":    `"résumé"`,
	}
	for _, a := range got.Artifacts {
		var compact bytes.Buffer
		if err := json.Compact(&compact, a.Value); err != nil {
			t.Fatal(err)
		}
		if compact.String() != want[a.Name] {
			t.Errorf("%s = %s, want %s", a.Name, compact.String(), want[a.Name])
		}
		if len(a.Key) != 64 || a.Size <= 0 || a.Type == "" {
			t.Errorf("%s: key %q, size %d, type %q", a.Name, a.Key, a.Size, a.Type)
		}
	}
	// The layout is that of the other --json output: two-space indents.
	if !strings.Contains(out, "\n  \"artifacts\": [\n    {\n      \"name\": \"Best\",") || !strings.Contains(out, "\"value\": [\n        0.5,\n        \"+Inf\",") {
		t.Errorf("layout:\n%s", out)
	}
}

func TestDumpTableEverydayValues(t *testing.T) {
	task := recordTask(t, everydayValues(t)...)
	out, errOut, code := stepwise(t, "dump", task)
	if code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, errOut, out)
	}
	for _, want := range []string{
		"Loss      float64", "NaN\n",
		"-Inf\n",
		"[0.5,+Inf,NaN]\n",
		`{"n":3,"auc":+Inf}`,
		`"2024-03-05T18:04:56+05:30[Asia/Kolkata]"`,
		`{"Count":0,"Secret":"kept"}`,
		`"résumé"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

// TestDumpShowsWhatItReads: the table reads only the beginning of a value,
// so it shows a map of 100,000 entries whose stored bytes stop after the
// first 4 KiB; --json, which prints everything, says that artifact is
// damaged, prints the others, and fails.
func TestDumpShowsWhatItReads(t *testing.T) {
	enc, err := codec.Encode(bigMap(100_000))
	if err != nil {
		t.Fatal(err)
	}
	cut := bytes.Join(enc.Parts, nil)[:4096]
	task := recordTask(t,
		artifact{name: "Big", v: bigMap(5000)},
		artifact{name: "Cut", raw: cut},
		artifact{name: "Garbage", raw: []byte("not an artifact at all")},
		artifact{name: "Long", v: strings.Repeat("ab", 1000)},
		artifact{name: "Vec", v: make([]float64, 300)},
		artifact{name: "X", v: 3},
	)
	out, errOut, code := stepwise(t, "dump", task)
	if code != 1 {
		t.Errorf("exit %d, want 1 (Garbage cannot be read)", code)
	}
	cells := tableCells(t, out)
	for name, want := range map[string]string{
		"Big":     `{"key-0000000":0,"key-0000001":1,"key-0000002":2,"key-0000003"... (5000 entries)`,
		"Cut":     `{"key-0000000":0,"key-0000001":1,"key-0000002":2,"key-000000... (100000 entries)`,
		"Garbage": "<cannot read it: see below>",
		"Long":    `"abababababababababababababababababababababababababababababababa... (2000 bytes)`,
		"Vec":     `[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0... (300 elements)`,
		"X":       "3",
	} {
		if cells[name] != want {
			t.Errorf("%s: cell %q, want %q", name, cells[name], want)
		}
		if len(cells[name]) > 80 {
			t.Errorf("%s: cell of %d bytes is wider than 80", name, len(cells[name]))
		}
	}
	for _, want := range []string{"cannot read 1 of the 6 artifacts of " + task, "artifact Garbage of " + task, "was not written by this codec"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}

	out, errOut, code = stepwise(t, "dump", task, "--json")
	if code != 1 {
		t.Errorf("--json: exit %d, want 1", code)
	}
	var got struct {
		Artifacts []struct {
			Name  string
			Value any
			Error string
		}
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("--json with damaged artifacts is not JSON: %v\n%s", err, out)
	}
	for _, a := range got.Artifacts {
		switch a.Name {
		case "Cut", "Garbage":
			if a.Value != nil || !strings.Contains(a.Error, "artifact "+a.Name+" of "+task) || !strings.Contains(a.Error, "corrupt") {
				t.Errorf("%s: value %v, error %q; want null and an error naming it", a.Name, a.Value, a.Error)
			}
		case "Big":
			if m, ok := a.Value.(map[string]any); !ok || len(m) != 5000 || m["key-0004999"] != 4999.0 {
				t.Errorf("Big: %d entries", len(m))
			}
		default:
			if a.Error != "" || a.Value == nil {
				t.Errorf("%s: value %v, error %q", a.Name, a.Value, a.Error)
			}
		}
	}
	if !strings.Contains(errOut, "cannot read 2 of the 6 artifacts") {
		t.Errorf("--json stderr: %s", errOut)
	}

	// --width 0 never cuts.
	out, _, _ = stepwise(t, "dump", task, "--width", "0")
	if !strings.Contains(out, strings.Repeat("ab", 1000)) || !strings.Contains(out, `"key-0004999":4999}`) {
		t.Errorf("--width 0 cut a value")
	}
}

// tableCells returns the VALUE cell of each artifact row of dump's table.
func tableCells(t *testing.T, out string) map[string]string {
	t.Helper()
	lines := strings.Split(out, "\n")
	col := -1
	cells := map[string]string{}
	for _, line := range lines {
		if strings.HasPrefix(line, "ARTIFACT") {
			col = strings.Index(line, "VALUE")
			continue
		}
		if col >= 0 && len(line) > col {
			cells[strings.Fields(line)[0]] = line[col:]
		}
	}
	if col < 0 {
		t.Fatalf("no table:\n%s", out)
	}
	return cells
}

func TestDumpJSONNoArtifacts(t *testing.T) {
	task := recordTask(t)
	out, errOut, code := stepwise(t, "dump", task, "--json")
	var got map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &got) != nil || fmt.Sprint(got["artifacts"]) != "[]" {
		t.Fatalf("exit %d, %s:\n%s", code, errOut, out)
	}
}

// BenchmarkDump prints a task holding a map of a million entries: the table
// (an 80-byte cell), --json, and as the floor, reading the blob (datastore
// read and hash check). Before, the table decoded the whole map and encoded
// it as JSON to print its first 80 bytes.
func BenchmarkDump(b *testing.B) {
	task := recordTask(b, artifact{name: "M", v: bigMap(1_000_000)})
	run := func(b *testing.B, args ...string) {
		for b.Loop() {
			code := Run(b.Context(), Options{Prog: "stepwise", Commands: Inspect}, args, io.Discard, os.Stderr)
			if code != 0 {
				b.Fatalf("exit %d", code)
			}
		}
	}
	b.Run("table", func(b *testing.B) { run(b, "dump", task) })
	b.Run("json", func(b *testing.B) { run(b, "dump", task, "--json") })
	c, err := client.Open(b.Context(), client.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	t, err := c.Task(b.Context(), task)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("floor-read-blob", func(b *testing.B) {
		for b.Loop() {
			if _, err := client.Get[codec.Blob](b.Context(), t, "M"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode-whole-value", func(b *testing.B) {
		for b.Loop() {
			if _, err := t.Raw(b.Context(), "M"); err != nil {
				b.Fatal(err)
			}
		}
	})
}
