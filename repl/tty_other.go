//go:build !unix

package repl

import (
	"os"
	"syscall"
)

func ignoreSuspend() (restore func()) { return func() {} }

// leaveSignals make the interactive shell leave the cluster and exit (on
// Windows, SIGTERM stands for a closed console window).
var leaveSignals = []os.Signal{syscall.SIGTERM}
