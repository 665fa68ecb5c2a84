package datastore

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ErrDiskFull is matched (errors.Is) by the errors of writes that failed
// because the disk holding a local datastore or metadata store is full.
// The error is a *DiskFullError that says where, and how much space there
// is and was needed.
var ErrDiskFull = errors.New("the disk is full")

// ErrReadOnly is matched (errors.Is) by the errors of writes to a
// datastore or metadata store that cannot be written: a read-only file
// system, or a directory this user may not write. Reading it works.
var ErrReadOnly = errors.New("the datastore is read-only")

// DiskFullError is a write that found no space left on a disk.
type DiskFullError struct {
	What   string // what could not be done, e.g. "write /data/ds/blobs/ab/.tmp-1"
	Dir    string // the directory written to
	Mount  string // the mount point of its file system, "" when unknown
	FSType string // its file system type, "" when unknown
	Free   int64  // bytes free for this user after the failure, -1 when unknown
	Need   int64  // bytes the write needed, 0 when unknown
	Hint   string // what to do
	Err    error  // the cause, e.g. syscall.ENOSPC
}

func (e *DiskFullError) Error() string {
	var b strings.Builder
	if e.What != "" {
		fmt.Fprintf(&b, "cannot %s: ", e.What)
	}
	fmt.Fprintf(&b, "%v: the disk holding %s", e.Err, e.Dir)
	switch {
	case e.Mount != "" && e.FSType != "":
		fmt.Fprintf(&b, " (%s file system mounted at %s)", e.FSType, e.Mount)
	case e.Mount != "":
		fmt.Fprintf(&b, " (mounted at %s)", e.Mount)
	}
	b.WriteString(" is full")
	if e.Free >= 0 {
		fmt.Fprintf(&b, ": %s free", FormatBytes(e.Free))
	}
	if e.Need > 0 {
		fmt.Fprintf(&b, ", and this write needs %s", FormatBytes(e.Need))
		if e.Free >= 0 && e.Need > e.Free {
			fmt.Fprintf(&b, " (%s more)", FormatBytes(e.Need-e.Free))
		}
	}
	if e.Hint != "" {
		b.WriteString("; ")
		b.WriteString(e.Hint)
	}
	return b.String()
}

// Is makes the error match ErrDiskFull.
func (e *DiskFullError) Is(target error) bool { return target == ErrDiskFull }

// Unwrap returns the cause.
func (e *DiskFullError) Unwrap() error { return e.Err }

// DiskFull describes err, a write to dir (or a file in it) that found the
// disk full: it measures the free space now and finds the file system.
// need is the bytes the write needed (0 when unknown); what and hint are
// as in DiskFullError.
func DiskFull(what, dir string, need int64, hint string, err error) *DiskFullError {
	e := &DiskFullError{What: what, Dir: dir, Need: need, Hint: hint, Err: err, Free: -1}
	existing := nearestExisting(dir)
	if free, ok := freeBytes(existing); ok {
		e.Free = free
	}
	e.Mount, e.FSType = mountOf(existing)
	return e
}

// ReadOnlyError is a write to a store that cannot be written.
type ReadOnlyError struct {
	Msg string
	Err error // the cause, e.g. syscall.EROFS
}

func (e *ReadOnlyError) Error() string { return e.Msg }

// Is makes the error match ErrReadOnly.
func (e *ReadOnlyError) Is(target error) bool { return target == ErrReadOnly }

// Unwrap returns the cause.
func (e *ReadOnlyError) Unwrap() error { return e.Err }

// FreeBytes returns the bytes free for this user on the disk holding
// path (or its nearest existing parent); ok is false where unknown.
func FreeBytes(path string) (int64, bool) { return freeBytes(nearestExisting(path)) }

// nearestExisting is path, or its nearest parent that exists.
func nearestExisting(path string) string {
	p, err := filepath.Abs(path)
	if err != nil {
		return path
	}
	for {
		if _, err := os.Stat(p); err == nil || filepath.Dir(p) == p {
			return p
		}
		p = filepath.Dir(p)
	}
}

// mountOf finds the mount point and file system type of path from
// /proc/self/mountinfo (Linux); "" where unknown.
func mountOf(path string) (mount, fstype string) {
	if p, err := filepath.EvalSymlinks(path); err == nil {
		path = p
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		// id parent major:minor root mountpoint options [optional...] - fstype source superoptions
		fields := strings.Fields(sc.Text())
		if len(fields) < 7 {
			continue
		}
		mp := unescapeMount(fields[4])
		if !(path == mp || mp == "/" || strings.HasPrefix(path, mp+"/")) || len(mp) < len(mount) {
			continue
		}
		typ := ""
		for i, fl := range fields {
			if fl == "-" && i+1 < len(fields) {
				typ = fields[i+1]
				break
			}
		}
		mount, fstype = mp, typ // a later mount over the same point wins
	}
	return mount, fstype
}

// unescapeMount undoes the octal escapes (\040 for a space) of mountinfo.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// FormatBytes writes n in B, KiB, MiB, GiB or TiB.
func FormatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	f, i := float64(n), -1
	for f >= unit && i < 3 {
		f /= unit
		i++
	}
	return fmt.Sprintf("%.1f %ciB", f, "KMGT"[i])
}
