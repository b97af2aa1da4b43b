//go:build unix

package jobs

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
)

// inGroup makes cmd the leader of a process group of its own, so that
// everything it starts can be signalled at once.
func inGroup(cmd *exec.Cmd) { cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} }

// terminate asks the group led by p to stop (SIGTERM); kill ends it (SIGKILL).
func terminate(p *os.Process) { syscall.Kill(-p.Pid, syscall.SIGTERM) }
func kill(p *os.Process)      { syscall.Kill(-p.Pid, syscall.SIGKILL) }

// groupAlive reports whether a process of p's group still runs. Zombies
// do not count: an orphan's new parent (PID 1 in a container) may never
// reap it, and it holds nothing.
func groupAlive(p *os.Process) bool {
	return !errors.Is(syscall.Kill(-p.Pid, 0), syscall.ESRCH) && runningIn(p.Pid)
}

// exitStatus is a shell's view of how the command ended: its exit code, or
// 128+N when signal N killed it.
func exitStatus(ps *os.ProcessState) int {
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}
