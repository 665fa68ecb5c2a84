package ui

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	_ "stepwise.dev/stepwise/backend/s3"      // the team's datastore
	_ "stepwise.dev/stepwise/backend/service" // and metadata service
	"stepwise.dev/stepwise/client"
	"stepwise.dev/stepwise/internal/datastore/s3"
	"stepwise.dev/stepwise/internal/metadata/postgres"
	"stepwise.dev/stepwise/internal/metadata/service"
	"stepwise.dev/stepwise/internal/testservers"
)

// TestTeamUI serves the UI over the team set-up, a real MinIO and the
// metadata service on PostgreSQL with a token: it asks for the token, and
// shows a run, a task's log, card and artifact read from S3.
func TestTeamUI(t *testing.T) {
	ctx := context.Background()
	db, err := postgres.Open(ctx, testservers.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	api := httptest.NewServer(service.NewHandler(db, service.Options{Tokens: []string{"team-secret"}}))
	t.Cleanup(api.Close)
	minio := testservers.MinIO(t)
	ds := fmt.Sprintf("s3://stepwise-ui/t%d", os.Getpid())
	for k, v := range map[string]string{"STEPWISE_METADATA": api.URL, "STEPWISE_TOKEN": "team-secret", "STEPWISE_DATASTORE": ds,
		"AWS_ACCESS_KEY_ID": minio.AccessKey, "AWS_SECRET_ACCESS_KEY": minio.SecretKey, "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL_S3": minio.Endpoint} {
		t.Setenv(k, v)
	}
	b, err := s3.New(ctx, ds, s3.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.CreateBucket(ctx); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	done := filepath.Join(dir, "done")
	if err := os.WriteFile(done, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(fixture.bins, "uiflow"), "run", "--wait", done)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("uiflow on the team set-up: %v\n%s", err, out)
	}

	global := client.Global
	c, err := client.Open(ctx, client.Options{Namespace: &global})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	run := latest(t, c, "UIFlow")
	s, err := New(c, Options{Token: "team-secret"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httpServer(t, s)
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar}
	if status, body := get(t, hc, srv+"/runs/"+run.Pathspec()); status != 200 || !strings.Contains(body, `name="token"`) {
		t.Fatalf("without the token the run page gives %d:\n%.400s", status, body)
	}
	resp, err := hc.PostForm(srv+"/login", url.Values{"token": {"team-secret"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	base := srv + "/runs/" + run.Pathspec()
	for _, tt := range []struct{ path, says string }{
		{"", `class="node succeeded" data-step="follow"`},
		{"/follow/0", "tick 0"},
		{"/start/0/cards/0/main", "&lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt;"},
		{"/start/0", "too large to show here"},
	} {
		status, body := get(t, hc, base+tt.path)
		if status != 200 || !strings.Contains(body, tt.says) || strings.Contains(body, "team-secret") {
			t.Errorf("%s: status %d, want %q (and never the token):\n%.1500s", tt.path, status, tt.says, body)
		}
	}
	resp, err = hc.Get(base + "/start/0/artifacts/Big")
	if err != nil {
		t.Fatal(err)
	}
	n, _ := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || n < 1<<20 {
		t.Errorf("the artifact from S3: status %d, %d bytes", resp.StatusCode, n)
	}
}
