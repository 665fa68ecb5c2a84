package card

import (
	"html"
	"strings"
)

// WriteMarkdown renders a small subset of markdown to HTML: headings (#),
// paragraphs, lists (-, * and 1.), fenced code blocks (```), inline code,
// **bold**, *emphasis* and links to http, https, mailto or relative URLs.
// Every piece of text is HTML-escaped, so no markup in the source reaches
// the page: `<script>` shows as text.
func WriteMarkdown(b *strings.Builder, src string) {
	lines := strings.Split(strings.ReplaceAll(src, "\r\n", "\n"), "\n")
	var para []string
	list := "" // "ul" or "ol" while in a list
	flush := func() {
		if len(para) > 0 {
			b.WriteString("<p>")
			writeInline(b, strings.Join(para, "\n"))
			b.WriteString("</p>\n")
			para = nil
		}
	}
	endList := func() {
		if list != "" {
			b.WriteString("</" + list + ">\n")
			list = ""
		}
	}
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "```") {
			flush()
			endList()
			b.WriteString("<pre><code>")
			for i++; i < len(lines) && !strings.HasPrefix(strings.TrimSpace(lines[i]), "```"); i++ {
				b.WriteString(html.EscapeString(lines[i]))
				b.WriteByte('\n')
			}
			b.WriteString("</code></pre>\n")
			continue
		}
		if trimmed == "" {
			flush()
			endList()
			continue
		}
		if level := headingLevel(trimmed); level > 0 {
			flush()
			endList()
			tag := "h" + string(rune('0'+level))
			b.WriteString("<" + tag + ">")
			writeInline(b, strings.TrimSpace(trimmed[level:]))
			b.WriteString("</" + tag + ">\n")
			continue
		}
		if kind, item := listItem(trimmed); kind != "" {
			flush()
			if list != kind {
				endList()
				b.WriteString("<" + kind + ">\n")
				list = kind
			}
			b.WriteString("<li>")
			writeInline(b, item)
			b.WriteString("</li>\n")
			continue
		}
		endList()
		para = append(para, trimmed)
	}
	flush()
	endList()
}

// headingLevel is the level of a heading line (# to ######), or 0.
func headingLevel(s string) int {
	n := 0
	for n < len(s) && n < 7 && s[n] == '#' {
		n++
	}
	if n == 0 || n > 6 || n >= len(s) || s[n] != ' ' {
		return 0
	}
	return n
}

// listItem says whether s is a list item, of which kind, and its text.
func listItem(s string) (kind, text string) {
	if len(s) > 2 && (s[0] == '-' || s[0] == '*') && s[1] == ' ' {
		return "ul", strings.TrimSpace(s[2:])
	}
	i := 0
	for i < len(s) && i < 9 && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i > 0 && i+1 < len(s) && s[i] == '.' && s[i+1] == ' ' {
		return "ol", strings.TrimSpace(s[i+2:])
	}
	return "", ""
}

// writeInline renders code spans, bold, emphasis and links in s, escaping
// everything else.
func writeInline(b *strings.Builder, s string) {
	for len(s) > 0 {
		i := strings.IndexAny(s, "`*[")
		if i < 0 {
			b.WriteString(html.EscapeString(s))
			return
		}
		b.WriteString(html.EscapeString(s[:i]))
		s = s[i:]
		switch {
		case s[0] == '`':
			if j := strings.IndexByte(s[1:], '`'); j >= 0 {
				b.WriteString("<code>" + html.EscapeString(s[1:1+j]) + "</code>")
				s = s[j+2:]
				continue
			}
		case s[0] == '*':
			mark, tag := "*", "em"
			if strings.HasPrefix(s, "**") {
				mark, tag = "**", "strong"
			}
			if j := strings.Index(s[len(mark):], mark); j > 0 {
				b.WriteString("<" + tag + ">")
				writeInline(b, s[len(mark):len(mark)+j])
				b.WriteString("</" + tag + ">")
				s = s[len(mark)+j+len(mark):]
				continue
			}
		case s[0] == '[':
			if text, url, rest, ok := link(s); ok {
				if safeURL(url) {
					b.WriteString(`<a href="` + html.EscapeString(url) + `" rel="noopener noreferrer">`)
					writeInline(b, text)
					b.WriteString("</a>")
				} else {
					writeInline(b, text)
				}
				s = rest
				continue
			}
		}
		b.WriteString(html.EscapeString(s[:1]))
		s = s[1:]
	}
}

// link parses "[text](url)" at the start of s.
func link(s string) (text, url, rest string, ok bool) {
	j := strings.Index(s, "](")
	if j < 0 || strings.ContainsAny(s[1:j], "[]") {
		return "", "", "", false
	}
	k := strings.IndexByte(s[j+2:], ')')
	if k < 0 {
		return "", "", "", false
	}
	return s[1:j], s[j+2 : j+2+k], s[j+3+k:], true
}

// safeURL allows web, mail and relative links, never javascript: or data:.
func safeURL(u string) bool {
	l := strings.ToLower(strings.TrimSpace(u))
	for _, p := range []string{"http://", "https://", "mailto:"} {
		if strings.HasPrefix(l, p) {
			return true
		}
	}
	return !strings.Contains(l, ":") && !strings.ContainsAny(l, " \t\n\\") && !strings.HasPrefix(l, "//")
}
