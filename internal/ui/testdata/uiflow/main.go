// Command uiflow is the flow the UI's browser test watches: its start step
// makes a card with hostile and huge content and a large artifact, and its
// follow step prints a line every 100ms until a file appears, so that the
// test sees a running task's log grow; with --fail its end step fails.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"stepwise.dev/stepwise"
	_ "stepwise.dev/stepwise/backend/s3"      // the team set-up's datastore
	_ "stepwise.dev/stepwise/backend/service" // and metadata service
	_ "stepwise.dev/stepwise/backend/sqlite"
)

// UIFlow is the flow.
type UIFlow struct {
	Wait  string `param:"wait" help:"file whose appearance ends the follow step"`
	Rows  int    `param:"rows" help:"rows of the card's table (100 bytes each)"`
	Fail  string `param:"fail" help:"when set, the end step fails with this message"`
	Big   []byte
	Ticks int
}

// Graph declares the steps.
func (f *UIFlow) Graph(g *stepwise.Graph) {
	g.Step(f.Start).Next(f.Follow)
	g.Step(f.Follow).Next(f.End)
	g.Step(f.End)
}

// Start makes the hostile card and the large artifact.
func (f *UIFlow) Start(ctx context.Context) error {
	type row struct {
		N    int
		Text string
	}
	rows := make([]row, f.Rows)
	pad := strings.Repeat("x", 90)
	for i := range rows {
		rows[i] = row{i, pad}
	}
	stepwise.CardOf(ctx).
		Markdown("# Hostile\n<script>document.title='pwned'</script>\n[click](javascript:document.title='pwned') <img src=x onerror=alert(1)>").
		Table(rows)
	f.Big = make([]byte, 1<<20)
	return nil
}

// Follow prints until the wait file appears.
func (f *UIFlow) Follow(ctx context.Context) error {
	for ; ; f.Ticks++ {
		fmt.Printf("tick %d\n", f.Ticks)
		stepwise.NamedCard(ctx, "progress").Reset().Markdown(fmt.Sprintf("tick %d", f.Ticks)).Refresh(ctx)
		if _, err := os.Stat(f.Wait); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// End fails when told to, after starting its card.
func (f *UIFlow) End(ctx context.Context) error {
	if f.Fail != "" {
		stepwise.CardOf(ctx).Markdown("# About to fail")
		return errors.New(f.Fail)
	}
	return nil
}

func main() { stepwise.Main(&UIFlow{Rows: 10}) }
