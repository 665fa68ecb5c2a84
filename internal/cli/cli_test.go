package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"stepwise.dev/stepwise/internal/metadata"
	"stepwise.dev/stepwise/internal/metadata/sqlite"
)

// setup builds the branchjoin example, runs it once as user ann and once
// as bob, and returns ann's run pathspec.
func setup(t *testing.T) (annRun, bobRun string) {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "branchjoin")
	if out, err := exec.Command("go", "build", "-o", bin, "../../examples/branchjoin").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	t.Setenv("STEPWISE_DATASTORE", filepath.Join(dir, "ds"))
	t.Setenv("STEPWISE_CONFIG", filepath.Join(dir, "config.json"))
	t.Setenv("STEPWISE_METADATA", "")
	var ids []string
	for _, user := range []string{"ann", "bob"} {
		cmd := exec.Command(bin, "run", "--tag", "nightly")
		cmd.Env = append(os.Environ(), "STEPWISE_USER="+user)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("run: %v\n%s", err, out)
		}
		ids = append(ids, "BranchJoin/"+regexp.MustCompile(`run (\d+)`).FindStringSubmatch(string(out))[1])
	}
	t.Setenv("STEPWISE_USER", "ann")
	return ids[0], ids[1]
}

func stepwise(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := Run(context.Background(), Options{Prog: "stepwise", Commands: append(slices.Clone(Inspect), Settings...)}, args, &out, &errOut)
	return out.String(), errOut.String(), code
}

// expect runs a command and checks its exit code, and that its stdout
// and stderr hold each of what they should; it returns its stdout.
func expect(t *testing.T, args []string, code int, stdout, stderr []string) string {
	t.Helper()
	out, errOut, got := stepwise(t, args...)
	if got != code {
		t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", got, code, out, errOut)
	}
	for _, c := range []struct {
		what, got string
		want      []string
	}{{"stdout", out, stdout}, {"stderr", errOut, stderr}} {
		for _, w := range c.want {
			if !strings.Contains(c.got, w) {
				t.Errorf("%s lacks %q:\n%s", c.what, w, c.got)
			}
		}
	}
	return out
}

