package client

import (
	"strings"
	"testing"

	"stepwise.dev/stepwise/internal/names"
)

func TestParsePathspec(t *testing.T) {
	tests := []struct {
		in      string
		want    Pathspec
		wantErr string
	}{
		{"Flow", Pathspec{Flow: "Flow"}, ""},
		{"Flow/123", Pathspec{Flow: "Flow", Run: "123"}, ""},
		{"Flow/123/start", Pathspec{Flow: "Flow", Run: "123", Step: "start"}, ""},
		{"Flow/123/start/4", Pathspec{Flow: "Flow", Run: "123", Step: "start", Task: "4"}, ""},
		{"Flow/123/start/0", Pathspec{Flow: "Flow", Run: "123", Step: "start", Task: "0"}, ""},
		{"Flow/123/inner/2.5", Pathspec{Flow: "Flow", Run: "123", Step: "inner", Task: "2.5"}, ""},
		{"Flow/123/inner/10.0.17", Pathspec{Flow: "Flow", Run: "123", Step: "inner", Task: "10.0.17"}, ""},
		{"train-v2.1/9223372036854775807/train_model/0", Pathspec{Flow: "train-v2.1", Run: "9223372036854775807", Step: "train_model", Task: "0"}, ""},
		{"", Pathspec{}, "it is empty"},
		{"Flow/", Pathspec{}, "part 2 is empty"},
		{"Flow//start", Pathspec{}, "part 2 is empty"},
		{"Flow/abc", Pathspec{}, `run id "abc" has the character 'a' at position 1`},
		{"Flow/" + strings.Repeat("9", 20), Pathspec{}, "more than 19"},
		{"Flow/012", Pathspec{}, `run id "012"`},
		{"Flow/1/start/x", Pathspec{}, `task id "x"`},
		{"Flow/1/start/2.", Pathspec{}, `task id "2."`},
		{"Flow/1/start/007", Pathspec{}, `task id "007"`},
		{"Flow/1/Start/0", Pathspec{}, `step name "Start"`},
		{"Flow/1/start/2/extra", Pathspec{}, "more than four parts"},
		{"Flow/1/../2", Pathspec{}, `step name ".."`},
		{"Fl ow/1", Pathspec{}, `flow name "Fl ow" has a space`},
		{"Flow\u202e/1", Pathspec{}, `U+202E`},
		{"; DROP TABLE runs;--/1", Pathspec{}, `flow name "; DROP TABLE runs;--"`},
	}
	for _, tt := range tests {
		got, err := ParsePathspec(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "Flow/RunID/step/TaskID") {
				t.Errorf("ParsePathspec(%q) error %v, want %q and the expected form", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParsePathspec(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
		if got.String() != tt.in {
			t.Errorf("String() = %q, want %q", got.String(), tt.in)
		}
	}
}

// TestParsePathspecNames checks that ParsePathspec accepts exactly the
// names that package names allows, part by part.
func TestParsePathspecNames(t *testing.T) {
	for _, c := range []struct {
		name   string
		prefix string
		rule   func(string) error
	}{{"flow", "", names.Flow}, {"run", "F/", names.RunID}, {"step", "F/1/", names.Step}, {"task", "F/1/s/", names.TaskID}} {
		for _, v := range []string{"0", "1", "17", "2.5", "a", "A", "a_b", "a-b", "a.b", "Ab", "01", strings.Repeat("9", 19), strings.Repeat("9", 20), "x y", "_a"} {
			_, perr := ParsePathspec(c.prefix + v)
			rerr := c.rule(v)
			if (perr == nil) != (rerr == nil) {
				t.Errorf("%s %q: ParsePathspec error %v, rule error %v", c.name, v, perr, rerr)
			}
		}
	}
}

func FuzzParsePathspec(f *testing.F) {
	for _, s := range []string{"Flow", "Flow/123", "Flow/123/start/4", "F/1/s/2.5", "", "a//b", "x/1/../2", "F/9999999999999999999999/s/1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePathspec(s)
		if err != nil {
			if !strings.Contains(err.Error(), "pathspec") {
				t.Fatalf("error without context: %v", err)
			}
			return
		}
		again, err := ParsePathspec(p.String())
		if err != nil || again != p {
			t.Fatalf("%q parsed to %+v, whose String %q parses to %+v, %v", s, p, p.String(), again, err)
		}
	})
}
