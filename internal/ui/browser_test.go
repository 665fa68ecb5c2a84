package ui

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	_ "stepwise.dev/stepwise/backend/sqlite" // the runs of the test, in .stepwise/
	"stepwise.dev/stepwise/client"
)

var update = flag.Bool("update", false, "copy the screenshots the README shows into docs/img")

// inReadme are the screenshots the README shows.
var inReadme = map[string]bool{"ui-run.png": true, "ui-task.png": true}

// The flows the tests watch are built once, and the finished runs made
// once, in TestMain: fixture holds them.
var fixture struct {
	bins string   // the built flows
	dir  string   // where they ran: .stepwise/ holds the runs
	env  []string // their environment
}

func TestMain(m *testing.M) {
	flag.Parse()
	code, err := setUp(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	os.RemoveAll(fixture.bins)
	os.RemoveAll(fixture.dir)
	os.Exit(code)
}

// setUp builds the examples and the test flow, runs them, and runs the
// tests.
func setUp(m *testing.M) (int, error) {
	var err error
	if fixture.bins, err = os.MkdirTemp("", "stepwise-ui-bins-"); err != nil {
		return 0, err
	}
	if fixture.dir, err = os.MkdirTemp("", "stepwise-ui-runs-"); err != nil {
		return 0, err
	}
	cmd := exec.Command("go", "build", "-o", fixture.bins+"/", "../../examples/foreach", "../../examples/branchjoin",
		"../../examples/linear", "../../examples/nested", "./testdata/uiflow")
	if out, err := cmd.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("building the flows: %v\n%s", err, out)
	}
	env := map[string]string{"STEPWISE_DATASTORE": "", "STEPWISE_METADATA": "", "STEPWISE_TOKEN": "",
		"STEPWISE_CONFIG": filepath.Join(fixture.dir, "no-config.json"), "STEPWISE_USER": "ann"}
	for k, v := range env {
		os.Setenv(k, v)
	}
	fixture.env = os.Environ()
	done := filepath.Join(fixture.dir, "done")
	if err := os.WriteFile(done, nil, 0o644); err != nil {
		return 0, err
	}
	failing := exec.Command(filepath.Join(fixture.bins, "uiflow"), "run", "--wait", done, "--fail", "<b>bad</b> <script>document.title='pwned'</script>")
	failing.Dir, failing.Env = fixture.dir, fixture.env
	if out, err := failing.CombinedOutput(); err == nil {
		return 0, fmt.Errorf("uiflow run --fail succeeded:\n%s", out)
	}
	for _, r := range [][]string{
		{"foreach", "run", "--n", "3"},
		{"foreach", "run", "--n", "12", "--tag", "pick"},
		{"foreach", "resume", "end"}, // of the run tagged pick: its join is cloned, with its card
		{"uiflow", "run", "--rows", "500000", "--wait", done},
		{"branchjoin", "run"}, {"linear", "run"}, {"nested", "run"},
	} {
		cmd := exec.Command(filepath.Join(fixture.bins, r[0]), r[1:]...)
		cmd.Dir, cmd.Env = fixture.dir, fixture.env
		if out, err := cmd.CombinedOutput(); err != nil {
			return 0, fmt.Errorf("%v: %v\n%s", r, err, out)
		}
	}
	return m.Run(), nil
}