func TestCommands(t *testing.T) {
	ann, bob := setup(t)
	tests := []struct {
		name     string
		args     []string
		code     int
		stdout   []string // each must appear
		stderr   []string
		notInOut []string
	}{
		{"flows", []string{"flows"}, 0, []string{"BranchJoin"}, nil, nil},
		{"runs in my namespace", []string{"runs", "BranchJoin"}, 0, []string{"RUN", ann, "succeeded", "nightly user:ann"}, nil, []string{bob}},
		{"runs globally", []string{"runs", "BranchJoin", "--namespace", "global"}, 0, []string{ann, bob}, nil, nil},
		{"runs of bob", []string{"runs", "--namespace", "user:bob", "BranchJoin"}, 0, []string{bob}, nil, []string{ann}},
		{"runs by tag", []string{"runs", "BranchJoin", "--tag", "nope"}, 0, nil, []string{"no runs in namespace user:ann matching"}, nil},
		{"runs bad status", []string{"runs", "BranchJoin", "--status", "done"}, 2, nil, []string{`--status "done": use running, succeeded or failed`}, nil},
		{"dump run", []string{"dump", ann}, 0, []string{"TASK", ann + "/start/0", ann + "/end/0"}, nil, nil},
		{"dump task", []string{"dump", ann + "/end"}, 0, []string{"ARTIFACT", "Out", "int", "3"}, nil, nil},
		{"dump other namespace", []string{"dump", bob + "/end"}, 1, nil, []string{"is not in namespace user:ann (it is in user:bob)", "--namespace user:bob"}, nil},
		{"dump bad pathspec", []string{"dump", "BranchJoin/abc"}, 2, nil, []string{"a run id is a decimal number"}, nil},
		{"dump unknown run", []string{"dump", "BranchJoin/123"}, 1, nil, []string{"run BranchJoin/123 does not exist"}, nil},
		{"logs", []string{"logs", ann + "/end/0"}, 0, []string{"3\n"}, nil, nil},
		{"runs of every flow", []string{"runs"}, 0, []string{ann}, nil, []string{bob}},
		{"runs of every flow, globally", []string{"runs", "--namespace", "global", "--status", "succeeded"}, 0, []string{ann, bob}, nil, nil},
		{"runs of two flows", []string{"runs", "A", "B"}, 2, nil, []string{"name one flow, or none"}, nil},
		{"dump latest", []string{"dump", "BranchJoin/latest/end"}, 0, []string{"ARTIFACT", "Out", "3"}, nil, nil},
		{"dump latest of bob", []string{"dump", "BranchJoin/latest", "--namespace", "user:bob"}, 0, []string{bob + "/start/0"}, nil, nil},
		{"dump latest of a flow without runs", []string{"dump", "Nope/latest"}, 1, nil, []string{"flow Nope has no run in namespace user:ann"}, nil},
		{"logs latest", []string{"logs", "BranchJoin/latest/end"}, 0, []string{"3\n"}, nil, nil},
		{"tag list latest", []string{"tag", "list", "BranchJoin/latest"}, 0, []string{ann, "system tags: user:ann"}, nil, nil},
		{"tag a task", []string{"tag", "add", ann + "/end", "x"}, 2, nil, []string{"tags belong to runs"}, nil},
		{"logs bad attempt", []string{"logs", ann + "/end/0", "--attempt", "4"}, 1, nil, []string{"has 1 attempt(s)"}, nil},
		{"tag add", []string{"tag", "add", ann, "golden"}, 0, []string{"tags:        golden nightly"}, nil, nil},
		{"tag list", []string{"tag", "list", ann}, 0, []string{"system tags: user:ann", "golden nightly"}, nil, nil},
		{"tag remove system", []string{"tag", "remove", ann, "user:ann"}, 1, nil, []string{"is a system tag and cannot be removed"}, nil},
		{"tag remove", []string{"tag", "remove", ann, "golden"}, 0, []string{"tags:        nightly"}, nil, []string{"golden"}},
		{"tag bad op", []string{"tag", "rename", ann}, 2, nil, []string{`unknown tag operation "rename"`}, nil},
		{"card list", []string{"card", "list", ann + "/end/0"}, 0, []string{"CARD", "default  0", "(made when read)"}, nil, nil},
		{"card get", []string{"card", "get", ann + "/end/0", "-o", os.DevNull}, 0, []string{"Card default of " + ann + "/end/0 written to " + os.DevNull}, nil, nil},
		{"card get json", []string{"card", "get", "BranchJoin/latest/end", "-o", os.DevNull, "--json"}, 0, []string{`"card": "default"`}, nil, nil},
		{"card without get or list", []string{"card", ann + "/end/0"}, 2, nil, []string{"say get or list"}, nil},
		{"card of a run", []string{"card", "list", ann}, 2, nil, []string{"names a run; add /step/TaskID"}, nil},
		{"card unknown", []string{"card", "get", ann + "/end/0", "--name", "nosuch", "-o", os.DevNull}, 1, nil, []string{`has no card "nosuch"`}, nil},
		{"card bad name", []string{"card", "get", ann + "/end/0", "--name", "../x", "-o", os.DevNull}, 1, nil, []string{`card name "../x" is not allowed`}, nil},
		{"unknown command", []string{"fly"}, 2, nil, []string{`unknown command "fly"`}, nil},
		{"unknown flag", []string{"runs", "BranchJoin", "--colour"}, 2, nil, []string{"flag provided but not defined: -colour"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := expect(t, tt.args, tt.code, tt.stdout, tt.stderr)
			for _, w := range tt.notInOut {
				if strings.Contains(out, w) {
					t.Errorf("stdout has %q:\n%s", w, out)
				}
			}
		})
	}
}

