package ui

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"stepwise.dev/stepwise/client"
	"stepwise.dev/stepwise/internal/cli"
)

func get(t *testing.T, hc *http.Client, u string) (int, string) {
	t.Helper()
	resp, err := hc.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func latest(t *testing.T, c *client.Client, flow string) *client.Run {
	t.Helper()
	r, err := c.Flow(flow).LatestRun(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestBadInput asks for what does not exist (404, saying what) and for
// malformed addresses (400).
func TestBadInput(t *testing.T) {
	c, srv := openUI(t, fixture.dir)
	run := "/runs/" + latest(t, c, "Foreach").Pathspec()
	tests := []struct {
		path   string
		status int
		says   string
	}{
		{"/runs/Nope/1234", 404, "run Nope/1234 does not exist"},
		{"/runs/Foreach/999", 404, "run Foreach/999 does not exist"},
		{run + "/nostep/0", 404, "/nostep/0 does not exist"},
		{run + "/join/77", 404, "/join/77 does not exist"},
		{run + "/join/0/artifacts/Nope", 404, "has no artifact &#34;Nope&#34;"},
		{run + "/join/0/cards/0/nosuch", 404, "has no card &#34;nosuch&#34;"},
		{run + "/end/0/logs/5/stdout", 404, "has no attempt 5"},
		{"/no/such/page", 404, "there is no page /no/such/page"},
		{"/runs/Fo%20o/12", 400, "flow name"},
		{"/runs/Foreach/abc", 400, "run id"},
		{run + "/Join/0", 400, "step name"},
		{run + "/join/0/cards/0/Main", 400, "card name"},
		{run + "/end/0/logs/0/stdin", 400, "use stdout or stderr"},
		{run + "/end/0/logs/x/stdout", 400, "attempt"},
		{run + "/end/0/logs/0/stdout/events?off=-1", 400, "byte offset"},
		{"/?status=bogus", 400, "use running, succeeded or failed"},
		{"/?since=yesterday", 400, "write 2026-01-31"},
		{"/?n=0", 400, "use 1 to 1000"},
		{"/?after=Foreach", 400, "want Flow/RunID"},
		{"/?tag=" + url.QueryEscape("<script>"), 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			status, body := get(t, srv.Client(), srv.URL+tt.path)
			if status != tt.status || !strings.Contains(body, tt.says) {
				t.Errorf("status %d, want %d saying %q:\n%.600s", status, tt.status, tt.says, body)
			}
			if strings.Contains(body, "<script>") {
				t.Errorf("the page echoes markup:\n%.600s", body)
			}
		})
	}
}

// TestPaging walks the runs list two at a time.
func TestPaging(t *testing.T) {
	c, srv := openUI(t, fixture.dir)
	all, err := c.Runs(context.Background(), client.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	rowRE := regexp.MustCompile(`data-run="([^"]+)"`)
	nextRE := regexp.MustCompile(`id="next" href="([^"]+)"`)
	var seen []string
	for page := "/?n=2"; page != ""; {
		status, body := get(t, srv.Client(), srv.URL+strings.ReplaceAll(page, "&amp;", "&"))
		if status != 200 {
			t.Fatalf("%s: status %d\n%s", page, status, body)
		}
		rows := rowRE.FindAllStringSubmatch(body, -1)
		if len(rows) > 2 {
			t.Fatalf("%s: %d runs on a page of 2", page, len(rows))
		}
		for _, r := range rows {
			seen = append(seen, r[1])
		}
		page = ""
		if m := nextRE.FindStringSubmatch(body); m != nil {
			page = m[1]
		}
	}
	var want []string
	for _, r := range all {
		want = append(want, r.Pathspec())
	}
	if strings.Join(seen, " ") != strings.Join(want, " ") {
		t.Errorf("pages of 2 list %q, want %q", seen, want)
	}
}

// TestToken: with a token, every page asks for it, a wrong one is
// refused, and the token is never on a page.
func TestToken(t *testing.T) {
	global := client.Global
	c, err := client.Open(context.Background(), client.Options{Datastore: filepath.Join(fixture.dir, ".stepwise"), Namespace: &global})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const token = "s3cret-token-value"
	s, err := New(c, Options{Token: token})
	if err != nil {
		t.Fatal(err)
	}
	srv := httpServer(t, s)
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar}
	status, body := get(t, hc, srv+"/")
	if status != 200 || !strings.Contains(body, `name="token"`) {
		t.Fatalf("without a session / gives %d, want the sign-in form:\n%s", status, body)
	}
	for _, tt := range []struct {
		token  string
		status int
	}{{"wrong", http.StatusUnauthorized}, {token, http.StatusOK}} {
		resp, err := hc.PostForm(srv+"/login", url.Values{"token": {tt.token}})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.status || bytes.Contains(b, []byte(token)) {
			t.Errorf("sign in with %q: status %d, want %d (and the token never shown)", tt.token, resp.StatusCode, tt.status)
		}
	}
	status, body = get(t, hc, srv+"/")
	if status != 200 || !strings.Contains(body, `id="runs"`) || strings.Contains(body, token) {
		t.Errorf("signed in, / gives %d:\n%.400s", status, body)
	}
	for _, ck := range jar.Cookies(mustURL(t, srv)) {
		if strings.Contains(ck.Value, token) {
			t.Error("the session cookie holds the token")
		}
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestCardGetEveryExample writes the card of each example's end task (and
// the foreach join's own card) with `card get`, and opens each file in
// Chromium: the card shows, and the page loaded nothing.
func TestCardGetEveryExample(t *testing.T) {
	out := t.ArtifactDir()
	ctx := browser(t)
	for _, tt := range []struct{ spec, shows string }{
		{"BranchJoin/latest/end/0", "Parameters"},
		{"Foreach/latest/join/0", "Squares of 1..12"},
		{"Foreach/latest/end/0", "Artifacts"},
		{"Train/latest/end/0", "Timing"},
		{"Train/latest/fit/0", "Epoch 20 of 20"},
		{"Grid/latest/end/0", "Graph"},
	} {
		t.Run(tt.spec, func(t *testing.T) {
			file := filepath.Join(out, strings.ReplaceAll(tt.spec, "/", "-")+".html")
			var stdout, stderr bytes.Buffer
			if code := cli.Run(context.Background(), cli.Options{Prog: "stepwise", Commands: cli.Inspect},
				[]string{"card", "get", "--datastore", filepath.Join(fixture.dir, ".stepwise"), "-o", file, tt.spec}, &stdout, &stderr); code != 0 {
				t.Fatalf("card get %s: exit %d\n%s%s", tt.spec, code, stdout.String(), stderr.String())
			}
			if _, err := os.Stat(file); err != nil {
				t.Fatal(err)
			}
			do(t, ctx, chromedp.Navigate("file://"+file))
			waitFor(t, ctx, "the card", `document.querySelector(".card") !== null`)
			if text := eval[string](t, ctx, `document.body.innerText`); !strings.Contains(text, tt.shows) {
				t.Errorf("the card of %s does not show %q:\n%s", tt.spec, tt.shows, text)
			}
			if n := eval[int](t, ctx, `performance.getEntriesByType("resource").length`); n != 0 {
				t.Errorf("the card of %s loaded %d resources; it must need none", tt.spec, n)
			}
		})
	}
}

// TestTagsFromAnotherSite: a form on another site cannot change a run's
// tags through a visitor's browser.
func TestTagsFromAnotherSite(t *testing.T) {
	c, srv := openUI(t, fixture.dir)
	run := latest(t, c, "Foreach")
	req, err := http.NewRequest("POST", srv.URL+"/runs/"+run.Pathspec()+"/tags", strings.NewReader("add=evil"))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "http://attacker.invalid")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	after, err := c.Flow(run.Flow).Run(context.Background(), run.ID)
	if resp.StatusCode != http.StatusForbidden || err != nil || strings.Contains(strings.Join(after.Tags, " "), "evil") {
		t.Errorf("a cross-site tag change: status %d, tags %v (%v)", resp.StatusCode, after.Tags, err)
	}
}

// TestFailedTask shows a failed task's error, on its page and in its
// cards, as text.
func TestFailedTask(t *testing.T) {
	c, srv := openUI(t, fixture.dir)
	runs, err := c.Flow("UIFlow").Runs(context.Background(), client.Filter{Status: client.Failed})
	if err != nil || len(runs) != 1 {
		t.Fatalf("failed UIFlow runs: %v, %v", runs, err)
	}
	base := srv.URL + "/runs/" + runs[0].Pathspec() + "/end/0"
	const escaped = "&lt;b&gt;bad&lt;/b&gt; &lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt;"
	for _, tt := range []struct{ path, says string }{
		{"", `id="error-0"`},
		{"/cards/0/main", "About to fail"},
		{"/cards/0/default", "Timing"},
	} {
		status, body := get(t, srv.Client(), base+tt.path)
		if status != 200 || !strings.Contains(body, tt.says) || !strings.Contains(body, escaped) || strings.Contains(body, "<b>bad") || strings.Contains(body, "<script>document") {
			t.Errorf("%s: status %d; want the error escaped and %q:\n%.3000s", base+tt.path, status, tt.says, body)
		}
	}
}

// TestResumedRun: the page of a resumed run links the run it resumed, and
// a task the resume cloned shows the cards of the task it was cloned from.
func TestResumedRun(t *testing.T) {
	c, srv := openUI(t, fixture.dir)
	run := latest(t, c, "Foreach")
	if run.Origin == "" {
		t.Fatalf("the latest Foreach run %s is not the resumed one", run.Pathspec())
	}
	status, body := get(t, srv.Client(), srv.URL+"/runs/"+run.Pathspec())
	if want := `<a id="origin" href="/runs/Foreach/` + run.Origin + `">`; status != 200 || !strings.Contains(body, want) {
		t.Errorf("the resumed run's page (status %d) lacks %s", status, want)
	}
	if status, body := get(t, srv.Client(), srv.URL+"/runs/"+run.Pathspec()+"/start/0"); status != 200 || !strings.Contains(body, `<svg class="chart"`) {
		t.Errorf("the start task's Items (a slice of numbers) are not drawn (status %d)", status)
	}
	status, body = get(t, srv.Client(), srv.URL+"/runs/"+run.Pathspec()+"/join/0")
	if status != 200 || !strings.Contains(body, "/join/0/cards/0/main") || !strings.Contains(body, `id="cloned-from" href="/runs/Foreach/`+run.Origin+`/join/0"`) {
		t.Errorf("the cloned join (status %d) does not list the card of the join it was cloned from", status)
	}
}

// TestDefaultNamespace: the runs page starts filtered by the namespace
// the UI was given, until the filter is changed.
func TestDefaultNamespace(t *testing.T) {
	global := client.Global
	c, err := client.Open(context.Background(), client.Options{Datastore: filepath.Join(fixture.dir, ".stepwise"), Namespace: &global})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := New(c, Options{Namespace: "user:nobody"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httpServer(t, s)
	for _, tt := range []struct {
		path string
		runs bool
	}{{"/", false}, {"/?ns=", true}, {"/?ns=user:ann", true}} {
		_, body := get(t, http.DefaultClient, srv+tt.path)
		if got := strings.Contains(body, "data-run="); got != tt.runs {
			t.Errorf("%s lists runs: %v, want %v", tt.path, got, tt.runs)
		}
	}
}

// TestCardVersionsPage: the task page lists the versions of a card that
// has more than one, and each is shown on its own; a version not kept is a
// 404 that says which are, a malformed one a 400.
func TestCardVersionsPage(t *testing.T) {
	c, srv := openUI(t, fixture.dir)
	runs, err := c.Flow("UIFlow").Runs(context.Background(), client.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	var run *client.Run
	for _, r := range runs {
		if r.Params["rows"] == "500000" {
			run = r
		}
	}
	if run == nil {
		t.Fatalf("no UIFlow run with 500000 rows among %v", runs)
	}
	// Its follow step saved its progress card once while it ran, then for
	// the last time.
	base := srv.URL + "/runs/" + run.Pathspec() + "/follow/0"
	status, body := get(t, srv.Client(), base)
	if status != 200 || !strings.Contains(body, `<details class="versions" data-card="0/progress"><summary>2 versions</summary>`) ||
		!strings.Contains(body, `/follow/0/cards/0/progress?version=2" target="card"`) {
		t.Fatalf("the task page (status %d) does not list the progress card's 2 versions:\n%s", status, body)
	}
	for _, tt := range []struct {
		query  string
		status int
		says   string
		not    string
	}{
		{"", 200, "version 2", "before its final version"},
		{"?version=2", 200, "version 2", "before its final version"},
		{"?version=1", 200, "version 1", ""},
		{"?version=1", 200, "before its final version", ""},
		{"?version=3", 404, "has no version 3", ""},
		{"?version=3", 404, "keeps versions 1-2", ""},
		{"?version=0", 400, "card version &#34;0&#34;", ""},
		{"?version=x", 400, "use 1, 2, ...", ""},
	} {
		status, body := get(t, srv.Client(), base+"/cards/0/progress"+tt.query)
		if status != tt.status || !strings.Contains(body, tt.says) || (tt.not != "" && strings.Contains(body, tt.not)) {
			t.Errorf("card%s: status %d, want %d saying %q:\n%.2000s", tt.query, status, tt.status, tt.says, body)
		}
	}
}
