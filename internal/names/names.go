// Package names holds the one set of rules for the names Stepwise records
// and addresses: flow names, run ids, step names, task ids, tags and user
// names. The metadata stores, the metadata service, the client's pathspecs
// and the command line all check names with these functions, so that
// whatever one of them accepts the others accept too, and every name that
// is recorded can be written in a pathspec (Flow/RunID/step/TaskID).
//
// Every function returns nil for a good name, or an *Error whose message
// says what is wrong, what is allowed, and what to do.
package names

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits of the rules.
const (
	MaxFlow   = 128 // characters of a flow name
	MaxRunID  = 19  // digits of a run id
	MaxStep   = 128 // characters of a step name
	MaxTaskID = 64  // characters of a task id
	MaxTag    = 256 // bytes of a tag
	MaxUser   = 64  // characters of a user name
)

// SystemPrefixes are the prefixes of system tags: the tags Stepwise itself
// gives a run ("user:ann", "runtime:scheduler", "production:...") and that
// name its namespaces. A user tag cannot start with one of them.
var SystemPrefixes = []string{"user:", "runtime:", "production:"}

// ErrInvalid is matched (errors.Is) by every *Error.
var ErrInvalid = errors.New("invalid name")

// Error is a name that breaks a rule.
type Error struct {
	What  string // "flow name", "run id", "step name", "task id", "tag", "user name"
	Name  string // the name as given
	Why   string // what is wrong with it
	Rule  string // what is allowed
	Fix   string // what to do
	short bool   // Why says it all: no Rule
}

// Error says what is wrong with the name, what is allowed and what to do.
func (e *Error) Error() string {
	msg := e.What + " " + Quote(e.Name) + " " + e.Why
	if !e.short {
		msg += ": " + e.Rule
	}
	if e.Fix != "" {
		msg += "; " + e.Fix
	}
	return msg
}

// Is makes every *Error match ErrInvalid.
func (e *Error) Is(target error) bool { return target == ErrInvalid }

// Invalid reports that the error is about bad input (the metadata service
// answers 400 to it).
func (e *Error) Invalid() bool { return true }

// Quote quotes a name for a message: with Go escapes, so that control and
// invisible characters show, and cut to its first 40 characters (with its
// length) when it is longer.
func Quote(s string) string {
	const keep = 40
	if utf8.RuneCountInString(s) <= keep && len(s) <= 4*keep {
		return fmt.Sprintf("%+q", s)
	}
	cut := s
	for i := range s {
		if utf8.RuneCountInString(s[:i]) == keep {
			cut = s[:i]
			break
		}
	}
	if len(cut) > 4*keep {
		cut = cut[:4*keep]
	}
	return fmt.Sprintf("%+q... (%d bytes)", cut, len(s))
}

const (
	flowRule = "a flow name starts with a letter, then has letters, digits, '_', '-' or '.', at most 128 characters (such as BranchJoin)"
	flowFix  = "rename the flow (its Go type, or g.Name in its Graph method)"
	runRule  = "a run id is a decimal number without leading zeros, at most 19 digits (the microseconds since 1970 when the run started, such as 1764340315123456)"
	runFix   = "copy the id from 'stepwise runs'"
	stepRule = "a step name is in lower-case snake_case: a letter, then lower-case letters, digits or '_', at most 128 characters (such as train_model)"
	stepFix  = "name the step method so that its snake_case is one (TrainModel is train_model)"
	taskRule = "a task id is the task's position in the foreach nesting: decimal numbers without leading zeros joined by dots, at most 64 characters (0 outside a foreach, 17 inside one, 2.5 in nested ones)"
	taskFix  = "copy the id from 'stepwise dump Flow/RunID'"
	tagRule  = "a tag is 1 to 256 bytes of UTF-8 text without control or invisible formatting characters, and does not start or end with a space"
	tagFix   = "choose another tag"
	userRule = "a user name has 1 to 64 letters, digits, '.', '_', '-' or '@'"
	userFix  = "set STEPWISE_USER (or user in the config file) to one"
)

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isDigit(c byte) bool  { return c >= '0' && c <= '9' }
func isLower(c byte) bool  { return c >= 'a' && c <= 'z' }

// bad returns the error for a name that is empty, holds a character the
// rule does not allow (the first one, named), or is too long. Names that
// bad checks are ASCII, so a position in bytes is one in characters.
func bad(what, name, rule, fix string, max int, ok func(i int) bool) error {
	e := &Error{What: what, Name: name, Rule: rule, Fix: fix}
	if name == "" {
		e.Why = "is empty"
		return e
	}
	for i := 0; i < len(name); i++ {
		if !ok(i) {
			e.Why = fmt.Sprintf("has %s at position %d", describe(name[i:]), i+1)
			return e
		}
	}
	if len(name) > max {
		e.Why = fmt.Sprintf("is %d characters long, more than %d", len(name), max)
		return e
	}
	return nil
}

