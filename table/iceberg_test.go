package table_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "stepwise.dev/stepwise/backend/iceberg"
	"stepwise.dev/stepwise/internal/testservers"
	"stepwise.dev/stepwise/table"
)

type event struct {
	User   int64
	Region string
	Amount float64
}

func events(from, n int) []event {
	out := make([]event, n)
	for i := range out {
		u := from + i
		out[i] = event{User: int64(u), Region: []string{"eu", "us"}[u%2], Amount: float64(u%10) + 0.25}
	}
	return out
}

// TestIceberg: a table created, appended to, and read at both snapshots
// (by id and by time), on the SQL catalog over SQLite and PostgreSQL.
func TestIceberg(t *testing.T) {
	for _, tc := range []struct {
		name    string
		catalog func(t *testing.T) string
	}{
		{"sqlite", func(t *testing.T) string {
			dir := t.TempDir()
			return "iceberg+sqlite://" + filepath.Join(dir, "catalog.db") + "?warehouse=" + filepath.Join(dir, "warehouse")
		}},
		{"postgres", func(t *testing.T) string {
			dsn := testservers.NewDatabase(t)
			return "iceberg+" + dsn + sep(dsn) + "warehouse=" + t.TempDir()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			cat := tc.catalog(t)
			_, err := table.Open(ctx, "sales.events", &table.ReadOptions{Catalog: cat})
			if !errors.Is(err, table.ErrNotFound) || !strings.Contains(err.Error(), "sales.events") {
				t.Fatalf("reading a missing table: %v", err)
			}
			v1, err := table.WriteRows(ctx, "sales.events", events(0, 100), &table.WriteOptions{Catalog: cat})
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(5 * time.Millisecond) // snapshots a few milliseconds apart, for AsOf
			between := time.Now()
			time.Sleep(5 * time.Millisecond)
			v2, err := table.WriteRows(ctx, "sales.events", events(100, 50), &table.WriteOptions{Catalog: cat, Append: true})
			if err != nil {
				t.Fatal(err)
			}
			if v1.Format != "iceberg" || v1.Version == v2.Version || v2.Version == 0 {
				t.Fatalf("versions %+v and %+v", v1, v2)
			}
			for _, rc := range []struct {
				what string
				o    table.ReadOptions
				rows int
				snap int64
			}{
				{"current", table.ReadOptions{}, 150, v2.Version},
				{"first snapshot by id", table.ReadOptions{Snapshot: v1.Version}, 100, v1.Version},
				{"second snapshot by id", table.ReadOptions{Snapshot: v2.Version}, 150, v2.Version},
				{"as of a time between", table.ReadOptions{AsOf: between}, 100, v1.Version},
				{"filtered", table.ReadOptions{Filter: "region = 'eu' and user >= 50", Columns: []string{"user", "region", "amount"}}, 50, v2.Version},
			} {
				o := rc.o
				o.Catalog = cat
				r, err := table.Open(ctx, "sales.events", &o)
				if err != nil {
					t.Fatalf("%s: %v", rc.what, err)
				}
				if r.Version().Version != rc.snap {
					t.Errorf("%s: read snapshot %d, want %d", rc.what, r.Version().Version, rc.snap)
				}
				r.Close()
				rows, err := table.Read[event](ctx, "sales.events", &o)
				if err != nil {
					t.Fatalf("%s: %v", rc.what, err)
				}
				if len(rows) != rc.rows {
					t.Fatalf("%s: %d rows, want %d", rc.what, len(rows), rc.rows)
				}
				for _, e := range rows {
					if want := events(int(e.User), 1)[0]; e != want {
						t.Fatalf("%s: row %+v, want %+v", rc.what, e, want)
					}
				}
			}
			if _, err := table.Open(ctx, "sales.events", &table.ReadOptions{Catalog: cat, Snapshot: 42}); err == nil || !strings.Contains(err.Error(), "no snapshot 42") {
				t.Fatalf("reading a snapshot that does not exist: %v", err)
			}
		})
	}
}

func sep(dsn string) string {
	if strings.Contains(dsn, "?") {
		return "&"
	}
	return "?"
}
