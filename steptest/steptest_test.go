package steptest_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"stepwise.dev/stepwise"
	"stepwise.dev/stepwise/client"
	"stepwise.dev/stepwise/steptest"

	_ "stepwise.dev/stepwise/backend/sqlite"
)

func TestMain(m *testing.M) { steptest.Main(m, &Squares{}, &Hello{}) }

// TestIsolateKeepsTheUsersSettingsOut: with a config file that points at a
// team's service, an isolated test still runs into its own directory.
func TestIsolateKeepsTheUsersSettingsOut(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "config.json")
	os.WriteFile(cfg, []byte(`{"datastore": "s3://team/prod", "metadata": "https://metadata.example.com", "token": "secret"}`), 0o600)
	t.Setenv("STEPWISE_CONFIG", cfg)
	ds := steptest.Isolate(t)
	ctx := context.Background()
	run, err := stepwise.Run(ctx, &Squares{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(run.Tags, " "), "user:test") {
		t.Errorf("tags %v, want user:test", run.Tags)
	}
	if _, err := os.Stat(filepath.Join(ds, "metadata.db")); err != nil {
		t.Errorf("the run was not recorded in the isolated directory: %v", err)
	}
	end, _ := run.EndTask(ctx)
	if sum, _ := client.Get[int](ctx, end, "Sum"); sum != 14 {
		t.Errorf("sum %d", sum)
	}
}

func TestStepReturnsPanicsAndErrors(t *testing.T) {
	ctx := context.Background()
	f := &Squares{}
	if err := steptest.Step(ctx, f.Each); err == nil || !strings.Contains(err.Error(), "takes a int") {
		t.Errorf("missing item: %v", err)
	}
	if err := steptest.Step(ctx, f.Start, 1); err == nil || !strings.Contains(err.Error(), "takes no item") {
		t.Errorf("extra item: %v", err)
	}
	if err := steptest.Step(ctx, func(context.Context) error { panic("boom") }); err == nil || !strings.Contains(err.Error(), "panicked: boom") {
		t.Errorf("panic: %v", err)
	}
	if err := steptest.Step(ctx, "f.Start"); err == nil {
		t.Error("a string accepted as a step")
	}
}