// openUI serves the UI over the stores in dir.
func openUI(t *testing.T, dir string) (*client.Client, *httptest.Server) {
	t.Helper()
	global := client.Global
	c, err := client.Open(context.Background(), client.Options{Datastore: filepath.Join(dir, ".stepwise"), Namespace: &global})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	s, err := New(c, Options{Poll: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return c, srv
}

// httpServer serves s for the test and returns its URL.
func httpServer(t *testing.T, s *Server) string {
	t.Helper()
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return srv.URL
}

// browser starts headless Chromium (Debian's chromium package).
func browser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("the UI tests need Chromium: install Debian's chromium package (apt-get install -y chromium; scripts/test does): %v", err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.WindowSize(1280, 900))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancel2 := chromedp.NewContext(actx)
	t.Cleanup(cancel2)
	return ctx
}

// shot saves a screenshot of the page as a test output, and into
// docs/img with -update.
func shot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	limited, cancel := bounded(t, ctx)
	defer cancel()
	png, err := chromedp.Run(limited, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(t.ArtifactDir(), name), png, 0o644); err != nil {
		t.Fatal(err)
	}
	if *update && inReadme[name] {
		if err := os.WriteFile(filepath.Join("..", "..", "docs", "img", name), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// eval evaluates a JavaScript expression in the page.
func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	limited, cancel := bounded(t, ctx)
	defer cancel()
	v, err := chromedp.Run(limited, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	return v
}

// waitLimit is how long waitFor waits for a page to show something: long
// enough for a loaded machine, but not for ever.
const waitLimit = 2 * time.Minute

// waitFor waits until a JavaScript expression is true, for at most
// waitLimit.
func waitFor(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			t.Fatalf("waiting for %s (%s): not within %s", what, expr, waitLimit)
		}
		_, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(left), chromedp.WithPollingInterval(50*time.Millisecond)))
		if err == nil {
			return
		}
		if errors.Is(err, chromedp.ErrPollingTimeout) || !strings.Contains(err.Error(), "navigated") && !strings.Contains(err.Error(), "context") {
			t.Fatalf("waiting for %s (%s): %v", what, expr, err)
		}
		// The page changed under the poll (a form was sent): poll the new one.
	}
}

// bounded is ctx limited to waitLimit, its tab started first: a tab
// started under the limited context would close when it is cancelled.
func bounded(t *testing.T, ctx context.Context) (context.Context, context.CancelFunc) {
	t.Helper()
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting the browser tab: %v", err)
	}
	return context.WithTimeout(ctx, waitLimit)
}

// do runs browser actions, for at most waitLimit: an element that never
// shows fails the test instead of hanging it.
func do(t *testing.T, ctx context.Context, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	limited, cancel := bounded(t, ctx)
	defer cancel()
	if err := chromedp.Do(limited, actions...); err != nil {
		t.Fatalf("browser actions (for at most %s): %v", waitLimit, err)
	}
}

// startUIFlow starts a run of uiflow in dir, with more args, whose follow
// step runs until the file stop appears; wait ends it and says how it
// went, with its output when it failed.
func startUIFlow(t *testing.T, dir string, args ...string) (stop string, wait func() error) {
	t.Helper()
	stop = filepath.Join(dir, "stop")
	cmd := exec.Command(filepath.Join(fixture.bins, "uiflow"), append([]string{"run", "--wait", stop}, args...)...)
	cmd.Dir, cmd.Env = dir, fixture.env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	var err error
	wait = func() error {
		once.Do(func() {
			os.WriteFile(stop, nil, 0o644)
			if err = cmd.Wait(); err != nil {
				err = fmt.Errorf("%w\n%s", err, out.String())
			}
		})
		return err
	}
	t.Cleanup(func() { wait() })
	return stop, wait
}

