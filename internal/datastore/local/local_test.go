package local

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"stepwise.dev/stepwise/internal/datastore"
	"stepwise.dev/stepwise/internal/datastore/storetest"
)

func newBackend(t testing.TB) *Backend {
	t.Helper()
	b, err := New(filepath.Join(t.TempDir(), "ds"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) datastore.Backend { return newBackend(t) })
}

func TestNotWritable(t *testing.T) {
	ctx := context.Background()
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}

	t.Run("New", func(t *testing.T) {
		// A path below a regular file cannot be created, even by root.
		dir := filepath.Join(file, "sub")
		_, err := New(dir)
		if err == nil {
			t.Fatal("New succeeded below a regular file")
		}
		for _, want := range []string{dir, "create", "STEPWISE_DATASTORE"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not mention %q", err, want)
			}
		}
	})

	t.Run("Put", func(t *testing.T) {
		b := newBackend(t)
		if err := b.Put(ctx, "blobs/aa/old", strings.NewReader("old"), 3); err != nil {
			t.Fatal(err)
		}
		// The runs directory becomes a file: nothing can be written below it.
		if err := os.WriteFile(filepath.Join(b.dir, "runs"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		err := b.Put(ctx, "runs/f/1/start/1/task.json", strings.NewReader("{}"), 2)
		if err == nil {
			t.Fatal("Put succeeded below a regular file")
		}
		for _, want := range []string{filepath.Join(b.dir, "runs"), "STEPWISE_DATASTORE"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not mention %q", err, want)
			}
		}
		if !errors.Is(err, syscall.ENOTDIR) {
			t.Errorf("error %v does not match ENOTDIR", err)
		}
		// What was written before stays readable.
		rc, _, err := b.Get(ctx, "blobs/aa/old")
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(rc)
		rc.Close()
		if string(data) != "old" {
			t.Fatalf("old object reads %q", data)
		}
	})

	t.Run("ReadOnlyDir", func(t *testing.T) {
		b := newBackend(t)
		if os.Geteuid() == 0 {
			// Root writes through permissions, but not to a read-only
			// file system.
			if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", b.dir).CombinedOutput(); err != nil {
				t.Fatalf("mount a read-only tmpfs: %v %s", err, out)
			}
			t.Cleanup(func() { exec.Command("umount", "-l", b.dir).Run() })
		} else {
			if err := os.Chmod(b.dir, 0o555); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.Chmod(b.dir, 0o755) })
		}
		err := b.Put(ctx, "k", strings.NewReader("x"), 1)
		if err == nil || !strings.Contains(err.Error(), b.dir) || !strings.Contains(err.Error(), "writable") {
			t.Fatalf("Put in a read-only directory: %v", err)
		}
	})
}

func TestErrorHints(t *testing.T) {
	for _, tc := range []struct {
		errno syscall.Errno
		hint  string
	}{
		{syscall.ENOSPC, "free space"},
		{syscall.EDQUOT, "free space"},
		{syscall.EACCES, "writable"},
		{syscall.EROFS, "writable"},
		{syscall.ENOTDIR, "is a file"},
		{syscall.EIO, ""},
	} {
		t.Run(tc.errno.Error(), func(t *testing.T) {
			err := pathErr("write", "/data/ds/blobs/aa/.tmp-1", &fs.PathError{Op: "write", Path: "/data/ds/blobs/aa/.tmp-1", Err: tc.errno})
			if !errors.Is(err, tc.errno) {
				t.Errorf("%v does not match %v", err, tc.errno)
			}
			msg := err.Error()
			if !strings.Contains(msg, "cannot write /data/ds/blobs/aa/.tmp-1: "+tc.errno.Error()) {
				t.Errorf("message %q lacks what failed", msg)
			}
			if tc.hint != "" && (!strings.Contains(msg, tc.hint) || !strings.Contains(msg, "STEPWISE_DATASTORE")) {
				t.Errorf("message %q lacks the hint %q", msg, tc.hint)
			}
		})
	}
}

