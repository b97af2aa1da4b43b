//go:build unix

package repl

import (
	"os/signal"
	"syscall"
)

// ignoreSuspend ignores SIGTSTP while the shell runs: Ctrl-Z typed while a
// command runs (the terminal is then in cooked mode) would stop a process
// that often has no job-control shell to resume it, such as a tmux pane.
func ignoreSuspend() (restore func()) {
	signal.Ignore(syscall.SIGTSTP)
	return func() { signal.Reset(syscall.SIGTSTP) }
}
