//go:build !(linux || darwin || dragonfly || freebsd || netbsd || openbsd)

package repl

// echoOff is a no-op where the shell does not know the terminal's ioctls.
func echoOff(fd int) (restore func()) { return func() {} }