// describe names the character rest starts with, for a message.
func describe(rest string) string {
	r, size := utf8.DecodeRuneInString(rest)
	switch {
	case r == utf8.RuneError && size <= 1:
		return fmt.Sprintf("the byte %#x, which is not UTF-8", rest[0])
	case r == ' ':
		return "a space"
	case unicode.IsControl(r):
		return fmt.Sprintf("the control character %U", r)
	case unicode.Is(unicode.Cf, r):
		return fmt.Sprintf("the invisible formatting character %U", r)
	case unicode.IsSpace(r):
		return fmt.Sprintf("the space character %U", r)
	case r >= utf8.RuneSelf:
		return fmt.Sprintf("the character %q (%U)", r, r)
	}
	return fmt.Sprintf("the character %q", r)
}

// Flow checks a flow name: it starts with an ASCII letter, then has ASCII
// letters, digits, '_', '-' or '.'; at most MaxFlow characters.
func Flow(name string) error {
	return bad("flow name", name, flowRule, flowFix, MaxFlow, func(i int) bool {
		c := name[i]
		return isLetter(c) || i > 0 && (isDigit(c) || c == '_' || c == '-' || c == '.')
	})
}

// RunID checks a run id: a decimal number without leading zeros, of at
// most MaxRunID digits.
func RunID(id string) error {
	return bad("run id", id, runRule, runFix, MaxRunID, func(i int) bool {
		return isDigit(id[i]) && !(i == 0 && id[i] == '0')
	})
}

// Step checks a step name: lower-case snake_case, an ASCII lower-case
// letter then lower-case letters, digits or '_'; at most MaxStep
// characters.
func Step(name string) error {
	return bad("step name", name, stepRule, stepFix, MaxStep, func(i int) bool {
		c := name[i]
		return isLower(c) || i > 0 && (isDigit(c) || c == '_')
	})
}

// TaskID checks a task id: decimal numbers without leading zeros joined by
// dots ("0", "17", "2.5"); at most MaxTaskID characters.
func TaskID(id string) error {
	return bad("task id", id, taskRule, taskFix, MaxTaskID, func(i int) bool {
		c := id[i]
		start := i == 0 || id[i-1] == '.' // the first digit of a number
		end := i == len(id)-1 || id[i+1] == '.'
		switch {
		case c == '.':
			return !start && !end
		case c == '0':
			return !start || end // a number starts with 0 only when it is 0
		}
		return isDigit(c)
	})
}

// Tag checks a tag, system or user: 1 to MaxTag bytes of valid UTF-8,
// without control characters or invisible formatting characters (Unicode
// category Cf, such as the bidirectional overrides U+202A-U+202E), and
// without a space (or other white space) at either end.
func Tag(tag string) error {
	e := &Error{What: "tag", Name: tag, Rule: tagRule, Fix: tagFix}
	switch {
	case tag == "":
		e.Why = "is empty"
		return e
	case len(tag) > MaxTag:
		e.Why = fmt.Sprintf("is %d bytes long, more than %d", len(tag), MaxTag)
		return e
	}
	pos := 0
	for i, r := range tag {
		pos++
		_, size := utf8.DecodeRuneInString(tag[i:])
		if r == utf8.RuneError && size == 1 || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			e.Why = fmt.Sprintf("has %s at position %d", describe(tag[i:]), pos)
			return e
		}
	}
	first, _ := utf8.DecodeRuneInString(tag)
	last, _ := utf8.DecodeLastRuneInString(tag)
	if unicode.IsSpace(first) || unicode.IsSpace(last) {
		e.Why = "starts or ends with a space"
		return e
	}
	return nil
}

// SystemPrefix returns the system prefix a tag starts with, or "".
func SystemPrefix(tag string) string {
	for _, p := range SystemPrefixes {
		if strings.HasPrefix(tag, p) {
			return p
		}
	}
	return ""
}

// UserTag checks a tag that people add (run --tag, tag add, AddTags): a
// Tag that does not start with a system prefix.
func UserTag(tag string) error {
	if err := Tag(tag); err != nil {
		return err
	}
	if SystemPrefix(tag) != "" {
		return &Error{What: "tag", Name: tag, short: true,
			Why: "uses a system prefix (" + strings.Join(SystemPrefixes, ", ") + "), which only Stepwise gives runs",
			Fix: "choose another tag"}
	}
	return nil
}

// SystemTag checks a tag that Stepwise gives a run: a Tag that starts with
// a system prefix, and for "user:NAME" a NAME that User accepts.
func SystemTag(tag string) error {
	if err := Tag(tag); err != nil {
		return err
	}
	switch p := SystemPrefix(tag); p {
	case "":
		return &Error{What: "system tag", Name: tag, short: true,
			Why: "does not start with a system prefix (" + strings.Join(SystemPrefixes, ", ") + ")",
			Fix: "give it as a user tag, or with one of those prefixes"}
	case "user:":
		return User(strings.TrimPrefix(tag, p))
	case tag:
		return &Error{What: "system tag", Name: tag, short: true,
			Why: "is a prefix alone", Fix: "add what it names after the prefix, such as runtime:local"}
	}
	return nil
}

// User checks a user name: 1 to MaxUser ASCII letters, digits, '.', '_',
// '-' or '@'.
func User(name string) error {
	return bad("user name", name, userRule, userFix, MaxUser, func(i int) bool {
		c := name[i]
		return isLetter(c) || isDigit(c) || c == '.' || c == '_' || c == '-' || c == '@'
	})
}
