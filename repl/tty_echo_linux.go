package repl

import "syscall"

const (
	ioctlGetTermios, ioctlSetTermios = syscall.TCGETS, syscall.TCSETS
	ioctlInputQueue                  = syscall.TIOCINQ
)

// vdisable turns a control character off (_POSIX_VDISABLE).
const vdisable = 0
