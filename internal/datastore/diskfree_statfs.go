//go:build linux || darwin || freebsd

package datastore

import "syscall"

// freeBytes returns the bytes free for unprivileged users on the file
// system holding path.
func freeBytes(path string) (int64, bool) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return 0, false
	}
	return int64(uint64(st.Bavail) * uint64(st.Bsize)), true
}

// Writable reports whether this process may write path (a file or a
// directory): false on a read-only file system, or without permission.
func Writable(path string) bool {
	return syscall.Access(path, 2 /* W_OK */) == nil
}
