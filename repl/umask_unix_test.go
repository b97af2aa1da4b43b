//go:build unix

package repl

import "syscall"

// setUmask sets the process's umask to m and returns what puts it back.
func setUmask(m int) (restore func()) {
	old := syscall.Umask(m)
	return func() { syscall.Umask(old) }
}
