package service

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"strings"
	"testing"

	"stepwise.dev/stepwise/internal/datastore"
	"stepwise.dev/stepwise/internal/datastore/s3"
	"stepwise.dev/stepwise/internal/testservers"
)

// The service signs URLs of flow binaries stored in its datastore (real
// MinIO), which fetch the binary with a plain GET; it says what is wrong
// for a bad hash, a binary it does not have, and when it has no datastore.
func TestCodeURL(t *testing.T) {
	ctx := context.Background()
	srv := testservers.MinIO(t)
	t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
	t.Setenv("AWS_REGION", "us-east-1")
	b, err := s3.New(ctx, "s3://stepwise-code-test/p", s3.Options{Endpoint: srv.Endpoint})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.CreateBucket(ctx); err != nil {
		t.Fatal(err)
	}
	bin := []byte("\x7fELF a flow binary")
	h := sha256.Sum256(bin)
	sum := hex.EncodeToString(h[:])
	if err := b.Put(ctx, datastore.CodeKey(sum), bytes.NewReader(bin), int64(len(bin))); err != nil {
		t.Fatal(err)
	}
	s := newStack(t, nil, Options{Code: StoredCode{Data: datastore.New(b)}})
	none := newStack(t, nil, Options{})
	missing := strings.Repeat("0", 64)
	for _, c := range []struct {
		name   string
		st     *stack
		path   string
		auth   []string
		status int
		says   string
	}{
		{"bad hash", s, "/v1/code/abc/url", nil, http.StatusBadRequest, "64 lowercase hex digits"},
		{"upper case", s, "/v1/code/" + strings.ToUpper(sum) + "/url", nil, http.StatusBadRequest, "64 lowercase hex digits"},
		{"no such binary", s, "/v1/code/" + missing + "/url", nil, http.StatusNotFound, "deploy the flow again"},
		{"no datastore", none, "/v1/code/" + sum + "/url", nil, http.StatusNotFound, "--datastore"},
		{"no token", s, "/v1/code/" + sum + "/url", []string{"-"}, http.StatusUnauthorized, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := c.st.request(t, http.MethodGet, c.path, "", c.auth...)
			if r.status != c.status || !strings.Contains(r.err.Error, c.says) {
				t.Errorf("status %d %q, want %d saying %q", r.status, r.err.Error, c.status, c.says)
			}
		})
	}
	r := s.request(t, http.MethodGet, "/v1/code/"+sum+"/url", "")
	if r.status != http.StatusOK || r.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("status %d, header %v: %s", r.status, r.header, r.body)
	}
	resp, err := http.Get(string(r.body))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Equal(got, bin) {
		t.Errorf("GET of the signed URL: %s, %q", resp.Status, got)
	}
}