func TestBadKeys(t *testing.T) {
	ctx := context.Background()
	b := newBackend(t)
	for _, key := range []string{"", "/abs", "/", "a/../b", "..", "../up", "a/..", "a//b", "a/", "./a", "a/./b", "a/.tmp-1", ".tmp-x", "a\x00b", `a\b`} {
		t.Run(strconv.Quote(key), func(t *testing.T) {
			check := func(op string, err error) {
				t.Helper()
				if err == nil {
					t.Errorf("%s(%q) succeeded", op, key)
				} else if !strings.Contains(err.Error(), strconv.Quote(key)) {
					t.Errorf("%s(%q) error %q does not name the key", op, key, err)
				}
			}
			check("Put", b.Put(ctx, key, strings.NewReader("x"), 1))
			_, _, err := b.Get(ctx, key)
			check("Get", err)
			_, err = b.Exists(ctx, key)
			check("Exists", err)
		})
	}
	for _, prefix := range []string{"/", "/a", "../", "a/../", "a//", "./"} {
		if _, err := b.List(ctx, prefix); err == nil {
			t.Errorf("List(%q) succeeded", prefix)
		}
	}
	// Nothing was written outside, nor inside.
	if entries, _ := os.ReadDir(filepath.Dir(b.dir)); len(entries) != 1 {
		t.Errorf("the parent of the datastore holds %d entries", len(entries))
	}
	if keys, err := b.List(ctx, ""); err != nil || len(keys) != 0 {
		t.Errorf("List = %q, %v", keys, err)
	}
}

