//go:build unix

package repl

import (
	"os"
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

// leaveSignals make the interactive shell leave the cluster and exit:
// kill's default, and the hang-up of a closed terminal or tmux pane.
var leaveSignals = []os.Signal{syscall.SIGTERM, syscall.SIGHUP}
