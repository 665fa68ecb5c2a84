package graph

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file; run go test -update if the change is right.\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

// nested is a grid search: nested foreach, a branch inside it, joins, and
// every step setting.
func nested() []*Step {
	return []*Step{
		{Name: "start", Method: "Start", Next: []string{"per_rate"}, Foreach: "Rates"},
		{Name: "per_rate", Method: "PerRate", Next: []string{"fit"}, Foreach: "Depths", Item: "float64"},
		{Name: "fit", Method: "Fit", Next: []string{"a", "b"}, Item: "int", Resources: Resources{CPU: 2, MemoryMB: 4096, GPU: 1}, Retries: 2, Timeout: Duration(time.Hour)},
		{Name: "a", Method: "A", Next: []string{"both"}, Catch: "Err"},
		{Name: "b", Method: "B", Next: []string{"both"}},
		{Name: "both", Method: "Both", Next: []string{"join_depths"}, Join: true},
		{Name: "join_depths", Method: "JoinDepths", Next: []string{"join_rates"}, Join: true},
		{Name: "join_rates", Method: "JoinRates", Next: []string{"end"}, Join: true},
		{Name: "end", Method: "End"},
	}
}

func TestRenderGolden(t *testing.T) {
	g, err := New("Grid", nested())
	if err != nil {
		t.Fatal(err)
	}
	var text, js bytes.Buffer
	g.WriteText(&text)
	g.WriteJSON(&js)
	golden(t, "grid.txt.golden", text.Bytes())
	golden(t, "grid.json.golden", js.Bytes())
}

func TestSplitsAndDepths(t *testing.T) {
	g, err := New("Grid", nested())
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		step   string
		closes string
		depth  int
	}{{"fit", "", 2}, {"both", "fit", 2}, {"join_depths", "per_rate", 1}, {"join_rates", "start", 0}, {"end", "", 0}} {
		s := g.Step(tt.step)
		if s.Closes != tt.closes || s.Depth != tt.depth {
			t.Errorf("%s: closes %q depth %d, want %q %d", tt.step, s.Closes, s.Depth, tt.closes, tt.depth)
		}
	}
	var order []string
	for _, s := range g.Topo() {
		order = append(order, s.Name)
	}
	if got := strings.Join(order, " "); got != "start per_rate fit a b both join_depths join_rates end" {
		t.Errorf("topological order %s", got)
	}
}

func TestErrorsAreAllReported(t *testing.T) {
	steps := []*Step{
		{Name: "start", Next: []string{"a", "b"}},
		{Name: "a", Next: []string{"ghost"}},
		{Name: "b"},
		{Name: "end"},
	}
	_, err := New("Broken", steps)
	es, ok := err.(Errors)
	if !ok || len(es) != 2 {
		t.Fatalf("got %v, want two errors", err)
	}
	for _, want := range []string{`step a: transition to "ghost"`, "step b: has no transition"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("errors lack %q:\n%v", want, err)
		}
	}
}

func TestScheduleCheck(t *testing.T) {
	for _, c := range []struct {
		s    Schedule
		says string
	}{
		{Schedule{Cron: "0 3 * * *"}, ""},
		{Schedule{Cron: "30 2 * * 1-5", TimeZone: "Europe/Amsterdam"}, ""},
		{Schedule{Cron: "@daily"}, ""},
		{Schedule{Cron: "0 3 * *"}, "five fields"},
		{Schedule{Cron: "daily"}, "five fields"},
		{Schedule{Cron: "0 3 * * *", TimeZone: "Mars/Olympus"}, "not a time zone"},
		{Schedule{Cron: "*/15 0-6,22 ? jan-mar MON-fri"}, ""},
		{Schedule{Cron: "@every 1h30m"}, ""},
		{Schedule{Cron: "@every soon"}, "positive duration"},
		{Schedule{Cron: "@fortnightly"}, "not a macro"},
		{Schedule{Cron: "61 * * * *"}, `minute field "61": 61 is out of range (it takes 0-59)`},
		{Schedule{Cron: "0 25 * * *"}, "hour field"},
		{Schedule{Cron: "0 3 0 * *"}, "day of month field"},
		{Schedule{Cron: "0 3 * 13 *"}, "month field"},
		{Schedule{Cron: "0 3 * * 8"}, "day of week field"},
		{Schedule{Cron: "0 3 * * mon-fry"}, `"fry" is not a number`},
		{Schedule{Cron: "*/0 * * * *"}, "not a positive number"},
		{Schedule{Cron: "0 5-3 * * *"}, "runs backwards"},
		{Schedule{Cron: "? 3 * * *"}, "minute field"},
		{Schedule{Cron: "every minute"}, "five fields"},
	} {
		err := c.s.Check()
		if err == nil {
			err = c.s.CheckZone()
		}
		if c.says == "" && err != nil || c.says != "" && (err == nil || !strings.Contains(err.Error(), c.says)) {
			t.Errorf("%+v: %v, want %q", c.s, err, c.says)
		}
	}
}

// FuzzScheduleCheck: any text is accepted or refused with an error, never
// a crash, and an accepted five-field schedule has only the characters
// cron fields take.
func FuzzScheduleCheck(f *testing.F) {
	for _, s := range []string{"0 3 * * *", "*/15 0-6,22 ? jan-mar MON-fri", "@every 1h", "61 * * * *", "- - - - -", "1-/ * * * *"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, cron string) {
		s := Schedule{Cron: cron}
		if s.Check() != nil || strings.HasPrefix(strings.TrimSpace(cron), "@") {
			return
		}
		for _, r := range strings.ToLower(cron) {
			if !strings.ContainsRune("0123456789*/,-? \t\n\v\f\rjanfebmrpyulgsoctvdcwhuthi", r) && !unicode.IsSpace(r) {
				t.Fatalf("%q accepted with %q in it", cron, r)
			}
		}
	})
}
