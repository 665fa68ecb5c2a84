package stepwise_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"stepwise.dev/stepwise"
	"stepwise.dev/stepwise/client"
)

// Bulky writes objects with stepwise.Objects in start and reads them back
// in fetch, with the run's S3 settings and its default root.
type Bulky struct {
	URLs     []string          // what start wrote
	Sums     map[string]string // key -> SHA-256, read to memory
	FileSums map[string]string // key -> SHA-256, read to temporary files
	Range    []byte            // bytes of the big object across a part boundary
	Cleaned  bool              // Close removed the temporary files
}

func (f *Bulky) Graph(g *stepwise.Graph) {
	g.Step(f.Start).Next(f.Fetch)
	g.Step(f.Fetch).Next(f.End)
	g.Step(f.End)
}

const bulkyPart = 5 << 20

// bulkyContent is the content of object i; object -1 is the big one.
func bulkyContent(i int) []byte {
	if i < 0 {
		b := make([]byte, 3*bulkyPart+12345)
		r := rand.New(rand.NewPCG(1, 2))
		for j := range b {
			b[j] = byte(r.Uint32())
		}
		return b
	}
	return []byte(strings.Repeat(fmt.Sprintf("object %d;", i), 10+i))
}

func sum(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }

func (f *Bulky) Start(ctx context.Context) error {
	s, err := stepwise.Objects(ctx, &stepwise.ObjectsOptions{PartSize: bulkyPart})
	if err != nil {
		return err
	}
	defer s.Close()
	puts := []stepwise.PutObject{{Key: "in/big", Data: bulkyContent(-1)}}
	for i := range 40 {
		puts = append(puts, stepwise.PutObject{Key: fmt.Sprintf("in/small-%02d", i), Data: bulkyContent(i)})
	}
	f.URLs, err = s.Put(ctx, puts...)
	return err
}

func (f *Bulky) Fetch(ctx context.Context) error {
	s, err := stepwise.Objects(ctx, &stepwise.ObjectsOptions{PartSize: bulkyPart, Concurrency: 8})
	if err != nil {
		return err
	}
	objs, err := s.GetPrefix(ctx, "in/")
	if err != nil {
		return err
	}
	f.Sums = map[string]string{}
	for _, o := range objs {
		f.Sums[o.Key] = sum(o.Data)
	}
	files, err := s.DownloadPrefix(ctx, "in/")
	if err != nil {
		return err
	}
	f.FileSums = map[string]string{}
	for _, o := range files {
		data, err := os.ReadFile(o.Path)
		if err != nil {
			return err
		}
		f.FileSums[o.Key] = sum(data)
	}
	if f.Range, err = s.GetRange(ctx, "in/big", bulkyPart-3, 10); err != nil {
		return err
	}
	if err := s.Close(); err != nil {
		return err
	}
	_, err = os.Stat(files[0].Path)
	f.Cleaned = errors.Is(err, os.ErrNotExist)
	return nil
}

func (f *Bulky) End(context.Context) error { return nil }

func TestObjectsInSteps(t *testing.T) {
	ctx := context.Background()
	testEnv(t, "ann")
	ds := teamEnv(t)
	t.Setenv("STEPWISE_DATASTORE", ds)
	run, err := stepwise.Run(ctx, &Bulky{}, &stepwise.RunOptions{Datastore: ds})
	if err != nil {
		t.Fatal(err)
	}
	end, err := run.EndTask(ctx)
	if err != nil {
		t.Fatal(err)
	}
	urls, err := client.Get[[]string](ctx, end, "URLs")
	if err != nil {
		t.Fatal(err)
	}
	root := ds + "/objects/Bulky/" + run.ID + "/"
	if len(urls) != 41 || urls[0] != root+"in/big" {
		t.Errorf("Put wrote %d objects, the first at %v; want 41, the first at %s", len(urls), urls[:min(len(urls), 1)], root+"in/big")
	}
	want := map[string]string{"in/big": sum(bulkyContent(-1))}
	for i := range 40 {
		want[fmt.Sprintf("in/small-%02d", i)] = sum(bulkyContent(i))
	}
	for _, field := range []string{"Sums", "FileSums"} {
		got, err := client.Get[map[string]string](ctx, end, field)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Errorf("%s has %d objects, want %d", field, len(got), len(want))
		}
		for k, w := range want {
			if got[k] != w {
				t.Errorf("%s[%s] = %s, want %s", field, k, got[k], w)
			}
		}
	}
	rng, err := client.Get[[]byte](ctx, end, "Range")
	if big := bulkyContent(-1); err != nil || string(rng) != string(big[bulkyPart-3:bulkyPart+7]) {
		t.Errorf("GetRange across the part boundary = %x, %v; want %x", rng, err, big[bulkyPart-3:bulkyPart+7])
	}
	if cleaned, err := client.Get[bool](ctx, end, "Cleaned"); err != nil || !cleaned {
		t.Errorf("the temporary files are still there after Close (%v)", err)
	}
}

// TestObjectsNeedsARoot: outside a run on S3, a relative key is refused
// with what to do.
func TestObjectsNeedsARoot(t *testing.T) {
	ctx := context.Background()
	s, err := stepwise.Objects(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Root() != "" {
		t.Errorf("Root() = %q outside a step, want none", s.Root())
	}
	_, err = s.Get(ctx, "data/x")
	if err == nil || !strings.Contains(err.Error(), "write s3://bucket/key or give a Root") {
		t.Errorf("a relative key without a root: %v", err)
	}
}
