package config

import (
	"os"
	"path/filepath"
	"testing"
)

func TestPasswdName(t *testing.T) {
	p := filepath.Join(t.TempDir(), "passwd")
	os.WriteFile(p, []byte("root:x:0:0:root:/root:/bin/bash\nann:x:1000:1000:Ann:/home/ann:/bin/sh\nbroken line\n"), 0o644)
	for uid, want := range map[int]string{0: "root", 1000: "ann", 42: ""} {
		if got := passwdName(p, uid); got != want {
			t.Errorf("uid %d: %q, want %q", uid, got, want)
		}
	}
	if got := passwdName(filepath.Join(t.TempDir(), "missing"), 0); got != "" {
		t.Errorf("missing file: %q", got)
	}
}
