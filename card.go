package stepwise

import (
	"context"
	"fmt"
	"image"
	"log/slog"

	"stepwise.dev/stepwise/internal/card"
)

// Card is a report a step builds while it runs: markdown, tables, images,
// charts and artifacts' values, stored with the task's attempt and shown by
// `stepwise card get` and the UI. Get one with CardOf or NamedCard; every
// method returns the card, so calls chain:
//
//	stepwise.CardOf(ctx).Markdown("# Training").Table(rows).Chart("loss", stepwise.Chart{Series: ...})
//
// A card is saved when the step ends (with the step's error, if it
// failed), and while it runs each time Refresh is called, at most every
// few seconds. Each save is a new version, kept like an artifact's value:
// the final one and the last 20 others (client.Task.CardVersionJSON reads
// them). Content past a card's limits (1,000 rows of a table, 256 KB of
// text, 4 MB per image) is cut, and the card says so. Outside a step a
// card records nothing.
type Card struct {
	set  *card.Set
	name string
}

// Chart is the data of a line chart, or a bar chart when Bar is set: one
// or more series of values at the same x positions, which Labels name.
type Chart struct {
	Bar    bool
	Labels []string
	Series []Series
}

// Series is one named line (or set of bars) of a chart.
type Series struct {
	Name   string
	Values []float64
}

// CardOf returns the main card of the task the step runs as (named
// "main").
func CardOf(ctx context.Context) *Card { return NamedCard(ctx, "main") }

// NamedCard returns another card of the task, e.g. "progress". A name is 1
// to 64 lowercase letters, digits, '_' or '-'; an invalid name is logged
// and the card records nothing.
func NamedCard(ctx context.Context, name string) *Card {
	set, _ := ctx.Value(cardsKey{}).(*card.Set)
	if err := card.CheckName(name); err != nil {
		slog.WarnContext(ctx, "stepwise: card not kept", "err", err)
		set = nil
	}
	return &Card{set: set, name: name}
}

type cardsKey struct{}

func (c *Card) add(p card.Part) *Card {
	if c.set != nil {
		c.set.Add(c.name, p)
	}
	return c
}

// addErr adds a part built by f, or a note saying why it could not be.
func (c *Card) addErr(what string, p card.Part, err error) *Card {
	if err != nil {
		return c.add(card.Error(fmt.Sprintf("%s not shown: %v", what, err)))
	}
	return c.add(p)
}

// Markdown adds text in markdown: headings, paragraphs, lists, code,
// emphasis and links. HTML in it is shown as text, never interpreted.
func (c *Card) Markdown(text string) *Card { return c.add(card.Markdown(text)) }

// Table adds a table from a slice of rows: structs (their exported fields
// are the columns), maps with string keys, or slices of cells.
func (c *Card) Table(rows any) *Card {
	p, err := card.Table(rows)
	return c.addErr("table", p, err)
}

// Image adds an image from its PNG or JPEG bytes.
func (c *Card) Image(data []byte) *Card {
	p, err := card.Image(data)
	return c.addErr("image", p, err)
}

// Picture adds an image.Image, stored as PNG.
func (c *Card) Picture(img image.Image) *Card {
	p, err := card.Picture(img)
	return c.addErr("image", p, err)
}

// Chart adds a line or bar chart under a title.
func (c *Card) Chart(title string, ch Chart) *Card {
	in := card.Chart{Bar: ch.Bar, Labels: ch.Labels}
	for _, s := range ch.Series {
		in.Series = append(in.Series, card.Series{Name: s.Name, Values: s.Values})
	}
	return c.add(card.ChartPart(title, in))
}

// Artifact adds the value of an artifact (an exported field of the flow)
// as it is when the step ends.
func (c *Card) Artifact(name string) *Card {
	return c.add(card.Part{Kind: card.KindValue, Title: name, Artifact: name, Text: "(shown when the step ends)"})
}

// Reset empties the card, to draw a progress card again.
func (c *Card) Reset() *Card {
	if c.set != nil {
		c.set.Reset(c.name)
	}
	return c
}

// Refresh saves the card now while the step goes on, or a few seconds
// after the last save if that was less than card.MinInterval (3s) ago, so
// that a loop may call it every iteration.
func (c *Card) Refresh(ctx context.Context) *Card {
	if c.set != nil {
		c.set.Refresh(ctx)
	}
	return c
}
