//go:build !linux

package executor

import (
	"context"
	"errors"

	"stepwise.dev/stepwise/internal/datastore"
)

// captureOutput is supported on Linux, where tasks run in production.
func captureOutput(context.Context, datastore.Backend, datastore.TaskPath, int) (func(), error) {
	return nil, errors.New("capturing a task's output is supported on Linux only")
}
