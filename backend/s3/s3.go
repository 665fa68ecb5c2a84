// Package s3 adds the S3 datastore to a flow program: with it imported,
// a datastore setting of s3://bucket/prefix keeps artifacts, task records
// and logs in that bucket (AWS S3, or an S3-compatible store such as MinIO
// through AWS_ENDPOINT_URL_S3). Credentials and region come from the
// standard AWS chain. It also gives steps stepwise.Objects, bulk reads and
// writes of objects on S3 with the same settings.
//
//	import _ "stepwise.dev/stepwise/backend/s3"
//
// It also gives package table its s3:// locations, with the same
// credentials and endpoint.
//
// It is a separate import so that flows that keep their data on local
// disk do not carry the AWS SDK in every task.
package s3

import (
	"context"

	"stepwise.dev/stepwise/internal/config"
	"stepwise.dev/stepwise/internal/datastore"
	"stepwise.dev/stepwise/internal/datastore/s3"
	"stepwise.dev/stepwise/internal/objects"
	_ "stepwise.dev/stepwise/internal/warehouse/s3" // s3:// table locations (package table)
)

func init() {
	config.RegisterDatastore("s3", func(ctx context.Context, url string) (datastore.Backend, error) {
		return s3.New(ctx, url, s3.Options{})
	})
	objects.Register(func(ctx context.Context, o objects.ConnOptions) (objects.Conn, error) {
		return s3.NewConn(ctx, s3.Options{Endpoint: o.Endpoint, Region: o.Region})
	})
}
