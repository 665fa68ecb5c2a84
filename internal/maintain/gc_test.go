package maintain

import (
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"stepwise.dev/stepwise/internal/datastore"
	"stepwise.dev/stepwise/internal/datastore/local"
)

// age sets the modification time of every file under dir to when.
func age(t *testing.T, dir string, when time.Time) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		return os.Chtimes(p, when, when)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// countFiles counts the files under dir.
func countFiles(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			n++
		}
		return nil
	})
	return n
}

// TestGCKeepsRunsReadableAndResumable: two real runs, one tagged; what
// crashed writers and unused values leave behind, all three days old. A
// dry run deletes nothing; gc --apply with no retention deletes the
// untagged run's values and logs, the unused blob and the temporary file;
// the tagged run still dumps in full, and resumes.
func TestGCKeepsRunsReadableAndResumable(t *testing.T) {
	ctx := context.Background()
	bin, ds := maintenanceEnv(t, "foreach")
	kept := flowRun(t, bin, "run", "--n", "5")
	dropped := flowRun(t, bin, "run", "--n", "3")
	if _, errOut, code := maint(t, "tag", "add", "Foreach/"+kept, "keep"); code != 0 {
		t.Fatalf("tag add: %s", errOut)
	}
	b, err := local.New(ds)
	if err != nil {
		t.Fatal(err)
	}
	unused, _, err := datastore.New(b).PutBlob(ctx, [][]byte{[]byte("nobody refers to this")})
	if err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(ds, "blobs", "00", ".tmp-crashed")
	os.MkdirAll(filepath.Dir(tmp), 0o755)
	if err := os.WriteFile(tmp, []byte("half a blob"), 0o644); err != nil {
		t.Fatal(err)
	}
	age(t, ds, time.Now().Add(-72*time.Hour))

	files := countFiles(t, ds)
	out, errOut, code := maint(t, "gc", "--retention", "0d")
	if code != 0 || !strings.Contains(out, "Dry run: nothing was deleted") || !strings.Contains(out, "Foreach/"+dropped) {
		t.Fatalf("gc dry run: exit %d\n%s%s", code, out, errOut)
	}
	if n := countFiles(t, ds); n != files {
		t.Fatalf("the dry run changed the datastore: %d files, was %d", n, files)
	}

	out, errOut, code = maint(t, "gc", "--apply", "--retention", "0d")
	if code != 0 {
		t.Fatalf("gc --apply: exit %d\n%s%s", code, out, errOut)
	}
	t.Log(out)
	for _, re := range []string{`Runs: 2, of which 1 kept \(1 tagged\); 1 lose their logs or values: Foreach/` + dropped,
		`blobs no kept run uses\s+deleted\s+[1-9]`, `log chunks, cards and graphs of runs not kept\s+deleted\s+[1-9]`, `left by crashed writers\s+deleted\s+1\s`, `Freed [0-9.]+ [KMG]?i?B`} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("gc output lacks %s", re)
		}
	}
	if _, err := os.Stat(tmp); err == nil {
		t.Error("the crashed writer's file is still there")
	}
	if _, err := os.Stat(filepath.Join(ds, filepath.FromSlash(datastore.BlobObjectKey(unused)))); err == nil {
		t.Error("the unused blob is still there")
	}

	// The kept run reads in full.
	tasks := []string{"start/0", "join/0", "end/0"}
	for i := range 5 {
		tasks = append(tasks, "square_item/"+string(rune('0'+i)))
	}
	for _, task := range tasks {
		if out, errOut, code := maint(t, "dump", "Foreach/"+kept+"/"+task); code != 0 {
			t.Errorf("dump %s of the kept run: exit %d\n%s%s", task, code, out, errOut)
		}
	}
	if out, _, _ := maint(t, "logs", "Foreach/"+kept+"/end/0"); !strings.Contains(out, "sum of squares of 1..5 = 55") {
		t.Errorf("logs of the kept run: %q", out)
	}
	// The other says what happened to it.
	_, errOut, code = maint(t, "dump", "Foreach/"+dropped+"/end/0")
	if code != 1 || !strings.Contains(errOut, "collected by gc on") {
		t.Errorf("dump of the collected run: exit %d\n%s", code, errOut)
	}
	_, errOut, code = maint(t, "logs", "Foreach/"+dropped+"/end/0")
	if code != 1 || !strings.Contains(errOut, "collected by gc on") {
		t.Errorf("logs of the collected run: exit %d\n%s", code, errOut)
	}

	// The kept run resumes.
	cmd := exec.Command(bin, "resume", "join", "--origin-run-id", kept)
	res, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(res), "sum of squares of 1..5 = 55") {
		t.Fatalf("resume after gc: %v\n%s", err, res)
	}
}

// FuzzParseDuration: what parses is not negative, and reads back the same
// once formatted.
func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"30d", "0d", "1.5d", "12h", "90m", "1h30m", "-1d", "d", "", "1e400d", "999999999d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := parseDuration(s)
		if err != nil {
			return
		}
		if d < 0 {
			t.Fatalf("parseDuration(%q) = %s", s, d)
		}
		again, err := parseDuration(formatDuration(d))
		if err != nil || again != d {
			t.Fatalf("parseDuration(formatDuration(%s)) = %s, %v", d, again, err)
		}
	})
}
