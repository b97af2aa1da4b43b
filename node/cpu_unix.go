//go:build unix

package node

import "syscall"

// cpuMs is the CPU time this process used so far, user and system, in ms.
func cpuMs() uint64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return uint64(ru.Utime.Nano()/1e6 + ru.Stime.Nano()/1e6)
}
