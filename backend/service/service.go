// Package service adds the metadata service's client to a flow program:
// with it imported, a metadata setting of http(s)://host:port records
// runs, tasks and artifacts in a team's metadata service (stepwise
// service), with the token in force.
//
//	import _ "stepwise.dev/stepwise/backend/service"
//
// It is a separate import so that flows that record locally do not carry
// an HTTP client in every task.
package service

import (
	"context"

	"stepwise.dev/stepwise/internal/config"
	"stepwise.dev/stepwise/internal/metadata"
	"stepwise.dev/stepwise/internal/metadata/service"
)

func init() {
	config.RegisterMetadata("service", func(ctx context.Context, c *config.Config) (metadata.Store, error) {
		return service.NewClient(c.Metadata.Value, c.Token.Value, nil)
	})
}
