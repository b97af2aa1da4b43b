package main

import (
	"testing"
	"time"
)

// TestGiveBackFreesOnEveryTickUntilStopped: the process hands memory back
// once per tick, and stops when told (its goroutine ends with the process's
// run).
func TestGiveBackFreesOnEveryTickUntilStopped(t *testing.T) {
	tick, stop, done := make(chan time.Time), make(chan struct{}), make(chan struct{})
	freed := 0
	go func() { giveBack(tick, stop, func() { freed++ }); close(done) }()
	for range 3 {
		tick <- time.Time{}
	}
	close(stop)
	<-done
	if freed != 3 {
		t.Fatalf("freed %d times for 3 ticks", freed)
	}
}
