//go:build darwin || dragonfly || freebsd || netbsd || openbsd

package repl

import "syscall"

const (
	ioctlGetTermios, ioctlSetTermios = syscall.TIOCGETA, syscall.TIOCSETA
	ioctlInputQueue                  = 0x4004667f // FIONREAD, _IOR('f', 127, int), which package syscall lacks here
)

// vdisable turns a control character off (_POSIX_VDISABLE).
const vdisable = 0xff
