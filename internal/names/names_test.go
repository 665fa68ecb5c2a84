package names

import (
	"errors"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestNames(t *testing.T) {
	long := func(n int, c string) string { return strings.Repeat(c, n) }
	tests := []struct {
		check func(string) error
		name  string
		says  string // "" for a good name
	}{
		{Flow, "BranchJoin", ""},
		{Flow, "train-v2.1_x", ""},
		{Flow, "F", ""},
		{Flow, "A" + long(MaxFlow-1, "b"), ""},
		{Flow, "", "is empty"},
		{Flow, " ", "a space at position 1"},
		{Flow, "; DROP TABLE runs;--", `the character ';' at position 1`},
		{Flow, "Flow\u202e", "the invisible formatting character U+202E at position 5"},
		{Flow, "1Flow", "the character '1' at position 1"},
		{Flow, "_Flow", "at position 1"},
		{Flow, "a/b", "the character '/' at position 2"},
		{Flow, "Ünicode", "the character 'Ü' (U+00DC) at position 1"},
		{Flow, "A" + long(MaxFlow, "b"), "129 characters long, more than 128"},
		{Flow, "a\xffb", "the byte 0xff, which is not UTF-8"},
		{RunID, "1764340315123456", ""},
		{RunID, "1", ""},
		{RunID, "9" + long(MaxRunID-1, "9"), ""},
		{RunID, "", "is empty"},
		{RunID, "0", "the character '0' at position 1"},
		{RunID, "0123", "at position 1"},
		{RunID, "1" + long(MaxRunID, "0"), "20 characters long, more than 19"},
		{RunID, long(256, "1"), "256 characters long"},
		{RunID, "12a", "the character 'a' at position 3"},
		{RunID, "-1", "at position 1"},
		{RunID, "latest", "at position 1"},
		{Step, "start", ""},
		{Step, "train_model", ""},
		{Step, "step2", ""},
		{Step, "Start", "the character 'S' at position 1"},
		{Step, "_x", "at position 1"},
		{Step, "2x", "at position 1"},
		{Step, "a-b", "the character '-' at position 2"},
		{Step, "", "is empty"},
		{Step, "a" + long(MaxStep, "b"), "more than 128"},
		{TaskID, "0", ""},
		{TaskID, "17", ""},
		{TaskID, "2.5", ""},
		{TaskID, "10.0.3", ""},
		{TaskID, "2.10", ""},
		{TaskID, "", "is empty"},
		{TaskID, "01", "the character '0' at position 1"},
		{TaskID, "2.05", "the character '0' at position 3"},
		{TaskID, "2.", "the character '.' at position 2"},
		{TaskID, ".2", "at position 1"},
		{TaskID, "2..5", "the character '.' at position 2"},
		{TaskID, "x", "at position 1"},
		{TaskID, "1" + long(MaxTaskID, "0"), "more than 64"},
		{Tag, "exp-7", ""},
		{Tag, "user:ann", ""},
		{Tag, "a b", ""},
		{Tag, "模型 v2 ✓", ""},
		{Tag, long(MaxTag, "x"), ""},
		{Tag, "", "is empty"},
		{Tag, long(MaxTag+1, "x"), "257 bytes long, more than 256"},
		{Tag, long(5000, "x"), "5000 bytes long"},
		{Tag, long(86, "模"), "258 bytes long"},
		{Tag, "a\tb", "the control character U+0009 at position 2"},
		{Tag, "a\x00", "U+0000"},
		{Tag, "ok\u202egnp.exe", "the invisible formatting character U+202E at position 3"},
		{Tag, "zero\u200bwidth", "U+200B"},
		{Tag, " lead", "starts or ends with a space"},
		{Tag, "trail ", "starts or ends with a space"},
		{Tag, "nbsp\u00a0", "starts or ends with a space"},
		{Tag, "a\xffb", "the byte 0xff, which is not UTF-8"},
		{UserTag, "golden", ""},
		{UserTag, "users:ann", ""},
		{UserTag, "user:bob", "uses a system prefix (user:, runtime:, production:)"},
		{UserTag, "runtime:local", "uses a system prefix"},
		{UserTag, "production:deploy", "uses a system prefix"},
		{UserTag, " user:bob", "starts or ends with a space"},
		{SystemTag, "user:ann", ""},
		{SystemTag, "runtime:scheduler", ""},
		{SystemTag, "production:nightly", ""},
		{SystemTag, "golden", "does not start with a system prefix"},
		{SystemTag, "user:a b", "user name \"a b\" has a space at position 2"},
		{SystemTag, "user:", "user name \"\" is empty"},
		{SystemTag, "runtime:", "is a prefix alone"},
		{User, "ann", ""},
		{User, "ann.lee@example.com", ""},
		{User, "svc_ci-2", ""},
		{User, "", "is empty"},
		{User, "ann lee", "a space at position 4"},
		{User, "DOMAIN\\ann", `the character '\\' at position 7`},
		{User, long(MaxUser+1, "a"), "65 characters long, more than 64"},
	}
	for _, tt := range tests {
		err := tt.check(tt.name)
		if tt.says == "" {
			if err != nil {
				t.Errorf("%.60q: %v", tt.name, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%.60q: no error, want one saying %q", tt.name, tt.says)
			continue
		}
		if !strings.Contains(err.Error(), tt.says) {
			t.Errorf("%.60q: error %q does not say %q", tt.name, err, tt.says)
		}
		var e *Error
		if !errors.As(err, &e) || !errors.Is(err, ErrInvalid) || !e.Invalid() {
			t.Errorf("%.60q: error %v is not an invalid-name *Error", tt.name, err)
		}
		// Every message says what is allowed or what to do.
		if !strings.Contains(err.Error(), "; ") {
			t.Errorf("%.60q: error %q does not say what to do", tt.name, err)
		}
		if len(err.Error()) > 600 {
			t.Errorf("%.60q: error is %d bytes long", tt.name, len(err.Error()))
		}
	}
}

// TestSystemPrefixMessage checks that a user tag with a system prefix is
// refused with the same message, whatever the prefix.
func TestSystemPrefixMessage(t *testing.T) {
	var msgs []string
	for _, p := range SystemPrefixes {
		err := UserTag(p + "x")
		if err == nil {
			t.Fatalf("UserTag(%q): no error", p+"x")
		}
		msgs = append(msgs, strings.Replace(err.Error(), p+"x", "TAG", 1))
	}
	for _, m := range msgs[1:] {
		if m != msgs[0] {
			t.Errorf("messages differ: %q and %q", msgs[0], m)
		}
	}
	if want := `tag "TAG" uses a system prefix (user:, runtime:, production:), which only Stepwise gives runs; choose another tag`; msgs[0] != want {
		t.Errorf("message %q, want %q", msgs[0], want)
	}
}

func TestQuote(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"abc", `"abc"`},
		{"a\u202eb", `"a\u202eb"`},
		{strings.Repeat("x", 5000), `"` + strings.Repeat("x", 40) + `"... (5000 bytes)`},
		{strings.Repeat("模", 100), `"\u6a21`},
	} {
		if got := Quote(c.in); !strings.HasPrefix(got, c.want) {
			t.Errorf("Quote(%.20q) = %q, want %q...", c.in, got, c.want)
		}
	}
}

// FuzzNames checks the rules on any input: no panic, every refusal is an
// *Error naming the input, and every accepted name holds only what its
// rule allows (nothing a pathspec or a URL path would split on, nothing
// invisible).
func FuzzNames(f *testing.F) {
	for _, s := range []string{"BranchJoin", "1764340315123456", "train_model", "2.5", "user:ann", " ", "a\u202eb", "0", "1.", "\xff", "模"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, c := range []struct {
			name  string
			check func(string) error
		}{{"Flow", Flow}, {"RunID", RunID}, {"Step", Step}, {"TaskID", TaskID}, {"Tag", Tag}, {"UserTag", UserTag}, {"SystemTag", SystemTag}, {"User", User}} {
			err := c.check(s)
			if err != nil {
				var e *Error
				if !errors.As(err, &e) || !errors.Is(err, ErrInvalid) {
					t.Fatalf("%s(%q): error %v is not an *Error", c.name, s, err)
				}
				continue
			}
			if s == "" || !utf8.ValidString(s) || strings.IndexFunc(s, func(r rune) bool { return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) }) >= 0 {
				t.Fatalf("%s accepted %q", c.name, s)
			}
			if c.name != "Tag" && c.name != "UserTag" && c.name != "SystemTag" && strings.ContainsAny(s, "/ %?#\\") {
				t.Fatalf("%s accepted %q, which holds a separator", c.name, s)
			}
			if c.name == "UserTag" && SystemPrefix(s) != "" {
				t.Fatalf("UserTag accepted %q", s)
			}
		}
	})
}
