package client

import (
	"strings"
	"testing"
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
		{"", Pathspec{}, "it is empty"},
		{"Flow/", Pathspec{}, "part 2 is empty"},
		{"Flow//start", Pathspec{}, "part 2 is empty"},
		{"Flow/abc", Pathspec{}, `run id "abc" is not a number`},
		{"Flow/1/start/x", Pathspec{}, `task id "x" is not a number`},
		{"Flow/1/start/2/extra", Pathspec{}, "more than four parts"},
		{"Flow/1/../2", Pathspec{}, `part ".." is not a name`},
		{"Fl ow/1", Pathspec{}, `part "Fl ow" is not a name`},
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

func FuzzParsePathspec(f *testing.F) {
	for _, s := range []string{"Flow", "Flow/123", "Flow/123/start/4", "", "a//b", "x/1/../2", "F/9999999999999999999999/s/1"} {
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
