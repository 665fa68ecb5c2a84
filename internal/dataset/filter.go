package dataset

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
)

// Op is a comparison.
type Op string

// The comparisons a filter may use.
const (
	Eq Op = "="
	Ne Op = "!="
	Lt Op = "<"
	Le Op = "<="
	Gt Op = ">"
	Ge Op = ">="
	In Op = "in"
)

// Value is a literal: a string or a number.
type Value struct {
	Str    string
	Num    float64
	IsNum  bool
	String string // as written, for messages
}

// Pred is one comparison of a column with literals (one, or several for In).
type Pred struct {
	Column string
	Op     Op
	Values []Value
}

// Filter is a conjunction of predicates.
type Filter []Pred

// String prints the predicate as a filter that parses back to it: a
// column that is not a plain name is written in double quotes.
func (p Pred) String() string {
	vs := make([]string, len(p.Values))
	for i, v := range p.Values {
		vs[i] = v.String
	}
	col := columnText(p.Column)
	if p.Op == In {
		return col + " in (" + strings.Join(vs, ", ") + ")"
	}
	return col + " " + string(p.Op) + " " + vs[0]
}

// columnText is a column name as a filter writes it: bare when it lexes
// as a name, else in double quotes.
func columnText(c string) string {
	if strings.EqualFold(c, "and") || strings.EqualFold(c, "in") {
		return `"` + c + `"`
	}
	for i, r := range c {
		if r == '_' || unicode.IsLetter(r) || (i > 0 && (r == '.' || unicode.IsDigit(r))) {
			continue
		}
		return `"` + c + `"`
	}
	return c
}

// ParseFilter parses a filter: comparisons joined by "and", each
// `column op literal` with op one of = != < <= > >= (== and <> also), or
// `column in (literal, ...)`. A literal is a number or a string in single
// quotes (” for a quote inside). An empty filter keeps every row.
func ParseFilter(s string) (Filter, error) {
	toks, err := lex(s)
	if err != nil {
		return nil, fmt.Errorf("table filter %q: %w", s, err)
	}
	var f Filter
	i := 0
	next := func() token {
		if i < len(toks) {
			i++
			return toks[i-1]
		}
		return token{kind: tEOF}
	}
	peek := func() token {
		if i < len(toks) {
			return toks[i]
		}
		return token{kind: tEOF}
	}
	bad := func(t token, want string) error {
		got := "the end"
		if t.kind != tEOF {
			got = fmt.Sprintf("%q", t.text)
		}
		return fmt.Errorf("table filter %q: expected %s at %s; write comparisons like region = 'eu' and day >= 3, joined by and", s, want, got)
	}
	if len(toks) == 0 {
		return nil, nil
	}
	for {
		col := next()
		if col.kind != tIdent {
			return nil, bad(col, "a column name")
		}
		op := next()
		var p Pred
		p.Column = col.text
		switch {
		case op.kind == tOp:
			p.Op = Op(op.text)
			v := next()
			if v.kind != tStr && v.kind != tNum {
				return nil, bad(v, "a number or a 'quoted string'")
			}
			p.Values = []Value{v.value()}
		case op.kind == tIdent && strings.EqualFold(op.text, "in"):
			p.Op = In
			if t := next(); t.kind != tLParen {
				return nil, bad(t, "(")
			}
			for {
				v := next()
				if v.kind != tStr && v.kind != tNum {
					return nil, bad(v, "a number or a 'quoted string'")
				}
				p.Values = append(p.Values, v.value())
				t := next()
				if t.kind == tRParen {
					break
				}
				if t.kind != tComma {
					return nil, bad(t, ", or )")
				}
			}
		default:
			return nil, bad(op, "a comparison (= != < <= > >= in)")
		}
		f = append(f, p)
		t := peek()
		if t.kind == tEOF {
			return f, nil
		}
		if t.kind != tIdent || !strings.EqualFold(t.text, "and") {
			return nil, bad(t, "and")
		}
		next()
	}
}

type tokKind int

const (
	tEOF tokKind = iota
	tIdent
	tOp
	tStr
	tNum
	tLParen
	tRParen
	tComma
)

type token struct {
	kind tokKind
	text string // identifier, operator, string contents or number as written
	num  float64
}

func (t token) value() Value {
	if t.kind == tNum {
		return Value{Num: t.num, IsNum: true, Str: t.text, String: t.text}
	}
	return Value{Str: t.text, String: "'" + strings.ReplaceAll(t.text, "'", "''") + "'"}
}

