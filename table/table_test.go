package table_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"stepwise.dev/stepwise/table"
)

type row struct {
	ID      int64
	Name    string
	Score   float64
	Tags    []byte
	When    time.Time
	Maybe   *int32
	Skipped string `table:"-"`
	Renamed string `table:"label"`
}

// TestStructsRoundTrip: every field type comes back as written, nulls
// included, through a directory catalog name.
func TestStructsRoundTrip(t *testing.T) {
	ctx := context.Background()
	cat := t.TempDir()
	seven := int32(7)
	in := []row{
		{ID: 1, Name: "a", Score: 1.5, Tags: []byte{0, 1}, When: time.Date(2024, 1, 2, 3, 4, 5, 6000, time.UTC), Maybe: &seven, Renamed: "x"},
		{ID: 2, Name: "", Score: -2, Tags: nil, When: time.Unix(0, 0).UTC(), Maybe: nil, Skipped: "dropped", Renamed: "y"},
	}
	if _, err := table.WriteRows(ctx, "ns.rows", in, &table.WriteOptions{Catalog: cat}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(cat, "ns", "rows", "_stepwise_manifest.json")); err != nil {
		t.Fatalf("the directory catalog did not put ns.rows under ns/rows: %v", err)
	}
	t.Setenv(table.EnvCatalog, cat)
	out, err := table.Read[row](ctx, "ns.rows", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 2 {
		t.Fatalf("%d rows", len(out))
	}
	in[1].Skipped = ""
	in[1].Tags = []byte{}
	for i := range in {
		g, w := out[i], in[i]
		if g.ID != w.ID || g.Name != w.Name || g.Score != w.Score || string(g.Tags) != string(w.Tags) || !g.When.Equal(w.When) ||
			(g.Maybe == nil) != (w.Maybe == nil) || (g.Maybe != nil && *g.Maybe != *w.Maybe) || g.Skipped != "" || g.Renamed != w.Renamed {
			t.Errorf("row %d: read %+v, wrote %+v", i, g, w)
		}
	}
}

// TestMismatch: a field that cannot hold its column names both.
func TestMismatch(t *testing.T) {
	ctx := context.Background()
	loc := t.TempDir() + "/t"
	if _, err := table.WriteRows(ctx, loc, []row{{ID: 1}}, nil); err != nil {
		t.Fatal(err)
	}
	type narrow struct{ ID int32 }
	_, err := table.Read[narrow](ctx, loc, nil)
	var me *table.MismatchError
	if !errors.As(err, &me) || me.Column != "id" || me.ColumnType != "int64" || me.FieldType != "int32" ||
		!strings.Contains(err.Error(), `column "id" is int64`) || !strings.Contains(err.Error(), "narrow.ID is int32") {
		t.Fatalf("reading int64 into int32: %v", err)
	}
	type missing struct{ Nope string }
	if _, err := table.Read[missing](ctx, loc, nil); !errors.As(err, &me) || !me.Missing || !strings.Contains(err.Error(), `no column "nope"`) {
		t.Fatalf("reading a missing column: %v", err)
	}
}

func TestNamesAndCatalogs(t *testing.T) {
	ctx := context.Background()
	t.Setenv(table.EnvCatalog, "")
	if _, err := table.Open(ctx, "ns.t", nil); err == nil || !strings.Contains(err.Error(), table.EnvCatalog) {
		t.Fatalf("a name without a catalog: %v", err)
	}
	if _, err := table.Open(ctx, "ns.t", &table.ReadOptions{Catalog: t.TempDir()}); !errors.Is(err, table.ErrNotFound) {
		t.Fatalf("a missing table: %v", err)
	}
	if _, err := table.Open(ctx, "bad name!", &table.ReadOptions{Catalog: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "letters, digits") {
		t.Fatalf("a bad name: %v", err)
	}
	if _, err := table.Open(ctx, "ns.t", &table.ReadOptions{Catalog: "iceberg+mysql://x/y?warehouse=/w"}); err == nil || !strings.Contains(err.Error(), "unknown kind") {
		t.Fatalf("an unknown Iceberg kind: %v", err)
	}
	if _, err := table.Open(ctx, "gs://bucket/t", nil); err == nil || !strings.Contains(err.Error(), `unknown scheme "gs"`) {
		t.Fatalf("an unknown scheme: %v", err)
	}
	if _, err := table.Open(ctx, t.TempDir(), &table.ReadOptions{Filter: "a = "}); err == nil || !strings.Contains(err.Error(), "expected a number") {
		t.Fatalf("a bad filter: %v", err)
	}
}
