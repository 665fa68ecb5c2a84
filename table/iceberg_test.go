package table_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "stepwise.dev/stepwise/backend/iceberg"
	"stepwise.dev/stepwise/internal/testservers"
	s3fs "stepwise.dev/stepwise/internal/warehouse/s3"
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
		{"postgres with the warehouse on MinIO", func(t *testing.T) string {
			dsn := testservers.NewDatabase(t)
			return "iceberg+" + dsn + sep(dsn) + "warehouse=" + minioPrefix(t)
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
			if wh := warehouseOf(cat); strings.HasPrefix(wh, "s3://") {
				// The table's files are on S3: its metadata and a data
				// file per write.
				if !strings.HasPrefix(v2.Location, wh) {
					t.Fatalf("table location %s, want it under the warehouse %s", v2.Location, wh)
				}
				fsys, err := s3fs.New(ctx, wh, s3fs.Options{})
				if err != nil {
					t.Fatal(err)
				}
				objs, err := fsys.List(ctx, "")
				if err != nil {
					t.Fatal(err)
				}
				var parquet, meta int
				for _, o := range objs {
					switch {
					case strings.HasSuffix(o.Key, ".parquet"):
						parquet++
					case strings.HasSuffix(o.Key, ".metadata.json"):
						meta++
					}
				}
				if parquet != 2 || meta < 2 {
					t.Fatalf("on S3 under %s: %d Parquet files and %d metadata files, want 2 and at least 2 (%d objects)", wh, parquet, meta, len(objs))
				}
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

// minioPrefix is a new prefix in a bucket of the test MinIO, with the
// process's S3 settings pointing at it.
func minioPrefix(t *testing.T) string {
	srv := testservers.MinIO(t)
	t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_ENDPOINT_URL_S3", srv.Endpoint)
	loc := fmt.Sprintf("s3://stepwise-iceberg/t%d", time.Now().UnixNano())
	fsys, err := s3fs.New(context.Background(), loc, s3fs.Options{Endpoint: srv.Endpoint})
	if err != nil {
		t.Fatal(err)
	}
	if err := fsys.CreateBucket(context.Background()); err != nil {
		t.Fatal(err)
	}
	return loc
}

func warehouseOf(catalog string) string {
	_, wh, _ := strings.Cut(catalog, "warehouse=")
	wh, _, _ = strings.Cut(wh, "&")
	return wh
}

// TestIcebergOnS3BadInput: a warehouse whose bucket is missing, and S3
// credentials that are refused, fail the write with what to do, and
// leave no table behind.
func TestIcebergOnS3BadInput(t *testing.T) {
	ctx := context.Background()
	good := minioPrefix(t)
	dsn := testservers.NewDatabase(t)
	for _, tc := range []struct {
		name, warehouse, secret, want string
	}{
		{"missing bucket", "s3://no-such-bucket-stepwise/p", "", "the warehouse's bucket does not exist"},
		{"refused credentials", good, "not-the-key", "S3 refused the credentials"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.secret != "" {
				t.Setenv("AWS_SECRET_ACCESS_KEY", tc.secret)
			}
			cat := "iceberg+" + dsn + sep(dsn) + "warehouse=" + tc.warehouse
			_, err := table.WriteRows(ctx, "bad.events", events(0, 10), &table.WriteOptions{Catalog: cat})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "bad.events") {
				t.Fatalf("write: %v, want an error naming the table and saying %q", err, tc.want)
			}
		})
	}
	// Nothing was created: a read of the table still finds none.
	cat := "iceberg+" + dsn + sep(dsn) + "warehouse=" + good
	if _, err := table.Open(ctx, "bad.events", &table.ReadOptions{Catalog: cat}); !errors.Is(err, table.ErrNotFound) {
		t.Fatalf("after the failed writes: %v, want ErrNotFound", err)
	}
}
