package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"stepwise.dev/stepwise/internal/card"
	"stepwise.dev/stepwise/internal/datastore"
	"stepwise.dev/stepwise/internal/datastore/local"
)

// TestCardVersions lists and reads the versions of a progress card saved
// 25 times and then for the last time, and a card saved before versions
// were kept.
func TestCardVersions(t *testing.T) {
	ann, _ := setup(t)
	ctx := context.Background()
	b, err := local.New(os.Getenv("STEPWISE_DATASTORE"))
	if err != nil {
		t.Fatal(err)
	}
	s := datastore.New(b)
	flow, id, _ := strings.Cut(ann, "/")
	p := datastore.TaskPath{Flow: flow, Run: id, Step: "end", Task: "0"}
	saved := time.Now().Add(-time.Minute)
	for v := 1; v <= 26; v++ {
		d := &card.Doc{Name: "progress", Task: p.String(), Version: v, Updated: saved.Add(time.Duration(v) * time.Second), Final: v == 26,
			Parts: []card.Part{card.Markdown(fmt.Sprintf("epoch %d", v))}}
		data, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.PutCard(ctx, p, 0, d.Name, datastore.CardVersion{Version: v, Saved: d.Updated, Final: d.Final}, data); err != nil {
			t.Fatal(err)
		}
	}
	old, _ := json.Marshal(&card.Doc{Name: "old", Task: p.String(), Version: 4, Parts: []card.Part{card.Markdown("before versions")}})
	if err := b.Put(ctx, datastore.CardKey(p, 0, "old"), strings.NewReader(string(old)), int64(len(old))); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	html := func(name string) string { return filepath.Join(dir, name+".html") }
	task := ann + "/end/0"
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout []string
		stderr []string
		file   string // the card written, and what it shows
		shows  string
	}{
		{"list", []string{"card", "list", task}, 0, []string{"CARD      ATTEMPT  VERSIONS  LATEST", "progress  0        21        26 (final)", "old       0        1         (only the latest kept)"}, nil, "", ""},
		{"list of attempt 0", []string{"card", "list", task, "--attempt", "0"}, 0, []string{"progress"}, nil, "", ""},
		{"list of attempt 3", []string{"card", "list", task, "--attempt", "3"}, 0, []string{"default"}, nil, "", ""},
		{"versions", []string{"card", "list", task, "--name", "progress"}, 0, []string{"21 versions kept (its final one and at most its last 20 others)", "VERSION  SAVED", "\n6  ", "\n25  ", "final"}, nil, "", ""},
		{"versions json", []string{"card", "list", task, "--name", "progress", "--json"}, 0, []string{`"Version": 26`, `"Final": true`, `"Key": "`}, nil, "", ""},
		{"versions of an old card", []string{"card", "list", task, "--name", "old"}, 0, []string{"saved before versions were kept"}, nil, "", ""},
		{"versions of the default card", []string{"card", "list", task, "--name", "default"}, 0, []string{"it is made when read"}, nil, "", ""},
		{"versions of no card", []string{"card", "list", task, "--name", "nosuch"}, 1, nil, []string{`has no card "nosuch"`}, "", ""},
		{"get latest", []string{"card", "get", task, "--name", "progress", "-o", html("latest")}, 0, []string{"(version 26) written to"}, nil, html("latest"), "epoch 26"},
		{"get a version", []string{"card", "get", task, "--name", "progress", "--version", "7", "-o", html("v7")}, 0, []string{"(version 7) written to"}, nil, html("v7"), "epoch 7"},
		{"get a version json", []string{"card", "get", task, "--name", "progress", "--version", "25", "-o", html("v25"), "--json"}, 0, []string{`"version": 25`, `"final": false`}, nil, html("v25"), "epoch 25"},
		{"get a dropped version", []string{"card", "get", task, "--name", "progress", "--version", "5", "-o", html("v5")}, 1, nil, []string{"has no version 5", "keeps versions 6-26", "card list " + task + " --name progress"}, "", ""},
		{"get an old card", []string{"card", "get", task, "--name", "old", "-o", html("old")}, 0, nil, nil, html("old"), "before versions"},
		{"get an old card's version", []string{"card", "get", task, "--name", "old", "--version", "4", "-o", html("old4")}, 0, nil, nil, html("old4"), "before versions"},
		{"get an old card's other version", []string{"card", "get", task, "--name", "old", "--version", "3", "-o", html("old3")}, 1, nil, []string{"keeps only its latest version"}, "", ""},
		{"get of another attempt", []string{"card", "get", task, "--name", "progress", "--attempt", "1", "-o", html("a1")}, 1, nil, []string{`has no card "progress"`}, "", ""},
		{"get a negative version", []string{"card", "get", task, "--name", "progress", "--version", "-2", "-o", html("neg")}, 1, nil, []string{"versions count from 1"}, "", ""},
		{"list takes no -o", []string{"card", "list", task, "-o", html("x")}, 2, nil, []string{"flag provided but not defined: -o"}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			expect(t, tt.args, tt.code, tt.stdout, tt.stderr)
			if tt.file != "" {
				data, err := os.ReadFile(tt.file)
				if err != nil || !strings.Contains(string(data), tt.shows) {
					t.Errorf("the card written (%v) does not show %q", err, tt.shows)
				}
			}
		})
	}
}
