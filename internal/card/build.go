package card

import (
	"bytes"
	"fmt"
	"image"
	"image/png"
	"math"
	"net/http"
	"reflect"
	"slices"
)

// Markdown is a markdown part, cut to MaxText.
func Markdown(text string) Part {
	t, total := cut(text, MaxText)
	return Part{Kind: KindMarkdown, Text: t, Total: total}
}

// Value is a part that shows a value as text under a title.
func Value(title, text string) Part {
	t, total := cut(text, MaxText)
	return Part{Kind: KindValue, Title: title, Text: t, Total: total}
}

// Error is a part that shows why a step failed.
func Error(text string) Part {
	t, total := cut(text, MaxText)
	return Part{Kind: KindError, Title: "Error", Text: t, Total: total}
}

// Table is a table part from a slice (or array) of rows. A row is a
// struct (its exported fields are the columns), a map with string keys
// (its sorted keys, taken from the first row, are the columns), or a slice
// or array of cells (no header). Only the first MaxRows rows are read.
func Table(rows any) (Part, error) {
	v := reflect.ValueOf(rows)
	for v.Kind() == reflect.Pointer && !v.IsNil() {
		v = v.Elem()
	}
	if v.Kind() != reflect.Slice && v.Kind() != reflect.Array {
		return Part{}, fmt.Errorf("card: a table is made from a slice of rows (structs, maps or slices), not from %T", rows)
	}
	p := Part{Kind: KindTable}
	n := v.Len()
	if n > MaxRows {
		p.Total = int64(n)
		n = MaxRows
	}
	var fields []int
	for i := range n {
		row := v.Index(i)
		for (row.Kind() == reflect.Pointer || row.Kind() == reflect.Interface) && !row.IsNil() {
			row = row.Elem()
		}
		var cells []string
		switch row.Kind() {
		case reflect.Struct:
			if fields == nil {
				for j := range row.NumField() {
					if f := row.Type().Field(j); f.IsExported() && len(fields) < MaxColumns {
						fields = append(fields, j)
						p.Columns = append(p.Columns, f.Name)
					}
				}
			}
			for _, j := range fields {
				if j < row.NumField() {
					cells = append(cells, cell(row.Field(j)))
				}
			}
		case reflect.Map:
			if p.Columns == nil {
				for _, k := range row.MapKeys() {
					if k.Kind() == reflect.String {
						p.Columns = append(p.Columns, k.String())
					}
				}
				slices.Sort(p.Columns)
				p.Columns = p.Columns[:min(len(p.Columns), MaxColumns)]
			}
			for _, c := range p.Columns {
				k := reflect.ValueOf(c).Convert(row.Type().Key())
				cells = append(cells, cell(row.MapIndex(k)))
			}
		case reflect.Slice, reflect.Array:
			for j := range min(row.Len(), MaxColumns) {
				cells = append(cells, cell(row.Index(j)))
			}
		default:
			cells = []string{cell(row)}
		}
		p.Rows = append(p.Rows, cells)
	}
	return p, nil
}

// cell formats one table cell, cut to MaxCell.
func cell(v reflect.Value) string {
	if !v.IsValid() {
		return ""
	}
	var s string
	if v.CanInterface() {
		s = fmt.Sprint(v.Interface())
	} else {
		s = v.String()
	}
	if c, total := cut(s, MaxCell); total > 0 {
		return c + fmt.Sprintf("… (%d bytes)", total)
	}
	return s
}

// Image is an image part from PNG or JPEG bytes.
func Image(data []byte) (Part, error) {
	mime := http.DetectContentType(data)
	if mime != "image/png" && mime != "image/jpeg" {
		return Part{}, fmt.Errorf("card: an image must be PNG or JPEG bytes; these look like %s", mime)
	}
	if len(data) > MaxImage {
		return Part{}, fmt.Errorf("card: an image of %d bytes is larger than the %d bytes a card holds; scale it down", len(data), MaxImage)
	}
	return Part{Kind: KindImage, MIME: mime, Data: bytes.Clone(data)}, nil
}

// Picture is an image part from an image, encoded as PNG.
func Picture(img image.Image) (Part, error) {
	if img == nil {
		return Part{}, fmt.Errorf("card: the image is nil")
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		return Part{}, fmt.Errorf("card: cannot encode the image as PNG: %w", err)
	}
	return Image(b.Bytes())
}

// ChartPart is a chart part; values that are not finite are shown as 0,
// series and values past the limits are cut.
func ChartPart(title string, c Chart) Part {
	out := &Chart{Bar: c.Bar}
	var total int64
	for i, s := range c.Series {
		if i == MaxSeries {
			total = int64(len(c.Series))
			break
		}
		vals := s.Values
		if len(vals) > MaxPoints {
			total = max(total, int64(len(vals)))
			vals = vals[:MaxPoints]
		}
		vals = slices.Clone(vals)
		for j, x := range vals {
			if math.IsNaN(x) || math.IsInf(x, 0) {
				vals[j] = 0
			}
		}
		name, _ := cut(s.Name, MaxCell)
		out.Series = append(out.Series, Series{Name: name, Values: vals})
	}
	for i, l := range c.Labels {
		if i == MaxPoints {
			break
		}
		l, _ = cut(l, MaxCell)
		out.Labels = append(out.Labels, l)
	}
	return Part{Kind: KindChart, Title: title, Chart: out, Total: total}
}
