package client_test

import (
	"fmt"

	"stepwise.dev/stepwise/client"
)

// A pathspec names a flow, a run, a step or a task.
func ExampleParsePathspec() {
	ps, err := client.ParsePathspec("BranchJoin/1764340315123456/start/1")
	fmt.Println(ps.Flow, ps.Run, ps.Step, ps.Task, err)
	_, err = client.ParsePathspec("BranchJoin/latest")
	fmt.Println(err)
	// Output:
	// BranchJoin 1764340315123456 start 1 <nil>
	// pathspec "BranchJoin/latest": run id "latest" is not a number; write Flow/RunID/step/TaskID, e.g. BranchJoin/1764340315123456/start/1
}
