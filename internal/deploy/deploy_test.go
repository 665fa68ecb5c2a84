package deploy

import (
	"strings"
	"testing"

	"stepwise.dev/stepwise/internal/graph"
)

// Deploying over someone else's deployment needs its production token.
func TestChooseToken(t *testing.T) {
	deployed := map[string]string{AnnotationToken: "train-abc", AnnotationBy: "ann"}
	for _, c := range []struct {
		name, user, authorize string
		old                   map[string]string
		want, says            string
	}{
		{name: "first deployment", user: "ann", want: "train-"},
		{name: "first deployment with a token", user: "ann", authorize: "train-given", want: "train-given"},
		{name: "the same deployer", user: "ann", old: deployed, want: "train-abc"},
		{name: "someone else", user: "bob", old: deployed, says: "made by ann, not you (bob)"},
		{name: "someone else with the token", user: "bob", authorize: "train-abc", old: deployed, want: "train-abc"},
		{name: "a wrong token", user: "bob", authorize: "train-xyz", old: deployed, says: "is not the production token"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := ChooseToken("Train", "train", c.authorize, c.user, "cronjob", c.old)
			if c.says != "" {
				if err == nil || !strings.Contains(err.Error(), c.says) || !strings.Contains(err.Error(), "--authorize") {
					t.Fatalf("err %v, want one saying %q and --authorize", err, c.says)
				}
				return
			}
			if err != nil || !strings.HasPrefix(got, c.want) {
				t.Fatalf("token %q, %v; want %q", got, err, c.want)
			}
		})
	}
	if a, b := mustToken(t), mustToken(t); a == b {
		t.Errorf("two new tokens are the same: %s", a)
	}
}

func mustToken(t *testing.T) string {
	tok, err := newToken("Train")
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestName(t *testing.T) {
	for in, want := range map[string]string{"Train": "train", "My_Flow2": "my-flow2", strings.Repeat("Long", 20): strings.Repeat("long", 13)} {
		if got := Name(in); got != want {
			t.Errorf("Name(%q) = %q, want %q", in, got, want)
		}
	}
}

// A step placed on the launcher's machine, or on another backend, keeps a
// flow from being deployed, and the error names the step.
func TestCheckPlacement(t *testing.T) {
	for _, c := range []struct {
		compute, says string
	}{
		{"", ""},
		{"kubernetes", ""},
		{"local", "step train is placed on the launcher's machine"},
		{"slurm", "step train is placed on slurm"},
	} {
		g := &graph.Graph{Flow: "F", Steps: []*graph.Step{{Name: "start"}, {Name: "train", Compute: c.compute}}}
		err := CheckPlacement(g)
		if c.says == "" && err != nil || c.says != "" && (err == nil || !strings.Contains(err.Error(), c.says)) {
			t.Errorf("compute %q: err %v, want one saying %q", c.compute, err, c.says)
		}
	}
}