// TestLeftoverTemp: temporary files left by crashed writers are invisible
// and harmless.
func TestLeftoverTemp(t *testing.T) {
	ctx := context.Background()
	b := newBackend(t)
	if err := b.Put(ctx, "blobs/aa/real", strings.NewReader("real"), 4); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{".tmp-1", "blobs/aa/.tmp-2", "blobs/bb/.tmp-3"} {
		full := filepath.Join(b.dir, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.WriteFile(full, []byte("partial"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	keys, err := b.List(ctx, "")
	if err != nil || !reflect.DeepEqual(keys, []string{"blobs/aa/real"}) {
		t.Fatalf("List = %q, %v", keys, err)
	}
	if ok, err := b.Exists(ctx, "blobs/bb/x"); ok || err != nil {
		t.Fatalf("Exists = %v, %v", ok, err)
	}
	if err := b.Put(ctx, "blobs/bb/x", strings.NewReader("x"), 1); err != nil {
		t.Fatal(err)
	}
	if keys, _ := b.List(ctx, "blobs/"); !reflect.DeepEqual(keys, []string{"blobs/aa/real", "blobs/bb/x"}) {
		t.Fatalf("List = %q", keys)
	}
	// gc finds them, and removes them.
	left, err := b.Leftovers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range left {
		names = append(names, l.Name)
		if l.Size != int64(len("partial")) || time.Since(l.ModTime) > time.Minute {
			t.Errorf("leftover %+v", l)
		}
		if err := b.RemoveLeftover(ctx, l); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{filepath.Join(b.dir, ".tmp-1"), filepath.Join(b.dir, "blobs/aa/.tmp-2"), filepath.Join(b.dir, "blobs/bb/.tmp-3")}
	if !reflect.DeepEqual(names, want) {
		t.Fatalf("Leftovers = %q, want %q", names, want)
	}
	if left, err := b.Leftovers(ctx); err != nil || len(left) != 0 {
		t.Fatalf("Leftovers after removal = %+v, %v", left, err)
	}
	for _, h := range []string{filepath.Join(b.dir, "blobs/aa/real"), "/etc/passwd", filepath.Join(b.dir, "../.tmp-x")} {
		if err := b.RemoveLeftover(ctx, datastore.Leftover{Name: h, Handle: h}); err == nil {
			t.Errorf("RemoveLeftover(%s) succeeded", h)
		}
	}
	if keys, _ := b.List(ctx, ""); !reflect.DeepEqual(keys, []string{"blobs/aa/real", "blobs/bb/x"}) {
		t.Fatalf("List after removing leftovers = %q", keys)
	}
}

const crashEnv = "STEPWISE_TEST_CRASH_DIR"

// TestMain also serves as the writer that TestCrashedWriter kills: started
// with crashEnv set, the test binary begins a Put and waits to be killed.
func TestMain(m *testing.M) {
	if dir := os.Getenv(crashEnv); dir != "" {
		b, err := New(dir)
		if err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		r := io.MultiReader(bytes.NewReader(make([]byte, 3<<20)), readerFunc(func([]byte) (int, error) {
			fmt.Println("written")
			time.Sleep(time.Minute) // killed meanwhile
			return 0, io.EOF
		}))
		b.Put(context.Background(), "blobs/ab/obj", r, 6<<20)
		fmt.Println("not killed")
		os.Exit(1)
	}
	os.Exit(m.Run())
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// TestCrashedWriter kills a process in the middle of a Put.
func TestCrashedWriter(t *testing.T) {
	ctx := context.Background()
	b := newBackend(t)
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), crashEnv+"="+b.dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	for sc.Scan() && sc.Text() != "written" {
	}
	cmd.Process.Kill()
	cmd.Wait()

	tmps, _ := filepath.Glob(filepath.Join(b.dir, "blobs", "ab", tmpPrefix+"*"))
	if len(tmps) != 1 {
		t.Fatalf("the killed writer left %d temporary files, want 1", len(tmps))
	}
	if fi, err := os.Stat(tmps[0]); err != nil || fi.Size() != 3<<20 {
		t.Fatalf("temporary file: %v, %v", fi, err)
	}
	if keys, err := b.List(ctx, ""); err != nil || len(keys) != 0 {
		t.Fatalf("List = %q, %v", keys, err)
	}
	if _, _, err := b.Get(ctx, "blobs/ab/obj"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Get: %v", err)
	}
	data := bytes.Repeat([]byte{1}, 100)
	if err := b.Put(ctx, "blobs/ab/obj", bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	if keys, err := b.List(ctx, ""); err != nil || !reflect.DeepEqual(keys, []string{"blobs/ab/obj"}) {
		t.Fatalf("List = %q, %v", keys, err)
	}
}

// TestSyncPolicy checks which objects Put fsyncs.
func TestSyncPolicy(t *testing.T) {
	b := newBackend(t)
	for key, want := range map[string]bool{
		"runs/F/1/run.json":                    true,
		"runs/F/1/end.json":                    true,
		"runs/F/1/start/1/task.json":           false,
		"blobs/ab/" + strings.Repeat("ab", 32): false,
		"logs/F/1/start/1/0/stdout/00000000":   false,
		"other/thing":                          false,
	} {
		if got := b.sync(key); got != want {
			t.Errorf("sync(%s) = %v, want %v", key, got, want)
		}
	}
}

// Benchmarks: STEPWISE_BENCH_MIB sets the blob size (default 128).

func benchSize(b *testing.B) int {
	mib := 128
	if s := os.Getenv("STEPWISE_BENCH_MIB"); s != "" {
		var err error
		if mib, err = strconv.Atoi(s); err != nil {
			b.Fatal(err)
		}
	}
	return mib << 20
}

var benchData = []struct {
	name string
	gen  func(n int, seed uint64) []byte
}{
	{"random", storetest.RandomBytes},
	{"compressible", storetest.CompressibleBytes},
}

func BenchmarkPutBlob(b *testing.B) {
	ctx := context.Background()
	n := benchSize(b)
	for _, d := range benchData {
		data := d.gen(n, 1)
		for _, fsync := range []bool{false, true} {
			name := d.name
			if fsync {
				name += "/fsync"
			}
			b.Run(name, func(b *testing.B) {
				be := newBackend(b)
				if fsync {
					be.sync = func(string) bool { return true }
				}
				s := datastore.New(be)
				b.SetBytes(int64(n))
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					data[0], data[1], data[2] = byte(i), byte(i>>8), byte(i>>16) // new content, new key
					if _, written, err := s.PutBlob(ctx, [][]byte{data[:n/2], data[n/2:]}); err != nil || !written {
						b.Fatal(written, err)
					}
					b.StopTimer()
					os.RemoveAll(filepath.Join(be.dir, "blobs"))
					b.StartTimer()
				}
			})
		}
	}
}

func BenchmarkGetBlob(b *testing.B) {
	ctx := context.Background()
	n := benchSize(b)
	for _, d := range benchData {
		b.Run(d.name, func(b *testing.B) {
			s := datastore.New(newBackend(b))
			key, _, err := s.PutBlob(ctx, [][]byte{d.gen(n, 1)})
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(n))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := s.GetBlob(ctx, key); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// mountTmpfs mounts a tmpfs with the options at a new directory (root, as
// CI runs, is needed) and returns the directory.
func mountTmpfs(t *testing.T, opts string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", opts, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("this test needs a small tmpfs (run as root): mount: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	return dir
}

// TestDiskFull fills a real 1 MiB disk: the error says that the disk is
// full, where, how much is free and how much the write needed, and leaves
// nothing half-written.
func TestDiskFull(t *testing.T) {
	ctx := context.Background()
	mnt := mountTmpfs(t, "size=1m")
	b, err := New(filepath.Join(mnt, "ds"))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Put(ctx, "blobs/aa/small", bytes.NewReader(make([]byte, 256<<10)), 256<<10); err != nil {
		t.Fatal(err)
	}
	big := storetest.RandomBytes(2<<20, 1)
	s := datastore.New(b)
	_, _, err = s.PutBlob(ctx, [][]byte{big})
	if err == nil {
		t.Fatal("storing 2 MiB on a 1 MiB disk succeeded")
	}
	if !errors.Is(err, datastore.ErrDiskFull) || !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("error %v does not match ErrDiskFull and ENOSPC", err)
	}
	var full *datastore.DiskFullError
	if !errors.As(err, &full) || full.Mount != mnt || full.FSType != "tmpfs" || full.Free < 0 || full.Free > 800<<10 || full.Need != 2<<20+28 {
		t.Errorf("DiskFullError = %+v", full)
	}
	for _, want := range []string{"no space left on device", filepath.Join(mnt, "ds", "blobs"), "(tmpfs file system mounted at " + mnt + ") is full", "free", "this write needs 2.0 MiB", "free space on that disk, or choose another directory"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	t.Log(err)
	if left, _ := b.Leftovers(ctx); len(left) != 0 {
		t.Errorf("half-written files left: %+v", left)
	}
	if rc, _, err := b.Get(ctx, "blobs/aa/small"); err != nil {
		t.Errorf("what was written before: %v", err)
	} else {
		rc.Close()
	}
}

// TestReadOnlyCopy: a datastore on a read-only file system opens, and
// everything reads; writes fail saying that the datastore is read-only.
func TestReadOnlyCopy(t *testing.T) {
	ctx := context.Background()
	mnt := mountTmpfs(t, "size=4m")
	dir := filepath.Join(mnt, "ds")
	b, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	s := datastore.New(b)
	key, _, err := s.PutBlob(ctx, [][]byte{[]byte("a value")})
	if err != nil {
		t.Fatal(err)
	}
	rec := &datastore.TaskRecord{Path: datastore.TaskPath{Flow: "F", Run: "1", Step: "start", Task: "0"}, Artifacts: []datastore.ArtifactRef{{Name: "X", Key: key}}}
	if err := s.PutTask(ctx, rec); err != nil {
		t.Fatal(err)
	}
	if err := s.PutRun(ctx, &datastore.RunRecord{Flow: "F", Run: "1", Started: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-o", "remount,ro", mnt).CombinedOutput(); err != nil {
		t.Fatalf("remount read-only: %v %s", err, out)
	}

	b, err = New(dir)
	if err != nil {
		t.Fatalf("opening a read-only datastore: %v", err)
	}
	s = datastore.New(b)
	if v, err := s.GetBlob(ctx, key); err != nil || string(v) != "a value" {
		t.Errorf("GetBlob = %q, %v", v, err)
	}
	if _, err := s.GetTask(ctx, rec.Path); err != nil {
		t.Errorf("GetTask: %v", err)
	}
	if _, err := s.GetRun(ctx, "F", "1"); err != nil {
		t.Errorf("GetRun: %v", err)
	}
	if ids, err := s.ListRunIDs(ctx, "F"); err != nil || len(ids) != 1 {
		t.Errorf("ListRunIDs = %q, %v", ids, err)
	}
	_, _, err = s.PutBlob(ctx, [][]byte{[]byte("another value")})
	if !errors.Is(err, datastore.ErrReadOnly) || !errors.Is(err, syscall.EROFS) {
		t.Fatalf("PutBlob on a read-only datastore: %v; want ErrReadOnly", err)
	}
	t.Log(err)
	for _, want := range []string{"read-only file system", "reading it works", dir, "copy the datastore to a writable place"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if err := b.Delete(ctx, datastore.BlobObjectKey(key)); !errors.Is(err, datastore.ErrReadOnly) {
		t.Errorf("Delete on a read-only datastore: %v", err)
	}
}

// TestRefreshOldBlob: PutBlob reusing a blob older than RefreshAge
// touches it instead of writing it, so that gc sees it fresh.
func TestRefreshOldBlob(t *testing.T) {
	ctx := context.Background()
	b := newBackend(t)
	s := datastore.New(b)
	key, _, err := s.PutBlob(ctx, [][]byte{[]byte("value")})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(b.dir, filepath.FromSlash(datastore.BlobObjectKey(key)))
	old := time.Now().Add(-2 * datastore.RefreshAge)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
	before, _ := os.Stat(path)
	if _, written, err := s.PutBlob(ctx, [][]byte{[]byte("value")}); err != nil || written {
		t.Fatalf("PutBlob of an old blob = %v, %v; want it reused", written, err)
	}
	after, _ := os.Stat(path)
	if time.Since(after.ModTime()) > time.Minute || !os.SameFile(before, after) {
		t.Errorf("the blob was not touched in place: modified %s", after.ModTime())
	}
}
