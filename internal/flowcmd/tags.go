package flowcmd

import (
	"errors"
	"fmt"
	"strings"
)

// CheckTag refuses tags that cannot be user tags.
func CheckTag(t string) error {
	switch {
	case t == "":
		return errors.New("stepwise: a tag cannot be empty")
	case len(t) > 256:
		return fmt.Errorf("stepwise: tag %.20q... is longer than 256 characters", t)
	case strings.HasPrefix(t, "user:"), strings.HasPrefix(t, "runtime:"), strings.HasPrefix(t, "production:"):
		return fmt.Errorf("stepwise: tag %q uses a system prefix (user:, runtime:, production:); choose another tag", t)
	case strings.ContainsAny(t, "\n\t"):
		return fmt.Errorf("stepwise: tag %q contains a tab or newline", t)
	}
	return nil
}
