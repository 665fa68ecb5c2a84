package maintain

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadOnlyCopy: runs, dump and logs read a copy of a datastore on a
// read-only file system; a command that writes says it is read-only.
func TestReadOnlyCopy(t *testing.T) {
	bin, ds := maintenanceEnv(t, "foreach")
	id := flowRun(t, bin, "run", "--n", "3")
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Fatalf("this test needs a tmpfs (run as root): mount: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", mnt).Run() })
	if out, err := exec.Command("cp", "-a", ds, mnt).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	if out, err := exec.Command("mount", "-o", "remount,ro", mnt).CombinedOutput(); err != nil {
		t.Fatalf("remount read-only: %v %s", err, out)
	}
	t.Setenv("STEPWISE_DATASTORE", filepath.Join(mnt, "ds"))

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"runs", "Foreach"}, id},
		{[]string{"dump", "Foreach/" + id + "/end"}, "Sum"},
		{[]string{"logs", "Foreach/" + id + "/end/0"}, "sum of squares of 1..3 = 14"},
	} {
		out, errOut, code := maint(t, tc.args...)
		if code != 0 || !strings.Contains(out, tc.want) {
			t.Errorf("%s on a read-only copy: exit %d, want %q in\n%s%s", strings.Join(tc.args, " "), code, tc.want, out, errOut)
		}
	}
	_, errOut, code := maint(t, "tag", "add", "Foreach/"+id, "golden")
	if code != 1 || !strings.Contains(errOut, "opened for reading only") {
		t.Errorf("tag add on a read-only copy: exit %d\n%s", code, errOut)
	}
}
