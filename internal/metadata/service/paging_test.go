package service

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"

	"stepwise.dev/stepwise/internal/metadata"
	"stepwise.dev/stepwise/internal/metadata/postgres"
	"stepwise.dev/stepwise/internal/testservers"
)

// seedRuns records n runs of flow in one statement, one second apart, each
// with the system tag user:ann and two params, and, when tasks > 0, that
// many tasks in the newest run, each with an attempt and an artifact.
func seedRuns(t testing.TB, dsn, flow string, n, tasks int) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, `
WITH r AS (
	INSERT INTO runs (flow, id, status, username, params, started, ended, code_binary_sha256)
	SELECT $1, (1700000000000000 + i)::text, 'succeeded', 'ann', '{"alpha": "0.5", "epochs": "10"}',
		1735689600000000000 + i * 1000000000::bigint, 1735689660000000000 + i * 1000000000::bigint, repeat('ab', 32)
	FROM generate_series(1, $2) AS i
	RETURNING pk
)
INSERT INTO run_tags (run, tag, system) SELECT pk, 'user:ann', true FROM r`, flow, n)
	if err != nil {
		t.Fatal(err)
	}
	if tasks > 0 {
		_, err = conn.Exec(ctx, `
WITH k AS (
	INSERT INTO tasks (run, step, id, ord, status, started, ended, attempt)
	SELECT r.pk, 'work', i::text, lpad(length(i::text)::text, 3, '0') || i, 'succeeded', r.started + i, r.started + i + 1000, 0
	FROM runs r, generate_series(0, $3 - 1) AS i WHERE r.flow = $1 AND r.id = (1700000000000000 + $2)::text
	RETURNING pk, started, ended
), a AS (
	INSERT INTO attempts (task, n, status, started, ended) SELECT pk, 0, 'succeeded', started, ended FROM k
)
INSERT INTO artifacts (task, name, type, key, size) SELECT pk, 'x', 'int', 'sha256:' || repeat('0', 64), 8 FROM k`, flow, n, tasks)
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := conn.Exec(ctx, `ANALYZE`); err != nil {
		t.Fatal(err)
	}
}

// TestPaging checks that every listing of the service answers a bounded
// page and a cursor, and that the client pages through all of it.
func TestPaging(t *testing.T) {
	dsn := testservers.NewDatabase(t)
	store, err := postgres.Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	const runs, tasks = 2500, 1200
	seedRuns(t, dsn, "Big", runs, tasks)
	for i := range 150 {
		if err := store.CreateRun(t.Context(), &metadata.Run{Flow: fmt.Sprintf("F%03d", i), ID: "1"}); err != nil {
			t.Fatal(err)
		}
	}
	var requests atomic.Int32
	h := NewHandler(store, Options{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		h.ServeHTTP(w, r)
	}))
	defer srv.Close()

	get := func(path string) (items int, next string) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct {
			Runs, Tasks []json.RawMessage
			Flows       []string
			Next        string
		}
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d, %v", path, resp.StatusCode, err)
		}
		return len(body.Runs) + len(body.Tasks) + len(body.Flows), body.Next
	}
	for _, c := range []struct {
		path  string
		total int
	}{
		{"/v1/runs", runs + 150},
		{"/v1/flows/Big/runs", runs},
		{"/v1/flows", 151},
		{fmt.Sprintf("/v1/flows/Big/runs/%d/tasks", 1700000000000000+runs), tasks},
	} {
		// No limit: the default page.
		n, next := get(c.path)
		if n != DefaultPageSize || next == "" {
			t.Errorf("GET %s: %d items, next %q; want a page of %d and a cursor", c.path, n, next, DefaultPageSize)
		}
		// More than the most: the most.
		if n, _ := get(c.path + "?limit=1000000"); n != min(MaxPageSize, c.total) {
			t.Errorf("GET %s?limit=1000000: %d items, want %d", c.path, n, min(MaxPageSize, c.total))
		}
		// Following the cursors reaches every item once, and the last page
		// has no cursor.
		total, pages := 0, 0
		for cur := ""; ; pages++ {
			q := "?limit=700"
			if cur != "" {
				q += "&cursor=" + cur
			}
			n, next := get(c.path + q)
			total += n
			if next == "" || pages > c.total {
				break
			}
			cur = next
		}
		if total != c.total {
			t.Errorf("GET %s page by page: %d items, want %d", c.path, total, c.total)
		}
	}

	c, err := NewClient(srv.URL, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	for _, l := range []struct {
		name     string
		list     func() (int, error)
		want     int
		requests int32
	}{
		{"ListRuns()", func() (int, error) { r, err := c.ListRuns(ctx, metadata.RunFilter{}); return len(r), err }, runs + 150, (runs+150)/clientPageSize + 1},
		{"ListRuns(Big, limit 1)", func() (int, error) {
			r, err := c.ListRuns(ctx, metadata.RunFilter{Flow: "Big", Limit: 1})
			return len(r), err
		}, 1, 1},
		{"ListRuns(Big, limit 1200)", func() (int, error) {
			r, err := c.ListRuns(ctx, metadata.RunFilter{Flow: "Big", Limit: 1200})
			return len(r), err
		}, 1200, 3},
		{"ListFlows", func() (int, error) { f, err := c.ListFlows(ctx); return len(f), err }, 151, 1},
		{"ListTasks", func() (int, error) {
			k, err := c.ListTasks(ctx, "Big", fmt.Sprint(1700000000000000+runs))
			return len(k), err
		}, tasks, 3},
	} {
		requests.Store(0)
		n, err := l.list()
		if err != nil || n != l.want || requests.Load() != l.requests {
			t.Errorf("%s: %d, %v in %d requests; want %d in %d", l.name, n, err, requests.Load(), l.want, l.requests)
		}
	}
	// The pages of the client are those of the store.
	all, err := store.ListRuns(ctx, metadata.RunFilter{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.ListRuns(ctx, metadata.RunFilter{})
	if err != nil || len(got) != len(all) {
		t.Fatalf("ListRuns through the service: %d runs, %v; want %d", len(got), err, len(all))
	}
	for i := range all {
		if got[i].Flow != all[i].Flow || got[i].ID != all[i].ID {
			t.Fatalf("run %d: %s/%s through the service, %s/%s from the store", i, got[i].Flow, got[i].ID, all[i].Flow, all[i].ID)
		}
	}
	if !strings.HasPrefix(runCursor(all[0].Key()), "ey") {
		t.Errorf("cursor %q is not base64 of JSON", runCursor(all[0].Key()))
	}
}
