//go:build !(linux || darwin || dragonfly || freebsd || netbsd || openbsd)

package repl

// echoOff is a no-op where the shell does not know the terminal's ioctls.
func echoOff(fd int) (restore func()) { return func() {} }

// queuedInput cannot tell here: a Ctrl-C right after Enter is caught only
// when it came in the same read.
func queuedInput(fd int) int { return 0 }
