package main

import (
	"runtime/debug"
	"time"
)

// giveBackEvery is how often the process hands freed memory back to the OS.
// Go's collector keeps at least 4 MiB of heap (its minimum goal) and
// returns freed pages slowly, so a join storm or a burst of jobs would stay
// resident for hours; a hundred nodes on one host would each carry it. One
// forced collection of a node's small heap costs about a millisecond.
const giveBackEvery = 30 * time.Second

// giveBack calls free on every tick until stop is closed.
func giveBack(tick <-chan time.Time, stop <-chan struct{}, free func()) {
	for {
		select {
		case <-tick:
			free()
		case <-stop:
			return
		}
	}
}

// startGiveBack runs giveBack with debug.FreeOSMemory every giveBackEvery;
// the returned function stops it.
func startGiveBack() (stop func()) {
	t := time.NewTicker(giveBackEvery)
	done := make(chan struct{})
	go giveBack(t.C, done, debug.FreeOSMemory)
	return func() { t.Stop(); close(done) }
}
