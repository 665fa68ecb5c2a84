package launcher

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"stepwise.dev/stepwise/internal/metadata"
)

// codeVersion identifies the code of a run: the binary's SHA-256, and its
// git commit and dirty state. Go stamps the commit into binaries built in
// a checkout; otherwise (go run, go test, GOFLAGS=-buildvcs=false) git is
// asked about the working directory. Hashing a 30 MB binary and starting
// git cost tens of milliseconds, so the result is cached per binary (by
// path, inode, size and modification time) in the user's cache directory.
func codeVersion(exe string) metadata.Code {
	fi, err := os.Stat(exe)
	if err != nil {
		return metadata.Code{}
	}
	key := exe
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		key = strings.Join([]string{exe, itoa(int64(st.Ino)), itoa(fi.Size()), itoa(fi.ModTime().UnixNano())}, "|")
	}
	cache := codeCache()
	if c, ok := cache.get(key); ok {
		return c
	}
	var c metadata.Code
	var wg sync.WaitGroup
	wg.Go(func() {
		if f, err := os.Open(exe); err == nil {
			h := sha256.New()
			if _, err := io.Copy(h, f); err == nil {
				c.BinarySHA256 = hex.EncodeToString(h.Sum(nil))
			}
			f.Close()
		}
	})
	stamped := false
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				c.GitCommit, stamped = s.Value, true
			case "vcs.modified":
				c.GitDirty = s.Value == "true"
			}
		}
	}
	if !stamped {
		wg.Go(func() {
			if out, err := exec.Command("git", "rev-parse", "HEAD").Output(); err == nil {
				c.GitCommit = strings.TrimSpace(string(out))
				if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil {
					c.GitDirty = len(strings.TrimSpace(string(st))) > 0
				}
			}
		})
	}
	wg.Wait()
	cache.put(key, c)
	return c
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// fileCache is a small JSON map in the user's cache directory; a cache
// that cannot be read or written is simply not used.
type fileCache struct{ path string }

func codeCache() fileCache {
	dir, err := os.UserCacheDir()
	if err != nil {
		return fileCache{}
	}
	return fileCache{filepath.Join(dir, "stepwise", "code-versions.json")}
}

func (fc fileCache) read() map[string]metadata.Code {
	m := map[string]metadata.Code{}
	if fc.path == "" {
		return m
	}
	if data, err := os.ReadFile(fc.path); err == nil {
		_ = json.Unmarshal(data, &m)
	}
	return m
}

func (fc fileCache) get(key string) (metadata.Code, bool) {
	c, ok := fc.read()[key]
	return c, ok && c.BinarySHA256 != ""
}

// put adds an entry, keeping the cache small: binaries rebuilt often would
// otherwise pile up.
func (fc fileCache) put(key string, c metadata.Code) {
	if fc.path == "" || c.BinarySHA256 == "" {
		return
	}
	m := fc.read()
	if len(m) >= 64 {
		m = map[string]metadata.Code{}
	}
	m[key] = c
	data, _ := json.Marshal(m)
	if os.MkdirAll(filepath.Dir(fc.path), 0o700) != nil {
		return
	}
	tmp, err := os.CreateTemp(filepath.Dir(fc.path), ".code-versions-*")
	if err != nil {
		return
	}
	_, werr := tmp.Write(data)
	cerr := tmp.Close()
	if werr != nil || cerr != nil || os.Rename(tmp.Name(), fc.path) != nil {
		os.Remove(tmp.Name())
	}
}
