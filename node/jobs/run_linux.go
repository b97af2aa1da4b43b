package jobs

import (
	"bytes"
	"os"
	"strconv"
)

// runningIn reports whether a process of group pgid is not a zombie, from
// /proc (only asked when the group still has members). When /proc cannot
// be read it answers true, and the group is killed as if it ran.
func runningIn(pgid int) bool {
	d, err := os.Open("/proc")
	if err != nil {
		return true
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return true
	}
	for _, name := range names {
		if name[0] < '0' || name[0] > '9' {
			continue
		}
		if state, group, ok := procStat(name); ok && group == pgid && state != 'Z' && state != 'X' {
			return true
		}
	}
	return false
}

// procStat reads the state and process group of process pid from
// /proc/PID/stat: "pid (comm) S ppid pgrp …", comm possibly holding spaces
// and parentheses.
func procStat(pid string) (state byte, pgrp int, ok bool) {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0, 0, false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 3 || len(f[0]) != 1 {
		return 0, 0, false
	}
	g, err := strconv.Atoi(string(f[2]))
	return f[0][0], g, err == nil
}
