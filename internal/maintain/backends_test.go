package maintain

// The commands' tests use every backend, as the stepwise command does.
import (
	_ "stepwise.dev/stepwise/backend/s3"
	_ "stepwise.dev/stepwise/backend/service"
	_ "stepwise.dev/stepwise/backend/sqlite"
)
