//go:build unix && !linux

package node

// runningIn cannot tell zombies apart here: a group with members runs.
func runningIn(pgid int) bool { return true }
