package kubernetes

import (
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"time"

	"stepwise.dev/stepwise/internal/datastore"
)

// The flow's code ships itself: the launcher stores the flow's static
// Linux binary in the datastore once, under its SHA-256
// (code/<sha256>), and each pod fetches it through a presigned URL, checks
// the hash and runs it. No image is built per change of code, and any
// image works as the base.

// Code is the shipped binary: its hash and the URL pods fetch it from.
type Code struct {
	SHA256 string
	URL    string
	Size   int64
}

// ShipCode stores the binary of this program (or one built for Linux from
// its source) in the datastore, and returns where pods find it.
func ShipCode(ctx context.Context, data *datastore.Store) (*Code, error) {
	b := data.Backend()
	if !data.CanSign() {
		return nil, fmt.Errorf("kubernetes: the datastore %s cannot give pods a URL to fetch the flow's code from; tasks on a cluster need an S3 datastore (set it with 'stepwise configure --set-datastore s3://bucket/prefix')", b)
	}
	bin, sum, err := StaticBinary(ctx)
	if err != nil {
		return nil, err
	}
	if exists, err := b.Exists(ctx, datastore.CodeKey(sum)); err != nil {
		return nil, fmt.Errorf("kubernetes: cannot look for the flow's code in the datastore %s: %w", b, err)
	} else if !exists {
		if err := b.Put(ctx, datastore.CodeKey(sum), bytes.NewReader(bin), int64(len(bin))); err != nil {
			return nil, fmt.Errorf("kubernetes: cannot store the flow's code in the datastore %s: %w", b, err)
		}
	}
	url, err := data.CodeURL(ctx, sum, 7*24*time.Hour)
	if err != nil {
		return nil, fmt.Errorf("kubernetes: cannot make a URL for the flow's code: %w", err)
	}
	return &Code{SHA256: sum, URL: url, Size: int64(len(bin))}, nil
}

// StaticBinary returns the static Linux binary pods run: this program's,
// or one built from its source when this one cannot run in any Linux
// image; and its SHA-256.
func StaticBinary(ctx context.Context) ([]byte, string, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, "", fmt.Errorf("kubernetes: cannot find this program's binary to ship to the pods: %w", err)
	}
	if why := notStaticLinux(exe); why != "" {
		built, err := buildStatic(ctx)
		if err != nil {
			return nil, "", fmt.Errorf("kubernetes: this program (%s) %s, and pods need a static Linux binary: %w", exe, why, err)
		}
		defer os.RemoveAll(filepath.Dir(built))
		exe = built
	}
	bin, err := os.ReadFile(exe)
	if err != nil {
		return nil, "", fmt.Errorf("kubernetes: cannot read the binary to ship: %w", err)
	}
	h := sha256.Sum256(bin)
	return bin, hex.EncodeToString(h[:]), nil
}

// notStaticLinux says why a binary cannot run in any Linux image, or "".
func notStaticLinux(path string) string {
	f, err := elf.Open(path)
	if err != nil {
		return "is not a Linux (ELF) binary"
	}
	defer f.Close()
	if f.Machine != elf.EM_X86_64 && f.Machine != elf.EM_AARCH64 {
		return fmt.Sprintf("is built for %s", f.Machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return "is linked dynamically (cgo: SQLite's and the HTTP client's dependencies link the C resolver)"
		}
	}
	return ""
}

// buildStatic builds this program's main package again as a static Linux
// binary, when its source is at hand (go run, go build in a checkout).
func buildStatic(ctx context.Context) (string, error) {
	bi, ok := debug.ReadBuildInfo()
	how := "build it with CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go build, and run that binary"
	if !ok || bi.Path == "" || bi.Path == "command-line-arguments" {
		return "", errors.New(how)
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("no go command to build one (%v); %s", err, how)
	}
	dir, err := os.MkdirTemp("", "stepwise-code-")
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, "flow")
	cmd := exec.CommandContext(ctx, goTool, "build", "-trimpath", "-o", out, bi.Path)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("building %s for Linux failed (%v): %s; %s", bi.Path, err, bytes.TrimSpace(stderr.Bytes()), how)
	}
	return out, nil
}
