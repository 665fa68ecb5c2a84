// Package card is the machinery behind cards: the reports a step builds
// while it runs (stepwise.CardOf). A card is a Doc, a list of Parts
// (markdown, a table, an image, a chart, a value, an error), stored as
// JSON in the datastore with its task and attempt. This package builds
// Docs within size limits, saves them at most every MinInterval while a
// task runs (Set), renders them to HTML that escapes everything it shows
// and runs no script (Render, WritePage), and builds the default card every
// task has (Default).
package card

import (
	"encoding/json"
	"fmt"
	"regexp"
	"time"
)

// Limits keep a card small enough to store and show whatever a step puts
// in it; what is cut says so in the card.
const (
	MaxText     = 256 << 10 // bytes of one markdown, value or error part
	MaxRows     = 1000      // rows of a table
	MaxColumns  = 50        // columns of a table
	MaxCell     = 1000      // bytes of one table cell
	MaxImage    = 4 << 20   // bytes of one image
	MaxPoints   = 10000     // values of one chart series
	MaxSeries   = 20        // series of one chart
	MaxParts    = 200       // parts of one card
	MinInterval = 3 * time.Second
)

// Part kinds.
const (
	KindMarkdown = "markdown"
	KindTable    = "table"
	KindImage    = "image"
	KindChart    = "chart"
	KindValue    = "value" // an artifact's value, as text
	KindError    = "error"
	KindGraph    = "graph" // the flow's graph with one step marked
	KindFacts    = "facts" // name/value pairs (the default card)
)

// Doc is one card.
type Doc struct {
	Name    string    `json:"name"`
	Task    string    `json:"task"` // Flow/Run/step/TaskID
	Attempt int       `json:"attempt"`
	Version int       `json:"version"` // 1 for the first save, then one more each save
	Updated time.Time `json:"updated"`
	Final   bool      `json:"final"` // saved when the attempt ended
	Parts   []Part    `json:"parts"`
}

// Part is one piece of a card. Which fields are set depends on Kind.
type Part struct {
	Kind    string     `json:"kind"`
	Title   string     `json:"title,omitempty"`
	Text    string     `json:"text,omitempty"` // markdown, value, error
	Columns []string   `json:"columns,omitempty"`
	Rows    [][]string `json:"rows,omitempty"`
	// Total is how many rows (table), bytes (text) or values the part had
	// before it was cut; zero when nothing was cut.
	Total int64           `json:"total,omitempty"`
	MIME  string          `json:"mime,omitempty"` // image/png or image/jpeg
	Data  []byte          `json:"data,omitempty"` // the image
	Chart *Chart          `json:"chart,omitempty"`
	Graph json.RawMessage `json:"graph,omitempty"` // the flow's graph, as show --json prints it
	Mark  string          `json:"mark,omitempty"`  // the step the graph marks
	// Artifact names the artifact a value part shows, filled in when the
	// task's artifacts are stored.
	Artifact string `json:"artifact,omitempty"`
}

// Chart is a line or bar chart of numeric series.
type Chart struct {
	Bar    bool     `json:"bar,omitempty"`
	Labels []string `json:"labels,omitempty"` // of the x positions; default 0, 1, ...
	Series []Series `json:"series"`
}

// Series is one named sequence of values.
type Series struct {
	Name   string    `json:"name"`
	Values []float64 `json:"values"`
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

// CheckName says what is wrong with a card's name, if anything.
func CheckName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("card name %q is not allowed: use 1 to 64 lowercase letters, digits, '_' or '-', starting with a letter or digit, e.g. \"progress\"", name)
	}
	return nil
}

// Decode reads a stored card.
func Decode(data []byte) (*Doc, error) {
	d := new(Doc)
	if err := json.Unmarshal(data, d); err != nil {
		return nil, fmt.Errorf("card: the stored card does not decode (%v); it was written by another version or damaged", err)
	}
	return d, nil
}

// cut returns s cut to at most max bytes (at a rune boundary) and the
// original length when it was cut (0 otherwise).
func cut(s string, max int) (string, int64) {
	if len(s) <= max {
		return s, 0
	}
	n := max
	for n > 0 && n < len(s) && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n], int64(len(s))
}
