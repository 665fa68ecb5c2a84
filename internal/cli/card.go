package cli

import (
	"context"
	"fmt"
	"os"
	"strings"

	"stepwise.dev/stepwise/client"
	"stepwise.dev/stepwise/internal/card"
)

func cardCmd(ctx context.Context, e *Env, args []string) error {
	if len(args) == 0 || (args[0] != "get" && args[0] != "list") {
		return &usageError{"say get or list: card get PATHSPEC, card list PATHSPEC"}
	}
	sub := args[0]
	fs := e.Flags("card " + sub)
	name := fs.String("name", "", "the card (default: the step's main card if it made one, else the default card)")
	attempt := fs.Int("attempt", -1, "the attempt (default: the last that has the card)")
	out := fs.String("o", "", "the HTML file to write (default: FLOW-RUN-STEP-TASK-NAME.html here)")
	c, t, err := e.openTask(ctx, fs, args[1:])
	if err != nil {
		return err
	}
	defer c.Close()
	cards, err := t.Cards(ctx)
	if err != nil {
		return err
	}
	if sub == "list" {
		return listCards(e, t, cards)
	}
	if *name == "" {
		*name = card.DefaultName
		for _, ci := range cards {
			if ci.Name == "main" {
				*name = "main"
			}
		}
	}
	data, err := t.CardJSON(ctx, *attempt, *name)
	if err != nil {
		return err
	}
	d, err := card.Decode(data)
	if err != nil {
		return err
	}
	if *out == "" {
		*out = strings.ReplaceAll(t.Pathspec(), "/", "-") + "-" + *name + ".html"
	}
	f, err := os.Create(*out)
	if err != nil {
		return fmt.Errorf("cannot write card %s of %s: %w", *name, t.Pathspec(), err)
	}
	if err := card.WritePage(f, d); err != nil {
		f.Close()
		return fmt.Errorf("cannot write card %s of %s to %s: %w", *name, t.Pathspec(), *out, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("cannot write card %s of %s to %s: %w", *name, t.Pathspec(), *out, err)
	}
	if e.json {
		return e.printJSON(map[string]any{"task": t.Pathspec(), "card": *name, "attempt": d.Attempt, "file": *out})
	}
	fmt.Fprintf(e.stdout, "Card %s of %s written to %s\n", *name, t.Pathspec(), *out)
	return nil
}

func listCards(e *Env, t *client.Task, cards []client.CardInfo) error {
	if e.json {
		return e.printJSON(map[string]any{"task": t.Pathspec(), "cards": cards})
	}
	var rows [][]string
	for _, ci := range cards {
		updated, size := "(made when read)", ""
		if !ci.Updated.IsZero() {
			updated, size = ci.Updated.Local().Format("2006-01-02 15:04:05"), card.Size(ci.Size)
		}
		rows = append(rows, []string{ci.Name, fmt.Sprint(ci.Attempt), size, updated})
	}
	e.table("CARD\tATTEMPT\tSIZE\tUPDATED", rows)
	return nil
}