// TestFlowProgram runs the commands as a flow program does: for its own
// flow, with pathspecs that leave the flow out.
func TestFlowProgram(t *testing.T) {
	ann, bob := setup(t)
	id := strings.TrimPrefix(ann, "BranchJoin/")
	tests := []struct {
		args   []string
		code   int
		stdout []string
		stderr string
	}{
		{[]string{"runs"}, 0, []string{ann}, ""},
		{[]string{"runs", "--namespace", "global"}, 0, []string{ann, bob}, ""},
		{[]string{"dump", "latest/end"}, 0, []string{"Out", "3"}, ""},
		{[]string{"dump", id}, 0, []string{ann + "/start/0"}, ""},
		{[]string{"dump", "BranchJoin/" + id + "/end"}, 0, []string{"Out"}, ""},
		{[]string{"logs", id + "/end/0"}, 0, []string{"3\n"}, ""},
		{[]string{"tag", "list", "latest"}, 0, []string{"user:ann"}, ""},
		{[]string{"dump"}, 2, nil, "usage: branchjoin dump PATHSPEC"},
		{[]string{"dump", "nope"}, 2, nil, `pathspec "nope" names a flow`},
		{[]string{"flows"}, 2, nil, `unknown command "flows"`},
	}
	for _, tt := range tests {
		var out, errOut bytes.Buffer
		code := Run(t.Context(), Options{Prog: "branchjoin", Flow: "BranchJoin", Commands: Inspect[1:]}, tt.args, &out, &errOut)
		if code != tt.code || !strings.Contains(errOut.String(), tt.stderr) {
			t.Errorf("branchjoin %s: exit %d, want %d; stderr %q, want %q in it", strings.Join(tt.args, " "), code, tt.code, errOut.String(), tt.stderr)
		}
		for _, w := range tt.stdout {
			if !strings.Contains(out.String(), w) {
				t.Errorf("branchjoin %s: stdout lacks %q:\n%s", strings.Join(tt.args, " "), w, out.String())
			}
		}
	}
}

func TestDumpJSON(t *testing.T) {
	ann, _ := setup(t)
	out, errOut, code := stepwise(t, "dump", ann+"/join", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var got struct {
		Task      string
		Artifacts []struct {
			Name  string
			Key   string
			Value any
		}
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	vals := map[string]any{}
	for _, a := range got.Artifacts {
		if len(a.Key) != 64 {
			t.Errorf("artifact %s key %q is not a sha256", a.Name, a.Key)
		}
		vals[a.Name] = a.Value
	}
	if vals["Out"] != float64(3) {
		t.Errorf("Out = %v in %s", vals["Out"], out)
	}
}

// TestLostRun shows a run whose launcher stopped without finishing it as
// lost.
func TestLostRun(t *testing.T) {
	ann, _ := setup(t)
	ctx := t.Context()
	meta, err := sqlite.Open(ctx, filepath.Join(os.Getenv("STEPWISE_DATASTORE"), "metadata.db"))
	if err != nil {
		t.Fatal(err)
	}
	started := time.Now().Add(-2 * time.Hour)
	run := &metadata.Run{Flow: "BranchJoin", ID: strconv.FormatInt(started.UnixMicro(), 10), User: "ann",
		SystemTags: []string{"user:ann"}, Started: started}
	if err := meta.CreateRun(ctx, run); err != nil {
		t.Fatal(err)
	}
	if err := meta.Heartbeat(ctx, run.Flow, run.ID, started.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	meta.Close()
	lost := "BranchJoin/" + run.ID

	out, errOut, code := stepwise(t, "runs", "BranchJoin")
	if code != 0 || !regexp.MustCompile(regexp.QuoteMeta(lost)+`\s+lost`).MatchString(out) || !regexp.MustCompile(regexp.QuoteMeta(ann)+`\s+succeeded`).MatchString(out) {
		t.Errorf("runs: exit %d, want %s lost and %s succeeded:\n%s", code, lost, ann, out)
	}
	if !strings.Contains(errOut, "lost: no sign of life from the run's launcher") {
		t.Errorf("runs does not explain lost:\n%s", errOut)
	}
	out, _, _ = stepwise(t, "dump", lost)
	if !strings.Contains(out, "lost (still marked running, but its runtime last said it was alive at") {
		t.Errorf("dump of a lost run:\n%s", out)
	}
	out, _, _ = stepwise(t, "runs", "BranchJoin", "--json")
	var runs []struct {
		ID, Status string
		Lost       bool
	}
	if err := json.Unmarshal([]byte(out), &runs); err != nil || len(runs) != 2 || !runs[1].Lost || runs[1].Status != "running" || runs[0].Lost {
		t.Errorf("runs --json: %+v, %v; want the old run running and lost, after the new one:\n%s", runs, err, out)
	}
}
