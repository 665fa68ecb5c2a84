// Package iceberg adds Apache Iceberg catalogs to package table: with it
// imported, a catalog setting of iceberg+sqlite:///path/catalog.db?warehouse=/dir
// or iceberg+postgres://user:pass@host/db?warehouse=/dir resolves table
// names (namespace.table) through the Iceberg Go library's SQL catalog.
// The warehouse may also be on S3 (warehouse=s3://bucket/prefix), read and
// written with the run's S3 settings.
//
//	import _ "stepwise.dev/stepwise/backend/iceberg"
//
// It is a separate import so that flows without Iceberg tables do not
// carry the Iceberg library.
package iceberg

import _ "stepwise.dev/stepwise/internal/icebergcat" // registers the catalogs
