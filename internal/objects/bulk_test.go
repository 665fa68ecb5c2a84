package objects_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"stepwise.dev/stepwise/internal/datastore/s3"
	"stepwise.dev/stepwise/internal/objects"
	"stepwise.dev/stepwise/internal/testservers"
)

var prefixes atomic.Int64

const bucket = "stepwise-objects"

// minio points the AWS settings at a real MinIO, makes the test bucket and
// returns a root of the test's own.
func minio(t testing.TB) (*testservers.S3, string) {
	t.Helper()
	srv := testservers.MinIO(t)
	t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_ENDPOINT_URL_S3", srv.Endpoint)
	root := fmt.Sprintf("s3://%s/t%d-%d", bucket, os.Getpid(), prefixes.Add(1))
	b, err := s3.New(context.Background(), root, s3.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.CreateBucket(context.Background()); err != nil {
		t.Fatal(err)
	}
	return srv, root
}

func newBulk(t testing.TB, o objects.Options) *objects.Bulk {
	t.Helper()
	conn, err := s3.NewConn(context.Background(), s3.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := objects.New(conn, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func randomBytes(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, seed+1))
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

func TestPutGetListRange(t *testing.T) {
	ctx := context.Background()
	_, root := minio(t)
	const part = 1 << 20
	b := newBulk(t, objects.Options{Root: root, PartSize: part, Concurrency: 6})

	// Many small objects, an empty one, and large ones that are not a
	// whole number of parts, one written from a file.
	want := map[string][]byte{"data/empty": {}}
	for i := range 60 {
		want[fmt.Sprintf("data/small/%03d", i)] = randomBytes(100+37*i, uint64(i))
	}
	want["data/large"] = randomBytes(6*part+777, 99)
	want["data/file"] = randomBytes(5*part+3, 98)
	src := filepath.Join(t.TempDir(), "src")
	if err := os.WriteFile(src, want["data/file"], 0o644); err != nil {
		t.Fatal(err)
	}
	var puts []objects.Put
	for k, v := range want {
		if k == "data/file" {
			puts = append(puts, objects.Put{Key: k, Path: src})
		} else {
			puts = append(puts, objects.Put{Key: k, Data: v})
		}
	}
	urls, err := b.Put(ctx, puts)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range puts {
		if urls[i] != root+"/"+p.Key {
			t.Errorf("Put returned %s for %s, want %s", urls[i], p.Key, root+"/"+p.Key)
		}
	}

	infos, err := b.List(ctx, "data/")
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != len(want) {
		t.Fatalf("List found %d objects, want %d", len(infos), len(want))
	}
	for i, in := range infos {
		if i > 0 && infos[i-1].Key >= in.Key {
			t.Errorf("List is not sorted: %s before %s", infos[i-1].Key, in.Key)
		}
		if w, ok := want[in.Key]; !ok || int64(len(w)) != in.Size || in.URL != root+"/"+in.Key {
			t.Errorf("List gave %+v", in)
		}
	}

	keys := []string{"data/large", "data/empty", root + "/data/small/007", "data/file"}
	for _, toFile := range []bool{false, true} {
		objs, err := b.Get(ctx, keys, toFile)
		if err != nil {
			t.Fatal(err)
		}
		for i, o := range objs {
			data := o.Data
			if toFile {
				if data, err = os.ReadFile(o.Path); err != nil {
					t.Fatal(err)
				}
			}
			k := strings.TrimPrefix(keys[i], root+"/")
			if o.Key != keys[i] || o.URL != root+"/"+k || o.Size != int64(len(want[k])) || !bytes.Equal(data, want[k]) {
				t.Errorf("Get(toFile %v) of %s: key %s, url %s, %d bytes (size %d), want %d bytes", toFile, keys[i], o.Key, o.URL, len(data), o.Size, len(want[k]))
			}
		}
	}

	for _, toFile := range []bool{false, true} {
		objs, err := b.GetPrefix(ctx, "data/small/", toFile)
		if err != nil {
			t.Fatal(err)
		}
		if len(objs) != 60 {
			t.Fatalf("GetPrefix read %d objects, want 60", len(objs))
		}
		for _, o := range objs {
			data := o.Data
			if toFile {
				data, _ = os.ReadFile(o.Path)
			}
			if !bytes.Equal(data, want[o.Key]) {
				t.Errorf("GetPrefix(toFile %v): %s differs", toFile, o.Key)
			}
		}
	}

	large := want["data/large"]
	for _, tc := range []struct {
		off, n int64
	}{
		{0, 10}, {part - 5, 10}, {123, 3*part + 99}, {0, int64(len(large))}, {int64(len(large)) - 4, 100}, {int64(len(large)) + 10, 5}, {77, 0},
	} {
		got, err := b.GetRange(ctx, "data/large", tc.off, tc.n)
		if err != nil {
			t.Fatalf("GetRange(%d, %d): %v", tc.off, tc.n, err)
		}
		lo, hi := min(tc.off, int64(len(large))), min(tc.off+tc.n, int64(len(large)))
		if !bytes.Equal(got, large[lo:hi]) {
			t.Errorf("GetRange(%d, %d) gave %d bytes, want %d", tc.off, tc.n, len(got), hi-lo)
		}
	}

	// Close removes the temporary files.
	objs, err := b.Get(ctx, []string{"data/small/001"}, true)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(objs[0].Path)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the temporary directory %s is still there after Close: %v", dir, err)
	}
	if _, err := b.Get(ctx, []string{"data/small/001"}, true); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Get to a file after Close: %v", err)
	}
}

func TestErrors(t *testing.T) {
	ctx := context.Background()
	srv, root := minio(t)
	b := newBulk(t, objects.Options{Root: root})
	if _, err := b.Put(ctx, []objects.Put{{Key: "there", Data: []byte("x")}}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		keys  []string
		is    error
		wants []string
	}{
		{"missing object", []string{"there", "missing"}, fs.ErrNotExist, []string{root + "/missing", "does not exist", "check the key"}},
		{"every missing object", []string{"gone-1", "there", "gone-2"}, fs.ErrNotExist, []string{root + "/gone-1", root + "/gone-2"}},
		{"missing bucket", []string{"s3://no-such-bucket-here/x"}, objects.ErrNoBucket, []string{"s3://no-such-bucket-here/x", "the bucket no-such-bucket-here does not exist"}},
		{"not S3", []string{"https://example.com/x"}, nil, []string{`"https://example.com/x" is not an S3 URL`, "write s3://bucket/key"}},
		{"bad bucket", []string{"s3://Bad_Bucket/x"}, nil, []string{"does not name a valid bucket", "Bad_Bucket"}},
		{"dot dot", []string{"a/../b"}, nil, []string{`"a/../b"`, "'..'"}},
		{"a prefix", []string{"dir/"}, nil, []string{"names a prefix, not an object", "GetPrefix"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := b.Get(ctx, tc.keys, false)
			if err == nil {
				t.Fatal("Get succeeded")
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("the error does not match %v: %v", tc.is, err)
			}
			for _, w := range tc.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("the error lacks %q: %v", w, err)
				}
			}
		})
	}
	if _, err := b.GetRange(ctx, "missing", 0, 10); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("GetRange of a missing object: %v", err)
	}
	if _, err := b.GetRange(ctx, "there", -1, 10); err == nil || !strings.Contains(err.Error(), "must not be negative") {
		t.Errorf("GetRange from -1: %v", err)
	}
	if _, err := objects.New(nil, objects.Options{Root: "file:///tmp"}); err == nil || !strings.Contains(err.Error(), "not an S3 URL") {
		t.Errorf("a root that is not S3: %v", err)
	}

	// A read pinned to a version that is no longer there fails, naming
	// the change (a large object replaced between two of its parts).
	conn, err := s3.NewConn(ctx, s3.Options{})
	if err != nil {
		t.Fatal(err)
	}
	key := strings.TrimPrefix(root, "s3://"+bucket+"/") + "/there"
	if _, _, err := conn.Open(ctx, bucket, key, 0, 1, `"an-older-version"`); !errors.Is(err, objects.ErrChanged) {
		t.Errorf("a read pinned to another version: %v, want ErrChanged", err)
	}
	body, info, err := conn.Open(ctx, bucket, key, 0, 1, "")
	if err != nil {
		t.Fatal(err)
	}
	body.Close()
	if body, _, err := conn.Open(ctx, bucket, key, 0, 1, info.ETag); err != nil {
		t.Errorf("a read pinned to the current version: %v", err)
	} else {
		body.Close()
	}

	t.Run("access denied", func(t *testing.T) {
		t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey+"-wrong")
		bad := newBulk(t, objects.Options{Root: root})
		for name, call := range map[string]func() error{
			"get":  func() error { _, err := bad.Get(ctx, []string{"there"}, false); return err },
			"put":  func() error { _, err := bad.Put(ctx, []objects.Put{{Key: "new", Data: []byte("y")}}); return err },
			"list": func() error { _, err := bad.List(ctx, ""); return err },
		} {
			err := call()
			if !errors.Is(err, objects.ErrAccessDenied) || !strings.Contains(err.Error(), "check the AWS credentials") || !strings.Contains(err.Error(), root) {
				t.Errorf("%s with a wrong secret key: %v", name, err)
			}
		}
	})
}
