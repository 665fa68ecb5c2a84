package cli

import (
	"context"
	"fmt"
	"os"
	"slices"
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
	attempt := fs.Int("attempt", -1, "the attempt (default: the last that has the card)")
	var name, out *string
	var version *int
	if sub == "get" {
		name = fs.String("name", "", "the card (default: the step's main card if it made one, else the default card)")
		version = fs.Int("version", 0, "the version of the card (default: its latest; card list --name NAME lists them)")
		out = fs.String("o", "", "the HTML file to write (default: FLOW-RUN-STEP-TASK-NAME.html here)")
	} else {
		name = fs.String("name", "", "list the versions of this card (default: list the cards)")
	}
	c, t, err := e.openTask(ctx, fs, args[1:])
	if err != nil {
		return err
	}
	defer c.Close()
	cards, err := t.Cards(ctx)
	if err != nil {
		return err
	}
	if *attempt >= 0 {
		cards = slices.DeleteFunc(cards, func(ci client.CardInfo) bool { return ci.Attempt != *attempt && ci.Name != card.DefaultName })
	}
	if sub == "list" {
		if *name != "" {
			return listCardVersions(e, t, cards, *name, *attempt)
		}
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
	data, err := t.CardVersionJSON(ctx, *attempt, *name, *version)
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
		return e.printJSON(map[string]any{"task": t.Pathspec(), "card": *name, "attempt": d.Attempt, "version": d.Version, "final": d.Final, "file": *out})
	}
	v := ""
	if d.Version > 0 {
		v = fmt.Sprintf(" (version %d)", d.Version)
	}
	fmt.Fprintf(e.stdout, "Card %s of %s%s written to %s\n", *name, t.Pathspec(), v, *out)
	return nil
}

// listCards prints a task's cards, each with how many versions it keeps
// and its latest.
func listCards(e *Env, t *client.Task, cards []client.CardInfo) error {
	if e.json {
		return e.printJSON(map[string]any{"task": t.Pathspec(), "cards": cards})
	}
	var rows [][]string
	for _, ci := range cards {
		versions, latest, updated, size := "-", "-", "(made when read)", ""
		if !ci.Updated.IsZero() {
			updated, size = ci.Updated.Local().Format("2006-01-02 15:04:05"), card.Size(ci.Size)
			versions, latest = "1", "(only the latest kept)"
		}
		if n := ci.Latest(); n > 0 {
			versions, latest = fmt.Sprint(len(ci.Versions)), fmt.Sprint(n)
			if ci.Versions[len(ci.Versions)-1].Final {
				latest += " (final)"
			}
		}
		rows = append(rows, []string{ci.Name, fmt.Sprint(ci.Attempt), versions, latest, size, updated})
	}
	e.table("CARD\tATTEMPT\tVERSIONS\tLATEST\tSIZE\tUPDATED", rows)
	return nil
}

// listCardVersions prints the versions kept of one card, of its last
// attempt unless one is given.
func listCardVersions(e *Env, t *client.Task, cards []client.CardInfo, name string, attempt int) error {
	var found *client.CardInfo
	for i, ci := range cards {
		if ci.Name == name {
			found = &cards[i]
		}
	}
	if found == nil {
		return fmt.Errorf("task %s has no card %q (list its cards with '%s card list %s'): %w", t.Pathspec(), name, e.prog, t.Pathspec(), client.ErrNotFound)
	}
	if e.json {
		return e.printJSON(map[string]any{"task": t.Pathspec(), "card": name, "attempt": found.Attempt, "versions": found.Versions})
	}
	if len(found.Versions) == 0 {
		why := "it was saved before versions were kept, and only its latest is"
		if name == card.DefaultName {
			why = "it is made when read"
		}
		fmt.Fprintf(e.stdout, "Card %s of %s, attempt %d, keeps no versions: %s\n", name, t.Pathspec(), found.Attempt, why)
		return nil
	}
	var rows [][]string
	for _, v := range found.Versions {
		final := ""
		if v.Final {
			final = "final"
		}
		rows = append(rows, []string{fmt.Sprint(v.Version), v.Saved.Local().Format("2006-01-02 15:04:05.000"), card.Size(v.Size), final})
	}
	fmt.Fprintf(e.stdout, "Card %s of %s, attempt %d: %d versions kept (its final one and at most its last %d others)\n",
		name, t.Pathspec(), found.Attempt, len(found.Versions), client.MaxCardVersions)
	e.table("VERSION\tSAVED\tSIZE\tNOTE", rows)
	return nil
}
