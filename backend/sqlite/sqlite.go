// Package sqlite adds the local metadata store to a flow program: with it
// imported, the metadata setting "local" (the default) records runs in a
// SQLite database in the local datastore's directory, with no set-up.
//
//	import _ "stepwise.dev/stepwise/backend/sqlite"
//
// It is a separate import so that flows that record into a team's metadata
// service do not carry SQLite in every task.
package sqlite

import (
	"context"

	"stepwise.dev/stepwise/internal/config"
	"stepwise.dev/stepwise/internal/metadata"
	"stepwise.dev/stepwise/internal/metadata/sqlite"
)

func init() {
	config.RegisterMetadata("local", func(ctx context.Context, c *config.Config) (metadata.Store, error) {
		path, err := config.LocalMetadataPath(c)
		if err != nil {
			return nil, err
		}
		return sqlite.Open(ctx, path)
	})
}
