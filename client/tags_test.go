package client

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"stepwise.dev/stepwise/internal/metadata"
	"stepwise.dev/stepwise/internal/metadata/sqlite"
	"stepwise.dev/stepwise/internal/names"
)

// TestAddTagsRules checks that Run.AddTags (which `tag add` uses) refuses
// what every other path that adds tags refuses, with the same message, and
// adds none of the tags then.
func TestAddTagsRules(t *testing.T) {
	ctx := t.Context()
	meta, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "metadata.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer meta.Close()
	if err := meta.CreateRun(ctx, &metadata.Run{Flow: "F", ID: "1", User: "ann", SystemTags: []string{"user:ann"}}); err != nil {
		t.Fatal(err)
	}
	c := newClient(nil, meta, Global)
	run, err := c.Flow("F").Run(ctx, "1")
	if err != nil {
		t.Fatal(err)
	}
	for _, tag := range []string{"user:bob", "runtime:local", "production:deploy", strings.Repeat("x", 5000), "ok\u202egnp", "a\tb", " padded", ""} {
		err := run.AddTags(ctx, "fine", tag)
		want := names.UserTag(tag)
		if err == nil || want == nil || !strings.Contains(err.Error(), want.Error()) || !strings.Contains(err.Error(), "F/1") {
			t.Errorf("AddTags(%.40q): %v, want an error naming the run and saying %v", tag, err, want)
		}
	}
	got, err := meta.GetRun(ctx, "F", "1")
	if err != nil || len(got.Tags) != 0 || !slices.Equal(got.SystemTags, []string{"user:ann"}) {
		t.Errorf("run after refused AddTags: %+v, %v", got, err)
	}
	if err := run.AddTags(ctx, "golden", "exp-7"); err != nil {
		t.Fatalf("AddTags(golden, exp-7): %v", err)
	}
	if !slices.Equal(run.Tags, []string{"exp-7", "golden", "user:ann"}) {
		t.Errorf("run.Tags = %q", run.Tags)
	}
}
