//go:build !unix

package jobs

import (
	"os"
	"os/exec"
)

// Without unix process groups the command itself is killed: there is no
// gentle stop to ask for first, and what it started is not reached.
func inGroup(cmd *exec.Cmd)         {}
func terminate(p *os.Process)       { p.Kill() }
func kill(p *os.Process)            { p.Kill() }
func groupAlive(p *os.Process) bool { return false }

func exitStatus(ps *os.ProcessState) int { return ps.ExitCode() }
