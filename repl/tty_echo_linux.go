package repl

import "syscall"

const (
	ioctlGetTermios, ioctlSetTermios = syscall.TCGETS, syscall.TCSETS
	ioctlInputQueue                  = syscall.TIOCINQ
)
