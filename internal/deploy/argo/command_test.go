package argo

import (
	"strings"
	"testing"
)

// Deploying over someone else's deployment needs its production token.
func TestProductionToken(t *testing.T) {
	deployed := &WorkflowTemplate{Metadata: ObjectMeta{Annotations: map[string]string{AnnotationToken: "train-abc", AnnotationBy: "ann"}}}
	for _, c := range []struct {
		name, user, authorize string
		old                   *WorkflowTemplate
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
			cm := &cmd{name: "train", authorize: c.authorize, e: nil}
			got, err := cm.tokenFor("Train", c.old, c.user)
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

func TestTemplateName(t *testing.T) {
	for in, want := range map[string]string{"Train": "train", "My_Flow2": "my-flow2", strings.Repeat("Long", 20): strings.Repeat("long", 13)} {
		if got := TemplateName(in); got != want {
			t.Errorf("TemplateName(%q) = %q, want %q", in, got, want)
		}
	}
}
