package warehouse_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"stepwise.dev/stepwise/internal/warehouse"
)

func TestLocal(t *testing.T) {
	ctx := context.Background()
	l := &warehouse.Local{Dir: t.TempDir()}
	for _, key := range []string{"", "/abs", "a/../b", "a//b", "a\\b", "./a", "a/."} {
		if err := l.Put(ctx, key, strings.NewReader("x"), 1); err == nil || !strings.Contains(err.Error(), "invalid object key") {
			t.Errorf("Put(%q): %v", key, err)
		}
	}
	if err := l.Put(ctx, "a/b/c.parquet", strings.NewReader("hello"), 5); err != nil {
		t.Fatal(err)
	}
	if err := l.Put(ctx, "a/b/short", strings.NewReader("hi"), 5); err == nil {
		t.Fatal("a Put of fewer bytes than announced succeeded")
	}
	objs, err := l.List(ctx, "")
	if err != nil || len(objs) != 1 || objs[0] != (warehouse.Object{Key: "a/b/c.parquet", Size: 5}) {
		t.Fatalf("List: %v %v (a failed Put must leave nothing)", objs, err)
	}
	f, err := l.Open(ctx, "a/b/c.parquet")
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 3)
	if _, err := f.ReadAt(buf, 1); err != nil || string(buf) != "ell" || f.Size() != 5 {
		t.Fatalf("ReadAt: %q %v", buf, err)
	}
	f.Close()
	if _, err := l.Open(ctx, "a/missing"); !errors.Is(err, warehouse.ErrNotFound) {
		t.Fatalf("Open of a missing object: %v", err)
	}
	if err := l.Delete(ctx, []string{"a/b/c.parquet", "a/b/gone"}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(l.Dir, "a")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Delete left the emptied directories: %v", err)
	}
}

func TestOpenLocations(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct{ loc, want string }{
		{"s3://bucket/x", "add import _"},
		{"gs://bucket/x", `unknown scheme "gs"`},
	} {
		if _, err := warehouse.Open(ctx, tc.loc); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Open(%q): %v, want %q", tc.loc, err, tc.want)
		}
	}
	dir := t.TempDir()
	fsys, err := warehouse.Open(ctx, "file://"+dir)
	if err != nil || fsys.String() != dir {
		t.Fatalf("Open(file://%s): %v %v", dir, fsys, err)
	}
}
