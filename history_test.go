package stepwise_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"stepwise.dev/stepwise"
	"stepwise.dev/stepwise/client"
	"stepwise.dev/stepwise/internal/cli"
	"stepwise.dev/stepwise/internal/maintain"
)

// TestEmptiedMetadataIsRefusedThenRebuilt: an emptied metadata.db does not
// pass for a new store while the datastore holds runs; rebuild-metadata
// brings the runs back, with the tags added after they ran.
func TestEmptiedMetadataIsRefusedThenRebuilt(t *testing.T) {
	ds, _ := testEnv(t, "ann")
	ctx := context.Background()
	run, err := stepwise.Run(ctx, &Flaky{}, &stepwise.RunOptions{Datastore: ds})
	if err != nil {
		t.Fatal(err)
	}
	if err := run.AddTags(ctx, "golden"); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"metadata.db", "metadata.db-wal", "metadata.db-shm"} {
		os.Remove(filepath.Join(ds, f))
	}
	os.WriteFile(filepath.Join(ds, "metadata.db"), nil, 0o644)

	_, err = client.Open(ctx, client.Options{Datastore: ds, Metadata: "local"})
	if err == nil || !strings.Contains(err.Error(), "rebuild-metadata") {
		t.Fatalf("opening an emptied metadata store over a datastore with runs: %v; want a refusal naming rebuild-metadata", err)
	}
	var out, errOut bytes.Buffer
	if code := cli.Run(ctx, cli.Options{Prog: "stepwise", Commands: maintain.Commands}, []string{"rebuild-metadata", "--datastore", ds, "--metadata", "local"}, &out, &errOut); code != 0 {
		t.Fatalf("rebuild-metadata: exit %d\n%s%s", code, out.String(), errOut.String())
	}
	c, err := client.Open(ctx, client.Options{Datastore: ds, Metadata: "local", Namespace: new(client.Global)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got, err := c.Flow("Flaky").Run(ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != client.Succeeded || !slices.Contains(got.Tags, "golden") || !slices.Contains(got.Tags, "user:ann") {
		t.Errorf("rebuilt run %+v; want succeeded, tagged golden and user:ann", got)
	}
	end, err := got.EndTask(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Get[int](ctx, end, "Out"); err != nil {
		t.Errorf("artifact of the rebuilt run: %v", err)
	}
}
