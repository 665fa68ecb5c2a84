//go:build team

package main

// Built with -tags team, the example carries the team set-up's backends
// too, so it can run on S3 and the metadata service and place its steps on
// Kubernetes:
//
//	go build -tags team ./examples/nested
//	./nested run --compute kubernetes
import (
	_ "stepwise.dev/stepwise/backend/kubernetes"
	_ "stepwise.dev/stepwise/backend/s3"
	_ "stepwise.dev/stepwise/backend/service"
)