// TestBrowser drives the UI in headless Chromium over real runs: the runs
// list and its tag filter, a run of the foreach example with its graph and
// every task's status, a task's artifact, log and card, a hostile card,
// and the log and statuses of a running task as they change.
func TestBrowser(t *testing.T) {
	dir := fixture.dir
	c, srv := openUI(t, dir)
	ctx := browser(t)

	// The runs list, then filtered by tag.
	do(t, ctx, chromedp.Navigate(srv.URL+"/"), chromedp.WaitVisible("#runs"))
	if n := eval[int](t, ctx, `document.querySelectorAll("#runs tr[data-run]").length`); n != 8 {
		t.Fatalf("runs list shows %d runs, want 8", n)
	}
	shot(t, ctx, "ui-runs.png")
	do(t, ctx, chromedp.SetValue("#f-tag", "pick"), chromedp.Click("#f-apply"))
	waitFor(t, ctx, "the tag filter", `location.search.includes("tag=pick")`)
	do(t, ctx, chromedp.WaitVisible("#runs"))
	rows := eval[[]string](t, ctx, `[...document.querySelectorAll("#runs tr[data-run]")].map(r => r.dataset.run)`)
	picked, err := c.Flow("Foreach").Runs(context.Background(), client.Filter{Tags: []string{"pick"}})
	if err != nil || len(picked) != 1 {
		t.Fatalf("runs tagged pick: %v %v", picked, err)
	}
	if len(rows) != 1 || rows[0] != picked[0].Pathspec() {
		t.Fatalf("filtered by tag pick, the list shows %q, want [%s]", rows, picked[0].Pathspec())
	}

	// The run: graph with every step, every task succeeded.
	// The run's link is followed by address, not clicked: the live list
	// may redraw its rows between finding the link and the click, which
	// then lands on a row no longer in the page.
	href := eval[string](t, ctx, `document.querySelector("#runs a").href`)
	do(t, ctx, chromedp.Navigate(href), chromedp.WaitVisible("#dag svg"))
	steps := eval[[]string](t, ctx, `[...document.querySelectorAll("#dag g[data-step]")].map(g => g.dataset.step + ":" + g.getAttribute("class"))`)
	if want := []string{"start:node succeeded", "square_item:node succeeded", "join:node succeeded", "end:node succeeded"}; strings.Join(steps, ",") != strings.Join(want, ",") {
		t.Errorf("graph steps %q, want %q", steps, want)
	}
	if sub := eval[string](t, ctx, `document.querySelector('#dag g[data-step="square_item"] text.sub').textContent`); !strings.Contains(sub, "12/12 tasks") {
		t.Errorf("the foreach body says %q, want its 12/12 tasks", sub)
	}
	statuses := eval[[]string](t, ctx, `[...document.querySelectorAll("#tasks [data-task]")].map(e => e.textContent)`)
	if len(statuses) != 15 || strings.Count(strings.Join(statuses, " "), "succeeded") != 15 {
		t.Errorf("task statuses %q, want 15 succeeded", statuses)
	}
	shot(t, ctx, "ui-run.png")

	// Tags: add one, then remove it, from the run page.
	do(t, ctx, chromedp.SetValue("#tag-add", "golden"), chromedp.Click("#tag-add-btn"))
	waitFor(t, ctx, "the added tag", `document.getElementById("tags")?.innerText.includes("golden")`)
	if r, err := c.Flow("Foreach").Run(context.Background(), picked[0].ID); err != nil || !slices.Contains(r.Tags, "golden") {
		t.Fatalf("after adding tag golden the run has tags %v (%v)", r.Tags, err)
	}
	do(t, ctx, chromedp.Click(`button[title="remove tag golden"]`))
	waitFor(t, ctx, "the removed tag", `document.getElementById("tags") !== null && !document.getElementById("tags").innerText.includes("golden")`)
	if r, err := c.Flow("Foreach").Run(context.Background(), picked[0].ID); err != nil || slices.Contains(r.Tags, "golden") {
		t.Fatalf("after removing tag golden the run has tags %v (%v)", r.Tags, err)
	}

	// A task: its artifact, its log, its card.
	base := srv.URL + "/runs/" + picked[0].Pathspec()
	do(t, ctx, chromedp.Navigate(base+"/join/0"), chromedp.WaitVisible("#artifacts"))
	if v := eval[string](t, ctx, `document.querySelector('#artifacts tr[data-artifact="Sum"] pre').textContent`); v != "650" {
		t.Errorf("artifact Sum shows %q, want 650", v)
	}
	shot(t, ctx, "ui-task.png")
	do(t, ctx, chromedp.Navigate(base+"/end/0"), chromedp.WaitVisible("#log-0-stdout"))
	if log := eval[string](t, ctx, `document.getElementById("log-0-stdout").textContent`); !strings.Contains(log, "sum of squares of 1..12 = 650") {
		t.Errorf("the end step's log shows %q", log)
	}
	do(t, ctx, chromedp.Navigate(base+"/join/0/cards/0/main"))
	waitFor(t, ctx, "the card", `document.querySelector(".card") !== null`)
	if text := eval[string](t, ctx, `document.body.innerText`); !strings.Contains(text, "Squares of 1..12") || eval[int](t, ctx, `document.querySelectorAll("svg.chart polyline").length`) != 1 {
		t.Errorf("the join's card lacks its title or chart:\n%s", text)
	}
	shot(t, ctx, "ui-card.png")

	// A hostile card: markup shown as text, no script, the table cut.
	ui, err := c.Flow("UIFlow").LatestRun(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	do(t, ctx, chromedp.Navigate(srv.URL+"/runs/"+ui.Pathspec()+"/start/0/cards/0/main"))
	waitFor(t, ctx, "the card", `document.querySelector(".card") !== null`)
	if n := eval[int](t, ctx, `document.querySelectorAll("script, img[onerror], a[href^=javascript]").length`); n != 0 {
		t.Errorf("the hostile card has %d live elements", n)
	}
	if text := eval[string](t, ctx, `document.body.innerText`); !strings.Contains(text, "<script>document.title='pwned'</script>") || !strings.Contains(text, "it had 500000") {
		t.Errorf("the hostile card does not show its markup as text, or does not say the table was cut:\n%.500s", text)
	}
	if rows := eval[int](t, ctx, `document.querySelectorAll(".card tr").length`); rows != 1001 {
		t.Errorf("the hostile card's table has %d rows, want 1,000 and a header", rows)
	}
	if title := eval[string](t, ctx, `document.title`); title == "pwned" {
		t.Error("the hostile card ran its script")
	}
	do(t, ctx, chromedp.Navigate(srv.URL+"/runs/"+ui.Pathspec()+"/start/0"), chromedp.WaitVisible("#artifacts"))
	if text := eval[string](t, ctx, `document.querySelector('#artifacts tr[data-artifact="Big"]').innerText`); !strings.Contains(text, "too large to show") || !strings.Contains(text, "Download") {
		t.Errorf("the 1 MB artifact shows %q, want its size and a download link", text)
	}

	// A running task: its log grows on the page, and the run page follows
	// its tasks to the end.
	stop, wait := startUIFlow(t, dir, "--tag", "live")
	var task *client.Task
	for task == nil {
		runs, err := c.Flow("UIFlow").Runs(context.Background(), client.Filter{Tags: []string{"live"}})
		if err == nil && len(runs) == 1 {
			if ts, err := runs[0].Step(context.Background(), "follow"); err == nil {
				task = ts[0]
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	do(t, ctx, chromedp.Navigate(srv.URL+"/runs/"+task.Pathspec()), chromedp.WaitVisible("#log-0-stdout"))
	first := eval[string](t, ctx, `document.getElementById("log-0-stdout").textContent`)
	n := strings.Count(first, "tick")
	waitFor(t, ctx, "the running task's log to grow", fmt.Sprintf(`document.getElementById("log-0-stdout").textContent.includes("tick %d\n")`, n+5))
	shot(t, ctx, "ui-live-log.png")
	do(t, ctx, chromedp.Navigate(srv.URL+"/runs/"+task.Pathspec()+"/cards/0/progress"))
	waitFor(t, ctx, "the running task's progress card", `document.querySelector(".card") !== null`)
	if text := eval[string](t, ctx, `document.body.innerText`); !strings.Contains(text, "tick ") || !strings.Contains(text, "before its final version") {
		t.Errorf("the progress card of the running task shows:\n%s", text)
	}
	do(t, ctx, chromedp.Navigate(srv.URL+"/runs/"+task.Flow+"/"+task.Run), chromedp.WaitVisible("#dag svg"))
	if cls := eval[string](t, ctx, `document.querySelector('#dag g[data-step="follow"]').getAttribute("class")`); cls != "node running" {
		t.Errorf("the running step is drawn %q", cls)
	}
	if err := os.WriteFile(stop, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "the run page to show the run's end", `document.getElementById("run-status").textContent === "succeeded" && document.querySelector('[data-task="end/0"]')?.textContent === "succeeded"`)
	if cls := eval[string](t, ctx, `document.querySelector('#dag g[data-step="end"]').getAttribute("class")`); cls != "node succeeded" {
		t.Errorf("after the run, its end step is drawn %q", cls)
	}
	if err := wait(); err != nil {
		t.Fatalf("the live run failed: %v", err)
	}
}

// TestBrowserLive watches runs as they happen, in two tabs that are never
// reloaded: the runs list shows a new run appear at its top and finish,
// and the run's page shows its timeline's bars grow, a task that starts
// after the page was made, and the statuses to the end.
func TestBrowserLive(t *testing.T) {
	dir := t.TempDir()
	done := filepath.Join(dir, "done")
	if err := os.WriteFile(done, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(fixture.bins, "uiflow"), "run", "--wait", done, "--tag", "watch")
	cmd.Dir, cmd.Env = dir, fixture.env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the first run: %v\n%s", err, out)
	}
	c, srv := openUI(t, dir)
	ctx := context.Background()
	first, err := c.Flow("UIFlow").LatestRun(ctx)
	if err != nil {
		t.Fatal(err)
	}

	// Tab one: the runs tagged watch, one so far. A mark in the page's
	// window would be gone after a reload.
	list := browser(t)
	do(t, list, chromedp.Navigate(srv.URL+"/?tag=watch"), chromedp.WaitVisible("#runs"))
	if rows := eval[[]string](t, list, `window.mark = "list"; [...document.querySelectorAll("#runs tr[data-run]")].map(r => r.dataset.run)`); len(rows) != 1 || rows[0] != first.Pathspec() {
		t.Fatalf("the list shows %q, want [%s]", rows, first.Pathspec())
	}

	stop, wait := startUIFlow(t, dir, "--tag", "watch")
	waitFor(t, list, "the new run at the top of the list, running",
		`(r => r.length === 2 && r[0].querySelector(".status").textContent === "running")(document.querySelectorAll("#runs tr[data-run]"))`)
	got := eval[string](t, list, `document.querySelector("#runs tr[data-run]").dataset.run`)
	runs, err := c.Flow("UIFlow").Runs(ctx, client.Filter{Tags: []string{"watch"}})
	if err != nil || len(runs) != 2 || got != runs[0].Pathspec() || got == first.Pathspec() {
		t.Fatalf("the list's first run is %s; the runs tagged watch are %v (%v)", got, runs, err)
	}
	id := runs[0].ID

	// Tab two: the run's page, while its follow step runs.
	page, cancel := chromedp.NewContext(list)
	defer cancel()
	do(t, page, chromedp.Navigate(srv.URL+"/runs/UIFlow/"+id), chromedp.WaitVisible("#gantt"))
	eval[bool](t, page, `window.mark = "run"; true`)
	waitFor(t, page, "the follow step's bar", `document.querySelector('#gantt rect[data-bar="follow/0"]') !== null`)
	if n := eval[int](t, page, `document.querySelectorAll('#gantt rect[data-bar="end/0"], #tasks [data-task="end/0"]').length`); n != 0 {
		t.Fatal("the end step shows before it started")
	}
	width := eval[float64](t, page, `+document.querySelector('#gantt rect[data-bar="follow/0"]').getAttribute("width")`)
	waitFor(t, page, "the running bar to grow", fmt.Sprintf(`+document.querySelector('#gantt rect[data-bar="follow/0"]').getAttribute("width") > %g`, width))

	if err := os.WriteFile(stop, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, page, "the end task in the timeline and the table, and the run's end",
		`document.querySelector('#gantt rect[data-bar="end/0"]') !== null && document.querySelector('#tasks [data-task="end/0"]')?.textContent === "succeeded" && document.getElementById("run-status").textContent === "succeeded"`)
	if n := eval[string](t, page, `document.getElementById("task-count").textContent`); n != "3" {
		t.Errorf("the run page counts %s tasks, want 3", n)
	}
	if took := eval[string](t, page, `document.getElementById("run-took").textContent`); !strings.Contains(took, "took ") {
		t.Errorf("the ended run's page says %q, want how long it took", took)
	}
	shot(t, page, "ui-live-run.png")
	waitFor(t, list, "the new run to finish in the list",
		`document.querySelector("#runs tr[data-run] .status").textContent === "succeeded"`)
	for _, tab := range []struct {
		ctx  context.Context
		mark string
	}{{list, "list"}, {page, "run"}} {
		if got := eval[string](t, tab.ctx, `String(window.mark)`); got != tab.mark {
			t.Errorf("the %s page was reloaded (its mark is %q)", tab.mark, got)
		}
	}
	if err := wait(); err != nil {
		t.Fatalf("the live run failed: %v", err)
	}
}
