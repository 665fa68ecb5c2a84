package console

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

func TestTaskOutputIsPrefixedPerLine(t *testing.T) {
	var buf bytes.Buffer
	c := New(&buf, false, false)
	w := c.TaskOutput("[r/a/1] ")
	fmt.Fprint(w, "one\ntw")
	fmt.Fprint(w, "o\nthree")
	w.Flush()
	if got, want := buf.String(), "[r/a/1] one\n[r/a/1] two\n[r/a/1] three\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got := w.Last(); strings.Join(got, "|") != "one|two|three" {
		t.Errorf("last lines %q", got)
	}
}

func TestTaskOutputKeepsTheLastLines(t *testing.T) {
	c := New(&bytes.Buffer{}, false, false)
	w := c.TaskOutput("")
	for i := range 100 {
		fmt.Fprintf(w, "line %d\n", i)
	}
	last := w.Last()
	if len(last) != lastLines || last[0] != "line 80" || last[lastLines-1] != "line 99" {
		t.Errorf("last lines %q", last)
	}
}

func TestLiveStatusIsRedrawnBelowOutput(t *testing.T) {
	var buf bytes.Buffer
	c := New(&buf, true, false)
	c.Status("run 1: 0 done")
	c.TaskOutput("[x] ").Write([]byte("hello\n"))
	c.Event("not shown on a live console")
	c.StopStatus()
	want := "run 1: 0 done\r\x1b[2K[x] hello\nrun 1: 0 done\r\x1b[2K"
	if buf.String() != want {
		t.Errorf("got %q, want %q", buf.String(), want)
	}
}

func TestQuietConsoleDropsEvents(t *testing.T) {
	var buf bytes.Buffer
	New(&buf, false, true).Event("task started")
	if buf.Len() != 0 {
		t.Errorf("quiet console printed %q", buf.String())
	}
}
