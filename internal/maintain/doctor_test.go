package maintain

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"stepwise.dev/stepwise/internal/metadata/postgres"
	"stepwise.dev/stepwise/internal/metadata/service"
	"stepwise.dev/stepwise/internal/testservers"
)

// TestDoctor checks a team set-up as a new team has it: against a real
// MinIO whose bucket does not exist yet, and a metadata service that is
// not running; then with the bucket created, and a real service on
// PostgreSQL, first with a wrong token.
func TestDoctor(t *testing.T) {
	srv := testservers.MinIO(t)
	dir := t.TempDir()
	t.Setenv("STEPWISE_CONFIG", filepath.Join(dir, "missing-config.json"))
	t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_ENDPOINT_URL_S3", srv.Endpoint)
	bucket := fmt.Sprintf("team-%d", time.Now().UnixNano())
	t.Setenv("STEPWISE_DATASTORE", "s3://"+bucket+"/stepwise")
	port, err := testservers.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	missing := fmt.Sprintf("http://127.0.0.1:%d", port)
	t.Setenv("STEPWISE_METADATA", missing)
	t.Setenv("STEPWISE_TOKEN", "")

	store, err := postgres.Open(context.Background(), testservers.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	svc := httptest.NewServer(service.NewHandler(store, service.Options{Tokens: []string{"team-token"}, Logger: slog.New(slog.DiscardHandler)}))
	defer svc.Close()

	for _, tc := range []struct {
		name  string
		env   map[string]string
		args  []string
		code  int
		lines []string // regular expressions, each matching a line
	}{
		{"nothing set up", nil, nil, 1, []string{
			`^Settings: datastore s3://` + bucket + `/stepwise \(env STEPWISE_DATASTORE\), metadata ` + missing,
			`^FAIL  datastore s3://` + bucket + `/stepwise: the bucket ` + bucket + ` does not exist; create it with 'stepwise doctor --create-bucket'`,
			`^FAIL  metadata ` + missing + `: not reachable: .*connection refused; start the service \('stepwise service'\) or fix the metadata setting`,
		}},
		{"bucket created", nil, []string{"--create-bucket"}, 1, []string{
			`^ok    datastore s3://` + bucket + `/stepwise: created the bucket ` + bucket + `$`,
			`^ok    datastore s3://` + bucket + `/stepwise: reachable and writable \(put, get and delete of a probe object\)$`,
			`^FAIL  metadata ` + missing + `: not reachable`,
		}},
		{"wrong token", map[string]string{"STEPWISE_METADATA": svc.URL, "STEPWISE_TOKEN": "guess"}, nil, 1, []string{
			`^ok    datastore s3://` + bucket + `/stepwise: the bucket ` + bucket + ` exists$`,
			`^ok    metadata ` + svc.URL + `: the service answers /healthz$`,
			`^FAIL  metadata ` + svc.URL + `: the service refused the token \(GET .*/v1/runs\?limit=1: 401 Unauthorized\): the token set is not one it accepts; set the token the service was given`,
		}},
		{"all well", map[string]string{"STEPWISE_METADATA": svc.URL, "STEPWISE_TOKEN": "team-token"}, nil, 0, []string{
			`^ok    metadata ` + svc.URL + `: an authenticated read works$`,
			`^ok    history: the metadata store knows the datastore's runs$`,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			start := time.Now()
			out, errOut, code := maint(t, append([]string{"doctor"}, tc.args...)...)
			if code != tc.code {
				t.Errorf("exit %d, want %d", code, tc.code)
			}
			for _, re := range tc.lines {
				if !regexp.MustCompile(`(?m)` + re).MatchString(out) {
					t.Errorf("no line matches %s", re)
				}
			}
			if tc.code == 1 && !strings.Contains(errOut, "checks failed; fix what each FAIL line says") {
				t.Errorf("stderr: %s", errOut)
			}
			if t.Failed() {
				t.Logf("doctor %s (%s):\n%s%s", strings.Join(tc.args, " "), time.Since(start).Round(time.Millisecond), out, errOut)
			}
		})
	}

	// A local datastore: its directory is created, and the disk's free
	// space shown.
	t.Setenv("STEPWISE_DATASTORE", filepath.Join(dir, "ds"))
	t.Setenv("STEPWISE_METADATA", "local")
	out, errOut, code := maint(t, "doctor")
	if code != 0 || !regexp.MustCompile(`(?m)^ok    datastore .*/ds: reachable and writable .*; [0-9.]+ [KMGT]?i?B free on its disk$`).MatchString(out) ||
		!strings.Contains(out, "metadata.db opens for reading and writing") {
		t.Errorf("doctor of a local set-up: exit %d\n%s%s", code, out, errOut)
	}
}
