package hosting

import (
	"encoding/json"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

// queryReq has a field of every kind a query parameter may fill.
type queryReq struct {
	Name   string   `json:"name"`
	N      int      `json:"n"`
	X      *float64 `json:"x,omitempty"`
	OK     bool
	Tags   []string `json:"tags"`
	IDs    []int    `json:"ids"`
	Raw    []byte   `json:"raw"`
	Skip   string   `json:"-"`
	Nested struct{ A int }
}

func TestQueryJSON(t *testing.T) {
	tests := []struct {
		query string
		want  string // the JSON, or the error's start with "error: "
	}{
		{"", `{}`},
		{"name=bob", `{"name":"bob"}`},
		{"name=1", `{"name":"1"}`},
		{`name="q"`, `{"name":"\"q\""}`},
		{"n=3&x=1.5", `{"n":3,"x":1.5}`},
		{"n=three", `{"n":"three"}`},
		{"OK=true", `{"OK":true}`},
		{"ok=true", `{"OK":true}`},
		{"tags=a&tags=b", `{"tags":["a","b"]}`},
		{"tags=1", `{"tags":["1"]}`},
		{`tags=["a","b"]`, `{"tags":["a","b"]}`},
		{"ids=1&ids=2", `{"ids":[1,2]}`},
		{"raw=aGk=", `{"raw":"aGk="}`},
		{"nested={\"A\":1}", `{"Nested":{"A":1}}`},
		{"n=1&n=2", `error: parameter "n" is given 2 times`},
		{"n=1&N=2", `error: parameters "N" and "n" name the same field`},
		{"Skip=x", `error: unknown parameter "Skip"`},
		{"name=%80", `error: parameter "name" is not valid UTF-8 text`},
		{"tags=ok&tags=%C3", `error: parameter "tags" is not valid UTF-8 text`},
		{"other=1", `error: unknown parameter "other": this endpoint takes name, n, x, OK, tags, ids, raw, Nested`},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			q, err := url.ParseQuery(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			got, err := queryJSON(q, reflect.TypeFor[queryReq]())
			if msg, ok := strings.CutPrefix(tt.want, "error: "); ok {
				if err == nil || !strings.HasPrefix(err.Error(), msg) {
					t.Errorf("queryJSON(%q) = %s, %v; want an error starting %q", tt.query, got, err, msg)
				}
				return
			}
			if err != nil || string(got) != tt.want {
				t.Errorf("queryJSON(%q) = %s, %v; want %s", tt.query, got, err, tt.want)
			}
		})
	}
	if _, err := queryJSON(url.Values{"a": {"1"}}, reflect.TypeFor[[]int]()); err == nil || !strings.Contains(err.Error(), "POST it as a JSON body") {
		t.Errorf("a query for a slice request: %v", err)
	}
}

// FuzzQueryJSON checks that any query gives valid JSON or an error, and
// that a string parameter arrives exactly as sent.
func FuzzQueryJSON(f *testing.F) {
	for _, s := range []string{"name=bob&n=1", "tags=a&tags=b", `ids=[1,2]`, "x=1e400", "name=%22", "nested={}", "n=1&n=2", "ok=tru", "raw=%00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		data, err := queryJSON(q, reflect.TypeFor[queryReq]())
		if err != nil {
			return
		}
		if !json.Valid(data) {
			t.Fatalf("queryJSON(%q) = %s, not valid JSON", raw, data)
		}
		var req queryReq
		if err := json.Unmarshal(data, &req); err != nil {
			return // a value of the wrong type: the client gets 400
		}
		for k, vs := range q {
			if strings.EqualFold(k, "name") && len(q) == 1 && req.Name != vs[0] {
				t.Fatalf("queryJSON(%q): name %q arrived as %q", raw, vs[0], req.Name)
			}
		}
	})
}
