//go:build team

package main

// Built with -tags team, the example can also run its service on
// Kubernetes:
//
//	go build -tags team ./examples/hosting
//	./hosting serve deploy --replicas 2 --tokens-secret predictor-tokens
import _ "stepwise.dev/stepwise/backend/kubernetes"
