package cli

// The commands' tests read local and S3 datastores, as the stepwise command
// does.
import (
	_ "stepwise.dev/stepwise/backend/s3"
	_ "stepwise.dev/stepwise/backend/service"
	_ "stepwise.dev/stepwise/backend/sqlite"
)
