package dataset

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"stepwise.dev/stepwise/internal/warehouse"
)

// Stream is a scan in progress, of any table format.
type Stream interface {
	Schema() *arrow.Schema
	Next() bool
	RecordBatch() arrow.RecordBatch
	Err() error
	Close() error
	// Progress is the data files the scan reads and the rows returned so far.
	Progress() (files int, rows int64)
}

// Version is the version of a table a scan reads or a write made.
type Version struct {
	Location string
	Format   string // "parquet" or "iceberg"
	Version  int64  // manifest version, or Iceberg snapshot id
	Time     time.Time
}

// AsOf picks an older version; zero means the current one.
type AsOf struct {
	Snapshot int64
	Time     time.Time
}

// IsZero says whether it picks the current version.
func (a AsOf) IsZero() bool { return a.Snapshot == 0 && a.Time.IsZero() }

// Table is one table of a catalog, or a dataset at a location.
type Table interface {
	Scan(ctx context.Context, o ScanOptions, at AsOf) (Stream, Version, error)
	NewWriter(ctx context.Context, schema *arrow.Schema, o WriteOptions) (TableWriter, error)
}

// TableWriter writes one new version of a table.
type TableWriter interface {
	Write(ctx context.Context, rec arrow.RecordBatch) error
	Commit(ctx context.Context) (Version, error)
	Abort(ctx context.Context) error
}

// Catalog resolves table names.
type Catalog interface {
	// Table returns the table of a name; forWrite allows one that does not
	// exist yet (its first write creates it).
	Table(ctx context.Context, name string, forWrite bool) (Table, error)
	String() string
}

// Progress is the files planned and the rows returned so far.
func (r *Reader) Progress() (int, int64) { return r.stats.FilesRead, r.rows }

// Parquet is a partitioned Parquet dataset under a location.
type Parquet struct{ FS warehouse.FS }

var _ Table = Parquet{}

// Scan reads the latest version, or the kept one at picks.
func (p Parquet) Scan(ctx context.Context, o ScanOptions, at AsOf) (Stream, Version, error) {
	o.At = at
	r, err := Scan(ctx, p.FS, o)
	if err != nil {
		return nil, Version{}, err
	}
	v := Version{Location: p.FS.String(), Format: "parquet", Version: r.stats.ManifestVer, Time: r.written}
	return r, v, nil
}

// NewWriter starts a write.
func (p Parquet) NewWriter(ctx context.Context, schema *arrow.Schema, o WriteOptions) (TableWriter, error) {
	w, err := NewWriter(ctx, p.FS, schema, o)
	if err != nil {
		return nil, err
	}
	return parquetWriter{w}, nil
}

type parquetWriter struct{ *Writer }

func (w parquetWriter) Commit(ctx context.Context) (Version, error) {
	m, err := w.Writer.Commit(ctx)
	if err != nil {
		return Version{}, err
	}
	return Version{Location: w.fsys.String(), Format: "parquet", Version: m.Version, Time: m.Written}, nil
}

// Dir is the directory-of-Parquet catalog: the table a.b is the dataset
// under <root>/a/b/.
type Dir struct{ Root string }

// String is the root.
func (d Dir) String() string { return d.Root }

// Table maps the name to its directory.
func (d Dir) Table(ctx context.Context, name string, forWrite bool) (Table, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	loc := strings.TrimSuffix(d.Root, "/") + "/" + strings.ReplaceAll(name, ".", "/")
	fsys, err := warehouse.Open(ctx, loc)
	if err != nil {
		return nil, err
	}
	return Parquet{FS: fsys}, nil
}

// checkName accepts dotted names of letters, digits, '_' and '-'.
func checkName(name string) error {
	if name == "" {
		return errors.New("a table name is empty")
	}
	for _, seg := range strings.Split(name, ".") {
		if seg == "" {
			return fmt.Errorf("table name %q has an empty part; write namespace.table", name)
		}
		for _, c := range seg {
			if !(c == '_' || c == '-' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
				return fmt.Errorf("table name %q has %q; names are letters, digits, '_' and '-', parts joined by '.'", name, c)
			}
		}
	}
	return nil
}

// CatalogOpener opens a catalog of its scheme.
type CatalogOpener func(ctx context.Context, url string) (Catalog, error)

var (
	catMu    sync.Mutex
	catalogs = map[string]CatalogOpener{}
)

// IcebergPackage is the package whose import adds Iceberg catalogs.
const IcebergPackage = "stepwise.dev/stepwise/backend/iceberg"

// RegisterCatalog makes catalog settings of a scheme open with open.
func RegisterCatalog(scheme string, open CatalogOpener) {
	catMu.Lock()
	defer catMu.Unlock()
	catalogs[scheme] = open
}

// OpenCatalog opens the catalog a setting names: a directory or
// s3://bucket/prefix is a directory-of-Parquet catalog;
// iceberg+sqlite:///path/catalog.db?warehouse=... and
// iceberg+postgres://... are Iceberg's SQL catalog.
func OpenCatalog(ctx context.Context, setting string) (Catalog, error) {
	if i := strings.Index(setting, "://"); i >= 0 {
		scheme := setting[:i]
		catMu.Lock()
		open := catalogs[scheme]
		haveIceberg := catalogs["iceberg+sqlite"] != nil
		catMu.Unlock()
		if open != nil {
			return open(ctx, setting)
		}
		if strings.HasPrefix(scheme, "iceberg") && haveIceberg {
			return nil, fmt.Errorf("catalog %s: unknown kind %q; use iceberg+sqlite or iceberg+postgres", redact(setting), scheme)
		}
		if strings.HasPrefix(scheme, "iceberg") {
			return nil, fmt.Errorf("catalog %s: this program does not include Iceberg; add import _ %q to the flow's main package", redact(setting), IcebergPackage)
		}
	}
	return Dir{Root: setting}, nil
}

// redact hides a password in a URL for messages.
func redact(s string) string {
	at := strings.LastIndex(s, "@")
	i := strings.Index(s, "://")
	if at < 0 || i < 0 || at < i {
		return s
	}
	cred := s[i+3 : at]
	if u, _, ok := strings.Cut(cred, ":"); ok {
		return s[:i+3] + u + ":xxxxx" + s[at:]
	}
	return s
}
