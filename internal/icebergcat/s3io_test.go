package icebergcat

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"testing/iotest"

	"stepwise.dev/stepwise/internal/warehouse"
)

// The file the Iceberg library reads through: sequential reads, seeks
// from every origin and ranged reads give the object's bytes; bad seeks
// are refused.
func TestS3File(t *testing.T) {
	dir := t.TempDir()
	data := make([]byte, 10_000)
	for i := range data {
		data[i] = byte(i * 31)
	}
	if err := os.WriteFile(filepath.Join(dir, "obj"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	open := func() *s3File {
		o, err := (&warehouse.Local{Dir: dir}).Open(context.Background(), "obj")
		if err != nil {
			t.Fatal(err)
		}
		return newS3File(o, "s3://b/obj")
	}
	if err := iotest.TestReader(open(), data); err != nil {
		t.Fatal(err)
	}
	f := open()
	for _, tc := range []struct {
		off    int64
		whence int
		want   int64
	}{
		{100, io.SeekStart, 100},
		{50, io.SeekCurrent, 150},
		{-8, io.SeekEnd, 9992},
	} {
		got, err := f.Seek(tc.off, tc.whence)
		if err != nil || got != tc.want {
			t.Fatalf("Seek(%d, %d) = %d, %v; want %d", tc.off, tc.whence, got, err, tc.want)
		}
	}
	rest, err := io.ReadAll(f)
	if err != nil || !bytes.Equal(rest, data[9992:]) {
		t.Fatalf("read after seeking 8 before the end: %d bytes, %v", len(rest), err)
	}
	for _, whence := range []int{io.SeekStart, 7} {
		if _, err := f.Seek(-1, whence); err == nil {
			t.Fatalf("Seek(-1, %d) succeeded", whence)
		}
	}
	if st, err := f.Stat(); err != nil || st.Size() != 10_000 || st.Name() != "obj" || st.IsDir() {
		t.Fatalf("Stat: %v, %v", st, err)
	}
}

// Locations that are not s3://bucket/key are refused as invalid paths.
func TestS3IOBadName(t *testing.T) {
	s := &s3IO{ctx: context.Background(), buckets: map[string]warehouse.FS{}}
	for _, name := range []string{"s3:///nobucket", "gs://b/k", "::"} {
		if _, err := s.Open(name); err == nil || !errorsIsInvalid(err) {
			t.Errorf("Open(%q): %v, want fs.ErrInvalid", name, err)
		}
	}
}

func errorsIsInvalid(err error) bool {
	var pe *fs.PathError
	return errors.As(err, &pe) && errors.Is(err, fs.ErrInvalid)
}
