package ui

import (
	"html/template"
	"time"

	"stepwise.dev/stepwise/internal/card"
)

var funcs = template.FuncMap{
	"when":  when,
	"took":  took,
	"size":  card.Size,
	"last":  func(n int) int { return n - 1 },
	"int64": func(n int) int64 { return int64(n) },
	"short": func(s string) string {
		if len(s) > 12 {
			return s[:12]
		}
		return s
	},
}

// when is a time as pages show it, in the server's zone.
func when(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

// took is how long from start to end; empty while it has not ended.
func took(start, end time.Time) string {
	if start.IsZero() || end.IsZero() {
		return ""
	}
	return end.Sub(start).Round(time.Millisecond).String()
}
