//go:build linux || darwin || dragonfly || freebsd || netbsd || openbsd

package repl

import (
	"syscall"
	"unsafe"
)

// echoOff turns the terminal's echo and its suspend character off,
// keeping its line discipline and Ctrl-C's signal, and returns how to turn
// them back on. While a command runs, text typed ahead is then not echoed
// raw into its output: readline reads it and shows it at the next prompt.
// Ctrl-Z would send SIGTSTP, which the shell ignores, and flush that text
// on its way: as a plain byte it reaches readline, which drops it.
func echoOff(fd int) (restore func()) {
	var t syscall.Termios
	if termios(fd, ioctlGetTermios, &t) != nil {
		return func() {}
	}
	old := t
	t.Lflag &^= syscall.ECHO | syscall.ECHONL
	t.Cc[syscall.VSUSP] = vdisable
	if termios(fd, ioctlSetTermios, &t) != nil {
		return func() {}
	}
	return func() { termios(fd, ioctlSetTermios, &old) }
}

// queuedInput is how many bytes wait to be read from the terminal fd
// (in cooked mode: complete lines, and what raw mode left there), 0 when
// it cannot tell.
func queuedInput(fd int) int {
	var n int32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), ioctlInputQueue, uintptr(unsafe.Pointer(&n))); e != 0 {
		return 0
	}
	return int(n)
}

func termios(fd int, req uintptr, t *syscall.Termios) error {
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), req, uintptr(unsafe.Pointer(t))); e != 0 {
		return e
	}
	return nil
}
