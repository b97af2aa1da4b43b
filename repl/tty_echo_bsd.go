//go:build darwin || dragonfly || freebsd || netbsd || openbsd

package repl

import "syscall"

const ioctlGetTermios, ioctlSetTermios = syscall.TIOCGETA, syscall.TIOCSETA
