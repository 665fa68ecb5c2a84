package flowcmd

import "stepwise.dev/stepwise/internal/names"

// CheckTag refuses tags that cannot be user tags, with the message every
// other path that adds tags gives.
func CheckTag(t string) error { return names.UserTag(t) }