func lex(s string) ([]token, error) {
	var out []token
	rs := []rune(s)
	for i := 0; i < len(rs); {
		c := rs[i]
		switch {
		case unicode.IsSpace(c):
			i++
		case c == '(':
			out = append(out, token{kind: tLParen, text: "("})
			i++
		case c == ')':
			out = append(out, token{kind: tRParen, text: ")"})
			i++
		case c == ',':
			out = append(out, token{kind: tComma, text: ","})
			i++
		case c == '\'':
			var b strings.Builder
			j := i + 1
			for {
				if j >= len(rs) {
					return nil, fmt.Errorf("a string starting at character %d has no closing quote", i+1)
				}
				if rs[j] == '\'' {
					if j+1 < len(rs) && rs[j+1] == '\'' {
						b.WriteRune('\'')
						j += 2
						continue
					}
					break
				}
				b.WriteRune(rs[j])
				j++
			}
			out = append(out, token{kind: tStr, text: b.String()})
			i = j + 1
		case strings.ContainsRune("=!<>", c):
			j := i + 1
			if j < len(rs) && (rs[j] == '=' || (c == '<' && rs[j] == '>')) {
				j++
			}
			op := string(rs[i:j])
			switch op {
			case "==":
				op = "="
			case "<>":
				op = "!="
			case "!":
				return nil, fmt.Errorf("'!' at character %d must be followed by '='", i+1)
			}
			out = append(out, token{kind: tOp, text: op})
			i = j
		case c == '-' || c == '+' || c == '.' || unicode.IsDigit(c):
			j := i + 1
			for j < len(rs) && (unicode.IsDigit(rs[j]) || strings.ContainsRune(".eE+-_", rs[j])) {
				j++
			}
			text := string(rs[i:j])
			n, err := strconv.ParseFloat(text, 64)
			if err != nil {
				return nil, fmt.Errorf("%q is not a number", text)
			}
			out = append(out, token{kind: tNum, text: text, num: n})
			i = j
		case c == '_' || unicode.IsLetter(c):
			j := i + 1
			for j < len(rs) && (rs[j] == '_' || rs[j] == '.' || unicode.IsLetter(rs[j]) || unicode.IsDigit(rs[j])) {
				j++
			}
			out = append(out, token{kind: tIdent, text: string(rs[i:j])})
			i = j
		case c == '"':
			j := i + 1
			for j < len(rs) && rs[j] != '"' {
				j++
			}
			if j >= len(rs) {
				return nil, fmt.Errorf("a quoted column name starting at character %d has no closing quote", i+1)
			}
			if j == i+1 {
				return nil, fmt.Errorf("an empty quoted column name at character %d", i+1)
			}
			out = append(out, token{kind: tIdent, text: string(rs[i+1 : j])})
			i = j + 1
		default:
			return nil, fmt.Errorf("unexpected %q at character %d", c, i+1)
		}
	}
	return out, nil
}

// cmp compares a with the literal v: numerically when both are numbers,
// else as strings. ok is false when they cannot be compared (a string
// literal against a number column, for statistics).
func cmpNum(a float64, v Value) (int, bool) {
	if !v.IsNum {
		return 0, false
	}
	switch {
	case a < v.Num:
		return -1, true
	case a > v.Num:
		return 1, true
	}
	return 0, true
}

func cmpStr(a string, v Value) int { return strings.Compare(a, v.Str) }

// holds says whether c (the comparison of a value with one literal)
// satisfies op.
func holds(op Op, c int) bool {
	switch op {
	case Eq, In:
		return c == 0
	case Ne:
		return c != 0
	case Lt:
		return c < 0
	case Le:
		return c <= 0
	case Gt:
		return c > 0
	case Ge:
		return c >= 0
	}
	return false
}

// matchString says whether a partition value (text) satisfies p: compared
// as numbers when both the value and the literal are numbers, else as
// strings.
func (p Pred) matchString(s string) bool {
	for _, v := range p.Values {
		var c int
		if n, err := strconv.ParseFloat(s, 64); err == nil && v.IsNum {
			c, _ = cmpNum(n, v)
		} else {
			c = cmpStr(s, v)
		}
		if p.Op == In {
			if c == 0 {
				return true
			}
			continue
		}
		return holds(p.Op, c)
	}
	return false
}

// mayMatchRange says whether some value in [lo, hi] may satisfy p, given
// a comparison function of a bound with a literal; ok false means unknown.
func (p Pred) mayMatchRange(cmpLo, cmpHi func(Value) (int, bool)) bool {
	for _, v := range p.Values {
		l, ok1 := cmpLo(v)
		h, ok2 := cmpHi(v)
		if !ok1 || !ok2 {
			return true
		}
		var may bool
		switch p.Op {
		case Eq, In:
			may = l <= 0 && h >= 0
		case Ne:
			may = !(l == 0 && h == 0)
		case Lt:
			may = l < 0
		case Le:
			may = l <= 0
		case Gt:
			may = h > 0
		case Ge:
			may = h >= 0
		}
		if may {
			return true
		}
		if p.Op != In {
			return false
		}
	}
	return false
}
